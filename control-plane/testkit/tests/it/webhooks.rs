//! Webhooks end to end: a real HTTP receiver on loopback; every request it
//! gets is verified with the `standardwebhooks` crate (an implementation we
//! did not write).

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::common::{self, Api, cluster, start, wait_for};
use bytes::Bytes;
use chrono::Utc;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use wagate_control_plane::config::ControlPlaneConfig;
use wagate_control_plane::webhooks::config::ActiveHook;
use wagate_control_plane::webhooks::outbox::{self, OutboxRow};
use wagate_control_plane::webhooks::{EventType, RetrySchedule, signing};
use wagate_control_plane::{ControlPlane, RunningControlPlane};
use wagate_proto::v1;
use wagate_testkit::cluster::{Storage, WorkerSpec};

// ---------------------------------------------------------------- the receiver

#[derive(Clone, Debug)]
enum Behave {
    Status(u16),
    SlowThen(Duration, u16),
}

#[derive(Clone, Debug)]
struct Got {
    headers: http::HeaderMap,
    body: Bytes,
    at: Instant,
}

impl Got {
    fn id(&self) -> String {
        self.headers["webhook-id"].to_str().unwrap().to_owned()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

#[derive(Default)]
struct Inner {
    got: Mutex<Vec<Got>>,
    script: Mutex<VecDeque<Behave>>,
    default_delay: Mutex<Duration>,
}

#[derive(Clone)]
struct Receiver {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner::default());
        let state = inner.clone();
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else { return };
                let state = state.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                        let state = state.clone();
                        async move {
                            let (parts, body) = req.into_parts();
                            let body = body.collect().await.map(|b| b.to_bytes()).unwrap_or_default();
                            // Recorded on arrival (a timed-out attempt is recorded too).
                            state.got.lock().unwrap().push(Got {
                                headers: parts.headers,
                                body,
                                at: Instant::now(),
                            });
                            let behave = state.script.lock().unwrap().pop_front();
                            let delay = *state.default_delay.lock().unwrap();
                            let status = match behave {
                                Some(Behave::Status(s)) => s,
                                Some(Behave::SlowThen(d, s)) => {
                                    tokio::time::sleep(d).await;
                                    s
                                }
                                None => {
                                    if !delay.is_zero() {
                                        tokio::time::sleep(delay).await;
                                    }
                                    200
                                }
                            };
                            Ok::<_, Infallible>(
                                http::Response::builder()
                                    .status(status)
                                    .body(Full::new(Bytes::from_static(b"ok")))
                                    .unwrap(),
                            )
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        Receiver { addr, inner }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.addr.port())
    }

    fn got(&self) -> Vec<Got> {
        self.inner.got.lock().unwrap().clone()
    }

    fn script(&self, steps: impl IntoIterator<Item = Behave>) {
        self.inner.script.lock().unwrap().extend(steps);
    }

    async fn wait_count(&self, what: &str, n: usize, timeout: Duration) -> Vec<Got> {
        wait_for(what, timeout, || async {
            let g = self.got();
            (g.len() >= n).then_some(g)
        })
        .await
    }
}

/// Every request verifies with `secret` (the standardwebhooks crate).
#[track_caller]
fn verify_all(got: &[Got], secret: &str) {
    let wh = standardwebhooks::Webhook::new(secret).expect("secret");
    for g in got {
        wh.verify(&g.body, &g.headers).unwrap_or_else(|e| panic!("{e}: {:?}", g.headers));
    }
}

fn fast_webhooks(c: &mut ControlPlaneConfig) {
    c.webhooks.allow_private = true;
    c.webhooks.poll_interval = Duration::from_millis(50);
    c.webhooks.schedule = RetrySchedule::fixed(
        vec![Duration::ZERO; 1].into_iter().chain([Duration::from_millis(50); 4]).collect(),
    );
    c.webhooks.timeout = Duration::from_millis(400);
    c.webhooks.max_failures = 3;
}

fn echo_worker() -> WorkerSpec {
    let mut w = WorkerSpec::new("worker-1", 50);
    w.simulated.echo_after = Some(Duration::from_millis(30));
    w.simulated.delivered_after = Duration::from_millis(20);
    w.simulated.read_after = Duration::from_millis(20);
    w
}

async fn put_webhook(api: &Api, token: &str, sid: &str, body: Value) -> common::Reply {
    api.call(reqwest::Method::PUT, &format!("/api/v1/sessions/{sid}/webhook"), Some(token), Some(body)).await
}

fn of_type<'a>(got: &'a [Got], kind: &str) -> Vec<&'a Got> {
    got.iter().filter(|g| g.json()["type"] == kind).collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signed_ordered_events_with_echo_and_rotation() {
    for storage in Storage::ALL {
        let cl = start(cluster(storage).worker(echo_worker()).configure(fast_webhooks)).await;
        let api = Api::new(&cl);
        let rx = Receiver::start().await;
        let ann = api.register("ann@example.com").await;
        let (sid, key) = api.create_session(&ann, "shop").await;
        let r = put_webhook(&api, &ann, &sid, json!({ "url": rx.url() })).await;
        r.expect(201);
        let secret = r.data()["secret"].as_str().expect("generated secret shown once").to_owned();
        assert!(secret.starts_with("whsec_"));
        assert_eq!(
            r.data()["events"].as_array().unwrap().len(),
            wagate_proto::contract::events::EventType::SUBSCRIBABLE.len(),
            "{}",
            r.body
        );
        let g = api.get(&format!("/api/v1/sessions/{sid}/webhook"), Some(&ann)).await;
        g.expect(200);
        assert!(g.data().get("secret").is_none(), "GET never returns the secret: {}", g.body);

        // Pair: session.status CONNECTED arrives.
        let driver = cl.driver_of(&sid).unwrap().clone();
        assert!(driver.scan(&sid));
        wait_for("session.status CONNECTED", Duration::from_secs(10), || async {
            of_type(&rx.got(), "session.status")
                .iter()
                .any(|g| g.json()["data"]["status"] == "CONNECTED")
                .then_some(())
        })
        .await;

        // A send: message.status SENT → DELIVERED → READ, and the echo as message.received.
        let s = api.send_text(&sid, &key, "hello there").await;
        s.expect(200);
        let mid = s.data()["messageId"].as_str().unwrap().to_owned();
        let got = wait_for("statuses and echo", Duration::from_secs(10), || async {
            let g = rx.got();
            let statuses: Vec<String> = of_type(&g, "message.status")
                .iter()
                .filter(|x| x.json()["data"]["messageId"] == mid.as_str())
                .map(|x| x.json()["data"]["status"].as_str().unwrap().to_owned())
                .collect();
            let echo = of_type(&g, "message.received")
                .iter()
                .any(|x| x.json()["data"]["text"] == "echo: hello there");
            (echo && statuses.last().is_some_and(|s| s == "READ")).then_some(g)
        })
        .await;
        let statuses: Vec<String> = of_type(&got, "message.status")
            .iter()
            .filter(|x| x.json()["data"]["messageId"] == mid.as_str())
            .map(|x| x.json()["data"]["status"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(statuses, ["SENT", "DELIVERED", "READ"], "{storage:?}");
        let echo = of_type(&got, "message.received").into_iter().next().unwrap().json();
        assert_eq!(echo["sessionId"], sid.as_str());
        assert!(echo["id"].as_str().unwrap().starts_with("evt_"));
        assert_eq!(echo["data"]["type"], "TEXT");
        assert!(echo["data"]["from"].as_str().unwrap().contains("6281234567890"), "{echo}");
        assert!(
            echo["data"]["waMessageId"].as_str().is_some() && echo["data"]["messageId"].as_str().is_some()
        );
        verify_all(&got, &secret);
        // In order: per session, event ids (time-ordered) arrive ascending, each once.
        let ids: Vec<String> = got.iter().map(Got::id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(ids, sorted, "events arrive in creation order, once each");

        // Reactions: to the sent message (wagate id) and to the echo (its
        // WhatsApp id); the simulated peer reacts back: `message.reaction`.
        let echo_wa = echo["data"]["waMessageId"].as_str().unwrap().to_owned();
        let echo_id = echo["data"]["messageId"].as_str().unwrap().to_owned();
        for (target, emoji, named) in [(&mid, "👍", &mid), (&echo_wa, "🎉", &echo_id), (&mid, "", &mid)] {
            let r = api
                .call(
                    reqwest::Method::PUT,
                    &format!("/api/v1/sessions/{sid}/messages/{target}/reaction"),
                    Some(&key),
                    Some(json!({ "emoji": emoji })),
                )
                .await;
            r.expect(200);
            assert_eq!(
                (r.data()["messageId"].as_str(), r.data()["emoji"].as_str()),
                (Some(named.as_str()), Some(emoji))
            );
            wait_for("message.reaction", Duration::from_secs(10), || async {
                of_type(&rx.got(), "message.reaction")
                    .iter()
                    .any(|g| {
                        g.json()["data"]["messageId"] == named.as_str() && g.json()["data"]["emoji"] == emoji
                    })
                    .then_some(())
            })
            .await;
        }
        for (target, body, status, code) in [
            ("nope", json!({"emoji": "👍"}), 404, "NOT_FOUND"),
            (mid.as_str(), json!({"emoji": "thumbs"}), 400, "VALIDATION_ERROR"),
        ] {
            let path = format!("/api/v1/sessions/{sid}/messages/{target}/reaction");
            api.call(reqwest::Method::PUT, &path, Some(&key), Some(body)).await.expect_code(status, code);
        }
        let got = rx.got();
        verify_all(&got, &secret);

        // Rotation: the new secret is shown once; both secrets verify for 24 h.
        let r =
            api.post(&format!("/api/v1/sessions/{sid}/webhook/rotate-secret"), Some(&ann), json!({})).await;
        r.expect(200);
        let new_secret = r.data()["secret"].as_str().unwrap().to_owned();
        assert_ne!(new_secret, secret);
        assert!(r.data()["previousSecretExpiresAt"].is_string(), "{}", r.body);
        let before = rx.got().len();
        assert!(driver.inject_inbound(&sid, "628555@s.whatsapp.net", "after rotation"));
        let got = rx.wait_count("event after rotation", before + 1, Duration::from_secs(10)).await;
        let after = &got[before..];
        assert_eq!(after[0].headers["webhook-signature"].to_str().unwrap().split(' ').count(), 2);
        verify_all(after, &new_secret);
        verify_all(after, &secret);

        // The test event: sent now, one attempt, logged.
        let t = api.post(&format!("/api/v1/sessions/{sid}/webhook/test"), Some(&ann), json!({})).await;
        t.expect(200);
        assert_eq!(t.data()["status"], "DELIVERED", "{}", t.body);
        assert_eq!(t.data()["eventType"], "webhook.test");
        assert_eq!(t.data()["attempts"], 1);
        assert_eq!(t.data()["responseCode"], 200);
        let tid = t.data()["id"].as_str().unwrap().to_owned();
        let got = rx.got();
        let test = got.iter().find(|g| g.id() == tid).expect("test event received");
        verify_all(std::slice::from_ref(test), &new_secret);

        // The delivery log, paged.
        let l = api.get(&format!("/api/v1/sessions/{sid}/webhook/deliveries?limit=2"), Some(&ann)).await;
        l.expect(200);
        assert_eq!(l.data()["deliveries"].as_array().unwrap().len(), 2);
        let cursor = l.data()["nextCursor"].as_str().unwrap().to_owned();
        let l2 = api
            .get(
                &format!(
                    "/api/v1/sessions/{sid}/webhook/deliveries?limit=100&cursor={cursor}&status=DELIVERED"
                ),
                Some(&ann),
            )
            .await;
        l2.expect(200);
        let rest = l2.data()["deliveries"].as_array().unwrap();
        assert!(
            !rest.is_empty()
                && rest
                    .iter()
                    .all(|d| d["status"] == "DELIVERED" && d["id"].as_str().unwrap() < cursor.as_str())
        );
        cl.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_timeout_gone_redeliver_and_replay() {
    for storage in Storage::ALL {
        let cl = start(cluster(storage).worker(echo_worker()).configure(fast_webhooks)).await;
        let api = Api::new(&cl);
        let rx = Receiver::start().await;
        let ann = api.register("ann@example.com").await;
        let (sid, _key) = api.connected_session(&cl, &ann, "shop").await;
        let r =
            put_webhook(&api, &ann, &sid, json!({ "url": rx.url(), "events": ["message.received"] })).await;
        r.expect(201);
        let secret = r.data()["secret"].as_str().unwrap().to_owned();
        let driver = cl.driver_of(&sid).unwrap().clone();
        let deliveries = |status: &str| {
            let path = format!("/api/v1/sessions/{sid}/webhook/deliveries?status={status}");
            let api = api.clone();
            let ann = ann.clone();
            async move { api.get(&path, Some(&ann)).await.body["data"]["deliveries"].as_array().unwrap().clone() }
        };

        // 500 three times, then 200: delivered on the 4th attempt, same event id each time.
        rx.script([Behave::Status(500), Behave::Status(500), Behave::Status(500)]);
        assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", "one"));
        let got = rx.wait_count("4 attempts", 4, Duration::from_secs(10)).await;
        verify_all(&got, &secret);
        assert!(got.iter().all(|g| g.id() == got[0].id()), "one event, retried");
        let d = wait_for("DELIVERED after 4", Duration::from_secs(5), || async {
            deliveries("DELIVERED").await.into_iter().find(|d| d["id"] == got[0].id().as_str())
        })
        .await;
        assert_eq!(d["attempts"], 4);
        assert_eq!(d["responseCode"], 200);

        // A timeout is retried.
        rx.script([Behave::SlowThen(Duration::from_millis(800), 200)]);
        assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", "two"));
        let got = rx.wait_count("timeout then retry", 6, Duration::from_secs(10)).await;
        assert_eq!(got[4].id(), got[5].id());
        let id2 = got[4].id();
        let d = wait_for("DELIVERED after timeout", Duration::from_secs(5), || async {
            deliveries("DELIVERED").await.into_iter().find(|d| d["id"] == id2.as_str())
        })
        .await;
        assert_eq!(d["attempts"], 2);

        // Every attempt fails: FAILED after the last one (5 attempts in this schedule).
        rx.script(std::iter::repeat_n(Behave::Status(503), 5));
        assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", "three"));
        let failed = wait_for("FAILED", Duration::from_secs(10), || async {
            deliveries("FAILED").await.into_iter().next()
        })
        .await;
        assert_eq!(failed["attempts"], 5);
        assert_eq!(failed["responseCode"], 503);
        let failed_id = failed["id"].as_str().unwrap().to_owned();

        // 410 disables the webhook at once; later events wait in the outbox.
        rx.script([Behave::Status(410)]);
        assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", "four"));
        let w = wait_for("disabled", Duration::from_secs(10), || async {
            let w = api.get(&format!("/api/v1/sessions/{sid}/webhook"), Some(&ann)).await;
            (w.data()["isActive"] == false).then(|| w.data().clone())
        })
        .await;
        assert!(w["disabledReason"].as_str().unwrap().contains("410"), "{w}");
        let db = &cl.cp().state().db;
        let logged = wait_for("system log", Duration::from_secs(5), || async {
            use sea_orm::ConnectionTrait;
            db.conn
                .query_one_raw(db.stmt(
                    "SELECT message FROM system_logs WHERE service = 'webhooks' AND session_id = $1",
                    vec![sid.clone().into()],
                ))
                .await
                .unwrap()
        })
        .await;
        let msg: String = logged.try_get("", "message").unwrap();
        assert!(msg.contains("disabled"), "{msg}");
        let n = rx.got().len();
        assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", "five"));
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert_eq!(rx.got().len(), n, "nothing is sent while the webhook is disabled");

        // Re-enable: the waiting event goes out. Redeliver the FAILED one; replay.
        put_webhook(&api, &ann, &sid, json!({ "url": rx.url(), "events": ["message.received"] }))
            .await
            .expect(200);
        let got = rx.wait_count("queued event after re-enable", n + 1, Duration::from_secs(10)).await;
        assert_eq!(got[n].json()["data"]["text"], "five");
        let r = api
            .post(
                &format!("/api/v1/sessions/{sid}/webhook/deliveries/{failed_id}/redeliver"),
                Some(&ann),
                json!({}),
            )
            .await;
        r.expect(200);
        let got = rx.wait_count("redelivered", n + 2, Duration::from_secs(10)).await;
        assert_eq!(got[n + 1].id(), failed_id);
        let since =
            (Utc::now() - chrono::Duration::minutes(10)).to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
        let r = api
            .post(&format!("/api/v1/sessions/{sid}/webhook/replay?since={since}"), Some(&ann), json!({}))
            .await;
        r.expect(200);
        assert_eq!(r.data()["requeued"], 1, "the 410 one: {}", r.body);
        let got = rx.wait_count("replayed", n + 3, Duration::from_secs(10)).await;
        assert_eq!(got[n + 2].json()["data"]["text"], "four");
        verify_all(&got, &secret);
        cl.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ssrf_targets_and_bad_input_are_refused() {
    let cl = start(cluster(Storage::Sqlite).workers(1, 10)).await;
    let api = Api::new(&cl);
    let ann = api.register("ann@example.com").await;
    let (sid, _) = api.create_session(&ann, "shop").await;
    // no webhook yet: reading it is 404, acting on it 409
    api.get(&format!("/api/v1/sessions/{sid}/webhook"), Some(&ann)).await.expect_code(404, "NOT_FOUND");
    for action in ["test", "rotate-secret", "replay?since=2026-01-01T00:00:00Z"] {
        let r = api.post(&format!("/api/v1/sessions/{sid}/webhook/{action}"), Some(&ann), json!({})).await;
        r.expect_code(409, "WEBHOOK_NOT_CONFIGURED");
    }
    for url in [
        "http://169.254.169.254/",
        "http://localhost:6379",
        "http://[::1]/",
        "http://127.0.0.1:8080/hook",
        "http://10.0.0.5/hook",
        "http://100.64.0.1/",
        "http://[::ffff:127.0.0.1]/",
        "file:///etc/passwd",
        "gopher://example.com/",
        "not a url",
        "",
    ] {
        let r = put_webhook(&api, &ann, &sid, json!({ "url": url })).await;
        r.expect_code(400, "VALIDATION_ERROR");
        assert_eq!(r.body["field"], "url", "{url}: {}", r.body);
    }
    let path = format!("/api/v1/sessions/{sid}/webhook");
    for (body, field) in [
        (json!({ "url": "https://93.184.216.34/h", "events": ["nope"] }), "events"),
        (json!({ "url": "https://93.184.216.34/h", "secret": "plain" }), "secret"),
        (json!({ "url": "https://93.184.216.34/h", "isActive": "yes" }), "isActive"),
        (json!({ "events": [] }), "url"),
    ] {
        let r = api.call(reqwest::Method::PUT, &path, Some(&ann), Some(body.clone())).await;
        r.expect(400);
        assert_eq!(r.body["field"], field, "{body}: {}", r.body);
    }
    let r = api
        .raw(
            api.http
                .put(format!("{}{path}", api.base))
                .bearer_auth(&ann)
                .header("content-type", "application/json")
                .body("{"),
        )
        .await;
    r.expect_code(400, "INVALID_JSON");
    api.get(&path, Some(&ann)).await.expect_code(404, "NOT_FOUND");
    // A public address is accepted (not called at configuration time).
    put_webhook(&api, &ann, &sid, json!({ "url": "https://93.184.216.34/h" })).await.expect(201);
    api.get(&format!("{path}/deliveries?status=NOPE"), Some(&ann)).await.expect(400);
    api.get(&format!("{path}/deliveries?cursor=%27%20OR%201=1"), Some(&ann)).await.expect(400);
    api.get(&format!("{path}/deliveries?limit=1000"), Some(&ann)).await.expect(400);
    api.post(&format!("{path}/replay"), Some(&ann), json!({})).await.expect(400);
    api.post(&format!("{path}/replay?since=yesterday"), Some(&ann), json!({})).await.expect(400);
    api.post(&format!("{path}/deliveries/evt_nope/redeliver"), Some(&ann), json!({})).await.expect(404);
    let r = api.call(reqwest::Method::PATCH, &path, Some(&ann), Some(json!({}))).await;
    assert_eq!(r.status.as_u16(), 405);
    api.get(&path, None).await.expect(401);
    cl.shutdown().await;
}

fn grpc_request<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tenancy_on_rest_and_grpc() {
    let cl = start(cluster(Storage::Sqlite).workers(1, 10).configure(fast_webhooks)).await;
    let api = Api::new(&cl);
    let rx = Receiver::start().await;
    let ann = api.register("ann@example.com").await;
    let bob = api.register("bob@example.com").await;
    let (sid, _) = api.create_session(&ann, "shop").await;
    put_webhook(&api, &ann, &sid, json!({ "url": rx.url() })).await.expect(201);
    let t = api.post(&format!("/api/v1/sessions/{sid}/webhook/test"), Some(&ann), json!({})).await;
    t.expect(200);
    let did = t.data()["id"].as_str().unwrap().to_owned();
    let base = format!("/api/v1/sessions/{sid}/webhook");
    put_webhook(&api, &bob, &sid, json!({ "url": rx.url() })).await.expect_code(404, "SESSION_NOT_FOUND");
    api.get(&base, Some(&bob)).await.expect(404);
    api.delete(&base, Some(&bob)).await.expect(404);
    for p in
        ["test", "rotate-secret", &format!("deliveries/{did}/redeliver"), "replay?since=2020-01-01T00:00:00Z"]
    {
        api.post(&format!("{base}/{p}"), Some(&bob), json!({})).await.expect(404);
    }
    api.get(&format!("{base}/deliveries"), Some(&bob)).await.expect(404);

    let channel = wagate_proto::connect(cl.grpc_url()).await.unwrap();
    let mut c = v1::webhook_service_client::WebhookServiceClient::new(channel);
    let s = || v1::GetSessionRequest { session_id: sid.clone() };
    assert_eq!(c.get_webhook(grpc_request(s(), &bob)).await.unwrap_err().code(), tonic::Code::NotFound);
    assert_eq!(c.test_webhook(grpc_request(s(), &bob)).await.unwrap_err().code(), tonic::Code::NotFound);
    assert_eq!(c.delete_webhook(grpc_request(s(), &bob)).await.unwrap_err().code(), tonic::Code::NotFound);
    assert_eq!(
        c.rotate_webhook_secret(grpc_request(s(), &bob)).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let put = v1::PutWebhookRequest { session_id: sid.clone(), url: rx.url(), ..Default::default() };
    assert_eq!(c.put_webhook(grpc_request(put, &bob)).await.unwrap_err().code(), tonic::Code::NotFound);
    let list = v1::ListWebhookDeliveriesRequest { session_id: sid.clone(), ..Default::default() };
    assert_eq!(
        c.list_webhook_deliveries(grpc_request(list.clone(), &bob)).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let redo = v1::RedeliverWebhookDeliveryRequest { session_id: sid.clone(), delivery_id: did.clone() };
    assert_eq!(
        c.redeliver_webhook_delivery(grpc_request(redo, &bob)).await.unwrap_err().code(),
        tonic::Code::NotFound
    );
    let replay =
        v1::ReplayWebhookRequest { session_id: sid.clone(), since: Some(prost_types::Timestamp::default()) };
    assert_eq!(c.replay_webhook(grpc_request(replay, &bob)).await.unwrap_err().code(), tonic::Code::NotFound);
    // The owner sees it over gRPC too.
    let l = c.list_webhook_deliveries(grpc_request(list, &ann)).await.unwrap().into_inner();
    assert_eq!(l.deliveries.len(), 1);
    assert_eq!(c.get_webhook(grpc_request(s(), &ann)).await.unwrap().into_inner().url, rx.url());
    cl.shutdown().await;
}

// ---------------------------------------------------------------- outbox across restarts and replicas

/// A user, `sessions` sessions and one webhook each, written directly.
async fn seed(cp: &RunningControlPlane, sessions: usize, url: &str) -> (Vec<(String, String)>, String) {
    use sea_orm::ConnectionTrait;
    let db = &cp.state().db;
    let now = Utc::now();
    let uid = format!("u_{}", uuid::Uuid::new_v4().simple());
    db.conn
        .execute_raw(db.stmt(
            "INSERT INTO users (id, name, email, password_hash, created_at, updated_at) VALUES ($1, 'x', $2, 'x', $3, $4)",
            vec![uid.clone().into(), format!("{uid}@example.com").into(), now.into(), now.into()],
        ))
        .await
        .unwrap();
    let secret = signing::generate_secret();
    let mut out = Vec::new();
    for i in 0..sessions {
        let sid = format!("s{i}_{}", &uid[2..10]);
        let wid = format!("wh_{sid}");
        db.conn
            .execute_raw(db.stmt(
                "INSERT INTO sessions (id, user_id, name, status, generation, created_at, updated_at) VALUES ($1, $2, 'n', 'CONNECTED', 1, $3, $4)",
                vec![sid.clone().into(), uid.clone().into(), now.into(), now.into()],
            ))
            .await
            .unwrap();
        db.conn
            .execute_raw(db.stmt(
                "INSERT INTO webhooks (id, session_id, url, events, secret, is_active, failure_count, created_at, updated_at) \
                 VALUES ($1, $2, $3, '[]', $4, $5, 0, $6, $7)",
                vec![wid.clone().into(), sid.clone().into(), url.into(), secret.clone().into(), true.into(), now.into(), now.into()],
            ))
            .await
            .unwrap();
        out.push((sid, wid));
    }
    (out, secret)
}

async fn enqueue_events(cp: &RunningControlPlane, hooks: &[(String, String)], per_hook: usize) {
    let db = &cp.state().db;
    let mut rows = Vec::new();
    for n in 0..per_hook {
        for (sid, wid) in hooks {
            let hook = ActiveHook { webhook: Some((wid.clone(), u32::MAX)), live_until: None };
            rows.push(OutboxRow::new(
                &hook,
                sid,
                EventType::SessionQr,
                Utc::now(),
                &json!({ "qrCode": format!("q{n}") }),
            ));
        }
    }
    outbox::enqueue(&db.conn, db, &rows).await.unwrap();
    cp.state().webhooks.committed();
}

async fn database_url(storage: Storage) -> (String, Option<String>) {
    match storage {
        Storage::Sqlite => {
            let dir = std::env::temp_dir().join(format!("wagate-wh-{}", uuid::Uuid::new_v4().simple()));
            std::fs::create_dir_all(&dir).unwrap();
            (format!("sqlite://{}?mode=rwc", dir.join("w.db").display()), None)
        }
        Storage::PostgresRedis => {
            use sea_orm::ConnectionTrait;
            let admin_url = std::env::var("WAGATE_TEST_POSTGRES_URL")
                .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
            let name = format!("wagate_wh_{}", uuid::Uuid::new_v4().simple());
            let admin = sea_orm::Database::connect(admin_url.clone()).await.expect("PostgreSQL is required");
            admin.execute_unprepared(&format!("CREATE DATABASE \"{name}\"")).await.unwrap();
            let _ = admin.close().await;
            let base = admin_url.rsplit_once('/').unwrap().0.to_owned();
            (format!("{base}/{name}"), Some(name))
        }
    }
}

fn cp_config(url: &str) -> ControlPlaneConfig {
    let mut c = ControlPlaneConfig::local(url);
    fast_webhooks(&mut c);
    c.webhooks.poll_interval = Duration::from_millis(20);
    // Generous: a timed-out attempt is (rightly) sent again, which these
    // exactly-once tests would count on a loaded machine.
    c.webhooks.timeout = Duration::from_secs(5);
    c.shutdown_grace = Duration::from_secs(5);
    c
}

/// Each enqueued (`session.qr`) event arrived exactly once. (The seeded
/// sessions have no worker, so the fleet sweep also reports them waiting:
/// those `session.status` events are not counted.)
fn assert_each_once(got: &[Got], expected: usize) {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for g in got.iter().filter(|g| g.json()["type"] == "session.qr") {
        *counts.entry(g.id()).or_default() += 1;
    }
    let twice: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "delivered more than once: {twice:?}");
    assert_eq!(counts.len(), expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_queued_events_delivers_each_exactly_once() {
    common::init_tracing();
    for storage in Storage::ALL {
        let (url, _) = database_url(storage).await;
        let rx = Receiver::start().await;
        *rx.inner.default_delay.lock().unwrap() = Duration::from_millis(10);
        let cp = ControlPlane::start(cp_config(&url)).await.unwrap();
        let (hooks, secret) = seed(&cp, 2, &rx.url()).await;
        enqueue_events(&cp, &hooks, 50).await;
        rx.wait_count("some delivered before the restart", 10, Duration::from_secs(10)).await;
        let db = cp.state().db.conn.clone();
        cp.shutdown().await;
        let _ = db.close().await;
        let before = rx.got().len();
        assert!(before < 100, "restart happens with events still queued ({before})");
        let cp = ControlPlane::start(cp_config(&url)).await.unwrap();
        let what = format!("{storage:?}: all 100 after the restart");
        qr_events_once_in_order(&rx, &hooks, &secret, 100, Duration::from_secs(20), 300, &what).await;
        cp.shutdown().await;
    }
}

/// Waits for `n` `session.qr` events, lets late duplicates arrive for
/// `settle_ms`, then checks each arrived once, verifies, in order per session.
async fn qr_events_once_in_order(
    rx: &Receiver,
    hooks: &[(String, String)],
    secret: &str,
    n: usize,
    timeout: Duration,
    settle_ms: u64,
    what: &str,
) {
    let got = wait_for(what, timeout, || async {
        let g = rx.got();
        (of_type(&g, "session.qr").len() >= n).then_some(g)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(settle_ms)).await;
    let got = if rx.got().len() > got.len() { rx.got() } else { got };
    assert_each_once(&got, n);
    verify_all(&got, secret);
    for (sid, _) in hooks {
        let ids: Vec<String> = of_type(&got, "session.qr")
            .into_iter()
            .filter(|g| g.json()["sessionId"] == sid.as_str())
            .map(Got::id)
            .collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(ids, sorted, "{what}: in order per session");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_on_postgres_deliver_each_event_once() {
    common::init_tracing();
    let (url, _) = database_url(Storage::PostgresRedis).await;
    let rx = Receiver::start().await;
    let a = ControlPlane::start(cp_config(&url)).await.unwrap();
    let b = ControlPlane::start(cp_config(&url)).await.unwrap();
    // 2,000 events over 20 sessions: both dispatchers lease heads and runs
    // behind them from one outbox (issue 25).
    let (hooks, secret) = seed(&a, 20, &rx.url()).await;
    enqueue_events(&a, &hooks, 100).await;
    b.state().webhooks.committed();
    qr_events_once_in_order(&rx, &hooks, &secret, 2000, Duration::from_secs(60), 500, "two replicas").await;
    a.shutdown().await;
    b.shutdown().await;
}

/// Figures for the note (`cargo test -p wagate-testkit --test it
/// webhooks::figures -- --ignored --nocapture`): events/s one
/// dispatcher delivers to a fast local receiver, and the latency from the
/// worker's inbound event to the receiver.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn figures() {
    for storage in Storage::ALL {
        // Throughput: 2,000 events over 100 sessions, one dispatcher.
        let (url, _) = database_url(storage).await;
        let rx = Receiver::start().await;
        let cp = ControlPlane::start(cp_config(&url)).await.unwrap();
        let (hooks, _) = seed(&cp, 100, &rx.url()).await;
        let t0 = Instant::now();
        enqueue_events(&cp, &hooks, 20).await;
        let got = wait_for("2000", Duration::from_secs(60), || async {
            let g = rx.got();
            (of_type(&g, "session.qr").len() >= 2000).then_some(g)
        })
        .await;
        let mut seen = std::collections::HashSet::new();
        let got: Vec<Got> =
            got.into_iter().filter(|g| g.json()["type"] == "session.qr" && seen.insert(g.id())).collect();
        let secs = got.last().unwrap().at.duration_since(t0).as_secs_f64();
        println!(
            "{storage:?}: {} events in {secs:.2} s = {:.0} events/s",
            got.len(),
            got.len() as f64 / secs
        );
        cp.shutdown().await;

        // Latency: inbound event on the worker → receiver.
        let cl = start(cluster(storage).worker(echo_worker()).configure(fast_webhooks)).await;
        let api = Api::new(&cl);
        let rx = Receiver::start().await;
        let ann = api.register("ann@example.com").await;
        let (sid, _) = api.connected_session(&cl, &ann, "shop").await;
        put_webhook(&api, &ann, &sid, json!({ "url": rx.url(), "events": ["message.received"] }))
            .await
            .expect(201);
        let driver = cl.driver_of(&sid).unwrap().clone();
        let mut sent = HashMap::new();
        for i in 0..300 {
            let text = format!("m{i}");
            sent.insert(text.clone(), Instant::now());
            assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", &text));
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let got = rx.wait_count("300 inbound", 300, Duration::from_secs(30)).await;
        let mut lat: Vec<f64> = got
            .iter()
            .map(|g| {
                g.at.duration_since(sent[g.json()["data"]["text"].as_str().unwrap()]).as_secs_f64() * 1000.0
            })
            .collect();
        lat.sort_by(|a, b| a.partial_cmp(b).unwrap());
        println!(
            "{storage:?}: inbound → receiver latency p50 {:.1} ms, p99 {:.1} ms (n={})",
            lat[lat.len() / 2],
            lat[lat.len() * 99 / 100],
            lat.len()
        );
        cl.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failover_reports_session_status_with_reason() {
    let mut cl = start(cluster(Storage::Sqlite).workers(2, 10).configure(fast_webhooks)).await;
    let api = Api::new(&cl);
    let rx = Receiver::start().await;
    let ann = api.register("ann@example.com").await;
    let (sid, _) = api.connected_session(&cl, &ann, "shop").await;
    let r = put_webhook(&api, &ann, &sid, json!({ "url": rx.url(), "events": ["session.status"] })).await;
    r.expect(201);
    let secret = r.data()["secret"].as_str().unwrap().to_owned();
    let i = cl.workers.iter().position(|w| w.driver.session_status(&sid).is_some()).unwrap();
    cl.workers[i].handle.take().unwrap().kill().await;
    let got = wait_for("RECONNECTING then CONNECTED", Duration::from_secs(15), || async {
        let g = rx.got();
        let s: Vec<String> =
            g.iter().map(|x| x.json()["data"]["status"].as_str().unwrap().to_owned()).collect();
        (s.iter().any(|x| x == "RECONNECTING") && s.last().is_some_and(|x| x == "CONNECTED")).then_some(g)
    })
    .await;
    let moved = got.iter().find(|g| g.json()["data"]["status"] == "RECONNECTING").unwrap().json();
    assert!(moved["data"]["reason"].as_str().unwrap().contains("moved to worker"), "{moved}");
    verify_all(&got, &secret);
    cl.shutdown().await;
}

/// A webhook configured through one replica gets the events written by the
/// other (the replica holding the worker's stream) at once: the change is
/// broadcast, not left to the other replica's cache TTL (set to a minute
/// here so that only the broadcast can make this pass).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_configured_on_one_replica_gets_the_others_events_at_once() {
    for storage in Storage::ALL {
        let cl = start(cluster(storage).worker(echo_worker()).replicas(2).edge_on(1).configure(|c| {
            fast_webhooks(c);
            c.webhooks.cache_ttl = Duration::from_secs(60);
        }))
        .await;
        let rx = Receiver::start().await;
        let api = Api::new(&cl);
        let token = api.register("two-replicas@example.com").await;
        let (sid, _key) = api.connected_session(&cl, &token, "hooked").await;
        let driver = cl.driver_of(&sid).unwrap().clone();
        // replica 0 (the worker's) writes an inbound message while there is no
        // webhook: it caches "none" for this session
        assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", "before"));
        tokio::time::sleep(Duration::from_millis(200)).await;
        // configured through replica 1 (the edge's)
        put_webhook(&api, &token, &sid, json!({ "url": rx.url(), "events": ["message.received"] }))
            .await
            .expect(201);
        assert!(driver.inject_inbound(&sid, "628111@s.whatsapp.net", "after"));
        let got = rx.wait_count("the inbound message after the change", 1, Duration::from_secs(10)).await;
        let received = of_type(&got, "message.received");
        assert_eq!(received.len(), 1, "{storage:?}: only the message after the change");
        assert_eq!(received[0].json()["data"]["text"], json!("after"), "{storage:?}");
        cl.shutdown().await;
    }
}

/// `POST …/webhook/test` is limited per session (each is an outbound
/// request to a URL the caller chose): 5 a minute, then 429 with
/// Retry-After; another session's tests are its own; the window slides.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_tests_are_limited_per_session() {
    use wagate_control_plane::limits::{Clock, Rate};
    for storage in Storage::ALL {
        let clock = Clock::manual(1_795_773_600_000);
        let c = clock.clone();
        let cl = start(cluster(storage).workers(1, 10).configure(move |cfg| {
            fast_webhooks(cfg);
            cfg.limits.clock = c.clone();
            cfg.limits.webhook_test = Some(Rate::new(5, Duration::from_secs(60)));
        }))
        .await;
        let api = Api::new(&cl);
        let rx = Receiver::start().await;
        let ann = api.register("ann@example.com").await;
        let bob = api.register("bob@example.com").await;
        let (ann_sid, _) = api.create_session(&ann, "shop").await;
        let (bob_sid, _) = api.create_session(&bob, "shop").await;
        for (token, sid) in [(&ann, &ann_sid), (&bob, &bob_sid)] {
            put_webhook(&api, token, sid, json!({ "url": rx.url() })).await.expect(201);
        }
        let test = |token: &str, sid: &str| {
            let (api, token, sid) = (api.clone(), token.to_owned(), sid.to_owned());
            async move { api.post(&format!("/api/v1/sessions/{sid}/webhook/test"), Some(&token), json!({})).await }
        };
        for i in 0..5 {
            clock.advance(Duration::from_secs(1));
            let r = test(&ann, &ann_sid).await;
            r.expect(200);
            assert_eq!(r.data()["status"], "DELIVERED", "test {i}: {}", r.body);
        }
        let r = test(&ann, &ann_sid).await;
        r.expect_code(429, "RATE_LIMITED");
        assert!(r.body["error"].as_str().unwrap().contains("webhook tests for this session"), "{}", r.body);
        assert_eq!(r.headers["retry-after"], "56", "until the first test is a minute old");
        // another tenant probing the session: 404, and nothing counted or sent
        test(&bob, &ann_sid).await.expect_code(404, "SESSION_NOT_FOUND");
        // another session has its own limit
        test(&bob, &bob_sid).await.expect(200);
        assert_eq!(of_type(&rx.got(), "webhook.test").len(), 6, "refused tests send nothing");
        // the first test leaves the window: one more
        clock.advance(Duration::from_secs(56));
        test(&ann, &ann_sid).await.expect(200);
        test(&ann, &ann_sid).await.expect_code(429, "RATE_LIMITED");
        cl.shutdown().await;
    }
}
