//! Live events: `GET /sessions/{id}/events` as Server-Sent Events, read
//! with a stock SSE parser (`eventsource-stream`, what `reqwest-eventsource`
//! builds on): the webhook envelopes as they happen, heartbeats while idle,
//! a reconnect with `Last-Event-ID` gets exactly what it missed, and
//! another account's session or key sees nothing. On PostgreSQL + Redis the
//! worker's stream is on one replica and the edge on the other: every event
//! crosses replicas through the live log.

use std::time::Duration;

use eventsource_stream::{Event, Eventsource};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};
use wagate_testkit::cluster::{Storage, WorkerSpec};

use crate::common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_sqlite() {
    live_events(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn live_events_postgres() {
    live_events(Storage::PostgresRedis).await;
}

fn echo_worker() -> WorkerSpec {
    let mut w = WorkerSpec::new("worker-1", 10);
    w.simulated.echo_after = Some(Duration::from_millis(30));
    w.simulated.delivered_after = Duration::from_millis(20);
    w.simulated.read_after = Duration::from_millis(20);
    w
}

pub(crate) type Events = std::pin::Pin<Box<dyn Stream<Item = Result<Event, String>> + Send>>;

/// Opens the stream with `auth` (a user token or the session's key).
pub(crate) async fn open(
    base: &str,
    sid: &str,
    auth: &str,
    last: Option<&str>,
    query: &str,
) -> (u16, Option<Events>, String) {
    let mut req =
        reqwest::Client::new().get(format!("{base}/api/v1/sessions/{sid}/events{query}")).bearer_auth(auth);
    if let Some(id) = last {
        req = req.header("Last-Event-ID", id);
    }
    let resp = req.send().await.expect("request reaches the edge");
    let status = resp.status().as_u16();
    let content_type =
        resp.headers().get("content-type").and_then(|v| v.to_str().ok()).unwrap_or_default().to_owned();
    if status != 200 {
        return (status, None, resp.text().await.unwrap_or_default());
    }
    let events = resp.bytes_stream().eventsource().map(|e| e.map_err(|e| e.to_string()));
    (status, Some(Box::pin(events)), content_type)
}

/// Reads events until `done` holds for what was read (or panics after 15 s).
pub(crate) async fn read_until(events: &mut Events, done: impl Fn(&[Event]) -> bool) -> Vec<Event> {
    let mut got = Vec::new();
    let read = async {
        while !done(&got) {
            match events.next().await {
                Some(Ok(e)) => got.push(e),
                Some(Err(e)) => panic!("stream error: {e}"),
                None => panic!("stream ended after {got:?}"),
            }
        }
    };
    if tokio::time::timeout(Duration::from_secs(15), read).await.is_err() {
        panic!("timed out; got {:?}", got.iter().map(|e| (&e.event, &e.data)).collect::<Vec<_>>());
    }
    got
}

pub(crate) fn json_of(e: &Event) -> Value {
    serde_json::from_str(&e.data).expect("data is JSON")
}

fn statuses_of(got: &[Event], mid: &str) -> Vec<String> {
    got.iter()
        .filter(|e| e.event == "message.status")
        .map(json_of)
        .filter(|j| j["data"]["messageId"] == mid)
        .map(|j| j["data"]["status"].as_str().unwrap_or_default().to_owned())
        .collect()
}

async fn live_events(storage: Storage) {
    let replicas = if storage == Storage::PostgresRedis { 2 } else { 1 };
    let cl = start(
        cluster(storage).replicas(replicas).edge_on(replicas - 1).worker(echo_worker()).configure(|c| {
            c.webhooks.live.heartbeat = Duration::from_millis(400);
            c.webhooks.live.poll = Duration::from_millis(100);
        }),
    )
    .await;
    let api = Api::new(&cl);
    let ann = api.register("ann-live@example.com").await;
    let bob = api.register("bob-live@example.com").await;
    let (sid, key) = api.connected_session(&cl, &ann, "shop").await;
    let (bob_sid, bob_key) = api.connected_session(&cl, &bob, "other").await;

    // Another account's session, with its owner's token or its key: not found;
    // a Last-Event-ID that is no event id, an unknown type: 400.
    for (s, auth) in [(&bob_sid, &ann), (&bob_sid, &key), (&sid, &bob_key), (&sid, &bob)] {
        let (status, _, body) = open(&api.base, s, auth, None, "").await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["code"], "SESSION_NOT_FOUND");
    }
    let (status, _, body) = open(&api.base, &sid, &key, Some("42"), "").await;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body).unwrap()["code"].clone()),
        (400, json!("VALIDATION_ERROR"))
    );
    let (status, _, _) = open(&api.base, &sid, &key, None, "?events=message.nope").await;
    assert_eq!(status, 400);

    // The session's key opens its stream; a send shows its lifecycle and the echo.
    let (status, events, content_type) = open(&api.base, &sid, &key, None, "").await;
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/event-stream"), "{content_type}");
    let mut events = events.unwrap();
    let mid = api.send_text(&sid, &key, "hello live").await.expect(200).data()["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = read_until(&mut events, |g| {
        statuses_of(g, &mid).last().is_some_and(|s| s == "READ")
            && g.iter()
                .any(|e| e.event == "message.received" && json_of(e)["data"]["text"] == "echo: hello live")
    })
    .await;
    assert_eq!(statuses_of(&got, &mid), ["SENT", "DELIVERED", "READ"], "{storage:?}");
    for e in &got {
        let j = json_of(e);
        assert_eq!(j["id"], e.id.as_str(), "the SSE id is the event id");
        assert_eq!(j["type"], e.event.as_str());
        assert_eq!(j["sessionId"], sid.as_str(), "only this session's events");
    }
    let last_seen = got.last().unwrap().id.clone();
    drop(events);

    // Missed while away: two sends. A reconnect with Last-Event-ID gets
    // exactly those, in order, once.
    let m2 = api.send_text(&sid, &key, "while away 1").await.expect(200).data()["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let m3 = api.send_text(&sid, &key, "while away 2").await.expect(200).data()["messageId"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, events, _) = open(&api.base, &sid, &ann, Some(&last_seen), "").await;
    assert_eq!(status, 200);
    let mut events = events.unwrap();
    let got = read_until(&mut events, |g| {
        [&m2, &m3].iter().all(|m| statuses_of(g, m).last().is_some_and(|s| s == "READ"))
            && g.iter().filter(|e| e.event == "message.received").count() >= 2
    })
    .await;
    assert_eq!(statuses_of(&got, &m2), ["SENT", "DELIVERED", "READ"]);
    assert_eq!(statuses_of(&got, &m3), ["SENT", "DELIVERED", "READ"]);
    assert!(statuses_of(&got, &mid).is_empty(), "nothing before Last-Event-ID is sent again");
    let ids: Vec<&str> = got.iter().map(|e| e.id.as_str()).collect();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    assert_eq!(ids, sorted, "ascending, each once");
    assert!(ids.iter().all(|id| *id > last_seen.as_str()));
    drop(events);

    // A type filter; and heartbeats (comments, invisible to the parser) on an idle stream.
    let (_, events, _) = open(&api.base, &sid, &key, Some(&last_seen), "?events=message.received").await;
    let got = read_until(&mut events.unwrap(), |g| g.len() >= 2).await;
    assert!(got.iter().all(|e| e.event == "message.received"), "{got:?}");
    let mut raw = reqwest::Client::new()
        .get(format!("{}/api/v1/sessions/{sid}/events", api.base))
        .header("X-API-Key", &key)
        .send()
        .await
        .unwrap();
    let mut text = String::new();
    let idle = async {
        while !text.contains(": keep-alive") {
            let chunk = raw.chunk().await.unwrap().expect("stream open");
            text.push_str(&String::from_utf8_lossy(&chunk));
        }
    };
    tokio::time::timeout(Duration::from_secs(5), idle).await.expect("a heartbeat within 5 s");
    assert!(text.contains("retry: 2000"), "{text}");
}
