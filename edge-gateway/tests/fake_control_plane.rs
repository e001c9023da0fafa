//! The real server against a fake control plane (a tonic server in this
//! test): REST ↔ gRPC mapping, metadata forwarding, error passthrough,
//! readiness and deadlines.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::json;
use tonic::{Request, Response, Status};
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1::auth_service_server::{AuthService, AuthServiceServer};
use wagate_proto::v1::message_service_server::{MessageService, MessageServiceServer};
use wagate_proto::v1::session_service_server::{SessionService, SessionServiceServer};
use wagate_proto::v1::*;

type Seen = Arc<Mutex<Vec<tonic::metadata::MetadataMap>>>;

#[derive(Clone, Default)]
struct Fake {
    seen: Seen,
}

fn ts(secs: i64) -> Option<prost_types::Timestamp> {
    Some(prost_types::Timestamp { seconds: secs, nanos: 0 })
}

fn session(id: &str) -> Session {
    Session {
        id: id.to_owned(),
        name: "Personal".into(),
        status: SessionStatus::QrRequired as i32,
        phone_number: None,
        worker_id: Some("worker-1".into()),
        qr_code: Some("qr-data".into()),
        last_seen_at: None,
        created_at: ts(1_705_314_600),
        updated_at: ts(1_705_314_600),
        api_key_prefix: Some("wg_abc".into()),
        status_reason: None,
    }
}

fn user(email: &str) -> User {
    User {
        id: "u1".into(),
        name: "Ann".into(),
        email: email.to_owned(),
        role: UserRole::User as i32,
        tier: UserTier::Basic as i32,
        is_active: true,
        last_login_at: None,
        created_at: ts(1_705_314_600),
        updated_at: ts(1_705_314_600),
        message_quota: None,
        email_verified: false,
        notifications: None,
    }
}

impl Fake {
    fn record<T>(&self, r: &Request<T>) {
        self.seen.lock().unwrap().push(r.metadata().clone());
    }
}

#[tonic::async_trait]
impl AuthService for Fake {
    async fn register(&self, r: Request<RegisterRequest>) -> Result<Response<AuthResponse>, Status> {
        self.record(&r);
        let r = r.into_inner();
        if r.email == "taken@x.io" {
            return Err(ApiError::new(ErrorCode::AlreadyExists, "email already registered").to_status());
        }
        if r.email == "boom@x.io" {
            return Err(ApiError::new(ErrorCode::Internal, "database password is hunter2").to_status());
        }
        assert_eq!(r.name, "Ann");
        Ok(Response::new(AuthResponse {
            user: Some(user(&r.email)),
            token: "jwt".into(),
            expires_at: ts(1_705_400_000),
            ..Default::default()
        }))
    }

    async fn login(&self, r: Request<LoginRequest>) -> Result<Response<AuthResponse>, Status> {
        self.record(&r);
        if r.get_ref().password != "right" {
            return Err(ApiError::new(ErrorCode::InvalidCredentials, "invalid email or password").to_status());
        }
        Ok(Response::new(AuthResponse { user: None, token: "jwt".into(), ..Default::default() }))
    }

    async fn refresh(&self, _: Request<RefreshRequest>) -> Result<Response<AuthResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn logout(&self, _: Request<LogoutRequest>) -> Result<Response<LogoutResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn logout_all(&self, _: Request<LogoutAllRequest>) -> Result<Response<LogoutResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn request_password_reset(
        &self,
        _: Request<wagate_proto::v1::PasswordResetRequest>,
    ) -> Result<Response<wagate_proto::v1::AcceptedResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn confirm_password_reset(
        &self,
        _: Request<wagate_proto::v1::PasswordResetConfirmRequest>,
    ) -> Result<Response<wagate_proto::v1::PasswordResetConfirmResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn verify_email(
        &self,
        _: Request<wagate_proto::v1::VerifyEmailRequest>,
    ) -> Result<Response<wagate_proto::v1::VerifyEmailResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn resend_verification(
        &self,
        _: Request<wagate_proto::v1::ResendVerificationRequest>,
    ) -> Result<Response<wagate_proto::v1::AcceptedResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }
}

#[tonic::async_trait]
impl SessionService for Fake {
    async fn create_session(
        &self,
        r: Request<CreateSessionRequest>,
    ) -> Result<Response<CreateSessionResponse>, Status> {
        self.record(&r);
        let r = r.into_inner();
        let id = if r.session_id.is_empty() { "generated".to_owned() } else { r.session_id };
        Ok(Response::new(CreateSessionResponse {
            session: Some(session(&id)),
            api_key: "wg_abc.secret".into(),
        }))
    }

    async fn list_sessions(
        &self,
        r: Request<ListSessionsRequest>,
    ) -> Result<Response<ListSessionsResponse>, Status> {
        self.record(&r);
        let r = r.into_inner();
        let limit = if r.limit == 0 { 20 } else { r.limit };
        Ok(Response::new(ListSessionsResponse {
            sessions: vec![session("a"), session("b")],
            total: 45,
            page: r.page.max(1),
            limit,
        }))
    }

    async fn get_session(&self, r: Request<GetSessionRequest>) -> Result<Response<Session>, Status> {
        self.record(&r);
        match r.get_ref().session_id.as_str() {
            "slow" => {
                tokio::time::sleep(Duration::from_secs(10)).await;
                Ok(Response::new(session("slow")))
            }
            "other" => Err(ApiError::new(ErrorCode::SessionNotFound, "session not found").to_status()),
            id => Ok(Response::new(session(id))),
        }
    }

    async fn get_qr(&self, r: Request<GetSessionRequest>) -> Result<Response<QrResponse>, Status> {
        self.record(&r);
        Ok(Response::new(QrResponse {
            session_id: r.into_inner().session_id,
            status: SessionStatus::QrRequired as i32,
            qr_code: Some("qr-data".into()),
        }))
    }

    async fn start_session(&self, r: Request<GetSessionRequest>) -> Result<Response<Session>, Status> {
        self.record(&r);
        Ok(Response::new(session(&r.into_inner().session_id)))
    }

    async fn delete_session(
        &self,
        r: Request<wagate_proto::v1::DeleteSessionRequest>,
    ) -> Result<Response<DeleteSessionResponse>, Status> {
        self.record(&r);
        Ok(Response::new(DeleteSessionResponse { session_id: r.into_inner().session_id, deleted: true }))
    }

    async fn stop_session(&self, r: Request<GetSessionRequest>) -> Result<Response<Session>, Status> {
        self.record(&r);
        Ok(Response::new(session(&r.into_inner().session_id)))
    }

    async fn logout_session(&self, r: Request<GetSessionRequest>) -> Result<Response<Session>, Status> {
        self.record(&r);
        Ok(Response::new(session(&r.into_inner().session_id)))
    }

    type StreamEventsStream =
        tokio_stream::wrappers::ReceiverStream<Result<wagate_proto::v1::LiveEvent, Status>>;

    async fn stream_events(
        &self,
        _: Request<wagate_proto::v1::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }
}

#[tonic::async_trait]
impl MessageService for Fake {
    async fn send(&self, r: Request<SendRequest>) -> Result<Response<SendResponse>, Status> {
        self.record(&r);
        let r = r.into_inner();
        if r.to == "ratelimited" {
            return Err(ApiError::new(ErrorCode::RateLimited, "too many messages")
                .with_retry_after(7)
                .to_status());
        }
        if r.to == "badnumber" {
            return Err(ApiError::invalid("to", "to is not a phone number").to_status());
        }
        let content = r.content.expect("content");
        Ok(Response::new(SendResponse {
            message_id: format!("msg-{}-{}", r.session_id, content.r#type),
            status: MessageStatus::Sent as i32,
            to: format!("{}@s.whatsapp.net", r.to),
            error: None,
            created_at: ts(1_705_314_600),
        }))
    }

    async fn check_numbers(
        &self,
        _: Request<wagate_proto::v1::CheckNumbersRequest>,
    ) -> Result<Response<wagate_proto::v1::CheckNumbersResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn mark_read(
        &self,
        _: Request<wagate_proto::v1::MarkReadRequest>,
    ) -> Result<Response<wagate_proto::v1::MarkReadResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn send_presence(
        &self,
        _: Request<wagate_proto::v1::SendPresenceRequest>,
    ) -> Result<Response<wagate_proto::v1::SendPresenceResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn react(
        &self,
        _: Request<wagate_proto::v1::ReactRequest>,
    ) -> Result<Response<wagate_proto::v1::ReactResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn edit_message(
        &self,
        _: Request<wagate_proto::v1::EditMessageRequest>,
    ) -> Result<Response<wagate_proto::v1::EditMessageResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn delete_message(
        &self,
        _: Request<wagate_proto::v1::DeleteMessageRequest>,
    ) -> Result<Response<wagate_proto::v1::DeleteMessageResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn list_groups(
        &self,
        _: Request<wagate_proto::v1::ListGroupsRequest>,
    ) -> Result<Response<wagate_proto::v1::GroupList>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn get_group(
        &self,
        _: Request<wagate_proto::v1::GroupRequest>,
    ) -> Result<Response<wagate_proto::v1::GroupInfo>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn create_group(
        &self,
        _: Request<wagate_proto::v1::CreateGroupRequest>,
    ) -> Result<Response<wagate_proto::v1::GroupInfo>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn update_group_participants(
        &self,
        _: Request<wagate_proto::v1::UpdateGroupParticipantsRequest>,
    ) -> Result<Response<wagate_proto::v1::GroupInfo>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }

    async fn leave_group(
        &self,
        _: Request<wagate_proto::v1::GroupRequest>,
    ) -> Result<Response<wagate_proto::v1::LeaveGroupResponse>, Status> {
        Err(Status::unimplemented("not used by these tests"))
    }
}

async fn fake_control_plane() -> (String, Seen) {
    let fake = Fake::default();
    let seen = fake.seen.clone();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(health)
            .add_service(AuthServiceServer::new(fake.clone()))
            .add_service(SessionServiceServer::new(fake.clone()))
            .add_service(MessageServiceServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener))
            .await
            .unwrap();
    });
    (format!("http://{addr}"), seen)
}

#[tokio::test]
async fn auth_routes_map_replies_and_errors() {
    let (cp, _) = fake_control_plane().await;
    let (edge, base) = start(config(&cp)).await;
    let c = client();
    let (status, _, body) = json(
        c.post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"email": "ann@x.io", "password": "pw", "name": "Ann"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(
        body,
        json!({"success": true, "data": {
            "user": {"id": "u1", "name": "Ann", "email": "ann@x.io", "role": "USER", "tier": "BASIC",
                     "isActive": true, "lastLoginAt": null, "createdAt": "2024-01-15T10:30:00.000Z",
                     "updatedAt": "2024-01-15T10:30:00.000Z", "messageQuota": null, "emailVerified": false,
                     "notifications": {"sessionStatus": true, "quota": true, "webhookDisabled": true}},
            "token": "jwt", "expiresAt": "2024-01-16T10:13:20.000Z"}})
    );

    let (status, _, body) = json(
        c.post(format!("{base}/api/auth/register"))
            .json(&json!({"email": "taken@x.io", "password": "pw", "name": "Ann"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 409, "ALREADY_EXISTS", None);
    assert_eq!(body["error"], "email already registered");

    let (status, _, body) = json(
        c.post(format!("{base}/api/v1/auth/register"))
            .json(&json!({"email": "boom@x.io", "password": "pw"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 500, "INTERNAL_ERROR", None);
    assert_eq!(body["error"], "internal server error");

    let (status, h, body) = json(
        c.post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "ann@x.io", "password": "wrong"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 401, "INVALID_CREDENTIALS", None);
    assert_eq!(h["www-authenticate"], "Bearer");

    // A reply without its user is a control plane bug: 500, not a panic.
    let (status, _, body) = json(
        c.post(format!("{base}/api/v1/auth/login"))
            .json(&json!({"email": "ann@x.io", "password": "right"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 500, "INTERNAL_ERROR", None);
    edge.shutdown().await;
}

#[tokio::test]
async fn session_routes_and_metadata() {
    let (cp, seen) = fake_control_plane().await;
    let (edge, base) = start(config(&cp)).await;
    let c = client();

    let (status, _, body) = json(
        c.post(format!("{base}/api/v1/sessions"))
            .bearer_auth("user-jwt")
            .header("x-request-id", "rid-7")
            .json(&json!({"name": "Personal", "sessionId": "user123-personal"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let d = &body["data"];
    assert_eq!(d["sessionId"], "user123-personal");
    assert_eq!(d["id"], "user123-personal");
    assert_eq!(d["status"], "QR_REQUIRED");
    assert_eq!(d["workerId"], "worker-1");
    assert_eq!(d["apiKey"], "wg_abc.secret");
    assert_eq!(d["apiKeyPrefix"], "wg_abc");
    assert_eq!(d["qrCode"], "qr-data");
    assert!(d["phoneNumber"].is_null() && d["lastSeenAt"].is_null());
    {
        let md = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(md.get("authorization").unwrap(), "Bearer user-jwt");
        assert_eq!(md.get("x-request-id").unwrap(), "rid-7");
        assert_eq!(md.get("x-forwarded-for").unwrap(), "127.0.0.1");
        assert!(md.get("grpc-timeout").is_some());
    }

    let (status, _, body) =
        json(c.get(format!("{base}/api/v1/sessions?page=2&limit=20")).bearer_auth("t").send().await.unwrap())
            .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["pagination"], json!({"total": 45, "page": 2, "limit": 20, "totalPages": 3}));
    let s0 = &body["data"]["sessions"][0];
    for key in [
        "id",
        "sessionId",
        "name",
        "status",
        "phoneNumber",
        "workerId",
        "qrCode",
        "lastSeenAt",
        "createdAt",
        "updatedAt",
        "apiKeyPrefix",
    ] {
        assert!(s0.get(key).is_some(), "{key} in {s0}");
    }

    let (status, _, body) =
        json(c.get(format!("{base}/api/sessions/abc")).bearer_auth("t").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"]["sessionId"], "abc");

    let (status, _, body) =
        json(c.get(format!("{base}/api/v1/sessions/other")).bearer_auth("t").send().await.unwrap()).await;
    assert_error(status, &body, 404, "SESSION_NOT_FOUND", None);

    let (status, _, body) =
        json(c.get(format!("{base}/api/v1/sessions/abc/qr")).bearer_auth("t").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({"sessionId": "abc", "status": "QR_REQUIRED", "qrCode": "qr-data"}));

    let (status, _, body) =
        json(c.delete(format!("{base}/api/v1/sessions/abc")).bearer_auth("t").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["data"], json!({"sessionId": "abc", "deleted": true}));
    edge.shutdown().await;
}

#[tokio::test]
async fn send_forwards_key_and_idempotency() {
    let (cp, seen) = fake_control_plane().await;
    let (edge, base) = start(config(&cp)).await;
    let c = client();

    let (status, _, body) = json(
        c.post(format!("{base}/api/v1/sessions/s1/send"))
            .header("x-api-key", "wg_abc.secret")
            .header("idempotency-key", "idem-1")
            .json(&json!({"to": "62811", "type": "TEXT", "message": "hello"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["data"],
        json!({"messageId": format!("msg-s1-{}", MessageType::Text as i32), "status": "SENT",
               "to": "62811@s.whatsapp.net", "createdAt": "2024-01-15T10:30:00.000Z"})
    );
    {
        let md = seen.lock().unwrap().last().cloned().unwrap();
        assert_eq!(md.get("x-api-key").unwrap(), "wg_abc.secret");
        assert_eq!(md.get("idempotency-key").unwrap(), "idem-1");
        assert!(md.get("authorization").is_none());
        assert_eq!(md.get("x-request-id").unwrap().len(), 36);
    }

    let (status, _, body) = json(
        c.post(format!("{base}/api/sessions/s1/send"))
            .bearer_auth("wg_abc.secret")
            .json(&json!({"to": "62811", "type": "image", "mediaUrl": "https://x/y.png"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["messageId"], format!("msg-s1-{}", MessageType::Image as i32));
    assert_eq!(seen.lock().unwrap().last().unwrap().get("authorization").unwrap(), "Bearer wg_abc.secret");

    let (status, h, body) = json(
        c.post(format!("{base}/api/v1/sessions/s1/send"))
            .header("x-api-key", "k")
            .json(&json!({"to": "ratelimited", "message": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 429, "RATE_LIMITED", None);
    assert_eq!(h["retry-after"], "7");

    let (status, _, body) = json(
        c.post(format!("{base}/api/v1/sessions/s1/send"))
            .header("x-api-key", "k")
            .json(&json!({"to": "badnumber", "message": "x"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_error(status, &body, 400, "VALIDATION_ERROR", Some("to"));
    edge.shutdown().await;
}

#[tokio::test]
async fn ready_when_control_plane_serves() {
    let (cp, _) = fake_control_plane().await;
    let (edge, base) = start(config(&cp)).await;
    let (status, _, body) = json(client().get(format!("{base}/health/ready")).send().await.unwrap()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["data"]["status"], "ready");
    assert_eq!(body["data"]["controlPlane"], "SERVING");
    edge.shutdown().await;
}

#[tokio::test]
async fn slow_control_plane_hits_the_deadline() {
    let (cp, _) = fake_control_plane().await;
    let mut cfg = config(&cp);
    cfg.request_timeout = Duration::from_millis(300);
    let (edge, base) = start(cfg).await;
    let started = std::time::Instant::now();
    let (status, _, body) =
        json(client().get(format!("{base}/api/v1/sessions/slow")).bearer_auth("t").send().await.unwrap())
            .await;
    assert_error(status, &body, 504, "DEADLINE_EXCEEDED", None);
    assert!(started.elapsed() < Duration::from_secs(3));
    edge.shutdown().await;
}

#[tokio::test]
async fn graceful_shutdown_lets_in_flight_requests_finish() {
    let (cp, _) = fake_control_plane().await;
    let mut cfg = config(&cp);
    cfg.request_timeout = Duration::from_secs(2);
    let (edge, base) = start(cfg).await;
    // Warm the gRPC channel so the slow call is in flight at shutdown.
    let c = client();
    assert_eq!(
        c.get(format!("{base}/api/v1/sessions/a")).bearer_auth("t").send().await.unwrap().status(),
        200
    );
    let in_flight = tokio::spawn({
        let c = c.clone();
        let url = format!("{base}/api/v1/sessions/slow");
        async move { c.get(url).bearer_auth("t").send().await.map(|r| r.status().as_u16()) }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = std::time::Instant::now();
    edge.shutdown().await;
    // The request got its answer (504 after its 2 s deadline), not a reset.
    assert_eq!(in_flight.await.unwrap().unwrap(), 504);
    assert!(started.elapsed() < Duration::from_secs(5));
}

/// Rough throughput of the send path against the in-process fake control
/// plane (client, edge and fake share the machine, so this is a lower bound):
/// `cargo test -p wagate-edge-gateway --release --test fake_control_plane -- --ignored --nocapture`
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn bench_send_path() {
    let (cp, _) = fake_control_plane().await;
    let (edge, base) = start(config(&cp)).await;
    let url = format!("{base}/api/v1/sessions/s1/send");
    let c = reqwest::Client::builder().pool_max_idle_per_host(256).build().unwrap();
    let body = r#"{"to":"62811","type":"text","message":"hello"}"#;
    let requests = 20_000usize;
    let concurrency = 64usize;
    let started = std::time::Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            let (c, url) = (c.clone(), url.clone());
            tokio::spawn(async move {
                for _ in 0..requests / concurrency {
                    let r = c
                        .post(&url)
                        .header("x-api-key", "k")
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(r.status(), 200);
                    r.bytes().await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "send path: {:.0} req/s ({requests} requests, {concurrency} connections)",
        requests as f64 / secs
    );
    edge.shutdown().await;
}
