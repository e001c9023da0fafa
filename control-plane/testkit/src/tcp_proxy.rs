//! A small TCP proxy for tests of the in-process cluster: stands in for a
//! Kubernetes Service in front of the control-plane replicas (re-pointed
//! when a replica dies or a worker moves), and for a network cut between the
//! control plane and PostgreSQL (cut, then restore).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

struct Shared {
    upstream: Mutex<SocketAddr>,
    open: AtomicBool,
    /// Cancelled to close every current connection; replaced afterwards.
    conns: Mutex<CancellationToken>,
}

pub struct TcpProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl TcpProxy {
    /// Listens on `127.0.0.1:0` and forwards every connection to `upstream`.
    pub async fn start(upstream: SocketAddr) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            upstream: Mutex::new(upstream),
            open: AtomicBool::new(true),
            conns: Mutex::new(CancellationToken::new()),
        });
        let sh = shared.clone();
        let task = tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                if !sh.open.load(Ordering::Acquire) {
                    drop(inbound);
                    continue;
                }
                let upstream = *sh.upstream.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                let cancel = sh.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
                tokio::spawn(pipe(inbound, upstream, cancel));
            }
        });
        Ok(Self { addr, shared, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Where new connections go from now on.
    pub fn set_upstream(&self, upstream: SocketAddr) {
        *self.shared.upstream.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = upstream;
    }

    /// Closes every current connection (new ones are still accepted).
    pub fn reset(&self) {
        let mut token = self.shared.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        token.cancel();
        *token = CancellationToken::new();
    }

    /// Network cut: closes every connection and refuses new ones.
    pub fn cut(&self) {
        self.shared.open.store(false, Ordering::Release);
        self.reset();
    }

    /// Ends a cut.
    pub fn restore(&self) {
        self.shared.open.store(true, Ordering::Release);
    }
}

impl Drop for TcpProxy {
    fn drop(&mut self) {
        self.task.abort();
        self.shared.conns.lock().unwrap_or_else(std::sync::PoisonError::into_inner).cancel();
    }
}

async fn pipe(mut inbound: TcpStream, upstream: SocketAddr, cancel: CancellationToken) {
    let Ok(mut outbound) = TcpStream::connect(upstream).await else { return };
    let _ = inbound.set_nodelay(true);
    let _ = outbound.set_nodelay(true);
    tokio::select! {
        () = cancel.cancelled() => {}
        _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound) => {}
    }
}
