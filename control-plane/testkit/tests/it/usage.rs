//! Usage metering as billing reads it: the counts equal the calls made
//! (after a flush, and across a graceful restart), per user, session, key
//! and message type; the CSV export parses and matches the JSON; each user
//! sees only their own usage.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::common::{Api, cluster, start, wait_for};
use sea_orm::EntityTrait;
use serde_json::{Value, json};
use wagate_control_plane::persistence::entities::session;
use wagate_control_plane::persistence::enums::SessionStatus;
use wagate_testkit::cluster::{Cluster, Storage};

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "fleet-keeper-77";

async fn flush(cl: &Cluster) {
    for i in 0..cl.replica_count() {
        let st = cl.cp_at(i).state();
        st.usage.flush(&st.db).await.expect("usage flushed");
    }
}

/// A connected session, paired without any REST call (so the test knows
/// every call it made).
async fn paired_session(cl: &Cluster, api: &Api, token: &str) -> (String, String) {
    let (id, key) = api.create_session(token, "billing").await;
    let driver =
        wait_for("session on a worker", Duration::from_secs(5), || async { cl.driver_of(&id).cloned() })
            .await;
    assert!(driver.scan(&id));
    wait_for("CONNECTED", Duration::from_secs(5), || async {
        let s = session::Entity::find_by_id(id.clone()).one(&cl.cp().state().db.conn).await.unwrap()?;
        (s.status == SessionStatus::Connected).then_some(())
    })
    .await;
    (id, key)
}

/// `metric → count` for rows of `session` ("" for user-token calls).
fn counts(rows: &Value, session: &str) -> BTreeMap<String, u64> {
    rows.as_array()
        .unwrap()
        .iter()
        .filter(|r| r["sessionId"].as_str().unwrap_or("") == session)
        .map(|r| (r["metric"].as_str().unwrap().to_owned(), r["count"].as_u64().unwrap()))
        .collect()
}

async fn usage_is_counted(storage: Storage) {
    let mut cl = start(cluster(storage).workers(1, 10).configure(|c| {
        c.admin_email = Some(ADMIN_EMAIL.into());
        c.admin_password = Some(ADMIN_PASSWORD.into());
        // flushes only when the test says so (and at shutdown)
        c.usage_flush = Duration::from_secs(3600);
    }))
    .await;
    let api = Api::new(&cl);
    let token = api.register("billed@example.com").await; // not counted: no credential
    let (id, key) = paired_session(&cl, &api, &token).await; // 1 user-token call
    for i in 0..7 {
        api.send_text(&id, &key, &format!("m{i}")).await.expect(200);
    }
    let img = json!({ "to": "+62 812-3456-7890", "type": "image", "mediaUrl": "https://example.com/a.png" });
    let req =
        api.http.post(format!("{}/api/v1/sessions/{id}/send", api.base)).header("X-API-Key", &key).json(&img);
    api.raw(req).await.expect(200);
    for _ in 0..5 {
        api.get("/api/v1/me", Some(&token)).await.expect(200);
    }
    flush(&cl).await;

    let r = api.get("/api/v1/me/usage", Some(&token)).await; // counted, shows after the next flush
    r.expect(200);
    let key_id =
        r.data()["rows"].as_array().unwrap().iter().find_map(|r| r["apiKeyId"].as_str()).unwrap().to_owned();
    assert_eq!(counts(&r.data()["rows"], ""), BTreeMap::from([("api_calls".to_owned(), 6)]), "{}", r.body);
    assert_eq!(
        counts(&r.data()["rows"], &id),
        BTreeMap::from([
            ("api_calls".to_owned(), 8),
            ("messages.image".to_owned(), 1),
            ("messages.text".to_owned(), 7),
        ]),
        "{}",
        r.body
    );
    assert_eq!(
        r.data()["totals"],
        json!({ "apiCalls": 14, "messages": 8, "messagesByType": { "image": 1, "text": 7 } })
    );
    let month = r.data()["month"].as_str().unwrap().to_owned();
    assert_eq!(month.len(), 7);

    // counted before a graceful restart: written at shutdown, nothing lost
    for i in 0..2 {
        api.send_text(&id, &key, &format!("before restart {i}")).await.expect(200);
    }
    for _ in 0..3 {
        api.get("/api/v1/me", Some(&token)).await.expect(200);
    }
    cl.restart_control_plane(false).await.unwrap();
    let r = wait_for("control plane back", Duration::from_secs(10), || async {
        let r = api.get(&format!("/api/v1/me/usage?month={month}"), Some(&token)).await;
        (r.status == 200).then_some(r)
    })
    .await;
    assert_eq!(
        counts(&r.data()["rows"], ""),
        BTreeMap::from([("api_calls".to_owned(), 6 + 1 + 3)]),
        "{}",
        r.body
    );
    assert_eq!(counts(&r.data()["rows"], &id)["messages.text"], 9);
    assert_eq!(counts(&r.data()["rows"], &id)["api_calls"], 10);

    // tenancy: another user sees only their own; a user is no administrator
    let other = api.register("other@example.com").await;
    api.get("/api/v1/me", Some(&other)).await.expect(200);
    flush(&cl).await;
    let r = api.get("/api/v1/me/usage", Some(&other)).await;
    r.expect(200);
    let rows = r.data()["rows"].as_array().unwrap();
    assert!(!rows.is_empty() && rows.iter().all(|row| row["sessionId"].is_null()), "{}", r.body);
    assert_ne!(r.data()["userId"], json!(null));
    api.get("/api/v1/admin/usage", Some(&token)).await.expect_code(403, "FORBIDDEN");
    api.get("/api/v1/me/usage?month=2026-13", Some(&token)).await.expect_code(400, "VALIDATION_ERROR");
    api.get("/api/v1/me/usage?month=november", Some(&token)).await.expect_code(400, "VALIDATION_ERROR");
    api.get("/api/v1/me/usage", None).await.expect(401);

    // the billing export: JSON and CSV agree
    let admin = {
        let r = api
            .post("/api/v1/auth/login", None, json!({ "email": ADMIN_EMAIL, "password": ADMIN_PASSWORD }))
            .await;
        r.data()["token"].as_str().unwrap().to_owned()
    };
    let uid = api.get("/api/v1/me", Some(&token)).await.data()["id"].as_str().unwrap().to_owned();
    let json_rows = api.get(&format!("/api/v1/admin/usage?month={month}&userId={uid}"), Some(&admin)).await;
    json_rows.expect(200);
    let expected: Vec<(String, String, String, String, u64)> = json_rows.data()["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["userId"].as_str().unwrap().to_owned(),
                r["sessionId"].as_str().unwrap_or("").to_owned(),
                r["apiKeyId"].as_str().unwrap_or("").to_owned(),
                r["metric"].as_str().unwrap().to_owned(),
                r["count"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(expected.len(), 4, "{}", json_rows.body);
    assert!(expected.iter().any(|r| r.2 == key_id));
    for csv_request in [
        api.http.get(format!("{}/api/v1/admin/usage?month={month}&userId={uid}&format=csv", api.base)),
        api.http
            .get(format!("{}/api/v1/admin/usage?month={month}&userId={uid}", api.base))
            .header("accept", "text/csv"),
    ] {
        let resp = csv_request.bearer_auth(&admin).send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/csv"));
        assert_eq!(resp.headers()["x-total-count"], "4");
        let text = resp.text().await.unwrap();
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        assert_eq!(
            reader.headers().unwrap().iter().collect::<Vec<_>>(),
            ["month", "userId", "sessionId", "apiKeyId", "metric", "count"]
        );
        let got: Vec<(String, String, String, String, u64)> = reader
            .records()
            .map(|r| {
                let r = r.unwrap();
                assert_eq!(&r[0], month);
                (r[1].to_owned(), r[2].to_owned(), r[3].to_owned(), r[4].to_owned(), r[5].parse().unwrap())
            })
            .collect();
        assert_eq!(got, expected, "CSV matches JSON");
    }
    // every user's rows, paginated
    let r = api.get(&format!("/api/v1/admin/usage?month={month}&limit=2"), Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["rows"].as_array().unwrap().len(), 2);
    assert_eq!(r.data()["pagination"]["total"], json!(5), "4 rows of one user, 1 of the other: {}", r.body);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_embedded() {
    usage_is_counted(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn usage_is_counted_on_postgres() {
    usage_is_counted(Storage::PostgresRedis).await;
}

/// Two replicas add to the same rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_add_to_one_count() {
    let mut cl = start(cluster(Storage::PostgresRedis).workers(1, 10).replicas(2).configure(|c| {
        c.usage_flush = Duration::from_secs(3600);
    }))
    .await;
    let api_a = Api::new(&cl);
    let api_b = Api { base: cl.add_edge(1).await.unwrap(), http: reqwest::Client::new() };
    let token = api_a.register("two@example.com").await;
    for _ in 0..4 {
        api_a.get("/api/v1/me", Some(&token)).await.expect(200);
        api_b.get("/api/v1/me", Some(&token)).await.expect(200);
    }
    flush(&cl).await;
    api_a.get("/api/v1/me", Some(&token)).await.expect(200);
    api_b.get("/api/v1/me", Some(&token)).await.expect(200);
    flush(&cl).await;
    let r = api_b.get("/api/v1/me/usage", Some(&token)).await;
    r.expect(200);
    assert_eq!(counts(&r.data()["rows"], ""), BTreeMap::from([("api_calls".to_owned(), 10)]), "{}", r.body);
    cl.shutdown().await;
}
