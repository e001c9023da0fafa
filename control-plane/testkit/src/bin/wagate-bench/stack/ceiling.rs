//! The ceiling: the bench binary itself, started as one more process of the
//! stack with `--serve-ceiling <port>`.

use std::sync::Arc;

use bytes::Bytes;

/// The fixed answer (the size of a send's answer).
const JSON_BODY: &[u8] = br#"{"success":true,"data":{"messageId":"01936f5e-0000-7000-8000-000000000000","status":"SENT","to":"6281234567890@s.whatsapp.net"}}"#;

/// The ceiling: a bare hyper handler (same server builder as the edge:
/// HTTP/1.1 + HTTP/2 auto, TCP_NODELAY) that reads the body and answers a
/// fixed JSON body.
pub async fn serve(port: u16) -> anyhow::Result<()> {
    use hyper_util::rt::{TokioExecutor, TokioIo};
    use hyper_util::server::conn::auto;
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port)).await?;
    let builder = Arc::new(auto::Builder::new(TokioExecutor::new()));
    loop {
        let (stream, _) = listener.accept().await?;
        let _ = stream.set_nodelay(true);
        let builder = builder.clone();
        tokio::spawn(async move {
            let svc = hyper::service::service_fn(|req: http::Request<hyper::body::Incoming>| async move {
                use http_body_util::BodyExt;
                let _ = req.into_body().collect().await;
                http::Response::builder()
                    .header("content-type", "application/json")
                    .body(http_body_util::Full::new(Bytes::from_static(JSON_BODY)))
            });
            let _ = builder.serve_connection(TokioIo::new(stream), svc).await;
        });
    }
}
