//! The load generator: C tasks, each with its own HTTP/1.1 keep-alive
//! connection (hyper client), sending requests back to back for a fixed
//! time; latencies of requests started after the warm-up are kept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderValue, Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::report::stats::Samples;

/// One request shape (cheap to clone: the body is shared).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    pub path: String,
    pub headers: Vec<(&'static str, HeaderValue)>,
    pub body: Bytes,
}

impl Prepared {
    pub fn get(path: impl Into<String>) -> Self {
        Self { method: Method::GET, path: path.into(), headers: Vec::new(), body: Bytes::new() }
    }

    fn build(&self, host: &HeaderValue) -> Result<Request<Full<Bytes>>, http::Error> {
        let mut b = Request::builder().method(self.method.clone()).uri(&self.path).header("host", host);
        if !self.body.is_empty() {
            b = b.header("content-type", "application/json");
        }
        for (k, v) in &self.headers {
            b = b.header(*k, v);
        }
        b.body(Full::new(self.body.clone()))
    }
}

/// What a run collected.
#[derive(Debug, Default)]
pub struct RunOutput {
    pub samples: Samples,
    /// `messageId`s of 2xx answers (only when asked for).
    pub accepted_ids: Vec<String>,
    /// Measured seconds (after warm-up).
    pub seconds: f64,
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> anyhow::Result<Sender> {
    let stream = TcpStream::connect(addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// Drives `requests` (round-robin, offset per connection) against `addr`
/// with `conns` connections for `warmup + duration`.
pub async fn run(
    addr: SocketAddr,
    requests: Arc<Vec<Prepared>>,
    conns: usize,
    warmup: Duration,
    duration: Duration,
    collect_ids: bool,
) -> RunOutput {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + duration;
    let host = HeaderValue::from_str(&addr.to_string()).unwrap_or(HeaderValue::from_static("localhost"));
    let mut tasks = Vec::with_capacity(conns);
    for i in 0..conns {
        let requests = requests.clone();
        let host = host.clone();
        tasks.push(tokio::spawn(async move {
            let mut out = RunOutput::default();
            let mut sender: Option<Sender> = None;
            let mut n: usize = i;
            while Instant::now() < end {
                let s = match sender.as_mut() {
                    Some(s) => s,
                    None => match connect(addr).await {
                        Ok(s) => sender.insert(s),
                        Err(_) => {
                            out.samples.io_errors += 1;
                            tokio::time::sleep(Duration::from_millis(10)).await;
                            continue;
                        }
                    },
                };
                let Ok(req) = requests[n % requests.len()].build(&host) else {
                    out.samples.io_errors += 1;
                    break;
                };
                n = n.wrapping_add(conns);
                let t0 = Instant::now();
                let result = async {
                    s.ready().await?;
                    let resp = s.send_request(req).await?;
                    let status = resp.status().as_u16();
                    let body = resp.into_body().collect().await?.to_bytes();
                    Ok::<_, hyper::Error>((status, body))
                }
                .await;
                let measured = t0 >= measure_from;
                match result {
                    Ok((status, body)) => {
                        if measured {
                            out.samples.record(status, t0.elapsed().as_micros() as u64);
                        }
                        // Accepted sends are verified whether measured or not.
                        if collect_ids
                            && (200..300).contains(&status)
                            && let Some(id) = message_id(&body)
                        {
                            out.accepted_ids.push(id);
                        }
                    }
                    Err(_) => {
                        if measured {
                            out.samples.io_errors += 1;
                        }
                        sender = None;
                    }
                }
            }
            out
        }));
    }
    let mut total = RunOutput::default();
    for t in tasks {
        if let Ok(out) = t.await {
            total.samples.merge(out.samples);
            total.accepted_ids.extend(out.accepted_ids);
        }
    }
    total.seconds = duration.as_secs_f64();
    total
}

/// The `"messageId":"…"` of a send answer, without a JSON parse.
pub fn message_id(body: &[u8]) -> Option<String> {
    const KEY: &[u8] = b"\"messageId\":\"";
    let at = body.windows(KEY.len()).position(|w| w == KEY)? + KEY.len();
    let len = body[at..].iter().position(|&b| b == b'"')?;
    std::str::from_utf8(&body[at..at + len]).ok().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    #[test]
    fn message_id_is_found() {
        let body = br#"{"success":true,"data":{"messageId":"0193-ab","status":"SENT"}}"#;
        assert_eq!(super::message_id(body).as_deref(), Some("0193-ab"));
        assert_eq!(super::message_id(b"{}"), None);
    }
}
