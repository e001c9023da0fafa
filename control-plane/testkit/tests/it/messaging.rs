//! The message commands beyond a send, end to end through the simulated
//! phone: a reply (quoted message) with mentions, an edit and a delete for
//! everyone (with their windows), and the events they and the phone cause
//! — `message.edited`, `message.deleted`, `message.read`, `presence` —
//! read from the live event stream.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wagate_testkit::cluster::{Storage, WorkerSpec};

use crate::common::*;
use crate::live_events::{json_of, open, read_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_edit_delete_and_their_events_sqlite() {
    reply_edit_delete_and_their_events(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reply_edit_delete_and_their_events_postgres() {
    reply_edit_delete_and_their_events(Storage::PostgresRedis).await;
}

async fn send(api: &Api, sid: &str, key: &str, body: Value) -> Reply {
    api.raw(
        api.http
            .post(format!("{}/api/v1/sessions/{sid}/send", api.base))
            .header("X-API-Key", key)
            .json(&body),
    )
    .await
}

async fn read_message(api: &Api, sid: &str, key: &str, mid: &str) -> Value {
    api.get(&format!("/api/v1/sessions/{sid}/messages/{mid}"), Some(key)).await.expect(200).data().clone()
}

async fn reply_edit_delete_and_their_events(storage: Storage) {
    let replicas = if storage == Storage::PostgresRedis { 2 } else { 1 };
    let mut worker = WorkerSpec::new("worker-1", 10);
    worker.simulated.echo_after = Some(Duration::from_millis(40));
    worker.simulated.delivered_after = Duration::from_millis(10);
    worker.simulated.read_after = Duration::from_millis(10);
    let cl = start(cluster(storage).replicas(replicas).edge_on(replicas - 1).worker(worker).configure(|c| {
        c.webhooks.live.poll = Duration::from_millis(100);
    }))
    .await;
    let api = Api::new(&cl);
    let ann = api.register("ann-msg@example.com").await;
    let bob = api.register("bob-msg@example.com").await;
    let (sid, key) = api.connected_session(&cl, &ann, "shop").await;
    let (_, bob_key) = api.connected_session(&cl, &bob, "other").await;
    let (_, events, _) = open(
        &api.base,
        &sid,
        &key,
        None,
        "?events=message.status,message.read,message.edited,message.deleted,message.received,presence",
    )
    .await;
    let mut events = events.expect("stream");

    // A send; once READ, `message.read` names it, and the contact typed before echoing.
    let mid = send(&api, &sid, &key, json!({"to": "6281234567890", "message": "hi"}))
        .await
        .expect(200)
        .data()["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = read_until(&mut events, |g| {
        g.iter()
            .any(|e| e.event == "message.read" && json_of(e)["data"]["messageIds"] == json!([mid.as_str()]))
            && g.iter().any(|e| e.event == "presence")
            && g.iter().any(|e| e.event == "message.received")
    })
    .await;
    let read = got.iter().find(|e| e.event == "message.read").map(json_of).unwrap();
    assert_eq!(read["data"]["chatId"], "6281234567890@s.whatsapp.net", "{read}");
    let presence = got.iter().find(|e| e.event == "presence").map(json_of).unwrap();
    assert_eq!(presence["data"]["state"], "composing", "{presence}");
    let echo = got.iter().find(|e| e.event == "message.received").map(json_of).unwrap();
    let echo_wa_id = echo["data"]["waMessageId"].as_str().unwrap().to_owned();
    let wa_id = wait_for("WhatsApp id", Duration::from_secs(5), || async {
        read_message(&api, &sid, &key, &mid).await["waMessageId"].as_str().map(str::to_owned)
    })
    .await;

    // A reply to the echo (by its WhatsApp id) mentioning two people (one twice).
    let r = send(
        &api,
        &sid,
        &key,
        json!({"to": "6281234567890", "message": "@6281111111111 look", "quotedMessageId": echo_wa_id,
               "mentions": ["+62 811-1111-1111", "6281111111111", "6282222222222@c.us"]}),
    )
    .await;
    let reply_id = r.expect(200).data()["messageId"].as_str().unwrap().to_owned();
    let m = read_message(&api, &sid, &key, &reply_id).await;
    assert_eq!(m["quotedMessageId"], echo_wa_id.as_str(), "{m}");
    assert_eq!(m["mentions"], json!(["6281111111111@s.whatsapp.net", "6282222222222@s.whatsapp.net"]), "{m}");
    // Quoting what the session does not have: 404; a group as a mention: 400.
    send(&api, &sid, &key, json!({"to": "6281234567890", "message": "x", "quotedMessageId": "nope"}))
        .await
        .expect_code(404, "NOT_FOUND");
    let r = send(&api, &sid, &key, json!({"to": "6281234567890", "message": "x", "mentions": ["123@g.us"]}))
        .await;
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], "mentions[0]");

    // Edit (by wagate id): the history shows the new text, the stream `message.edited`.
    let path = format!("/api/v1/sessions/{sid}/messages/{mid}");
    let r = api.call(Method::PATCH, &path, Some(&key), Some(json!({"text": "hi (edited)"}))).await;
    assert_eq!(r.expect(200).data()["text"], "hi (edited)");
    assert!(r.data()["editedAt"].is_string(), "{}", r.body);
    let m = read_message(&api, &sid, &key, &mid).await;
    assert_eq!((m["message"].clone(), m["editedAt"].is_string()), (json!("hi (edited)"), true), "{m}");
    let got = read_until(&mut events, |g| g.iter().any(|e| e.event == "message.edited")).await;
    let edited = got.iter().find(|e| e.event == "message.edited").map(json_of).unwrap();
    assert_eq!(edited["data"]["messageId"], mid.as_str(), "{edited}");
    assert_eq!(edited["data"]["waMessageId"], wa_id.as_str());
    assert_eq!(
        (edited["data"]["fromMe"].clone(), edited["data"]["text"].clone()),
        (json!(true), json!("hi (edited)"))
    );

    // What cannot be edited: the contact's message (409), an unknown id (404),
    // an empty text (400), another session's key (404).
    let echo_path = format!("/api/v1/sessions/{sid}/messages/{echo_wa_id}");
    api.call(Method::PATCH, &echo_path, Some(&key), Some(json!({"text": "no"})))
        .await
        .expect_code(409, "MESSAGE_NOT_EDITABLE");
    api.call(
        Method::PATCH,
        &format!("/api/v1/sessions/{sid}/messages/nope"),
        Some(&key),
        Some(json!({"text": "x"})),
    )
    .await
    .expect_code(404, "NOT_FOUND");
    api.call(Method::PATCH, &path, Some(&key), Some(json!({"text": "  "})))
        .await
        .expect_code(400, "VALIDATION_ERROR");
    api.call(Method::PATCH, &path, Some(&bob_key), Some(json!({"text": "x"})))
        .await
        .expect_code(404, "SESSION_NOT_FOUND");
    api.call(Method::DELETE, &path, Some(&bob_key), None).await.expect_code(404, "SESSION_NOT_FOUND");

    // Past WhatsApp's window (the reply, sent "20 minutes ago"): 409, naming it.
    {
        use sea_orm::ConnectionTrait;
        let db = &cl.cp().state().db;
        let ago = chrono::Utc::now() - chrono::Duration::minutes(20);
        db.conn
            .execute_raw(db.stmt(
                "UPDATE messages SET sent_at = $1 WHERE id = $2",
                vec![ago.into(), reply_id.clone().into()],
            ))
            .await
            .unwrap();
    }
    let r = api
        .call(
            Method::PATCH,
            &format!("/api/v1/sessions/{sid}/messages/{reply_id}"),
            Some(&key),
            Some(json!({"text": "late"})),
        )
        .await;
    r.expect_code(409, "MESSAGE_NOT_EDITABLE");
    assert!(r.body["error"].as_str().unwrap().contains("15 minutes"), "{}", r.body);

    // Delete for everyone (by WhatsApp id): the text is gone, `message.deleted`; twice: 409.
    let wa_path = format!("/api/v1/sessions/{sid}/messages/{wa_id}");
    let r = api.call(Method::DELETE, &wa_path, Some(&key), None).await;
    assert_eq!(r.expect(200).data()["messageId"], mid.as_str());
    let m = read_message(&api, &sid, &key, &mid).await;
    assert_eq!((m["message"].clone(), m["deletedAt"].is_string()), (json!(""), true), "{m}");
    let got = read_until(&mut events, |g| g.iter().any(|e| e.event == "message.deleted")).await;
    let deleted = got.iter().find(|e| e.event == "message.deleted").map(json_of).unwrap();
    assert_eq!(deleted["data"]["messageId"], mid.as_str(), "{deleted}");
    api.call(Method::DELETE, &wa_path, Some(&key), None).await.expect_code(409, "MESSAGE_NOT_EDITABLE");
    api.call(Method::PATCH, &path, Some(&key), Some(json!({"text": "again"})))
        .await
        .expect_code(409, "MESSAGE_NOT_EDITABLE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_sqlite() {
    groups(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_postgres() {
    groups(Storage::PostgresRedis).await;
}

/// Create, list, read, change and leave a group through the session's phone;
/// `group.participants` events; sending to the group; bad ids and another
/// session's key.
async fn groups(storage: Storage) {
    let replicas = if storage == Storage::PostgresRedis { 2 } else { 1 };
    let cl = start(
        cluster(storage)
            .replicas(replicas)
            .edge_on(replicas - 1)
            .worker(WorkerSpec::new("worker-1", 10))
            .configure(|c| c.webhooks.live.poll = Duration::from_millis(100)),
    )
    .await;
    let api = Api::new(&cl);
    let ann = api.register("ann-groups@example.com").await;
    let bob = api.register("bob-groups@example.com").await;
    let (sid, key) = api.connected_session(&cl, &ann, "shop").await;
    let (_, bob_key) = api.connected_session(&cl, &bob, "other").await;
    let (_, events, _) = open(&api.base, &sid, &key, None, "?events=group.participants").await;
    let mut events = events.expect("stream");
    let groups = format!("/api/v1/sessions/{sid}/groups");

    assert_eq!(api.get(&groups, Some(&key)).await.expect(200).data()["groups"], json!([]));
    let r = api
        .post(
            &groups,
            Some(&key),
            json!({"subject": " Shop team ", "participants": ["+62 812-3456-7891", "6281234567892"]}),
        )
        .await;
    let g = r.expect(201).data().clone();
    let gid = g["id"].as_str().unwrap().to_owned();
    assert!(gid.ends_with("@g.us"), "{g}");
    assert_eq!(g["subject"], "Shop team");
    let jids: Vec<&str> =
        g["participants"].as_array().unwrap().iter().map(|p| p["jid"].as_str().unwrap()).collect();
    assert!(jids.contains(&"6281234567891@s.whatsapp.net") && jids.len() == 3, "{g}");
    let got = read_until(&mut events, |g| !g.is_empty()).await;
    let e = json_of(&got[0]);
    assert_eq!(
        (e["data"]["groupId"].clone(), e["data"]["action"].clone()),
        (json!(gid), json!("add")),
        "{e}"
    );

    // Listed and read (by its digits too); participants changed; sent to.
    let listed = api.get(&groups, Some(&key)).await;
    assert_eq!(listed.expect(200).data()["groups"][0]["id"], gid.as_str());
    let digits = gid.trim_end_matches("@g.us");
    api.get(&format!("{groups}/{digits}"), Some(&key)).await.expect(200);
    let r = api
        .post(
            &format!("{groups}/{gid}/participants"),
            Some(&key),
            json!({"add": ["6281234567893"], "remove": ["6281234567892"]}),
        )
        .await;
    let n: Vec<&str> = r.expect(200).data()["participants"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["jid"].as_str().unwrap())
        .collect();
    assert!(
        n.contains(&"6281234567893@s.whatsapp.net") && !n.contains(&"6281234567892@s.whatsapp.net"),
        "{n:?}"
    );
    let got = read_until(&mut events, |g| g.len() >= 2).await;
    let actions: Vec<Value> = got.iter().map(|e| json_of(e)["data"]["action"].clone()).collect();
    assert_eq!(actions, [json!("add"), json!("remove")]);
    let s = send(&api, &sid, &key, json!({"to": gid, "message": "hello group"})).await;
    assert_eq!(s.expect(200).data()["to"], gid.as_str());

    // Bad input: no subject, no participants, a group as a participant,
    // nothing to change, an impossible id; another session's key: 404.
    api.post(&groups, Some(&key), json!({"subject": "", "participants": ["6281234567891"]}))
        .await
        .expect(400);
    api.post(&groups, Some(&key), json!({"subject": "x", "participants": []})).await.expect(400);
    let r = api.post(&groups, Some(&key), json!({"subject": "x", "participants": [gid]})).await;
    assert_eq!(r.expect(400).body["field"], "participants[0]");
    api.post(&format!("{groups}/{gid}/participants"), Some(&key), json!({})).await.expect(400);
    api.get(&format!("{groups}/not-a-group"), Some(&key)).await.expect_code(404, "NOT_FOUND");
    api.get(&groups, Some(&bob_key)).await.expect_code(404, "SESSION_NOT_FOUND");
    api.post(&format!("{groups}/{gid}/leave"), Some(&bob_key), json!({}))
        .await
        .expect_code(404, "SESSION_NOT_FOUND");

    // Leave: gone from the list; leaving again (or reading it) is 404.
    let r = api.post(&format!("{groups}/{gid}/leave"), Some(&key), json!({})).await;
    assert_eq!(r.expect(200).data()["groupId"], gid.as_str());
    assert_eq!(api.get(&groups, Some(&key)).await.expect(200).data()["groups"], json!([]));
    api.post(&format!("{groups}/{gid}/leave"), Some(&key), json!({})).await.expect_code(404, "NOT_FOUND");
    api.get(&format!("{groups}/{gid}"), Some(&key)).await.expect_code(404, "NOT_FOUND");
}
