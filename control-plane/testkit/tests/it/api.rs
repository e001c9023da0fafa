//! The account, admin, API key, message history and worker admin API over
//! HTTP (and gRPC for tenancy / RBAC), on SQLite + in-process cache and on
//! PostgreSQL + Redis.

use std::time::Duration;

use crate::common::{Api, Reply, cluster, start, wait_for};
use reqwest::Method;
use serde_json::{Value, json};
use wagate_proto::v1;
use wagate_testkit::cluster::{Cluster, Storage};

const ADMIN_EMAIL: &str = "root@wagate.test";
const ADMIN_PASSWORD: &str = "admin-password-1";
const PASSWORD: &str = "correct-horse-9";

async fn boot(storage: Storage) -> (Cluster, Api, String) {
    let cl = start(cluster(storage).workers(1, 10).configure(|c| {
        c.admin_email = Some(ADMIN_EMAIL.into());
        c.admin_password = Some(ADMIN_PASSWORD.into());
        c.key_usage_flush = Duration::from_millis(150);
    }))
    .await;
    let api = Api::new(&cl);
    let admin = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    (cl, api, admin)
}

async fn login(api: &Api, email: &str, password: &str) -> String {
    let r = api.post("/api/v1/auth/login", None, json!({ "email": email, "password": password })).await;
    r.expect(200);
    r.data()["token"].as_str().expect("token").to_owned()
}

async fn patch(api: &Api, path: &str, token: &str, body: Value) -> Reply {
    api.call(Method::PATCH, path, Some(token), Some(body)).await
}

/// No answer ever carries a secret's hash.
#[track_caller]
fn no_hashes(r: &Reply) {
    let text = r.body.to_string();
    for needle in
        ["$argon2", "passwordHash", "password_hash", "keyHash", "key_hash", "tokenHash", "token_hash"]
    {
        assert!(!text.contains(needle), "{needle} leaked: {text}");
    }
}

fn grpc_request<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

const ADMIN_ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/v1/admin/users"),
    ("GET", "/api/v1/admin/users/x1"),
    ("PATCH", "/api/v1/admin/users/x1"),
    ("DELETE", "/api/v1/admin/users/x1"),
    ("GET", "/api/v1/admin/workers"),
    ("POST", "/api/v1/admin/workers"),
    ("GET", "/api/v1/admin/workers/worker-1"),
    ("PATCH", "/api/v1/admin/workers/worker-1"),
    ("DELETE", "/api/v1/admin/workers/worker-1"),
    ("GET", "/api/v1/admin/workers/worker-1/metrics"),
    ("GET", "/api/v1/admin/analytics"),
    ("GET", "/api/logs"),
    ("GET", "/api/admin/logs"),
];

async fn users_and_admin(storage: Storage) {
    let (cl, api, admin) = boot(storage).await;
    let ann = api.register("ann@example.com").await;
    let bob = api.register("bob@example.com").await;

    // GET/PATCH /me; role, tier and isActive cannot be mass-assigned
    let r = api.get("/api/v1/me", Some(&ann)).await;
    r.expect(200);
    no_hashes(&r);
    let ann_id = r.data()["id"].as_str().unwrap().to_owned();
    assert_eq!(r.data()["email"], "ann@example.com");
    for (field, value) in
        [("role", json!("ADMINISTRATOR")), ("tier", json!("MAX")), ("isActive", json!(true))]
    {
        let r = patch(&api, "/api/me", &ann, json!({ "name": "Evil", field: value })).await;
        r.expect_code(400, "VALIDATION_ERROR");
        assert_eq!(r.body["field"], field, "{}", r.body);
    }
    let r = patch(&api, "/api/v1/me", &ann, json!({ "name": "Ann A." })).await;
    r.expect(200);
    assert_eq!(r.data()["name"], "Ann A.");
    assert_eq!(r.data()["role"], "USER");
    assert_eq!(r.data()["tier"], "BASIC");
    patch(&api, "/api/v1/me", &ann, json!({ "email": "BOB@example.com" }))
        .await
        .expect_code(409, "ALREADY_EXISTS");
    let r = patch(&api, "/api/v1/me", &ann, json!({ "email": "not-an-email" })).await;
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], "email");
    let r = patch(&api, "/api/v1/me", &ann, json!({ "password": "new-password-1" })).await;
    assert_eq!(r.body["field"], "currentPassword", "{}", r.body);
    let r = patch(
        &api,
        "/api/v1/me",
        &ann,
        json!({ "password": "new-password-1", "currentPassword": "wrong-one-1" }),
    )
    .await;
    r.expect_code(403, "FORBIDDEN");
    assert_eq!(r.body["field"], "currentPassword");
    let r = patch(
        &api,
        "/api/v1/me",
        &ann,
        json!({ "password": "new-password-1", "currentPassword": PASSWORD, "email": "ann2@example.com" }),
    )
    .await;
    r.expect(200);
    no_hashes(&r);
    assert_eq!(r.data()["email"], "ann2@example.com");
    let ann = login(&api, "ann2@example.com", "new-password-1").await;

    // RBAC: a USER gets 403 on every admin route, on REST and gRPC; no token → 401
    for (method, path) in ADMIN_ROUTES {
        let method: Method = method.parse().unwrap();
        let body = (method == Method::POST || method == Method::PATCH).then(|| json!({}));
        let r = api.call(method.clone(), path, Some(&ann), body.clone()).await;
        if *path == "/api/logs" {
            r.expect(404);
            continue;
        }
        r.expect_code(403, "FORBIDDEN");
        api.call(method, path, None, body).await.expect(401);
    }
    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut admin_client = v1::admin_service_client::AdminServiceClient::new(channel.clone());
    let e = admin_client.list_users(grpc_request(v1::ListUsersRequest::default(), &ann)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let e =
        admin_client.get_analytics(grpc_request(v1::GetAnalyticsRequest::default(), &ann)).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::PermissionDenied);
    let listed =
        admin_client.list_users(grpc_request(v1::ListUsersRequest::default(), &admin)).await.unwrap();
    assert_eq!(listed.get_ref().users.len(), 3);

    // admin: list with search and pagination
    let r = api.get("/api/v1/admin/users?search=EXAMPLE.com&limit=1&page=2", Some(&admin)).await;
    r.expect(200);
    no_hashes(&r);
    assert_eq!(r.data()["pagination"], json!({ "total": 2, "page": 2, "limit": 1, "totalPages": 2 }));
    assert_eq!(r.data()["users"].as_array().unwrap().len(), 1);
    let r = api.get("/api/v1/admin/users?search=ann%20a&limit=1000", Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["pagination"]["limit"], 100);
    assert_eq!(r.data()["users"][0]["id"], ann_id.as_str());
    let r = api.get("/api/v1/admin/users?search=100%25", Some(&admin)).await;
    assert_eq!(r.data()["pagination"]["total"], 0, "% is literal");
    api.get("/api/v1/admin/users?limit=abc", Some(&admin)).await.expect_code(400, "VALIDATION_ERROR");
    // blank: a number refuses it, a text filter reads it as no filter
    let r = api.get("/api/v1/admin/users?limit=&search=", Some(&admin)).await;
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], "limit");
    api.get("/api/v1/admin/users?search=+&page=1", Some(&admin)).await.expect(200);
    let r = api.get("/api/v1/admin/logs?userId=&level=", Some(&admin)).await;
    r.expect(200);
    let r = api.get("/api/v1/admin/logs?to=", Some(&admin)).await;
    assert_eq!(r.body["field"], "to", "{}", r.body);

    // admin: get / patch tier+role validation
    let r = api.get(&format!("/api/v1/admin/users/{ann_id}"), Some(&admin)).await;
    r.expect(200);
    no_hashes(&r);
    api.get("/api/v1/admin/users/nope", Some(&admin)).await.expect_code(404, "NOT_FOUND");
    let r = patch(&api, &format!("/api/v1/admin/users/{ann_id}"), &admin, json!({ "tier": "gold" })).await;
    assert_eq!(r.body["field"], "tier");
    let r = patch(&api, &format!("/api/v1/admin/users/{ann_id}"), &admin, json!({ "isActive": "no" })).await;
    assert_eq!(r.body["field"], "isActive");
    let r = patch(&api, &format!("/api/v1/admin/users/{ann_id}"), &admin, json!({ "tier": "pro" })).await;
    r.expect(200);
    assert_eq!(r.data()["tier"], "PRO");
    assert_eq!(api.get("/api/v1/me", Some(&ann)).await.data()["tier"], "PRO");

    // deactivation: the still-valid token and the user's API key stop at once
    let (sid, key) = api.connected_session(&cl, &ann, "shop").await;
    api.send_text(&sid, &key, "before").await.expect(200);
    patch(&api, &format!("/api/v1/admin/users/{ann_id}"), &admin, json!({ "isActive": false }))
        .await
        .expect(200);
    api.get("/api/v1/me", Some(&ann)).await.expect(401);
    api.get("/api/v1/sessions", Some(&ann)).await.expect(401);
    api.send_text(&sid, &key, "while inactive").await.expect_code(401, "INVALID_API_KEY");
    api.post(
        "/api/v1/auth/login",
        None,
        json!({ "email": "ann2@example.com", "password": "new-password-1" }),
    )
    .await
    .expect(401);
    patch(&api, &format!("/api/v1/admin/users/{ann_id}"), &admin, json!({ "isActive": true }))
        .await
        .expect(200);
    api.get("/api/v1/me", Some(&ann)).await.expect(200);
    api.send_text(&sid, &key, "after").await.expect(200);

    // an admin cannot lock themselves out
    let admin_id = api.get("/api/v1/me", Some(&admin)).await.data()["id"].as_str().unwrap().to_owned();
    let r =
        patch(&api, &format!("/api/v1/admin/users/{admin_id}"), &admin, json!({ "isActive": false })).await;
    r.expect_code(403, "FORBIDDEN");
    assert_eq!(r.body["field"], "isActive");
    let r = patch(&api, &format!("/api/v1/admin/users/{admin_id}"), &admin, json!({ "role": "USER" })).await;
    r.expect_code(403, "FORBIDDEN");
    api.delete(&format!("/api/v1/admin/users/{admin_id}"), Some(&admin)).await.expect_code(403, "FORBIDDEN");

    // admin delete: bob's token dies
    let bob_id = api.get("/api/v1/me", Some(&bob)).await.data()["id"].as_str().unwrap().to_owned();
    let r = api.delete(&format!("/api/v1/admin/users/{bob_id}"), Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["deleted"], true);
    api.get("/api/v1/me", Some(&bob)).await.expect(401);
    api.delete(&format!("/api/v1/admin/users/{bob_id}"), Some(&admin)).await.expect(404);

    // DELETE /me: sessions stopped on the worker, slot freed, everything gone
    let driver = cl.driver_of(&sid).unwrap().clone();
    let r = api.delete("/api/v1/me", Some(&ann)).await;
    r.expect(200);
    assert_eq!(r.data()["sessionsDeleted"], 1);
    assert!(driver.session_status(&sid).is_none(), "worker stopped the session");
    api.get("/api/v1/me", Some(&ann)).await.expect(401);
    api.send_text(&sid, &key, "gone").await.expect_code(401, "INVALID_API_KEY");
    let r = api.get("/api/v1/admin/workers/worker-1", Some(&admin)).await;
    assert_eq!(r.data()["sessionCount"], 0, "{}", r.body);

    // audit: login failure, admin changes, deletion are in the logs, filterable
    let r = wait_for("auth audit", Duration::from_secs(3), || async {
        let r = api.get("/api/v1/admin/logs?level=warn&service=auth", Some(&admin)).await;
        r.expect(200);
        let found = r.data()["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["message"] == "login refused: account deactivated");
        found.then_some(r)
    })
    .await;
    let logs = r.data()["logs"].as_array().unwrap();
    assert!(logs.iter().all(|l| l["level"] == "WARN" && l["service"] == "auth"), "{}", r.body);
    let r = wait_for("admin audit", Duration::from_secs(3), || async {
        let r = api
            .get(&format!("/api/v1/admin/logs?service=admin&userId={ann_id}&limit=50"), Some(&admin))
            .await;
        (r.data()["pagination"]["total"].as_u64() >= Some(3)).then_some(r)
    })
    .await;
    assert!(r.data()["logs"][0]["details"]["by"].is_string(), "{}", r.body);
    api.get("/api/v1/admin/logs?level=loud", Some(&admin)).await.expect_code(400, "VALIDATION_ERROR");
    api.get("/api/v1/admin/logs?from=yesterday", Some(&admin)).await.expect_code(400, "VALIDATION_ERROR");
    let r = api.get("/api/v1/admin/logs?from=2999-01-01T00:00:00Z", Some(&admin)).await;
    assert_eq!(r.data()["pagination"]["total"], 0);

    cl.shutdown().await;
}

async fn keys_and_history(storage: Storage) {
    let (cl, api, _admin) = boot(storage).await;
    let ann = api.register("ann@example.com").await;
    let bob = api.register("bob@example.com").await;
    let (sid, key) = api.connected_session(&cl, &ann, "shop").await;
    let (bob_sid, _) = api.create_session(&bob, "bob's").await;

    // every message type of the brief, with its own required fields
    let send = |body: Value| {
        let req = api
            .http
            .post(format!("{}/api/v1/sessions/{sid}/send", api.base))
            .header("X-API-Key", &key)
            .json(&body);
        api.raw(req)
    };
    for body in [
        json!({ "to": "+62 812-3456-7890", "type": "text", "message": "one" }),
        json!({ "to": "6281234567890@c.us", "type": "image", "mediaUrl": "https://x.test/a.png", "caption": "pic" }),
        json!({ "to": "6281234567890", "type": "document", "mediaUrl": "https://x.test/a.pdf", "filename": "a.pdf" }),
        json!({ "to": "6281234567890", "type": "location", "latitude": -6.2, "longitude": 106.8, "name": "Monas" }),
        json!({ "to": "6281234567890", "type": "contact", "name": "Bob", "phone": "+6281111111" }),
        json!({ "to": "6289999999999", "type": "text", "message": "other peer" }),
    ] {
        send(body.clone()).await.expect(200);
    }
    for (body, field) in [
        (json!({ "to": "62812345678", "type": "video" }), "mediaUrl"),
        (json!({ "to": "62812345678", "type": "location", "latitude": 1 }), "longitude"),
        (json!({ "to": "62812345678", "type": "contact", "name": "x" }), "phone"),
        (json!({ "to": "abc", "type": "text", "message": "x" }), "to"),
    ] {
        let r = send(body).await;
        r.expect_code(400, "VALIDATION_ERROR");
        assert_eq!(r.body["field"], field, "{}", r.body);
    }

    // history: cursor pages cover everything once, newest first
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(c) => format!("/api/v1/sessions/{sid}/messages?limit=4&cursor={c}"),
            None => format!("/api/v1/sessions/{sid}/messages?limit=4"),
        };
        let r = api.get(&path, Some(&ann)).await;
        r.expect(200);
        for m in r.data()["messages"].as_array().unwrap() {
            seen.push((
                m["createdAt"].as_str().unwrap().to_owned(),
                m["id"].as_str().unwrap().to_owned(),
                m.clone(),
            ));
        }
        match r.data()["nextCursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 6);
    let mut sorted = seen.clone();
    sorted.sort_by(|a, b| (&b.0, &b.1).cmp(&(&a.0, &a.1)));
    assert_eq!(
        sorted.iter().map(|s| &s.1).collect::<Vec<_>>(),
        seen.iter().map(|s| &s.1).collect::<Vec<_>>()
    );
    let loc = seen.iter().map(|s| &s.2).find(|m| m["type"] == "LOCATION").unwrap();
    assert_eq!(loc["latitude"], -6.2);
    assert_eq!(loc["direction"], "OUTBOUND");
    let r =
        api.get(&format!("/api/v1/sessions/{sid}/messages?type=image&direction=outbound"), Some(&ann)).await;
    assert_eq!(r.data()["messages"].as_array().unwrap().len(), 1);
    assert_eq!(r.data()["messages"][0]["mediaUrl"], "https://x.test/a.png");
    let r = api.get(&format!("/api/v1/sessions/{sid}/messages?peer=&status="), Some(&ann)).await;
    assert_eq!(r.data()["messages"].as_array().unwrap().len(), 6, "blank filters filter nothing");
    let r = api.get(&format!("/api/v1/sessions/{sid}/messages?peer=abc"), Some(&ann)).await;
    r.expect_code(400, "VALIDATION_ERROR");
    assert_eq!(r.body["field"], "peer");
    let r = api.get(&format!("/api/v1/sessions/{sid}/messages?peer=%2B62%20899-9999-9999"), Some(&ann)).await;
    assert_eq!(r.data()["messages"].as_array().unwrap().len(), 1, "{}", r.body);
    let r = api.get(&format!("/api/v1/sessions/{sid}/messages?direction=INBOUND"), Some(&ann)).await;
    assert_eq!(r.data()["messages"].as_array().unwrap().len(), 0);
    let r = api.get(&format!("/api/v1/sessions/{sid}/messages?from=2999-01-01T00:00:00Z"), Some(&ann)).await;
    assert_eq!(r.data()["messages"].as_array().unwrap().len(), 0);
    for (q, field) in [
        ("status=LOST", "status"),
        ("cursor=zz", "cursor"),
        ("limit=0", "limit"),
        ("to=never", "to"),
        ("peer=abc", "peer"),
    ] {
        let r = api.get(&format!("/api/v1/sessions/{sid}/messages?{q}"), Some(&ann)).await;
        r.expect_code(400, "VALIDATION_ERROR");
        assert_eq!(r.body["field"], field, "{q}: {}", r.body);
    }
    let mid = seen[0].1.clone();
    let r = api.get(&format!("/api/v1/sessions/{sid}/messages/{mid}"), Some(&ann)).await;
    r.expect(200);
    assert_eq!(r.data()["messageId"], mid.as_str());
    api.get(&format!("/api/v1/sessions/{sid}/messages/nope"), Some(&ann)).await.expect(404);

    // tenancy: bob sees none of ann's session, key or message ids (REST and gRPC)
    for path in [
        format!("/api/v1/sessions/{sid}"),
        format!("/api/v1/sessions/{sid}/messages"),
        format!("/api/v1/sessions/{sid}/messages/{mid}"),
        format!("/api/v1/sessions/{sid}/api-key"),
    ] {
        api.get(&path, Some(&bob)).await.expect(404);
    }
    api.delete(&format!("/api/v1/sessions/{sid}/api-key"), Some(&bob)).await.expect(404);
    api.post(&format!("/api/v1/sessions/{sid}/api-key/rotate"), Some(&bob), json!({})).await.expect(404);
    api.get(&format!("/api/v1/sessions/{bob_sid}/messages/{mid}"), Some(&bob)).await.expect(404);
    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut history = v1::message_history_service_client::MessageHistoryServiceClient::new(channel.clone());
    let e = history
        .get_message(grpc_request(
            v1::GetMessageRequest { session_id: sid.clone(), message_id: mid.clone() },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let ok = history
        .get_message(grpc_request(
            v1::GetMessageRequest { session_id: sid.clone(), message_id: mid.clone() },
            &ann,
        ))
        .await
        .unwrap();
    assert_eq!(ok.get_ref().id, mid);
    let mut keys = v1::api_key_service_client::ApiKeyServiceClient::new(channel.clone());
    let e = keys
        .rotate_api_key(grpc_request(
            v1::RotateApiKeyRequest { session_id: sid.clone(), ..Default::default() },
            &bob,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::NotFound);
    let e = keys
        .rotate_api_key(grpc_request(
            v1::RotateApiKeyRequest {
                session_id: sid.clone(),
                expires_in_days: Some(0),
                ..Default::default()
            },
            &ann,
        ))
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.metadata().get("x-wagate-field").unwrap(), "expiresInDays");

    // lastUsed: recorded in memory, flushed in the background
    let r = wait_for("lastUsed flushed", Duration::from_secs(5), || async {
        let r = api.get(&format!("/api/v1/sessions/{sid}/api-key"), Some(&ann)).await;
        r.data()["lastUsed"].is_string().then_some(r)
    })
    .await;
    no_hashes(&r);
    assert!(key.starts_with(r.data()["prefix"].as_str().unwrap()));
    assert_eq!(r.data()["isActive"], true);

    // rotate: old key dead at once, new key shown once and working
    let r = api
        .post(&format!("/api/v1/sessions/{sid}/api-key/rotate"), Some(&ann), json!({ "expiresInDays": 30 }))
        .await;
    r.expect(200);
    no_hashes(&r);
    let new_key = r.data()["apiKey"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    assert!(r.data()["expiresAt"].is_string());
    assert!(r.data()["lastUsed"].is_null());
    api.send_text(&sid, &key, "old key").await.expect_code(401, "INVALID_API_KEY");
    api.send_text(&sid, &new_key, "new key").await.expect(200);
    let r = api
        .post(
            &format!("/api/v1/sessions/{sid}/api-key/rotate"),
            Some(&ann),
            json!({ "expiresAt": "2001-01-01T00:00:00Z" }),
        )
        .await;
    assert_eq!(r.body["field"], "expiresAt", "{}", r.body);
    for blank in ["", " 2030-01-01T00:00:00Z"] {
        let rotate = format!("/api/v1/sessions/{sid}/api-key/rotate");
        let r = api.post(&rotate, Some(&ann), json!({ "expiresAt": blank })).await;
        r.expect_code(400, "VALIDATION_ERROR");
        assert_eq!(r.body["field"], "expiresAt", "{blank:?}: {}", r.body);
    }
    // no body at all is fine
    let req = api.http.post(format!("{}/api/sessions/{sid}/api-key/rotate", api.base)).bearer_auth(&ann);
    let r = api.raw(req).await;
    r.expect(200);
    let newest = r.data()["apiKey"].as_str().unwrap().to_owned();
    api.send_text(&sid, &new_key, "previous").await.expect_code(401, "INVALID_API_KEY");

    // revoke
    let r = api.delete(&format!("/api/v1/sessions/{sid}/api-key"), Some(&ann)).await;
    r.expect(200);
    assert_eq!(r.data()["isActive"], false);
    api.send_text(&sid, &newest, "revoked").await.expect_code(401, "INVALID_API_KEY");
    // a revoked key is gone: reading or revoking it again is 404; rotating issues a new one
    api.get(&format!("/api/v1/sessions/{sid}/api-key"), Some(&ann)).await.expect_code(404, "NOT_FOUND");
    api.delete(&format!("/api/v1/sessions/{sid}/api-key"), Some(&ann)).await.expect_code(404, "NOT_FOUND");
    let r = api.post(&format!("/api/v1/sessions/{sid}/api-key/rotate"), Some(&ann), json!({})).await;
    r.expect(200);
    let reissued = r.data()["apiKey"].as_str().unwrap().to_owned();
    api.send_text(&sid, &reissued, "reissued").await.expect(200);
    api.get(&format!("/api/v1/sessions/{sid}/api-key"), Some(&ann)).await.expect(200);

    cl.shutdown().await;
}

async fn workers_admin(storage: Storage) {
    let (cl, api, admin) = boot(storage).await;
    let ann = api.register("ann@example.com").await;
    let (sid, key) = api.connected_session(&cl, &ann, "shop").await;
    api.send_text(&sid, &key, "hello").await.expect(200);

    let r = api.get("/api/v1/admin/workers", Some(&admin)).await;
    r.expect(200);
    no_hashes(&r);
    let w = &r.data()["workers"][0];
    assert_eq!(w["id"], "worker-1");
    assert_eq!(w["status"], "ONLINE");
    assert_eq!(w["connected"], true);
    assert_eq!(w["sessionCount"], 1);
    assert_eq!(r.data()["pagination"]["total"], 1);

    // pre-register: token shown once, accepted for that worker id only
    let r = api.post("/api/v1/admin/workers", Some(&admin), json!({ "workerId": "edge-7", "endpoint": "http://10.0.0.7:8001", "maxSessions": 5, "description": "rack 7" })).await;
    r.expect(201);
    no_hashes(&r);
    let token = r.data()["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("wkt_"));
    assert_eq!(r.data()["status"], "OFFLINE");
    assert_eq!(r.data()["hasToken"], true);
    api.post("/api/v1/admin/workers", Some(&admin), json!({ "workerId": "edge-7" }))
        .await
        .expect_code(409, "ALREADY_EXISTS");
    let r = api.post("/api/v1/admin/workers", Some(&admin), json!({ "maxSessions": 1.5 })).await;
    assert_eq!(r.body["field"], "maxSessions");
    let r = api.post("/api/v1/admin/workers", Some(&admin), json!({ "workerId": "bad id" })).await;
    assert_eq!(r.body["field"], "workerId");

    let driver = wagate_worker_sdk::simulated::SimulatedDriver::new(Default::default());
    let mut wrong = cl.worker_config("edge-8", 5);
    wrong.token = token.clone();
    let impostor = wagate_worker_sdk::Worker::spawn(wrong, driver.clone());
    assert!(
        !impostor.wait_connected(Duration::from_millis(700)).await,
        "token of edge-7 must not admit edge-8"
    );
    impostor.shutdown().await;
    let mut right = cl.worker_config("edge-7", 5);
    right.token = token.clone();
    let edge7 = wagate_worker_sdk::Worker::spawn(right, driver);
    assert!(edge7.wait_connected(Duration::from_secs(5)).await);
    let r = api.get("/api/v1/admin/workers/edge-7", Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["connected"], true);
    assert_eq!(r.data()["status"], "ONLINE");
    assert_eq!(r.data()["description"], "rack 7");
    // the shared WORKER_AUTH_TOKEN still works (worker-1 is on it)
    assert_eq!(api.get("/api/v1/admin/workers/worker-1", Some(&admin)).await.data()["connected"], true);

    // detail: sessions and recent metrics
    let r = api.get("/api/v1/admin/workers/worker-1", Some(&admin)).await;
    assert_eq!(r.data()["sessions"][0]["id"], sid.as_str());
    assert!(r.data()["recentMetrics"].is_array());
    api.get("/api/v1/admin/workers/nope", Some(&admin)).await.expect_code(404, "NOT_FOUND");

    // patch
    let r = patch(
        &api,
        "/api/v1/admin/workers/edge-7",
        &admin,
        json!({ "status": "maintenance", "maxSessions": 9, "description": "" }),
    )
    .await;
    r.expect(200);
    assert_eq!(r.data()["status"], "MAINTENANCE");
    assert_eq!(r.data()["maxSessions"], 9);
    assert!(r.data()["description"].is_null());
    let r = patch(&api, "/api/v1/admin/workers/edge-7", &admin, json!({ "status": "OFFLINE" })).await;
    assert_eq!(r.body["field"], "status");
    patch(&api, "/api/v1/admin/workers/edge-7", &admin, json!({ "status": "ONLINE" })).await.expect(200);

    // metrics and analytics: SQL aggregates in the brief's shape
    let r = api.get("/api/v1/admin/workers/worker-1/metrics?timeRange=1h", Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["timeRange"], "1h");
    assert!(r.data()["samplesCount"].as_u64().is_some());
    api.get("/api/v1/admin/workers/worker-1/metrics?timeRange=2w", Some(&admin))
        .await
        .expect_code(400, "VALIDATION_ERROR");
    let r = api.get("/api/v1/admin/analytics?timeRange=7d", Some(&admin)).await;
    r.expect(200);
    let a = r.data();
    assert_eq!(a["overview"]["totalUsers"], 2);
    assert_eq!(a["overview"]["totalSessions"], 1);
    assert_eq!(a["overview"]["totalWorkers"], 2);
    assert_eq!(a["overview"]["totalMessages"], 1);
    assert_eq!(a["workers"]["online"], 2);
    assert_eq!(a["sessions"]["connected"], 1);
    assert_eq!(a["sessions"]["successRate"], 100.0);
    assert_eq!(a["messages"]["byType"]["TEXT"], 1);
    assert_eq!(a["messages"]["total"], 1);
    assert_eq!(a["users"]["byTier"]["BASIC"], 2);
    assert!(a["workers"]["avgCpuUsage"].is_number());
    api.get("/api/v1/admin/analytics?timeRange=forever", Some(&admin))
        .await
        .expect_code(400, "VALIDATION_ERROR");

    // remove: drained first, its session moves to edge-7 (the removal tests
    // are in worker_removal.rs)
    let r = api.delete("/api/v1/admin/workers/worker-1", Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["deleted"], true);
    assert_eq!(r.data()["sessionsMoved"], 1, "{}", r.body);
    assert_eq!(r.data()["sessionsWaiting"], 0);
    assert_eq!(r.data()["sessionsDetached"], 0);
    let r = api.get(&format!("/api/v1/sessions/{sid}"), Some(&ann)).await;
    assert_eq!(r.data()["workerId"], "edge-7");
    // (worker-1 is on the shared token: it may come back as a new worker)
    let r = api.delete("/api/v1/admin/workers/edge-7", Some(&admin)).await;
    r.expect(200);
    assert_eq!(r.data()["sessionsDetached"], 0);
    assert_eq!(
        r.data()["sessionsMoved"].as_u64().unwrap() + r.data()["sessionsWaiting"].as_u64().unwrap(),
        1
    );
    edge7.shutdown().await;

    // the docs page and its assets come from the gateway itself; the document lists the admin API
    let page = api.http.get(format!("{}/api-docs", api.base)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"].to_str().unwrap().starts_with("text/html"));
    let csp = page.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert!(csp.contains("script-src 'self'") && !csp.contains("http"), "{csp}");
    assert!(page.text().await.unwrap().contains("/api-docs/docs.js"));
    let js = api.http.get(format!("{}/api-docs/docs.js", api.base)).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert!(!js.text().await.unwrap().contains("https://"), "no external assets");
    let doc: Value = api
        .http
        .get(format!("{}/api-docs/openapi.json", api.base))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(doc["paths"]["/api/v1/admin/workers/{workerId}"]["delete"].is_object(), "{doc}");
    assert!(doc["components"]["schemas"]["UpdateMeBody"]["properties"].get("role").is_none());

    // audit of worker connects
    let r = api.get("/api/v1/admin/logs?service=workers", Some(&admin)).await;
    assert!(
        r.data()["logs"].as_array().unwrap().iter().any(|l| l["message"] == "worker connected"),
        "{}",
        r.body
    );
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_admin_on_sqlite() {
    users_and_admin(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_and_admin_on_postgres_and_redis() {
    users_and_admin(Storage::PostgresRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_history_on_sqlite() {
    keys_and_history(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keys_and_history_on_postgres_and_redis() {
    keys_and_history(Storage::PostgresRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_admin_on_sqlite() {
    workers_admin(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_admin_on_postgres_and_redis() {
    workers_admin(Storage::PostgresRedis).await;
}
