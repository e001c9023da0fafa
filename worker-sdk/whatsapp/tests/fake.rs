//! The driver against the offline fake WhatsApp server (`wagate-wa-fake`) on
//! loopback: a real whatsapp-rust client, a real Noise handshake, real stanzas.

use std::time::Duration;

use wagate_driver_whatsapp::{WhatsAppConfig, WhatsAppDriver};
use wagate_proto::v1::{self, SessionStatus, event::Kind};
use wagate_wa_fake::{FakeWhatsApp, Seen};
use wagate_worker_sdk::{EventSink, SessionDriver};

fn config(url: String) -> WhatsAppConfig {
    WhatsAppConfig {
        server_url: Some(url),
        // No fetch of web.whatsapp.com/sw.js: CI is offline.
        version: Some((2, 3000, 1_000_000_000)),
        connect_timeout: Duration::from_secs(2),
        ..WhatsAppConfig::default()
    }
}

fn start(id: &str, generation: u64) -> v1::StartSession {
    v1::StartSession { session_id: id.into(), generation, name: "phone".into(), auth_state: None }
}

async fn next_kind(
    rx: &mut tokio::sync::mpsc::Receiver<v1::Event>,
    what: &str,
    f: impl Fn(&Kind) -> bool,
) -> Kind {
    let wait = async {
        while let Some(ev) = rx.recv().await {
            if let Some(kind) = ev.kind
                && f(&kind)
            {
                return kind;
            }
        }
        panic!("event stream ended before {what}");
    };
    tokio::time::timeout(Duration::from_secs(20), wait)
        .await
        .unwrap_or_else(|_| panic!("no {what} within 20 s"))
}

#[tokio::test]
async fn a_new_session_shows_the_servers_pairing_refs_as_qr_codes() {
    let fake = FakeWhatsApp::start().await.unwrap();
    let driver = WhatsAppDriver::new(config(fake.url()));
    let (sink, mut rx) = EventSink::channel(256);
    driver.start_session(start("s1", 1), sink).await.unwrap();

    let Kind::Qr(qr) = next_kind(&mut rx, "a QR code", |k| matches!(k, Kind::Qr(_))).await else {
        unreachable!()
    };
    // ref,noise key,identity key,adv secret[,platform] (what the phone scans).
    let parts: Vec<&str> = qr.code.split(',').collect();
    assert!(parts.len() >= 4, "{}", qr.code);
    assert!(parts[0].starts_with("2@fake-ref-"), "the first ref of the server's pair-device: {}", qr.code);
    let Kind::Status(st) = next_kind(&mut rx, "QR_REQUIRED", |k| matches!(k, Kind::Status(_))).await else {
        unreachable!()
    };
    assert_eq!(st.status, SessionStatus::QrRequired as i32);

    assert!(fake.seen().contains(&Seen::Handshake { registering: true }), "{:?}", fake.seen());
    let state = driver.get_status(v1::GetStatus { session_id: "s1".into() }).await.unwrap();
    assert_eq!(state.qr_code.as_deref(), Some(qr.code.as_str()), "GetStatus shows the current QR");
    assert_eq!(driver.held_sessions().len(), 1);

    // Not paired: no custody snapshot is sent, and a stop ends the session.
    driver.stop_session(v1::StopSession { session_id: "s1".into(), generation: 1 }).await.unwrap();
    assert!(driver.held_sessions().is_empty());
    while let Ok(ev) = rx.try_recv() {
        assert!(!matches!(ev.kind, Some(Kind::AuthState(_))), "an unpaired session has nothing in custody");
    }
    // Stopping a session that is no longer running is fine.
    driver.stop_session(v1::StopSession { session_id: "s1".into(), generation: 1 }).await.unwrap();
}

#[tokio::test]
async fn a_connection_that_never_comes_up_is_reported_by_the_watchdog() {
    // A port nobody listens on: the library retries with backoff, silently.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let driver = WhatsAppDriver::new(config(format!("ws://127.0.0.1:{port}/ws/chat")));
    let (sink, mut rx) = EventSink::channel(256);
    driver.start_session(start("s2", 1), sink).await.unwrap();
    let Kind::Status(st) = next_kind(
        &mut rx,
        "ERROR connect_timeout",
        |k| matches!(k, Kind::Status(s) if s.status == SessionStatus::Error as i32),
    )
    .await
    else {
        unreachable!()
    };
    assert!(st.reason.as_deref().is_some_and(|r| r.starts_with("connect_timeout")), "{st:?}");
    driver.stop_session(v1::StopSession { session_id: "s2".into(), generation: 1 }).await.unwrap();
}
