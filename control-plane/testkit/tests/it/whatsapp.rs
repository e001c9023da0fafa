//! The whatsapp driver end to end, offline: a real control plane and edge, an
//! SDK worker running `WhatsAppDriver` (a real whatsapp-rust client) against
//! the fake WhatsApp server on loopback (`wagate-wa-fake`). The server's
//! pairing refs become the QR code of `GET /api/v1/sessions/{id}/qr`.

use std::sync::Arc;
use std::time::Duration;

use wagate_driver_whatsapp::{WhatsAppConfig, WhatsAppDriver};
use wagate_testkit::cluster::Storage;
use wagate_wa_fake::{FakeWhatsApp, Seen};
use wagate_worker_sdk::{SessionDriver, Worker};

use crate::common::*;

#[tokio::test]
async fn a_real_client_shows_the_servers_qr_sqlite() {
    qr_from_the_fake(Storage::Sqlite).await;
}

#[tokio::test]
async fn a_real_client_shows_the_servers_qr_postgres() {
    qr_from_the_fake(Storage::PostgresRedis).await;
}

async fn qr_from_the_fake(storage: Storage) {
    let fake = FakeWhatsApp::start().await.expect("fake whatsapp listens");
    let cl = start(cluster(storage)).await;
    let driver = Arc::new(WhatsAppDriver::new(WhatsAppConfig {
        server_url: Some(fake.url()),
        version: Some((2, 3000, 1_000_000_000)),
        ..WhatsAppConfig::default()
    }));
    let worker = Worker::spawn(cl.worker_config("wa-worker-1", 10), driver.clone());
    assert!(worker.wait_connected(Duration::from_secs(10)).await, "the whatsapp worker connects");

    let api = Api::new(&cl);
    let token = api.register("wa-qr@example.com").await;
    let (sid, _key) = api.create_session(&token, "real phone").await;
    let path = format!("/api/v1/sessions/{sid}/qr");
    let qr = wait_for("the fake's pairing ref as the QR code", Duration::from_secs(20), || async {
        let r = api.get(&path, Some(&token)).await;
        r.expect(200);
        r.data()["qrCode"]
            .as_str()
            .filter(|q| q.starts_with("2@fake-ref-"))
            .filter(|_| r.data()["status"] == "QR_REQUIRED")
            .map(str::to_owned)
    })
    .await;
    let state =
        driver.get_status(wagate_proto::v1::GetStatus { session_id: sid.clone() }).await.expect("held");
    assert_eq!(state.qr_code.as_deref(), Some(qr.as_str()), "the REST QR is the driver's current one");
    assert!(fake.seen().contains(&Seen::Handshake { registering: true }), "{:?}", fake.seen());

    // Another user cannot see it.
    let other = api.register("wa-other@example.com").await;
    api.get(&path, Some(&other)).await.expect_code(404, "SESSION_NOT_FOUND");

    worker.shutdown().await;
    cl.shutdown().await;
}
