//! Email (issue 26): the outbox sends through real SMTP to the testkit's
//! sink (`SMTP_TLS=none`), on SQLite and on PostgreSQL + Redis. Password
//! reset, verification, notifications with de-duplication and tenancy, and
//! two replicas sending each mail once.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use wagate_control_plane::config::ControlPlaneConfig;
use wagate_control_plane::email::{SmtpSettings, SmtpTls};
use wagate_control_plane::webhooks::RetrySchedule;
use wagate_testkit::cluster::{Cluster, ClusterBuilder, Storage};
use wagate_testkit::smtp_sink::{ReceivedMail, SmtpSink};
use wagate_worker_sdk::v1::SessionStatus;

use crate::common::{Api, cluster, start, wait_for};

const ADMIN_EMAIL: &str = "root@wagate.test";
const ADMIN_PASSWORD: &str = "admin-password-1";
const WAIT: Duration = Duration::from_secs(10);

/// Points every replica at `sink`, with fast polls and retries.
fn mail_to(sink: &SmtpSink) -> impl Fn(&mut ControlPlaneConfig) + Send + 'static {
    let port = sink.addr().port();
    move |c: &mut ControlPlaneConfig| {
        c.email.smtp = Some(SmtpSettings {
            host: "127.0.0.1".into(),
            port: Some(port),
            user: None,
            pass: None,
            tls: SmtpTls::None,
        });
        c.email.poll_interval = Duration::from_millis(50);
        c.email.timeout = Duration::from_secs(5);
        let mut delays = vec![Duration::ZERO];
        delays.extend(std::iter::repeat_n(Duration::from_millis(100), 40));
        c.email.schedule = RetrySchedule::fixed(delays);
        c.admin_email = Some(ADMIN_EMAIL.into());
        c.admin_password = Some(ADMIN_PASSWORD.into());
    }
}

/// The token (`prefix` + 64 hex digits) a mail carries.
fn token(mail: &ReceivedMail, prefix: &str) -> String {
    let body = mail.body();
    let at = body.find(prefix).unwrap_or_else(|| panic!("no {prefix} token in {body}"));
    body[at..at + prefix.len() + 64].to_owned()
}

async fn login(api: &Api, email: &str, password: &str) -> Value {
    let r = api.post("/api/v1/auth/login", None, json!({ "email": email, "password": password })).await;
    r.expect(200);
    r.data().clone()
}

async fn patch(api: &Api, path: &str, token: &str, body: Value) -> crate::common::Reply {
    api.call(Method::PATCH, path, Some(token), Some(body)).await
}

async fn emails_log(api: &Api, admin: &str) -> Vec<Value> {
    let r = api.get("/api/v1/admin/emails?limit=100", Some(admin)).await;
    r.expect(200);
    r.data()["emails"].as_array().cloned().unwrap_or_default()
}

async fn reset_and_verify(storage: Storage) {
    let sink = SmtpSink::start().await.expect("sink");
    let mut c = start(cluster(storage).configure(mail_to(&sink))).await;
    let api = Api::new(&c);
    let email = "ann@example.com";

    // Sign-up mails a verification link; an unverified account signs in.
    let jwt = api.register(email).await;
    let me = api.get("/api/v1/me", Some(&jwt)).await;
    me.expect(200);
    assert_eq!(me.data()["emailVerified"], json!(false));
    let verify = sink.wait_for(email, "Confirm your email", WAIT).await;
    let wev = token(&verify, "wev_");
    let r = api.get(&format!("/api/v1/auth/verify-email?token={wev}"), None).await;
    r.expect(200);
    assert_eq!(r.data()["email"], json!(email));
    assert_eq!(api.get("/api/v1/me", Some(&jwt)).await.data()["emailVerified"], json!(true));
    api.post("/api/v1/auth/verify-email", None, json!({ "token": wev }))
        .await
        .expect_code(401, "INVALID_TOKEN");

    // Reset: the same answer for an address with and without an account.
    let known = api.post("/api/v1/auth/password-reset", None, json!({ "email": email })).await;
    known.expect(202);
    let unknown =
        api.post("/api/v1/auth/password-reset", None, json!({ "email": "nobody@example.com" })).await;
    unknown.expect(202);
    assert_eq!(known.body, unknown.body);
    let session = login(&api, email, "correct-horse-9").await;
    let refresh = session["refreshToken"].as_str().expect("refresh").to_owned();
    let mail = sink.wait_for(email, "Reset your wagate password", WAIT).await;
    let wpr = token(&mail, "wpr_");
    // The password policy applies, and a refusal does not spend the token.
    api.post("/api/v1/auth/password-reset/confirm", None, json!({ "token": wpr, "password": "password" }))
        .await
        .expect(400);
    let r = api
        .post(
            "/api/v1/auth/password-reset/confirm",
            None,
            json!({ "token": wpr, "password": "a-new-horse-42" }),
        )
        .await;
    r.expect(200);
    // Every earlier token of the account is dead; the new password works.
    api.get("/api/v1/me", Some(&jwt)).await.expect(401);
    api.post("/api/v1/auth/refresh", None, json!({ "refreshToken": refresh })).await.expect(401);
    api.post("/api/v1/auth/login", None, json!({ "email": email, "password": "correct-horse-9" }))
        .await
        .expect(401);
    login(&api, email, "a-new-horse-42").await;
    api.post(
        "/api/v1/auth/password-reset/confirm",
        None,
        json!({ "token": wpr, "password": "another-horse-43" }),
    )
    .await
    .expect_code(401, "INVALID_TOKEN");
    assert!(sink.mails_to("nobody@example.com").is_empty(), "no mail to an address without an account");

    // Per address: the fourth request within the hour is refused.
    for _ in 0..2 {
        api.post("/api/v1/auth/password-reset", None, json!({ "email": email })).await.expect(202);
    }
    api.post("/api/v1/auth/password-reset", None, json!({ "email": email }))
        .await
        .expect_code(429, "RATE_LIMITED");

    // The delivery log: administrators only, no bodies.
    let admin = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await["token"].as_str().expect("token").to_owned();
    api.get("/api/v1/admin/emails", Some(&jwt)).await.expect(401);
    let user = login(&api, email, "a-new-horse-42").await["token"].as_str().expect("token").to_owned();
    api.get("/api/v1/admin/emails", Some(&user)).await.expect(403);
    let log = emails_log(&api, &admin).await;
    assert!(
        log.iter().any(|e| e["kind"] == json!("password_reset") && e["status"] == json!("SENT")),
        "{log:?}"
    );
    assert!(log.iter().all(|e| e.get("body").is_none()));

    // A restart loses nothing: a mail the server refuses stays in the outbox
    // across a crash and goes once the server takes it.
    sink.refuse_next(1000);
    let before = sink.mails_to("bob@example.com").len();
    api.register("bob@example.com").await;
    wait_for("a refused attempt", WAIT, || async { (sink.refused() > 0).then_some(()) }).await;
    c.restart_control_plane(true).await.expect("restart");
    sink.refuse_next(0);
    sink.wait_for("bob@example.com", "Confirm your email", WAIT).await;
    assert_eq!(sink.mails_to("bob@example.com").len(), before + 1);
    c.shutdown().await;
}

#[tokio::test]
async fn password_reset_and_verification_sqlite() {
    reset_and_verify(Storage::Sqlite).await;
}

#[tokio::test]
async fn password_reset_and_verification_postgres() {
    reset_and_verify(Storage::PostgresRedis).await;
}

#[tokio::test]
async fn unverified_accounts_cannot_create_sessions_when_required() {
    let sink = SmtpSink::start().await.expect("sink");
    let tweak = mail_to(&sink);
    let c = start(cluster(Storage::Sqlite).workers(1, 10).configure(move |c| {
        tweak(c);
        c.email.require_verification = true;
    }))
    .await;
    let api = Api::new(&c);
    let jwt = api.register("cat@example.com").await;
    api.post("/api/v1/sessions", Some(&jwt), json!({ "name": "shop" }))
        .await
        .expect_code(403, "EMAIL_NOT_VERIFIED");
    let mail = sink.wait_for("cat@example.com", "Confirm your email", WAIT).await;
    api.post("/api/v1/auth/verify-email", None, json!({ "token": token(&mail, "wev_") })).await.expect(200);
    api.create_session(&jwt, "shop").await;
    c.shutdown().await;
}

/// Two replicas on one database: every mail (verification and reset, some
/// refused once by the server first) reaches the sink exactly once.
#[tokio::test]
async fn two_replicas_send_each_mail_once() {
    let sink = SmtpSink::start().await.expect("sink");
    let mut c: Cluster =
        start(ClusterBuilder::new(Storage::PostgresRedis).replicas(2).configure(mail_to(&sink))).await;
    let second = Api { base: c.add_edge(1).await.expect("edge"), http: reqwest::Client::new() };
    let first = Api::new(&c);
    sink.refuse_next(3);
    let users: Vec<String> = (0..6).map(|i| format!("user{i}@example.com")).collect();
    for (i, u) in users.iter().enumerate() {
        let api = if i % 2 == 0 { &first } else { &second };
        api.register(u).await;
        api.post("/api/v1/auth/password-reset", None, json!({ "email": u })).await.expect(202);
    }
    for u in &users {
        sink.wait_for(u, "Confirm your email", WAIT).await;
        sink.wait_for(u, "Reset your wagate password", WAIT).await;
    }
    // Leave time for a duplicate to show up, if there were one.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for u in &users {
        assert_eq!(sink.mails_to(u).len(), 2, "{u}: {:?}", sink.mails_to(u));
    }
    assert_eq!(sink.refused(), 3);
    let admin = login(&first, ADMIN_EMAIL, ADMIN_PASSWORD).await["token"].as_str().expect("token").to_owned();
    let log = emails_log(&first, &admin).await;
    assert_eq!(log.len(), 12, "{log:?}");
    assert!(log.iter().all(|e| e["status"] == json!("SENT")), "{log:?}");
    // Each refusal cost one more attempt (one mail may take two of them).
    let attempts: u64 = log.iter().map(|e| e["attempts"].as_u64().unwrap_or(0)).sum();
    assert_eq!(attempts, 12 + 3, "{log:?}");
    c.shutdown().await;
}

async fn notifications(storage: Storage) {
    let sink = SmtpSink::start().await.expect("sink");
    let tweak = mail_to(&sink);
    let c = start(cluster(storage).workers(1, 10).configure(move |c| {
        tweak(c);
        c.email.reconnecting_after = Duration::from_secs(1);
        c.webhooks.allow_private = true;
        c.webhooks.schedule = RetrySchedule::fixed(vec![Duration::ZERO]);
        c.webhooks.max_failures = 1;
    }))
    .await;
    let api = Api::new(&c);
    let (ann, bob) = ("ann@example.com", "bob@example.com");
    let ann_jwt = api.register(ann).await;
    let bob_jwt = api.register(bob).await;
    let (ann_s, _) = api.connected_session(&c, &ann_jwt, "ann-shop").await;
    let (bob_s, _) = api.connected_session(&c, &bob_jwt, "bob-shop").await;

    // Bob turns session notifications off; the switch shows on /me.
    let r = patch(&api, "/api/v1/me", &bob_jwt, json!({ "notifications": { "sessionStatus": false } })).await;
    r.expect(200);
    assert_eq!(
        r.data()["notifications"],
        json!({ "sessionStatus": false, "quota": true, "webhookDisabled": true })
    );
    patch(&api, "/api/v1/me", &bob_jwt, json!({ "notifications": { "sms": true } })).await.expect(400);

    // Ann's session drops: one mail to Ann, about Ann's session only,
    // however often the worker repeats it.
    let driver = c.driver_of(&ann_s).expect("driver").clone();
    assert!(driver.set_status(&ann_s, SessionStatus::Disconnected, Some("logged_out")));
    assert!(driver.set_status(&ann_s, SessionStatus::Disconnected, Some("logged_out")));
    let down = sink.wait_for(ann, "logged out", WAIT).await;
    assert!(down.body().contains(&ann_s) && !down.body().contains(&bob_s), "{}", down.body());
    // Bob's drops too, but Bob switched those off.
    let bob_driver = c.driver_of(&bob_s).expect("driver").clone();
    assert!(bob_driver.set_status(&bob_s, SessionStatus::Disconnected, None));

    // Ann's session reconnects and stays RECONNECTING past the threshold.
    api.delete(&format!("/api/v1/sessions/{ann_s}"), Some(&ann_jwt)).await.expect(200);
    let (ann_s2, key) = api.connected_session(&c, &ann_jwt, "ann-shop-2").await;
    let driver = c.driver_of(&ann_s2).expect("driver").clone();
    assert!(driver.set_status(&ann_s2, SessionStatus::Reconnecting, None));
    sink.wait_for(ann, "has been reconnecting", WAIT).await;

    // A webhook that fails is disabled: its owner is told.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let dead_url = format!("http://127.0.0.1:{}/hook", dead.local_addr().expect("addr").port());
    drop(dead);
    let r = api
        .call(
            Method::PUT,
            &format!("/api/v1/sessions/{ann_s2}/webhook"),
            Some(&ann_jwt),
            Some(json!({ "url": dead_url, "events": ["session.status"] })),
        )
        .await;
    assert!(r.status.is_success(), "{}", r.body);
    assert!(driver.set_status(&ann_s2, SessionStatus::Connected, None));
    sink.wait_for(ann, "Webhook of WhatsApp session", WAIT).await;

    // Quota: 80 % and 100 % of 5 messages, one mail each.
    let admin = login(&api, ADMIN_EMAIL, ADMIN_PASSWORD).await["token"].as_str().expect("token").to_owned();
    let ann_id = api.get("/api/v1/me", Some(&ann_jwt)).await.data()["id"].as_str().expect("id").to_owned();
    patch(&api, &format!("/api/v1/admin/users/{ann_id}"), &admin, json!({ "messageQuota": 5 }))
        .await
        .expect(200);
    for i in 0..7 {
        let r = api.send_text(&ann_s2, &key, &format!("m{i}")).await;
        assert_eq!(r.status.as_u16(), if i < 5 { 200 } else { 429 }, "{}", r.body);
    }
    sink.wait_for(ann, "80 % used", WAIT).await;
    sink.wait_for(ann, "100 % used", WAIT).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let of = |to: &str, part: &str| sink.mails_to(to).iter().filter(|m| m.subject().contains(part)).count();
    assert_eq!(of(ann, "logged out"), 1, "one mail per incident");
    assert_eq!(of(ann, "reconnecting"), 1, "one mail per incident");
    assert_eq!(of(ann, "Webhook"), 1);
    assert_eq!(of(ann, "80 %"), 1);
    assert_eq!(of(ann, "100 %"), 1);
    // Bob got his verification mail and nothing else.
    let bob_mails: Vec<String> = sink.mails_to(bob).iter().map(ReceivedMail::subject).collect();
    assert_eq!(bob_mails, ["Confirm your email address for wagate"], "{bob_mails:?}");
    c.shutdown().await;
}

#[tokio::test]
async fn notifications_sqlite() {
    notifications(Storage::Sqlite).await;
}

#[tokio::test]
async fn notifications_postgres() {
    notifications(Storage::PostgresRedis).await;
}
