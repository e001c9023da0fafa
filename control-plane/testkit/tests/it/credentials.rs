//! Credential lifecycle, as the attacks of the security review tried it:
//! old tokens after a password change, logout and logout-all, refresh-token
//! rotation and reuse, re-authentication for sensitive changes and the
//! password policy. SQLite + in-process and PostgreSQL + Redis. (Weak secrets
//! at start-up: `control-plane/tests/start_up.rs`, next to the binary.)

use std::time::Duration;

use crate::common::{Api, cluster, start};
use reqwest::Method;
use serde_json::json;
use tonic::Code;
use wagate_proto::v1;
use wagate_proto::v1::auth_service_client::AuthServiceClient;
use wagate_testkit::cluster::{Cluster, Storage};

const PASSWORD: &str = "correct-horse-9";

fn authed<T>(msg: T, token: &str) -> tonic::Request<T> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut().insert("authorization", format!("Bearer {token}").parse().expect("ascii"));
    r
}

async fn grpc(cl: &Cluster) -> AuthServiceClient<tonic::transport::Channel> {
    AuthServiceClient::new(wagate_proto::connect(cl.grpc_url()).await.expect("channel"))
}

async fn login(
    auth: &mut AuthServiceClient<tonic::transport::Channel>,
    email: &str,
    pw: &str,
) -> v1::AuthResponse {
    auth.login(v1::LoginRequest { email: email.into(), password: pw.into() })
        .await
        .expect("login")
        .into_inner()
}

async fn me_status(api: &Api, token: &str) -> u16 {
    api.get("/api/v1/me", Some(token)).await.status.as_u16()
}

async fn token_lifecycle(storage: Storage) {
    let cl = start(cluster(storage)).await;
    let api = Api::new(&cl);
    let mut auth = grpc(&cl).await;
    let t1 = api.register("ann@example.com").await;
    let s2 = login(&mut auth, "ann@example.com", PASSWORD).await;
    assert!(s2.refresh_token.starts_with("wrt_"), "a refresh token comes with the access token");
    let lifetime =
        s2.expires_at.as_ref().map(|t| t.seconds).unwrap_or_default() - chrono::Utc::now().timestamp();
    assert!((0..=900).contains(&lifetime), "access tokens live minutes, not days ({lifetime} s)");
    assert_eq!(me_status(&api, &t1).await, 200);

    // A password change kills every earlier token and refresh token.
    let r = api
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&t1),
            Some(json!({ "password": "new-password-1", "currentPassword": PASSWORD })),
        )
        .await;
    r.expect(200);
    assert_eq!(me_status(&api, &t1).await, 401, "token used for the change");
    assert_eq!(me_status(&api, &s2.token).await, 401, "another earlier token");
    let e = auth.refresh(v1::RefreshRequest { refresh_token: s2.refresh_token.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "earlier refresh token");

    // Logout revokes the presented token only.
    let s3 = login(&mut auth, "ann@example.com", "new-password-1").await;
    let s4 = login(&mut auth, "ann@example.com", "new-password-1").await;
    auth.logout(authed(v1::LogoutRequest { refresh_token: s3.refresh_token.clone() }, &s3.token))
        .await
        .expect("logout");
    assert_eq!(me_status(&api, &s3.token).await, 401, "logged-out token");
    assert_eq!(me_status(&api, &s4.token).await, 200, "another device stays signed in");
    let e = auth.refresh(v1::RefreshRequest { refresh_token: s3.refresh_token }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "the logged-out refresh token");

    // Refresh rotates; reusing a spent token revokes the whole family.
    let fresh = auth
        .refresh(v1::RefreshRequest { refresh_token: s4.refresh_token.clone() })
        .await
        .expect("refresh")
        .into_inner();
    assert_ne!(fresh.refresh_token, s4.refresh_token);
    assert_eq!(me_status(&api, &fresh.token).await, 200);
    let e = auth.refresh(v1::RefreshRequest { refresh_token: s4.refresh_token.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "reuse of a spent refresh token");
    let e =
        auth.refresh(v1::RefreshRequest { refresh_token: fresh.refresh_token.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "reuse revoked the rotated token of the same family");
    let e = auth.refresh(v1::RefreshRequest { refresh_token: "wrt_nonsense".into() }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = auth.refresh(v1::RefreshRequest { refresh_token: String::new() }).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);

    // Logout-all kills every token of the account at once.
    let s5 = login(&mut auth, "ann@example.com", "new-password-1").await;
    let s6 = login(&mut auth, "ann@example.com", "new-password-1").await;
    auth.logout_all(authed(v1::LogoutAllRequest {}, &s5.token)).await.expect("logout-all");
    assert_eq!(me_status(&api, &s5.token).await, 401);
    assert_eq!(me_status(&api, &s6.token).await, 401);
    assert_eq!(me_status(&api, &fresh.token).await, 401);
    let e = auth.refresh(v1::RefreshRequest { refresh_token: s6.refresh_token }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    let e = auth.logout_all(authed(v1::LogoutAllRequest {}, &s5.token)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "a dead token cannot sign out others");
    assert_eq!(
        me_status(&api, &login(&mut auth, "ann@example.com", "new-password-1").await.token).await,
        200
    );
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifecycle_sqlite() {
    token_lifecycle(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_lifecycle_postgres_redis() {
    token_lifecycle(Storage::PostgresRedis).await;
}

async fn grpc_at(cl: &Cluster, replica: usize) -> AuthServiceClient<tonic::transport::Channel> {
    AuthServiceClient::new(wagate_proto::connect(cl.cp_at(replica).url()).await.expect("channel"))
}

/// A spent refresh token replayed (a thief, or the owner after a thief)
/// revokes its family, and with it every access token minted in that
/// sign-in, at once and on every replica (not after their 15 minutes);
/// other sign-ins of the account go on.
async fn reuse_revokes_the_familys_access_tokens(storage: Storage) {
    let mut cl = start(cluster(storage).replicas(2)).await;
    let api = Api::new(&cl);
    let other_edge = Api { base: cl.add_edge(1).await.expect("edge"), http: reqwest::Client::new() };
    let mut auth0 = grpc_at(&cl, 0).await;
    let mut auth1 = grpc_at(&cl, 1).await;
    api.register("ann@example.com").await;
    let first = login(&mut auth0, "ann@example.com", PASSWORD).await;
    let rotated = auth0
        .refresh(v1::RefreshRequest { refresh_token: first.refresh_token.clone() })
        .await
        .expect("refresh")
        .into_inner();
    let elsewhere = login(&mut auth1, "ann@example.com", PASSWORD).await;
    for token in [&first.token, &rotated.token, &elsewhere.token] {
        assert_eq!(me_status(&api, token).await, 200);
        assert_eq!(me_status(&other_edge, token).await, 200);
    }

    // the spent token replayed through the other replica
    let e =
        auth1.refresh(v1::RefreshRequest { refresh_token: first.refresh_token.clone() }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "reuse");
    for (edge, name) in [(&api, "replica 0"), (&other_edge, "replica 1")] {
        assert_eq!(me_status(edge, &first.token).await, 401, "{name}: the first access token of the family");
        assert_eq!(me_status(edge, &rotated.token).await, 401, "{name}: the access token of the rotation");
        assert_eq!(me_status(edge, &elsewhere.token).await, 200, "{name}: another sign-in goes on");
    }
    let e = auth0.refresh(v1::RefreshRequest { refresh_token: rotated.refresh_token }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated, "the family's live refresh token");
    let again = login(&mut auth0, "ann@example.com", PASSWORD).await;
    assert_eq!(me_status(&other_edge, &again.token).await, 200, "signing in again starts a new family");
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_revokes_the_familys_access_tokens_sqlite() {
    reuse_revokes_the_familys_access_tokens(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reuse_revokes_the_familys_access_tokens_postgres_redis() {
    reuse_revokes_the_familys_access_tokens(Storage::PostgresRedis).await;
}

/// Logout with someone else's refresh token signs out the caller only
/// (and says nothing about the token); logout with one's own ends that
/// sign-in: its refresh token and every access token minted in it.
async fn logout_touches_only_the_callers_tokens(storage: Storage) {
    let cl = start(cluster(storage)).await;
    let api = Api::new(&cl);
    let mut auth = grpc(&cl).await;
    api.register("ann@example.com").await;
    api.register("bob@example.com").await;
    let ann = login(&mut auth, "ann@example.com", PASSWORD).await;
    let bob = login(&mut auth, "bob@example.com", PASSWORD).await;

    let r = auth
        .logout(authed(v1::LogoutRequest { refresh_token: ann.refresh_token.clone() }, &bob.token))
        .await
        .expect("logout answers as usual")
        .into_inner();
    assert!(r.revoked);
    assert_eq!(me_status(&api, &bob.token).await, 401, "bob signed himself out");
    assert_eq!(me_status(&api, &ann.token).await, 200, "ann's access token");
    let fresh = auth
        .refresh(v1::RefreshRequest { refresh_token: ann.refresh_token.clone() })
        .await
        .expect("ann's refresh token still works")
        .into_inner();

    auth.logout(authed(v1::LogoutRequest { refresh_token: fresh.refresh_token.clone() }, &fresh.token))
        .await
        .expect("logout");
    assert_eq!(me_status(&api, &fresh.token).await, 401, "the presented token");
    assert_eq!(me_status(&api, &ann.token).await, 401, "an earlier access token of the same sign-in");
    let e = auth.refresh(v1::RefreshRequest { refresh_token: fresh.refresh_token }).await.unwrap_err();
    assert_eq!(e.code(), Code::Unauthenticated);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_touches_only_the_callers_tokens_sqlite() {
    logout_touches_only_the_callers_tokens(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_touches_only_the_callers_tokens_postgres_redis() {
    logout_touches_only_the_callers_tokens(Storage::PostgresRedis).await;
}

/// With no re-authentication window, sensitive changes need the password.
async fn reauthentication(storage: Storage) {
    let cl = start(cluster(storage).workers(1, 5).configure(|c| c.reauth_window = Duration::ZERO)).await;
    let api = Api::new(&cl);
    let ann = api.register("ann@example.com").await;
    let (session, _) = api.create_session(&ann, "main").await;

    let r = api
        .call(Method::PATCH, "/api/v1/me", Some(&ann), Some(json!({ "email": "thief@example.com" })))
        .await;
    r.expect_code(403, "FORBIDDEN");
    assert!(r.body["error"].as_str().unwrap_or_default().contains("currentPassword"), "{}", r.body);
    let r = api
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&ann),
            Some(json!({ "email": "ann2@example.com", "currentPassword": "wrong-password-9" })),
        )
        .await;
    r.expect_code(403, "FORBIDDEN");
    assert_eq!(r.body["field"], "currentPassword");
    api.call(
        Method::PATCH,
        "/api/v1/me",
        Some(&ann),
        Some(json!({ "email": "ann2@example.com", "currentPassword": PASSWORD })),
    )
    .await
    .expect(200);

    let rotate = format!("/api/v1/sessions/{session}/api-key/rotate");
    api.post(&rotate, Some(&ann), json!({})).await.expect(403);
    let channel = wagate_proto::connect(cl.grpc_url()).await.expect("channel");
    let mut keys = v1::api_key_service_client::ApiKeyServiceClient::new(channel.clone());
    let rotated = keys
        .rotate_api_key(authed(
            v1::RotateApiKeyRequest {
                session_id: session.clone(),
                current_password: Some(PASSWORD.into()),
                ..Default::default()
            },
            &ann,
        ))
        .await
        .expect("rotation with the password");
    assert!(rotated.into_inner().api_key.starts_with("wag_"));

    api.delete("/api/v1/me", Some(&ann)).await.expect(403);
    api.call(
        Method::DELETE,
        "/api/v1/me",
        Some(&ann),
        Some(json!({ "currentPassword": "wrong-password-9" })),
    )
    .await
    .expect(403);
    let mut users = v1::user_service_client::UserServiceClient::new(channel);
    let e = users
        .delete_me(authed(v1::DeleteMeRequest { current_password: Some("wrong-password-9".into()) }, &ann))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    users
        .delete_me(authed(v1::DeleteMeRequest { current_password: Some(PASSWORD.into()) }, &ann))
        .await
        .expect("deletion with the password");
    assert_eq!(me_status(&api, &ann).await, 401);
    cl.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_sqlite() {
    reauthentication(Storage::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reauthentication_postgres_redis() {
    reauthentication(Storage::PostgresRedis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn password_policy_names_the_rule() {
    let cl = start(cluster(Storage::Sqlite)).await;
    let api = Api::new(&cl);
    for (password, rule) in [
        ("password", "minimum length"),
        ("12345678", "minimum length"),
        ("        ", "minimum length"),
        ("password1234", "common password"),
        ("Password2026!", "common password"),
        ("bob@example.com", "context-specific"),
        ("aaaaaaaaaaaa", "repetitive"),
    ] {
        let r = api
            .post("/api/v1/auth/register", None, json!({ "email": "bob@example.com", "password": password }))
            .await;
        r.expect_code(400, "VALIDATION_ERROR");
        let msg = r.body["error"].as_str().unwrap_or_default();
        assert!(msg.contains(rule), "{password:?}: {msg}");
    }
    let ann = api.register("ann@example.com").await;
    let r = api
        .call(
            Method::PATCH,
            "/api/v1/me",
            Some(&ann),
            Some(json!({ "password": "qwertyuiop", "currentPassword": PASSWORD })),
        )
        .await;
    r.expect(400);
    assert!(r.body["error"].as_str().unwrap_or_default().contains("common password"), "{}", r.body);
    cl.shutdown().await;
}
