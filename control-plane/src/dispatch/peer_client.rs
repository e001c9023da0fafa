//! A typed client to another control-plane replica (`InternalService`), with
//! its own error type and a deadline on every call (the shape of neon's
//! storage controller `peer_client.rs`). Channels are cached per address.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tonic::metadata::{Ascii, MetadataValue};
use tonic::transport::Channel;
use wagate_proto::v1::{
    self, Command, CommandResult, command, dispatch_failure, dispatch_response,
    internal_service_client::InternalServiceClient,
};

/// Extra time the transport gets beyond the command's own deadline.
const TRANSPORT_MARGIN: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// Never reached the peer (connection refused, DNS, …): the command did
    /// not run.
    #[error("replica unreachable: {0}")]
    Unreachable(String),
    /// The peer does not hold the worker's stream.
    #[error("replica does not hold the worker's stream")]
    NotHeld,
    #[error("worker busy on the replica")]
    Busy,
    /// The worker's protocol does not know the command (it was not sent).
    #[error("{0}")]
    Unsupported(String),
    #[error("no answer before the deadline")]
    Timeout,
    /// The call broke after it was sent: the outcome is unknown.
    #[error("forwarded call lost: {0}")]
    Lost(String),
}

pub struct PeerClient {
    token: Option<MetadataValue<Ascii>>,
    /// TLS towards peers (this replica's certificate, `WAGATE_TLS_CA`), used
    /// for their `https://` addresses.
    tls: Option<wagate_proto::tls::ClientTls>,
    channels: Mutex<HashMap<String, Channel>>,
}

impl PeerClient {
    pub fn new(token: &str, tls: Option<wagate_proto::tls::ClientTls>) -> Self {
        Self { token: token.parse().ok(), tls, channels: Mutex::new(HashMap::new()) }
    }

    fn client(&self, addr: &str) -> Result<InternalServiceClient<Channel>, PeerError> {
        let mut map = self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(ch) = map.get(addr) {
            return Ok(InternalServiceClient::new(ch.clone()));
        }
        let options =
            wagate_proto::ConnectOptions { connect_timeout: Duration::from_secs(2), ..Default::default() };
        let channel = wagate_proto::endpoint_with_tls(addr.to_owned(), &options, self.tls.as_ref())
            .map_err(|e| PeerError::Unreachable(e.to_string()))?
            .connect_lazy();
        map.insert(addr.to_owned(), channel.clone());
        Ok(InternalServiceClient::new(channel))
    }

    fn forget(&self, addr: &str) {
        self.channels.lock().unwrap_or_else(std::sync::PoisonError::into_inner).remove(addr);
    }

    fn request<T>(&self, body: T, timeout: Duration) -> tonic::Request<T> {
        let mut req = tonic::Request::new(body);
        req.set_timeout(timeout);
        if let Some(t) = &self.token {
            req.metadata_mut().insert(wagate_proto::metadata::INTERNAL_TOKEN, t.clone());
        }
        req
    }

    /// Runs `kind` on `worker_id`'s stream held by the replica at `addr`.
    pub async fn dispatch(
        &self,
        addr: &str,
        worker_id: &str,
        kind: command::Kind,
        deadline: Duration,
    ) -> Result<CommandResult, PeerError> {
        if deadline.is_zero() {
            return Err(PeerError::Timeout);
        }
        let mut client = self.client(addr)?;
        let body = v1::DispatchRequest {
            worker_id: worker_id.to_owned(),
            command: Some(Command {
                request_id: 0,
                deadline_ms: u32::try_from(deadline.as_millis()).unwrap_or(u32::MAX),
                kind: Some(kind),
            }),
        };
        let call = client.dispatch(self.request(body, deadline + TRANSPORT_MARGIN));
        let reply = match tokio::time::timeout(deadline + TRANSPORT_MARGIN, call).await {
            Err(_) => return Err(PeerError::Timeout),
            Ok(Err(status)) => return Err(self.classify(addr, status)),
            Ok(Ok(r)) => r.into_inner(),
        };
        match reply.outcome {
            Some(dispatch_response::Outcome::Result(r)) => Ok(r),
            Some(dispatch_response::Outcome::Failure(f)) => Err(match f.kind() {
                dispatch_failure::Kind::NotConnected | dispatch_failure::Kind::Unspecified => {
                    PeerError::NotHeld
                }
                dispatch_failure::Kind::Busy => PeerError::Busy,
                dispatch_failure::Kind::Timeout => PeerError::Timeout,
                dispatch_failure::Kind::StreamClosed => PeerError::Lost(f.message),
                dispatch_failure::Kind::Unsupported => PeerError::Unsupported(f.message),
            }),
            None => Err(PeerError::Lost("empty reply".into())),
        }
    }

    /// Asks the replica at `addr` to end its streams of `worker_id` older than `epoch`.
    pub async fn preempt(&self, addr: &str, worker_id: &str, epoch: u64) -> Result<bool, PeerError> {
        let mut client = self.client(addr)?;
        let timeout = Duration::from_secs(2);
        let body = v1::PreemptRequest { worker_id: worker_id.to_owned(), epoch };
        match tokio::time::timeout(timeout, client.preempt(self.request(body, timeout))).await {
            Err(_) => Err(PeerError::Timeout),
            Ok(Err(status)) => Err(self.classify(addr, status)),
            Ok(Ok(r)) => Ok(r.into_inner().preempted),
        }
    }

    fn classify(&self, addr: &str, status: tonic::Status) -> PeerError {
        match status.code() {
            // Connection refused / reset before the request went out.
            tonic::Code::Unavailable => {
                self.forget(addr);
                PeerError::Unreachable(status.message().to_owned())
            }
            tonic::Code::DeadlineExceeded => PeerError::Timeout,
            tonic::Code::Unauthenticated | tonic::Code::Unimplemented => {
                tracing::error!(peer = addr, code = ?status.code(), "internal call refused: check WAGATE_INTERNAL_TOKEN");
                PeerError::Unreachable(status.message().to_owned())
            }
            _ => PeerError::Lost(status.message().to_owned()),
        }
    }
}
