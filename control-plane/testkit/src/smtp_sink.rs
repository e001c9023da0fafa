//! A minimal SMTP server on a loopback port for the tests: it speaks what
//! lettre speaks without TLS (EHLO/HELO, MAIL, RCPT, DATA, RSET, NOOP, QUIT)
//! and keeps every message it accepts, so `cargo test` needs nothing else.
//! It can refuse the next messages with a temporary 451 (retries).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// One message the sink accepted.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The DATA as sent (headers, blank line, body), dot-unstuffed.
    pub data: String,
}

impl ReceivedMail {
    /// The value of header `name` (first occurrence).
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or_default();
        let prefix = format!("{}:", name.to_ascii_lowercase());
        head.lines()
            .find(|l| l.to_ascii_lowercase().starts_with(&prefix))
            .map(|l| l[prefix.len()..].trim().to_owned())
    }

    pub fn subject(&self) -> String {
        self.header("Subject").unwrap_or_default()
    }

    /// The body, quoted-printable decoded when it was sent that way.
    pub fn body(&self) -> String {
        let body = self.data.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
        let qp = self
            .header("Content-Transfer-Encoding")
            .is_some_and(|e| e.eq_ignore_ascii_case("quoted-printable"));
        if qp { decode_qp(body) } else { body.to_owned() }
    }
}

fn decode_qp(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("zz"), 16)
        {
            out.push(b);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[derive(Default)]
struct Inner {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    /// Messages still to refuse with 451.
    refuse: AtomicUsize,
    /// Messages refused so far.
    refused: AtomicUsize,
}

/// The running sink; stops when dropped.
pub struct SmtpSink {
    addr: SocketAddr,
    inner: Arc<Inner>,
    stop: CancellationToken,
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl SmtpSink {
    pub async fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let inner = Arc::new(Inner::default());
        let stop = CancellationToken::new();
        let (i, s) = (inner.clone(), stop.clone());
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    () = s.cancelled() => break,
                    a = listener.accept() => a,
                };
                let Ok((socket, _)) = accepted else { continue };
                let i = i.clone();
                tokio::spawn(async move {
                    let _ = serve(socket, i).await;
                });
            }
        });
        Ok(Self { addr, inner, stop })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers the next `n` messages with `451` (a temporary refusal).
    pub fn refuse_next(&self, n: usize) {
        self.inner.refuse.store(n, Ordering::SeqCst);
    }

    /// Messages refused with 451 so far.
    pub fn refused(&self) -> usize {
        self.inner.refused.load(Ordering::SeqCst)
    }

    /// Every message accepted so far.
    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.inner.mails.lock().map(|m| m.clone()).unwrap_or_default()
    }

    /// The messages to `to`.
    pub fn mails_to(&self, to: &str) -> Vec<ReceivedMail> {
        self.mails().into_iter().filter(|m| m.to.iter().any(|t| t.eq_ignore_ascii_case(to))).collect()
    }

    /// Waits until a message to `to` whose subject contains `subject` arrived; panics after `timeout`.
    pub async fn wait_for(&self, to: &str, subject: &str, timeout: Duration) -> ReceivedMail {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.inner.arrived.notified();
            if let Some(m) = self.mails_to(to).into_iter().find(|m| m.subject().contains(subject)) {
                return m;
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                panic!(
                    "no mail to {to} with subject containing {subject:?} within {timeout:?}; got {:?}",
                    self.mails()
                );
            }
        }
    }
}

fn addr_of(arg: &str) -> String {
    let a = arg.split_once(':').map_or(arg, |(_, a)| a).trim();
    let a = a.split_whitespace().next().unwrap_or_default();
    a.trim_start_matches('<').trim_end_matches('>').to_owned()
}

async fn serve(socket: tokio::net::TcpStream, inner: Arc<Inner>) -> std::io::Result<()> {
    let (read, mut write) = socket.into_split();
    let mut lines = BufReader::new(read);
    write.write_all(b"220 wagate-test-sink ESMTP\r\n").await?;
    let mut from = String::new();
    let mut to = Vec::new();
    let mut line = String::new();
    loop {
        line.clear();
        if lines.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let cmd = line.trim_end();
        let verb = cmd.split_whitespace().next().unwrap_or_default().to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => write.write_all(b"250-wagate-test-sink\r\n250 8BITMIME\r\n").await?,
            "HELO" => write.write_all(b"250 wagate-test-sink\r\n").await?,
            "MAIL" => {
                from = addr_of(cmd);
                to.clear();
                write.write_all(b"250 OK\r\n").await?;
            }
            "RCPT" => {
                to.push(addr_of(cmd));
                write.write_all(b"250 OK\r\n").await?;
            }
            "DATA" => {
                write.write_all(b"354 end with <CRLF>.<CRLF>\r\n").await?;
                let mut data = String::new();
                loop {
                    line.clear();
                    if lines.read_line(&mut line).await? == 0 {
                        return Ok(());
                    }
                    if line == ".\r\n" || line == ".\n" {
                        break;
                    }
                    data.push_str(line.strip_prefix('.').unwrap_or(&line));
                }
                let refuse = inner
                    .refuse
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok();
                if refuse {
                    inner.refused.fetch_add(1, Ordering::SeqCst);
                    write.write_all(b"451 try again later\r\n").await?;
                } else {
                    if let Ok(mut mails) = inner.mails.lock() {
                        mails.push(ReceivedMail { from: from.clone(), to: to.clone(), data });
                    }
                    inner.arrived.notify_waiters();
                    write.write_all(b"250 OK queued\r\n").await?;
                }
                to.clear();
            }
            "RSET" => {
                to.clear();
                write.write_all(b"250 OK\r\n").await?;
            }
            "NOOP" => write.write_all(b"250 OK\r\n").await?,
            "QUIT" => {
                write.write_all(b"221 bye\r\n").await?;
                return Ok(());
            }
            _ => write.write_all(b"502 command not implemented\r\n").await?,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn quoted_printable_is_decoded() {
        assert_eq!(super::decode_qp("a=3Db=\r\nc"), "a=bc");
    }
}
