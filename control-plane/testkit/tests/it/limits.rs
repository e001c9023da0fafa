//! Rate limits and tier quotas as users meet them: a BASIC user's 150
//! concurrent sends give exactly 100 accepted and 50 × 429 (one replica, and
//! two replicas sharing Redis), the hour window rolls over (a manual clock),
//! an administrator's tier change or own quota applies to the next send,
//! Redis lost mid-run falls back to per-replica limits with no 5xx, and
//! password guessing is bounded per account without slowing other logins.

use std::time::{Duration, Instant};

use crate::common::{Api, Reply, cluster, start, wait_for};
use serde_json::json;
use wagate_control_plane::ControlPlaneConfig;
use wagate_control_plane::limits::{Clock, LimitSettings, Rate};
use wagate_testkit::cluster::{Cluster, Storage};

const ADMIN_EMAIL: &str = "admin@example.com";
const ADMIN_PASSWORD: &str = "fleet-keeper-77";
/// 10:00:00 UTC on 2026-11-27: a whole hour ahead.
const ON_THE_HOUR_MS: i64 = 1_795_773_600_000;

fn limits(c: &mut ControlPlaneConfig, clock: &Clock) {
    c.limits = LimitSettings::standard();
    c.limits.clock = clock.clone();
    c.admin_email = Some(ADMIN_EMAIL.into());
    c.admin_password = Some(ADMIN_PASSWORD.into());
}

async fn login(api: &Api, email: &str, password: &str) -> Reply {
    api.post("/api/v1/auth/login", None, json!({ "email": email, "password": password })).await
}

async fn admin_token(api: &Api) -> String {
    let r = login(api, ADMIN_EMAIL, ADMIN_PASSWORD).await;
    r.expect(200);
    r.data()["token"].as_str().expect("token").to_owned()
}

async fn user_id(api: &Api, token: &str) -> String {
    let r = api.get("/api/v1/me", Some(token)).await;
    r.expect(200);
    r.data()["id"].as_str().expect("id").to_owned()
}

/// Fires `n` sends at once through `apis` (round-robin); returns the replies.
async fn burst(apis: &[Api], session: &str, key: &str, n: usize) -> Vec<Reply> {
    let calls = (0..n).map(|i| {
        let api = apis[i % apis.len()].clone();
        let (session, key) = (session.to_owned(), key.to_owned());
        async move { api.send_text(&session, &key, &format!("burst {i}")).await }
    });
    futures::future::join_all(calls).await
}

/// Exactly `accepted` sends were accepted (SENT), the rest refused with the
/// 429 envelope, `Retry-After` and the `RateLimit-*` headers.
fn assert_split(replies: &[Reply], accepted: usize, tier_message: &str) {
    let ok: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    let other: Vec<String> = replies
        .iter()
        .filter(|r| r.status != 200 && r.status != 429)
        .map(|r| format!("{} {}", r.status, r.body))
        .collect();
    assert!(other.is_empty(), "only 200 and 429 expected: {other:?}");
    assert_eq!(ok.len(), accepted, "accepted sends");
    assert_eq!(limited.len(), replies.len() - accepted, "refused sends");
    for r in &ok {
        assert_eq!(r.data()["status"], json!("SENT"), "{}", r.body);
        let remaining: u64 = r.headers["ratelimit-remaining"].to_str().unwrap().parse().unwrap();
        assert!(remaining < 100, "quota headers on a send: {remaining}");
        assert_eq!(r.headers["ratelimit-limit"], "100");
    }
    for r in &limited {
        r.expect_code(429, "RATE_LIMITED");
        assert!(r.body["error"].as_str().unwrap().contains(tier_message), "{}", r.body);
        let retry: u64 = r.headers["retry-after"].to_str().unwrap().parse().unwrap();
        assert!((1..=3600).contains(&retry), "Retry-After {retry}");
        assert_eq!(r.headers["ratelimit-remaining"], "0");
        assert_eq!(r.headers["ratelimit-reset"].to_str().unwrap(), retry.to_string());
    }
}

/// 150 concurrent sends from one BASIC user, through every edge of the
/// cluster: exactly 100 go out (counted at the driver), 50 get 429.
async fn basic_user_gets_exactly_its_quota(storage: Storage, replicas: usize) {
    let clock = Clock::manual(ON_THE_HOUR_MS + 60_000);
    let c = clock.clone();
    let mut cl =
        start(cluster(storage).workers(1, 10).replicas(replicas).configure(move |cfg| limits(cfg, &c))).await;
    let mut apis = vec![Api::new(&cl)];
    for i in 1..replicas {
        let base = cl.add_edge(i).await.unwrap();
        apis.push(Api { base, http: reqwest::Client::new() });
    }
    let api = apis[0].clone();
    let token = api.register("basic@example.com").await;
    let (id, key) = api.connected_session(&cl, &token, "quota").await;

    let replies = burst(&apis, &id, &key, 150).await;
    assert_split(&replies, 100, "BASIC tier allows 100 messages per hour");
    let driver = cl.driver_of(&id).unwrap();
    assert_eq!(driver.sent_count(&id), 100, "sent at the driver");
    assert_eq!(driver.duplicate_sends(), 0);

    // the next hour: the quota is whole again
    clock.advance(Duration::from_secs(3600));
    let r = api.send_text(&id, &key, "a new hour").await;
    r.expect(200);
    assert_eq!(r.headers["ratelimit-remaining"], "99");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_quota_is_exact_embedded() {
    basic_user_gets_exactly_its_quota(Storage::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_quota_is_exact_across_two_replicas_on_redis() {
    basic_user_gets_exactly_its_quota(Storage::PostgresRedis, 2).await;
}

/// The window rolls over on the hour, an administrator's tier change and a
/// user's own quota apply to the very next send.
async fn window_tier_and_override(storage: Storage) {
    let clock = Clock::manual(ON_THE_HOUR_MS + 3_600_000 - 5_000); // 10:59:55
    let c = clock.clone();
    let cl = start(cluster(storage).workers(1, 10).configure(move |cfg| {
        limits(cfg, &c);
        cfg.limits.quota.basic = Some(Rate::new(3, Duration::from_secs(3600)));
    }))
    .await;
    let api = Api::new(&cl);
    let token = api.register("roller@example.com").await;
    let (id, key) = api.connected_session(&cl, &token, "roll").await;
    for _ in 0..3 {
        api.send_text(&id, &key, "in the hour").await.expect(200);
    }
    let r = api.send_text(&id, &key, "one too many").await;
    r.expect_code(429, "RATE_LIMITED");
    assert_eq!(r.headers["retry-after"], "5", "five seconds to 11:00");
    assert!(
        r.body["error"].as_str().unwrap().contains("BASIC tier allows 3 messages per hour"),
        "{}",
        r.body
    );
    clock.advance(Duration::from_millis(4_999));
    api.send_text(&id, &key, "10:59:59.999").await.expect_code(429, "RATE_LIMITED");
    clock.advance(Duration::from_millis(1));
    api.send_text(&id, &key, "11:00:00").await.expect(200);

    // an administrator raises the tier: the next send has PRO's quota
    let admin = admin_token(&api).await;
    let uid = user_id(&api, &token).await;
    for _ in 0..2 {
        api.send_text(&id, &key, "fill").await.expect(200);
    }
    api.send_text(&id, &key, "full").await.expect_code(429, "RATE_LIMITED");
    let path = format!("/api/v1/admin/users/{uid}");
    api.call(reqwest::Method::PATCH, &path, Some(&admin), Some(json!({ "tier": "PRO" }))).await.expect(200);
    let r = api.send_text(&id, &key, "as PRO").await;
    r.expect(200);
    assert_eq!(r.headers["ratelimit-limit"], "1000");
    // the user's own quota wins over the tier; 0 suspends sending; null restores the tier's
    let r = api.call(reqwest::Method::PATCH, &path, Some(&admin), Some(json!({ "messageQuota": 0 }))).await;
    r.expect(200);
    assert_eq!(r.data()["messageQuota"], json!(0));
    let r = api.send_text(&id, &key, "suspended").await;
    r.expect_code(429, "RATE_LIMITED");
    assert!(r.body["error"].as_str().unwrap().contains("your account allows 0 messages"), "{}", r.body);
    api.call(reqwest::Method::PATCH, &path, Some(&admin), Some(json!({ "messageQuota": -1 })))
        .await
        .expect_code(400, "VALIDATION_ERROR");
    let r =
        api.call(reqwest::Method::PATCH, &path, Some(&admin), Some(json!({ "messageQuota": null }))).await;
    r.expect(200);
    assert_eq!(r.data()["messageQuota"], json!(null));
    api.send_text(&id, &key, "back to PRO").await.expect(200);
    // a user cannot change their own quota
    api.call(reqwest::Method::PATCH, "/api/v1/me", Some(&token), Some(json!({ "messageQuota": 100000 })))
        .await
        .expect_code(400, "VALIDATION_ERROR");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_tier_change_and_override_embedded() {
    window_tier_and_override(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn window_tier_change_and_override_on_redis() {
    window_tier_and_override(Storage::PostgresRedis).await;
}

/// Redis cut mid-run (through a proxy; the shared server is never
/// stopped): sends keep being answered, limited by the replica's own count,
/// never a 5xx; Redis back: the shared count is used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_lost_falls_back_to_per_replica_limits() {
    let clock = Clock::manual(ON_THE_HOUR_MS + 60_000);
    let c = clock.clone();
    let cl = start(cluster(Storage::PostgresRedis).workers(1, 10).redis_proxy().configure(move |cfg| {
        limits(cfg, &c);
        cfg.limits.quota.basic = Some(Rate::new(5, Duration::from_secs(3600)));
    }))
    .await;
    let api = Api::new(&cl);
    let token = api.register("outage@example.com").await;
    let (id, key) = api.connected_session(&cl, &token, "outage").await;
    for _ in 0..3 {
        api.send_text(&id, &key, "shared").await.expect(200);
    }
    let limiter = || &cl.cp().state().limiter;
    assert!(!limiter().on_fallback());

    cl.redis_proxy().unwrap().cut();
    let mut statuses = Vec::new();
    for i in 0..8 {
        let r = api.send_text(&id, &key, &format!("during the outage {i}")).await;
        assert!(r.status.as_u16() < 500, "never a 5xx while Redis is down: {} {}", r.status, r.body);
        statuses.push(r.status.as_u16());
    }
    assert!(limiter().on_fallback(), "the fallback is on");
    // the replica's own count starts afresh: 5 more, then 429 (never unlimited)
    assert_eq!(statuses, [200, 200, 200, 200, 200, 429, 429, 429], "per-replica limit");
    let r = api.get("/api/v1/sessions", Some(&token)).await;
    assert!(r.status.as_u16() < 500, "other calls too: {} {}", r.status, r.body);

    cl.redis_proxy().unwrap().restore();
    // back on the shared count (3 of 5 used before the outage): 2 more
    wait_for("redis used again", Duration::from_secs(15), || async {
        let r = api.send_text(&id, &key, "probe").await;
        assert!(r.status.as_u16() < 500, "{} {}", r.status, r.body);
        (!limiter().on_fallback()).then_some(r.status.as_u16())
    })
    .await;
    // the probe that found Redis again counted on the shared window; at most
    // 5 in all were accepted there
    let mut accepted_after = 0;
    for _ in 0..5 {
        if api.send_text(&id, &key, "after").await.status == 200 {
            accepted_after += 1;
        }
    }
    assert!(accepted_after <= 1, "shared count resumed (3 + probe + {accepted_after} ≤ 5)");
    assert_eq!(api.send_text(&id, &key, "over").await.status, 429);
    cl.shutdown().await;
}

/// A login from client address `ip` (the edge believes X-Forwarded-For).
async fn login_from(api: &Api, ip: &str, email: &str, password: &str) -> (Reply, Duration) {
    let req = api
        .http
        .post(format!("{}/api/v1/auth/login", api.base))
        .header("x-forwarded-for", ip)
        .json(&json!({ "email": email, "password": password }));
    let started = Instant::now();
    let r = api.raw(req).await;
    (r, started.elapsed())
}

fn believes_forwarded_for() -> wagate_edge_gateway::EdgeConfig {
    wagate_edge_gateway::EdgeConfig {
        // the test client stands in for a proxy: its X-Forwarded-For is believed
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    }
}

fn retry_after(r: &Reply) -> u64 {
    r.headers["retry-after"].to_str().unwrap().parse().unwrap()
}

/// 100 wrong passwords for one account from one address: 10 are checked
/// (401), 90 refused before any password check (429 with Retry-After); the
/// owner signs in from another address all the while, another account's
/// login answers in its usual time. One address spraying guesses across
/// accounts is stopped by the per-address limit. Sign-ups are limited per
/// address.
async fn password_guessing_is_bounded(storage: Storage) {
    let clock = Clock::manual(ON_THE_HOUR_MS + 60_000);
    let c = clock.clone();
    let cl =
        start(cluster(storage).edge_config(believes_forwarded_for()).configure(move |cfg| limits(cfg, &c)))
            .await;
    let api = Api::new(&cl);
    api.register("victim@example.com").await;
    api.register("bystander@example.com").await;
    let mut usual = Vec::new();
    for _ in 0..3 {
        let (r, took) = login_from(&api, "198.51.100.7", "bystander@example.com", "correct-horse-9").await;
        r.expect(200);
        usual.push(took);
    }
    usual.sort();
    let usual = usual[1];

    const ATTACKER: &str = "203.0.113.7";
    let guesses = (0..100).map(|_| login_from(&api, ATTACKER, "victim@example.com", "wrong-guess-00"));
    let flood = futures::future::join_all(guesses);
    let bystander = async {
        tokio::time::sleep(Duration::from_millis(20)).await;
        login_from(&api, "198.51.100.7", "bystander@example.com", "correct-horse-9").await
    };
    let (replies, (r, during)) = tokio::join!(flood, bystander);
    r.expect(200);
    let wrong = replies.iter().filter(|(r, _)| r.status == 401).count();
    let limited = replies.iter().filter(|(r, _)| r.status == 429).count();
    assert_eq!((wrong, limited), (10, 90), "10 guesses checked, the rest refused");
    for (r, _) in replies.iter().filter(|(r, _)| r.status == 429) {
        r.expect_code(429, "RATE_LIMITED");
        assert!((1..=900).contains(&retry_after(r)), "Retry-After {}", retry_after(r));
        assert!(
            r.body["error"].as_str().unwrap().contains("for this account from this address"),
            "{}",
            r.body
        );
    }
    println!("bystander login: usual {usual:?}, during the flood {during:?}");
    assert!(
        during < usual * 3 + Duration::from_millis(1000),
        "a flood on one account does not starve other logins: usual {usual:?}, during {during:?}"
    );
    // the owner, from anywhere else, is not locked out by the attacker
    let (r, _) = login_from(&api, "192.0.2.1", "victim@example.com", "correct-horse-9").await;
    r.expect(200);
    // the attacker's address stays refused for this account, even with the right password
    let (r, _) = login_from(&api, ATTACKER, "victim@example.com", "correct-horse-9").await;
    r.expect_code(429, "RATE_LIMITED");
    clock.advance(Duration::from_secs(15 * 60));
    let (r, _) = login_from(&api, ATTACKER, "victim@example.com", "correct-horse-9").await;
    r.expect(200);

    // one address spraying guesses across accounts: 50 per 15 minutes
    const SPRAYER: &str = "203.0.113.66";
    let spray = (0..60).map(|i| {
        let api = api.clone();
        async move { login_from(&api, SPRAYER, &format!("user{i}@example.com"), "wrong-guess-00").await.0 }
    });
    let replies = futures::future::join_all(spray).await;
    let wrong = replies.iter().filter(|r| r.status == 401).count();
    let limited: Vec<&Reply> = replies.iter().filter(|r| r.status == 429).collect();
    assert_eq!((wrong, limited.len()), (50, 10), "50 guesses checked across accounts, the rest refused");
    for r in limited {
        r.expect_code(429, "RATE_LIMITED");
        assert!(r.body["error"].as_str().unwrap().contains("from this address"), "{}", r.body);
        assert!(!r.body["error"].as_str().unwrap().contains("account"), "{}", r.body);
    }
    let (r, _) = login_from(&api, SPRAYER, "bystander@example.com", "correct-horse-9").await;
    r.expect_code(429, "RATE_LIMITED");

    // sign-ups: 10 per address per hour
    for i in 0..10 {
        let req = api
            .http
            .post(format!("{}/api/v1/auth/register", api.base))
            .header("x-forwarded-for", "192.0.2.99")
            .json(&json!({ "email": format!("fresh{i}@example.com"), "password": "correct-horse-9" }));
        api.raw(req).await.expect(201);
    }
    let req = api
        .http
        .post(format!("{}/api/v1/auth/register", api.base))
        .header("x-forwarded-for", "192.0.2.99")
        .json(&json!({ "email": "one-more@example.com", "password": "correct-horse-9" }));
    let r = api.raw(req).await;
    r.expect_code(429, "RATE_LIMITED");
    assert!(r.body["error"].as_str().unwrap().contains("sign-ups"), "{}", r.body);
    let req = api
        .http
        .post(format!("{}/api/v1/auth/register", api.base))
        .header("x-forwarded-for", "192.0.2.100")
        .json(&json!({ "email": "one-more@example.com", "password": "correct-horse-9" }));
    api.raw(req).await.expect(201);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_bounded_embedded() {
    password_guessing_is_bounded(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_guessing_is_bounded_on_redis() {
    password_guessing_is_bounded(Storage::PostgresRedis).await;
}

/// The login limit slides: ten wrong guesses at 10:14:59 leave the attacker
/// refused past 10:15:00 (where a fixed window would hand out ten more) until
/// the first guess is fifteen minutes old; the owner signs in from elsewhere
/// throughout. With two replicas, guesses through either replica count
/// against one shared window (Redis).
async fn login_window_slides(storage: Storage, replicas: usize) {
    let quarter_to = ON_THE_HOUR_MS + 15 * 60_000 - 1_000; // 10:14:59
    let clock = Clock::manual(quarter_to);
    let c = clock.clone();
    let edge = believes_forwarded_for();
    let mut cl = start(
        cluster(storage).replicas(replicas).edge_config(edge.clone()).configure(move |cfg| limits(cfg, &c)),
    )
    .await;
    let mut apis = vec![Api::new(&cl)];
    for i in 1..replicas {
        let base = cl.add_edge_with(i, edge.clone()).await.unwrap();
        apis.push(Api { base, http: reqwest::Client::new() });
    }
    apis[0].register("victim@example.com").await;
    const ATTACKER: &str = "203.0.113.7";
    let guess =
        |i: usize| login_from(&apis[i % apis.len()], ATTACKER, "victim@example.com", "wrong-guess-00");
    for i in 0..10 {
        guess(i).await.0.expect_code(401, "INVALID_CREDENTIALS");
    }
    for i in 0..replicas.max(2) {
        let (r, _) = guess(i).await;
        r.expect_code(429, "RATE_LIMITED");
        assert_eq!(retry_after(&r), 900, "the first guess leaves the window in 15 minutes");
    }
    // 10:15:01: a new fixed window, not a new sliding one
    clock.advance(Duration::from_secs(2));
    for i in 0..replicas.max(2) {
        let (r, _) = guess(i).await;
        r.expect_code(429, "RATE_LIMITED");
        assert_eq!(retry_after(&r), 898);
        // the owner meanwhile, from another address, through any replica
        let (r, _) =
            login_from(&apis[i % apis.len()], "192.0.2.1", "victim@example.com", "correct-horse-9").await;
        r.expect(200);
    }
    // 10:29:59: the ten guesses leave the window together
    clock.advance(Duration::from_secs(898));
    for i in 0..10 {
        guess(i).await.0.expect_code(401, "INVALID_CREDENTIALS");
    }
    guess(0).await.0.expect_code(429, "RATE_LIMITED");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_window_slides_embedded() {
    login_window_slides(Storage::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_window_slides_across_two_replicas_on_redis() {
    login_window_slides(Storage::PostgresRedis, 2).await;
}

/// The sliding rule counts the same in Redis and in-process (the Lua
/// script against the in-process log, step by step, on one manual clock).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sliding_windows_count_the_same_on_redis_and_in_process() {
    use wagate_control_plane::cache::Cache;
    use wagate_control_plane::limits::{Check, Limiter};
    let redis_url =
        std::env::var("WAGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("wagate-test:{}:", uuid::Uuid::new_v4().simple());
    let clock = Clock::manual(ON_THE_HOUR_MS);
    let backends = [
        Limiter::new(&Cache::connect(None, &prefix).await.unwrap(), clock.clone()),
        Limiter::new(&Cache::connect(Some(&redis_url), &prefix).await.unwrap(), clock.clone()),
    ];
    let slide = Rate::new(3, Duration::from_secs(10)).sliding();
    let fixed = Rate::new(5, Duration::from_secs(10));
    let mut answers: Vec<Vec<String>> = vec![Vec::new(), Vec::new()];
    // (ms to advance, cost of the sliding check)
    let steps = [
        (0, 1),
        (2_000, 1),
        (3_000, 1),
        (4_999, 1),
        (1, 1),
        (0, 1),
        (1_000, 2),
        (4_000, 0),
        (9_000, 4),
        (1, 3),
    ];
    for (advance, cost) in steps {
        clock.advance(Duration::from_millis(advance));
        for (b, limiter) in backends.iter().enumerate() {
            let checks = [
                Check { rule: "t_fixed", subject: "s", rate: fixed, cost: 1 },
                Check { rule: "t_slide", subject: "s", rate: slide, cost },
            ];
            let answer = match limiter.check_all(&checks).await {
                Ok(d) => format!(
                    "ok {} {} / {} {}",
                    d[0].remaining,
                    d[0].reset.as_millis(),
                    d[1].remaining,
                    d[1].reset.as_millis()
                ),
                Err((i, d)) => format!("refused {i} {} {}", d.remaining, d.reset.as_millis()),
            };
            answers[b].push(answer);
        }
        assert!(!backends[1].on_fallback(), "Redis answered");
    }
    backends[1].refund("t_slide", "s", slide, 1).await;
    backends[0].refund("t_slide", "s", slide, 1).await;
    for (b, limiter) in backends.iter().enumerate() {
        let d = limiter.check("t_slide", "s", slide, 1).await;
        answers[b].push(format!("after a refund: {} {}", d.allowed, d.remaining));
    }
    println!("{:#?}", answers[0]);
    assert_eq!(answers[0], answers[1]);
    assert!(
        answers[0].iter().any(|a| a.starts_with("refused 1")),
        "the sliding rule refused some: {answers:?}"
    );
}

/// Per-client-IP limits on every call, session operations tighter; the
/// headers on every limited answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_ip_and_session_operation_limits() {
    let clock = Clock::manual(ON_THE_HOUR_MS + 60_000);
    let c = clock.clone();
    let cl: Cluster = start(cluster(Storage::Sqlite).workers(1, 50).configure(move |cfg| {
        limits(cfg, &c);
        cfg.limits.ip = Some(Rate::new(40, Duration::from_secs(900)));
        cfg.limits.session_ops = Some(Rate::new(3, Duration::from_secs(60)));
    }))
    .await;
    let api = Api::new(&cl);
    let token = api.register("busy@example.com").await;
    let admin = admin_token(&api).await;
    let uid = user_id(&api, &token).await;
    let path = format!("/api/v1/admin/users/{uid}");
    api.call(reqwest::Method::PATCH, &path, Some(&admin), Some(json!({ "tier": "MAX" }))).await.expect(200);
    let r = api.get("/api/v1/me", Some(&token)).await;
    r.expect(200);
    assert_eq!(r.headers["ratelimit-limit"], "40", "general limit headers on an ordinary call");
    for i in 0..3 {
        let r = api.post("/api/v1/sessions", Some(&token), json!({ "name": format!("s{i}") })).await;
        r.expect(201);
        assert_eq!(r.headers["ratelimit-limit"], "3", "the tighter limit is reported");
    }
    let r = api.post("/api/v1/sessions", Some(&token), json!({ "name": "s4" })).await;
    r.expect_code(429, "RATE_LIMITED");
    assert!(r.body["error"].as_str().unwrap().contains("Session operation"), "{}", r.body);
    // reading is not a session operation
    api.get("/api/v1/sessions", Some(&token)).await.expect(200);
    clock.advance(Duration::from_secs(60));
    api.post("/api/v1/sessions", Some(&token), json!({ "name": "s5" })).await.expect(201);
    // the general limit: 40 calls per 15 minutes from one address
    let mut first_limited = None;
    for i in 0..60 {
        let r = api.get("/api/v1/me", Some(&token)).await;
        if r.status == 429 {
            first_limited.get_or_insert(i);
            r.expect_code(429, "RATE_LIMITED");
            assert_eq!(r.headers["ratelimit-remaining"], "0");
        }
    }
    assert!(first_limited.is_some_and(|i| i < 40), "limited within 40 calls: {first_limited:?}");
    // on gRPC: RESOURCE_EXHAUSTED with the same details in metadata
    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut auth = wagate_proto::v1::auth_service_client::AuthServiceClient::new(channel);
    let status = auth
        .login(wagate_proto::v1::LoginRequest {
            email: "busy@example.com".into(),
            password: "correct-horse-9".into(),
        })
        .await
        .expect_err("limited");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted);
    let md = status.metadata();
    assert_eq!(md.get("x-wagate-code").unwrap(), "RATE_LIMITED");
    assert_eq!(md.get("ratelimit-limit").unwrap(), "40");
    assert_eq!(md.get("ratelimit-remaining").unwrap(), "0");
    assert!(md.get("retry-after").is_some());
    // the health endpoints are not limited
    let r = api.http.get(format!("{}/health", api.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    cl.shutdown().await;
}

/// A text send from client address `ip` (the edge believes X-Forwarded-For).
async fn send_from(api: &Api, session: &str, ip: &str, key: &str, text: &str) -> Reply {
    api.send_text_with(session, key, text, &[("x-forwarded-for", ip)]).await
}

/// A send's client-IP check is made together with its quota (one Redis
/// round trip), all or nothing: sends refused by the IP limit take nothing
/// from the quota and never reach the driver; calls that fail before the
/// quota (a wrong key) still count against the IP; a refused IP is 429
/// "Too many requests" whatever else the call would have answered.
async fn send_counts_ip_and_quota_in_one_step(storage: Storage, replicas: usize) {
    let clock = Clock::manual(ON_THE_HOUR_MS + 60_000);
    let c = clock.clone();
    let edge = wagate_edge_gateway::EdgeConfig {
        // the test client stands in for a proxy: its X-Forwarded-For is believed
        trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()],
        ..Default::default()
    };
    let mut cl = start(
        cluster(storage).workers(1, 10).replicas(replicas).edge_config(edge.clone()).configure(move |cfg| {
            limits(cfg, &c);
            cfg.limits.ip = Some(Rate::new(10, Duration::from_secs(900)));
        }),
    )
    .await;
    let mut apis = vec![Api::new(&cl)];
    for i in 1..replicas {
        let base = cl.add_edge_with(i, edge.clone()).await.unwrap();
        apis.push(Api { base, http: reqwest::Client::new() });
    }
    let api = apis[0].clone();
    let token = api.register("counted@example.com").await;
    let (id, key) = api.connected_session(&cl, &token, "ip").await;
    const BAD_KEY: &str = "wag_not-a-real-key-000000000000";
    // 3 calls with a wrong key: refused before the quota, still counted.
    for i in 0..3 {
        let r = send_from(&apis[i % apis.len()], &id, "203.0.113.7", BAD_KEY, &format!("x{i}")).await;
        assert_eq!(r.status, 401, "{}", r.body);
    }
    // 10 sends from that address through every edge: the 7 left pass.
    let mut accepted = 0;
    for i in 0..10 {
        let r = send_from(&apis[i % apis.len()], &id, "203.0.113.7", &key, &format!("m{i}")).await;
        if r.status == 429 {
            r.expect_code(429, "RATE_LIMITED");
            assert!(r.body["error"].as_str().unwrap().contains("Too many requests"), "{}", r.body);
            assert_eq!(r.headers["ratelimit-limit"], "10");
            assert_eq!(r.headers["ratelimit-remaining"], "0");
            assert!(r.headers.get("retry-after").is_some());
        } else {
            r.expect(200);
            accepted += 1;
            // the quota's details, the tighter view for the sender
            assert_eq!(r.headers["ratelimit-limit"], "100");
        }
    }
    assert_eq!(accepted, 7, "10 per address, 3 taken by the wrong key");
    // a wrong key from the spent address: the limit answers, not the key check
    let r = send_from(&api, &id, "203.0.113.7", BAD_KEY, "y").await;
    r.expect_code(429, "RATE_LIMITED");
    // the refused sends took nothing from the quota: 100 - 7 - this one
    let r = send_from(&api, &id, "198.51.100.9", &key, "from elsewhere").await;
    r.expect(200);
    assert_eq!(r.headers["ratelimit-remaining"], "92");
    let driver = cl.driver_of(&id).unwrap();
    assert_eq!(driver.sent_count(&id), 8, "sent at the driver");
    assert_eq!(driver.duplicate_sends(), 0);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_counts_ip_and_quota_in_one_step_embedded() {
    send_counts_ip_and_quota_in_one_step(Storage::Sqlite, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_counts_ip_and_quota_in_one_step_across_two_replicas_on_redis() {
    send_counts_ip_and_quota_in_one_step(Storage::PostgresRedis, 2).await;
}

/// Figures for the note (`cargo test --release -p wagate-testkit --test it
/// limits::limiter_check_latency -- --ignored --nocapture`): the latency of
/// one limiter check, in-process and on Redis, one at a time and 64 at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn limiter_check_latency() {
    use std::sync::Arc;
    use wagate_control_plane::cache::Cache;
    use wagate_control_plane::limits::Limiter;
    let redis_url =
        std::env::var("WAGATE_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("wagate-bench:{}:", uuid::Uuid::new_v4().simple());
    let backends = [
        ("in-process", Cache::connect(None, &prefix).await.unwrap()),
        ("redis", Cache::connect(Some(&redis_url), &prefix).await.unwrap()),
    ];
    let rate = Rate::new(1_000_000_000, Duration::from_secs(3600));
    for (name, cache) in backends {
        let limiter = Arc::new(Limiter::new(&cache, Clock::System));
        for concurrency in [1usize, 64] {
            let per_task = 20_000 / concurrency;
            let started = Instant::now();
            let tasks = (0..concurrency).map(|t| {
                let limiter = limiter.clone();
                tokio::spawn(async move {
                    let mut lat = Vec::with_capacity(per_task);
                    for i in 0..per_task {
                        let t0 = Instant::now();
                        let d = limiter
                            .check("quota", &format!("user-{}", (t * per_task + i) % 500), rate, 1)
                            .await;
                        assert!(d.allowed);
                        lat.push(t0.elapsed());
                    }
                    lat
                })
            });
            let mut all: Vec<Duration> = Vec::new();
            for t in tasks {
                all.extend(t.await.unwrap());
            }
            let secs = started.elapsed().as_secs_f64();
            all.sort();
            let p = |q: f64| all[((all.len() as f64 * q) as usize).min(all.len() - 1)];
            println!(
                "{name:<10} concurrency {concurrency:>2}: {:>8.0} checks/s, p50 {:?}, p99 {:?}, fallback {}",
                all.len() as f64 / secs,
                p(0.50),
                p(0.99),
                limiter.on_fallback()
            );
        }
    }
}
