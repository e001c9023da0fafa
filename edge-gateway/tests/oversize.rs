//! Oversize bodies from clients that write their whole body before reading
//! the answer (Python's urllib and requests do): they get the 413 envelope,
//! not a reset, up to the drain bound.

mod common;

use std::time::Duration;

use common::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Writes `head` and `body_len` bytes of body, all of it, then reads the answer.
async fn write_all_then_read(addr: std::net::SocketAddr, head: String, body_len: usize) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk.len());
        s.write_all(&chunk[..n]).await.expect("the server reads the whole body");
        left -= n;
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await {
        if n == 0 {
            break;
        }
        out.extend_from_slice(&buf[..n]);
        if out.windows(4).any(|w| w == b"\r\n\r\n") && out.ends_with(b"}") {
            break;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test]
async fn whole_body_written_before_reading_gets_the_413_envelope() {
    let (edge, _) = start(config(UNREACHABLE)).await;
    // Any route above the body limit; the send route above its own (larger:
    // `mediaBase64`) limit.
    for (path, size) in [("auth/register", 2 * 1024 * 1024 + 17), ("sessions/s1/send", 17 * 1024 * 1024)] {
        let head = format!(
            "POST /api/v1/{path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
             content-length: {size}\r\n\r\n"
        );
        let text = write_all_then_read(edge.local_addr(), head, size).await;
        assert!(text.starts_with("HTTP/1.1 413"), "{size}: {text:?}");
        assert!(text.contains(r#""code":"PAYLOAD_TOO_LARGE""#), "{size}: {text}");
        assert!(text.to_ascii_lowercase().contains("x-content-type-options: nosniff"), "{text}");
    }
    edge.shutdown().await;
}

#[tokio::test]
async fn chunked_oversize_body_is_drained_too() {
    let (edge, _) = start(config(UNREACHABLE)).await;
    let mut s = tokio::net::TcpStream::connect(edge.local_addr()).await.unwrap();
    s.write_all(
        b"POST /api/v1/auth/register HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n\
          transfer-encoding: chunked\r\n\r\n",
    )
    .await
    .unwrap();
    let chunk = format!("{:x}\r\n{}\r\n", 64 * 1024, "y".repeat(64 * 1024));
    for _ in 0..40 {
        s.write_all(chunk.as_bytes()).await.expect("the server reads the whole body");
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text:?}");
    edge.shutdown().await;
}
