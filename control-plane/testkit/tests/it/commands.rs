//! Worker commands from the one table (`wagate_proto::commands`): a worker
//! declares what its driver runs in `Hello.commands`; a command its driver
//! does not run is answered 501 `NOT_SUPPORTED_BY_WORKER` without being
//! sent, and a driver built before the command existed keeps working.

use serde_json::json;
use wagate_proto::CommandKind;
use wagate_testkit::cluster::{Cluster, Storage, WorkerSpec};

use crate::common::*;

#[tokio::test]
async fn worker_commands_and_a_driver_without_them_sqlite() {
    worker_commands(Storage::Sqlite, 1).await;
}

/// Two replicas on PostgreSQL + Redis: the edge is on replica 1, the workers'
/// streams on replica 0, so every command is forwarded once.
#[tokio::test]
async fn worker_commands_and_a_driver_without_them_postgres() {
    worker_commands(Storage::PostgresRedis, 2).await;
}

/// The samples of the command round-trip histogram's count for `kind` and `outcome`.
fn command_count(text: &str, kind: &str, outcome: &str) -> f64 {
    series(text, "wagate_cp_command_duration_seconds_count")
        .into_iter()
        .filter(|s| label(s, "kind") == Some(kind) && label(s, "outcome") == Some(outcome))
        .map(|s| sample_sum(text, s))
        .sum()
}

async fn check(api: &Api, session: &str, key: &str, numbers: serde_json::Value) -> Reply {
    let req = api
        .http
        .post(format!("{}/api/v1/sessions/{session}/contacts/check", api.base))
        .header("X-API-Key", key)
        .json(&json!({ "numbers": numbers }));
    api.raw(req).await
}

async fn worker_commands(storage: Storage, replicas: usize) {
    // The new driver takes one session, so the second lands on the legacy one.
    let mut cl: Cluster = start(
        cluster(storage)
            .replicas(replicas)
            .edge_on(replicas - 1)
            .configure(|c| c.metrics_listen = Some(([127, 0, 0, 1], 0).into()))
            .worker(WorkerSpec::new("w-new", 1).on(0)),
    )
    .await;
    let api = Api::new(&cl);
    let metrics = cl.cp().metrics_addr().expect("metrics");
    let token = api.register("commands@example.com").await;
    let (on_new, new_key) = api.connected_session(&cl, &token, "on-new").await;
    cl.add_worker(WorkerSpec::new("w-old", 10).legacy().on(0)).await.expect("legacy worker");
    // (the BASIC tier runs one session per account)
    let other = api.register("commands-old@example.com").await;
    let (on_old, old_key) = api.connected_session(&cl, &other, "on-old").await;
    assert!(cl.worker("w-old").unwrap().driver.session_status(&on_old).is_some(), "second session on w-old");

    // What each worker declared in its Hello.
    let registry = &cl.cp_at(0).state().registry;
    assert!(registry.get("w-new").unwrap().commands.contains(CommandKind::CheckNumbers));
    let old = registry.get("w-old").unwrap().commands;
    assert!(!old.contains(CommandKind::CheckNumbers), "{old}");
    assert!(old.contains(CommandKind::SendMessage), "{old}");

    // A driver that runs it answers (forwarded across replicas on PostgreSQL).
    let r = check(&api, &on_new, &new_key, json!(["+62 812-3456-7891", "6281234567890"])).await;
    r.expect(200);
    assert_eq!(
        r.data(),
        &json!([
            {"number": "6281234567891", "exists": true, "jid": "6281234567891@s.whatsapp.net"},
            {"number": "6281234567890", "exists": false, "jid": null},
        ])
    );
    let new_driver = &cl.worker("w-new").unwrap().driver;
    assert_eq!(new_driver.calls(CommandKind::CheckNumbers), 1);
    // Answers are kept for a while per session: asked again (one new
    // number among them), the phone is asked about the new one only.
    let r = check(&api, &on_new, &new_key, json!(["6281234567890", "6281234567892", "6281234567891"])).await;
    assert_eq!(r.expect(200).data()[2]["exists"], json!(true), "{}", r.body);
    assert_eq!(r.data()[0]["exists"], json!(false), "{}", r.body);
    assert_eq!(new_driver.calls(CommandKind::CheckNumbers), 2);
    let r = check(&api, &on_new, &new_key, json!(["6281234567892"])).await;
    r.expect(200);
    assert_eq!(new_driver.calls(CommandKind::CheckNumbers), 2, "all three answered from the cache");

    // A driver built before the command: 501, and the command never left the
    // control plane (refused on the declaration, not by the worker).
    let before = scrape(metrics).await;
    check(&api, &on_old, &old_key, json!(["6281234567891"]))
        .await
        .expect_code(501, "NOT_SUPPORTED_BY_WORKER");
    let after = scrape(metrics).await;
    assert_eq!(
        command_count(&after, "check_numbers", "unsupported")
            - command_count(&before, "check_numbers", "unsupported"),
        1.0
    );
    assert_eq!(cl.worker("w-old").unwrap().driver.calls(CommandKind::CheckNumbers), 0);
    // ... and keeps running the commands it has.
    let sent = api.send_text(&on_old, &old_key, "still works").await;
    sent.expect(200);
    assert_eq!(sent.data()["status"], json!("SENT"), "{}", sent.body);

    // Bad input: 4xx naming the field, nothing sent to the worker.
    check(&api, &on_new, &new_key, json!([])).await.expect_code(400, "VALIDATION_ERROR");
    let too_many: Vec<String> = (0..51).map(|i| format!("62812345678{i:02}")).collect();
    check(&api, &on_new, &new_key, json!(too_many)).await.expect_code(400, "VALIDATION_ERROR");
    let r = check(&api, &on_new, &new_key, json!(["6281234567891", "not-a-number"])).await;
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], json!("numbers[1]"), "{}", r.body);
    // Another session's (and account's) key: refused like a send.
    check(&api, &on_new, &old_key, json!(["6281234567891"])).await.expect_code(404, "SESSION_NOT_FOUND");
    assert_eq!(new_driver.calls(CommandKind::CheckNumbers), 2, "refused checks never reach the driver");

    // Read receipts and presence: the same path, the same refusals.
    let post = |session: &str, key: &str, what: &str, body: serde_json::Value| {
        let req = api
            .http
            .post(format!("{}/api/v1/sessions/{session}/{what}", api.base))
            .header("X-API-Key", key)
            .json(&body);
        api.raw(req)
    };
    let read = json!({"chatId": "+62 812-3456-7891", "messageIds": ["3EB0C767D26A1D2E5A41", "3EB0AAAA"]});
    let r = post(&on_new, &new_key, "read", read.clone()).await;
    r.expect(200);
    assert_eq!(r.data(), &json!({"chatId": "6281234567891@s.whatsapp.net", "marked": 2}));
    let r =
        post(&on_new, &new_key, "presence", json!({"chatId": "6281234567891", "state": "Composing"})).await;
    r.expect(200);
    assert_eq!(r.data(), &json!({"chatId": "6281234567891@s.whatsapp.net", "state": "composing"}));
    let r = post(&on_new, &new_key, "presence", json!({"state": "available"})).await;
    assert_eq!(r.expect(200).data(), &json!({"state": "available"}));
    assert_eq!(new_driver.calls(CommandKind::MarkRead), 1);
    assert_eq!(new_driver.calls(CommandKind::SendPresence), 2);
    post(&on_old, &old_key, "read", read).await.expect_code(501, "NOT_SUPPORTED_BY_WORKER");
    post(&on_old, &old_key, "presence", json!({"state": "available"}))
        .await
        .expect_code(501, "NOT_SUPPORTED_BY_WORKER");
    for (what, body, field) in [
        ("read", json!({"chatId": "6281234567891", "messageIds": []}), "messageIds"),
        ("read", json!({"chatId": "nobody@example.com", "messageIds": ["A1"]}), "chatId"),
        ("read", json!({"chatId": "6281234567891", "messageIds": ["has space"]}), "messageIds[0]"),
        ("presence", json!({"chatId": "6281234567891", "state": "dancing"}), "state"),
        ("presence", json!({"state": "composing"}), "chatId"),
    ] {
        let r = post(&on_new, &new_key, what, body.clone()).await;
        r.expect_code(400, "VALIDATION_ERROR");
        assert_eq!(r.body["field"], json!(field), "{what} {body}: {}", r.body);
    }
    assert_eq!(new_driver.calls(CommandKind::MarkRead), 1, "refused reads never reach the driver");
    assert_eq!(new_driver.calls(CommandKind::SendPresence), 2);
    cl.shutdown().await;
}
