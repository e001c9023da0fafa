//! A session's owner ends it three ways: stop (keeps the pairing: start
//! resumes without a QR code), logout (the device is unlinked and the
//! credentials wiped: start pairs again), delete (logs out first unless
//! `keepDevice=true`).

use std::time::Duration;

use serde_json::json;
use wagate_proto::CommandKind;
use wagate_testkit::cluster::{Cluster, Storage, WorkerSpec};

use crate::common::*;

#[tokio::test]
async fn stop_logout_and_delete_sqlite() {
    stop_logout_and_delete(Storage::Sqlite).await;
}

#[tokio::test]
async fn stop_logout_and_delete_postgres() {
    stop_logout_and_delete(Storage::PostgresRedis).await;
}

async fn status_of(api: &Api, token: &str, id: &str) -> serde_json::Value {
    api.get(&format!("/api/v1/sessions/{id}"), Some(token)).await.data().clone()
}

async fn wait_status(api: &Api, token: &str, id: &str, want: &str) -> serde_json::Value {
    wait_for(&format!("session {want}"), Duration::from_secs(5), || async {
        let s = status_of(api, token, id).await;
        (s["status"] == json!(want)).then_some(s)
    })
    .await
}

async fn stop_logout_and_delete(storage: Storage) {
    let cl: Cluster = start(cluster(storage).worker(WorkerSpec::new("w1", 10))).await;
    let api = Api::new(&cl);
    let driver = cl.worker("w1").unwrap().driver.clone();
    let token = api.register("lifecycle@example.com").await;
    let (id, key) = api.connected_session(&cl, &token, "phone").await;
    let held = |id: &str| {
        let state = cl.cp().state();
        let (db, id) = (state.db.clone(), id.to_owned());
        async move { wagate_control_plane::stream::custody::held(&db, &id).await.unwrap() }
    };
    wait_for("credentials in custody", Duration::from_secs(5), || async { held(&id).await.then_some(()) })
        .await;

    // Stop: DISCONNECTED / STOPPED, off its worker, pairing kept.
    let r = api.post(&format!("/api/v1/sessions/{id}/stop"), Some(&token), json!({})).await;
    r.expect(200);
    assert_eq!((&r.data()["status"], &r.data()["statusReason"]), (&json!("DISCONNECTED"), &json!("STOPPED")));
    assert_eq!(driver.calls(CommandKind::StopSession), 1);
    assert!(driver.session_status(&id).is_none(), "the worker no longer runs it");
    assert!(held(&id).await, "a stop keeps the credentials");
    api.send_text(&id, &key, "while stopped").await.expect_code(409, "SESSION_NOT_CONNECTED");
    api.post(&format!("/api/v1/sessions/{id}/stop"), Some(&token), json!({}))
        .await
        .expect_code(409, "SESSION_NOT_CONNECTED");
    // Start resumes it without a QR code (nobody scans).
    api.post(&format!("/api/v1/sessions/{id}/start"), Some(&token), json!({})).await.expect(200);
    wait_status(&api, &token, &id, "CONNECTED").await;
    api.send_text(&id, &key, "resumed").await.expect(200);

    // Logout: the worker unlinks the device, the credentials are wiped.
    let r = api.post(&format!("/api/v1/sessions/{id}/logout"), Some(&token), json!({})).await;
    r.expect(200);
    assert_eq!(r.data()["statusReason"], json!("LOGGED_OUT"));
    assert_eq!(driver.calls(CommandKind::Logout), 1);
    assert!(!held(&id).await, "a logout wipes the credentials");
    // Start pairs again: a QR code to scan.
    api.post(&format!("/api/v1/sessions/{id}/start"), Some(&token), json!({})).await.expect(200);
    let s = wait_status(&api, &token, &id, "QR_REQUIRED").await;
    assert!(s["qrCode"].as_str().is_some_and(|q| !q.is_empty()), "{s}");

    // A session that never paired has nothing to log out (another account:
    // the BASIC tier runs one session).
    let other = api.register("lifecycle-other@example.com").await;
    let (never, _) = api.create_session(&other, "never").await;
    wait_status(&api, &other, &never, "QR_REQUIRED").await;
    api.post(&format!("/api/v1/sessions/{never}/logout"), Some(&other), json!({}))
        .await
        .expect_code(409, "SESSION_NOT_CONNECTED");
    // Its QR code, rendered for a person to scan (the owner or the session's key).
    for (format, content_type, magic) in [
        ("png", "image/png", &b"\x89PNG"[..]),
        ("svg", "image/svg+xml", b"<svg"),
        ("text", "text/plain; charset=utf-8", "\u{2588}".as_bytes()),
    ] {
        let resp = api
            .http
            .get(format!("{}/api/v1/sessions/{never}/qr?format={format}", api.base))
            .bearer_auth(&other)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 200, "{format}");
        assert_eq!(resp.headers()["content-type"], content_type);
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let body = resp.bytes().await.unwrap();
        assert!(body.windows(magic.len()).any(|w| w == magic), "{format}: {} bytes", body.len());
    }
    api.get(&format!("/api/v1/sessions/{never}/qr?format=gif"), Some(&other))
        .await
        .expect_code(400, "VALIDATION_ERROR");
    // Another user's session: not found, on every route.
    for what in ["stop", "logout"] {
        api.post(&format!("/api/v1/sessions/{id}/{what}"), Some(&other), json!({}))
            .await
            .expect_code(404, "SESSION_NOT_FOUND");
    }
    // The session's key manages nothing.
    let r = api.post(&format!("/api/v1/sessions/{id}/stop"), Some(&key), json!({})).await;
    assert_eq!(r.status.as_u16(), 401, "{}", r.body);

    // Delete logs a paired session out first; keepDevice=true does not.
    assert!(driver.scan(&id));
    wait_status(&api, &token, &id, "CONNECTED").await;
    // A paired session has no code to render.
    api.get(&format!("/api/v1/sessions/{id}/qr?format=png"), Some(&token))
        .await
        .expect_code(409, "SESSION_NOT_CONNECTED");
    api.delete(&format!("/api/v1/sessions/{id}"), Some(&token)).await.expect(200);
    assert_eq!(driver.calls(CommandKind::Logout), 2, "delete logged out");
    assert!(driver.scan(&never));
    wait_status(&api, &other, &never, "CONNECTED").await;
    api.delete(&format!("/api/v1/sessions/{never}?keepDevice=true"), Some(&other)).await.expect(200);
    assert_eq!(driver.calls(CommandKind::Logout), 2, "keepDevice only stops");
    api.delete("/api/v1/sessions/x?keepDevice=maybe", Some(&token))
        .await
        .expect_code(400, "VALIDATION_ERROR");
    cl.shutdown().await;
}
