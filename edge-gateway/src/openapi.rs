//! The OpenAPI 3 document of the REST API. Its operations come from the
//! routes themselves ([`crate::app::documented`]: each handler's
//! `#[utoipa::path]`), so a route without a document entry cannot exist;
//! this module adds what every operation shares: the envelopes, the
//! security schemes, and the error answers the middleware can give.

use serde::Serialize;
use utoipa::ToSchema;
use utoipa::openapi::path::Operation;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ContentBuilder, OpenApi, Ref, ResponseBuilder};

/// `{"success": true, "data": …}`.
#[derive(Serialize, ToSchema)]
pub struct Envelope<T: ToSchema> {
    /// Always true.
    pub success: bool,
    pub data: T,
}

/// `{"success": false, "error": "…", "code": "…", "field": "…"}`.
#[derive(Serialize, ToSchema)]
pub struct ErrorEnvelope {
    /// Always false.
    pub success: bool,
    /// Human-readable message.
    pub error: String,
    /// Machine-readable code, e.g. VALIDATION_ERROR, INVALID_TOKEN, FORBIDDEN, NOT_FOUND.
    pub code: String,
    /// The request field a VALIDATION_ERROR is about.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
}

/// The error answers an operation can give besides its own, and why.
fn common_errors(op: &Operation, path: &str) -> Vec<(&'static str, &'static str)> {
    let secured = op.security.as_ref().is_some_and(|s| !s.is_empty());
    let has_body = op.request_body.is_some();
    let has_params = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let api = path.starts_with("/api/v1/");
    let mut out = Vec::new();
    if has_body || has_params || api {
        out.push(("400", "invalid input (the envelope names the field)"));
    }
    if secured {
        out.push(("401", "missing, invalid or expired credential"));
        out.push(("403", "not allowed (e.g. not an ADMINISTRATOR, tier limit, a wrong currentPassword)"));
    }
    if path.contains('{') || api {
        out.push(("404", "no such resource (or not the caller's)"));
    }
    out.push(("405", "method not allowed (see the Allow header)"));
    out.push(("413", "request body larger than the limit"));
    if has_body {
        out.push(("415", "Content-Type is not application/json"));
    }
    if api {
        out.push((
            "429",
            "rate limited: RATE_LIMITED (see Retry-After and RateLimit-Limit/-Remaining/-Reset)",
        ));
    }
    out.push(("500", "internal error"));
    if api || path == "/health/ready" {
        out.push(("503", "the control plane or a worker is unavailable (see Retry-After)"));
    }
    out.push(("504", "the request deadline passed"));
    out
}

/// The document, complete.
pub fn document() -> OpenApi {
    let mut doc = crate::app::documented().into_openapi();
    doc.info.title = "wagate".to_owned();
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc.info.description = Some(
        "WhatsApp gateway PaaS: REST API. Every path under /api/v1 is also served under /api. \
         Answers are wrapped as {\"success\":true,\"data\":…} or {\"success\":false,\"error\":…,\"code\":…}."
            .to_owned(),
    );
    doc.info.license = None;
    // utoipa's default `Info` names its own author as the contact: name ours.
    doc.info.contact = Some(
        utoipa::openapi::info::ContactBuilder::new()
            .name(Some("wagate"))
            .url(Some(env!("CARGO_PKG_REPOSITORY")))
            .build(),
    );
    let error_ref = Ref::from_schema_name("ErrorEnvelope");
    for (path, item) in doc.paths.paths.iter_mut() {
        let ops = [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch];
        for op in ops.into_iter().flatten() {
            for (status, why) in common_errors(op, path) {
                if !op.responses.responses.contains_key(status) {
                    let response = ResponseBuilder::new()
                        .description(why)
                        .content(
                            "application/json",
                            ContentBuilder::new().schema(Some(error_ref.clone())).build(),
                        )
                        .build();
                    op.responses.responses.insert(status.to_owned(), response.into());
                }
            }
        }
    }
    let components = doc.components.get_or_insert_with(Default::default);
    // PATCH /me refuses any other field (mass assignment), and a new
    // password without the current one: say so.
    if let Some(utoipa::openapi::RefOr::T(utoipa::openapi::schema::Schema::Object(o))) =
        components.schemas.get_mut("UpdateMeBody")
    {
        o.additional_properties =
            Some(Box::new(utoipa::openapi::schema::AdditionalProperties::FreeForm(false)));
        let fields = o.clone();
        let rule = utoipa::openapi::schema::AllOfBuilder::new()
            .item(fields)
            .item(crate::schema::password_needs_current())
            .build();
        components
            .schemas
            .insert("UpdateMeBody".to_owned(), utoipa::openapi::schema::Schema::AllOf(rule).into());
    }
    components.schemas.insert("ErrorEnvelope".to_owned(), <ErrorEnvelope as utoipa::PartialSchema>::schema());
    components.add_security_scheme(
        "bearer",
        SecurityScheme::Http(
            HttpBuilder::new().scheme(HttpAuthScheme::Bearer).bearer_format("JWT or wag_ key").build(),
        ),
    );
    components
        .add_security_scheme("apiKey", SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));
    doc
}

/// The document as JSON text.
pub fn json() -> String {
    document().to_json().unwrap_or_else(|e| {
        tracing::error!(error = %e, "openapi serialization failed");
        "{}".to_owned()
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// Every route of the API as `(method, path template)`, as the document
    /// spells it (`/api/...` is an alias of each `/api/v1/...`).
    const ROUTES: &[(&str, &str)] = &[
        ("GET", "/health"),
        ("GET", "/health/ready"),
        ("POST", "/api/v1/auth/register"),
        ("POST", "/api/v1/auth/login"),
        ("POST", "/api/v1/auth/refresh"),
        ("POST", "/api/v1/auth/logout"),
        ("POST", "/api/v1/auth/logout-all"),
        ("POST", "/api/v1/auth/password-reset"),
        ("POST", "/api/v1/auth/password-reset/confirm"),
        ("GET", "/api/v1/auth/verify-email"),
        ("POST", "/api/v1/auth/verify-email"),
        ("POST", "/api/v1/auth/verify-email/resend"),
        ("GET", "/api/v1/me"),
        ("GET", "/api/v1/me/usage"),
        ("GET", "/api/v1/media/{mediaId}"),
        ("GET", "/api/v1/admin/usage"),
        ("PATCH", "/api/v1/me"),
        ("DELETE", "/api/v1/me"),
        ("POST", "/api/v1/sessions"),
        ("GET", "/api/v1/sessions"),
        ("GET", "/api/v1/sessions/{sessionId}"),
        ("DELETE", "/api/v1/sessions/{sessionId}"),
        ("GET", "/api/v1/sessions/{sessionId}/qr"),
        ("GET", "/api/v1/sessions/{sessionId}/events"),
        ("GET", "/api/v1/sessions/{sessionId}/groups"),
        ("POST", "/api/v1/sessions/{sessionId}/groups"),
        ("GET", "/api/v1/sessions/{sessionId}/groups/{groupId}"),
        ("POST", "/api/v1/sessions/{sessionId}/groups/{groupId}/participants"),
        ("POST", "/api/v1/sessions/{sessionId}/groups/{groupId}/leave"),
        ("POST", "/api/v1/sessions/{sessionId}/start"),
        ("POST", "/api/v1/sessions/{sessionId}/send"),
        ("POST", "/api/v1/sessions/{sessionId}/contacts/check"),
        ("POST", "/api/v1/sessions/{sessionId}/read"),
        ("PUT", "/api/v1/sessions/{sessionId}/messages/{messageId}/reaction"),
        ("POST", "/api/v1/sessions/{sessionId}/stop"),
        ("POST", "/api/v1/sessions/{sessionId}/logout"),
        ("POST", "/api/v1/sessions/{sessionId}/presence"),
        ("GET", "/api/v1/sessions/{sessionId}/api-key"),
        ("DELETE", "/api/v1/sessions/{sessionId}/api-key"),
        ("POST", "/api/v1/sessions/{sessionId}/api-key/rotate"),
        ("GET", "/api/v1/sessions/{sessionId}/messages"),
        ("GET", "/api/v1/sessions/{sessionId}/messages/{messageId}"),
        ("PATCH", "/api/v1/sessions/{sessionId}/messages/{messageId}"),
        ("DELETE", "/api/v1/sessions/{sessionId}/messages/{messageId}"),
        ("PUT", "/api/v1/sessions/{sessionId}/webhook"),
        ("GET", "/api/v1/sessions/{sessionId}/webhook"),
        ("DELETE", "/api/v1/sessions/{sessionId}/webhook"),
        ("POST", "/api/v1/sessions/{sessionId}/webhook/test"),
        ("POST", "/api/v1/sessions/{sessionId}/webhook/rotate-secret"),
        ("GET", "/api/v1/sessions/{sessionId}/webhook/deliveries"),
        ("POST", "/api/v1/sessions/{sessionId}/webhook/deliveries/{deliveryId}/redeliver"),
        ("POST", "/api/v1/sessions/{sessionId}/webhook/replay"),
        ("GET", "/api/v1/admin/users"),
        ("GET", "/api/v1/admin/users/{userId}"),
        ("PATCH", "/api/v1/admin/users/{userId}"),
        ("DELETE", "/api/v1/admin/users/{userId}"),
        ("GET", "/api/v1/admin/workers"),
        ("POST", "/api/v1/admin/workers"),
        ("GET", "/api/v1/admin/workers/{workerId}"),
        ("PATCH", "/api/v1/admin/workers/{workerId}"),
        ("DELETE", "/api/v1/admin/workers/{workerId}"),
        ("GET", "/api/v1/admin/workers/{workerId}/metrics"),
        ("POST", "/api/v1/admin/workers/{workerId}/drain"),
        ("GET", "/api/v1/admin/fleet"),
        ("POST", "/api/v1/admin/rebalance"),
        ("GET", "/api/v1/admin/analytics"),
        ("GET", "/api/v1/admin/logs"),
        ("GET", "/api/v1/admin/emails"),
        ("GET", "/api-docs"),
        ("GET", "/api-docs/openapi.json"),
    ];

    #[test]
    fn contact_is_the_project() {
        let contact = super::document().info.contact.expect("contact");
        assert_eq!(contact.name.as_deref(), Some("wagate"));
        assert_eq!(contact.url.as_deref(), Some(env!("CARGO_PKG_REPOSITORY")));
        assert!(!env!("CARGO_PKG_REPOSITORY").is_empty());
        assert_eq!(contact.email, None);
        let json = super::json();
        assert!(!json.contains("@gmail") && !json.contains("Kukkonen"), "no library author in the document");
    }

    #[test]
    fn every_route_is_documented_and_every_documented_path_is_routed() {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut documented = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if ["get", "post", "patch", "delete", "put"].contains(&method.as_str()) {
                    documented.insert((method.to_uppercase(), path.clone()));
                    // Every operation lists its errors with the envelope.
                    let responses = op["responses"].as_object().unwrap();
                    for status in ["405", "413", "500", "504"] {
                        assert!(responses.contains_key(status), "{method} {path}: no {status}");
                    }
                }
            }
        }
        let expected: BTreeSet<(String, String)> =
            ROUTES.iter().map(|(m, p)| ((*m).to_owned(), (*p).to_owned())).collect();
        assert_eq!(documented, expected, "routes and OpenAPI document differ");
        // Schemas come from the gateway's own types.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for name in [
            "UserDto",
            "SendBody",
            "MessageDto",
            "WorkerDto",
            "AnalyticsDto",
            "ErrorEnvelope",
            "WebhookBody",
            "MessageReceivedEvent",
            "MessageReceivedData",
            "MessageStatusEvent",
            "SessionStatusEvent",
            "SessionQrEvent",
            "WebhookTestEvent",
        ] {
            assert!(schemas.contains_key(name), "schema {name} missing");
        }
    }

    /// The constraints schemathesis found missing (issue 8) are in the document.
    #[test]
    fn per_type_send_fields_password_rule_and_name_rule_are_documented() {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        let schemas = &doc["components"]["schemas"];
        // (a) The send body: one branch per type; text requires a non-null, non-blank message.
        let branches = schemas["SendBody"]["oneOf"].as_array().expect("SendBody is a oneOf");
        assert_eq!(branches.len(), 4);
        let text = &branches[0];
        assert_eq!(text["title"], "text");
        let required: Vec<&str> =
            text["required"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
        assert!(required.contains(&"message") && required.contains(&"to"), "{required:?}");
        assert_eq!(text["properties"]["message"]["type"], "string", "message may not be null");
        let not_blank =
            regex::Regex::new(text["properties"]["message"]["pattern"].as_str().unwrap()).unwrap();
        assert!(not_blank.is_match(" hi ") && !not_blank.is_match(" \t\n"));
        for (branch, field) in [(1, "mediaUrl"), (2, "latitude"), (2, "longitude")] {
            let req = branches[branch]["required"].as_array().unwrap();
            assert!(req.iter().any(|v| v == field) && req.iter().any(|v| v == "type"), "{field}");
        }
        // (b) PATCH /me: a password needs a non-empty currentPassword.
        let update_me = schemas["UpdateMeBody"]["allOf"].as_array().expect("UpdateMeBody is an allOf");
        assert_eq!(update_me[0]["additionalProperties"], false);
        let rule = update_me[1]["anyOf"].as_array().unwrap();
        assert_eq!(rule[0]["properties"]["password"]["type"], "null");
        assert_eq!(rule[1]["required"][0], "currentPassword");
        assert_eq!(rule[1]["properties"]["currentPassword"]["minLength"], 1);
        // (c) Names: no control characters (register's may be blank).
        for (schema, field) in
            [("RegisterBody", "name"), ("CreateSessionBody", "name"), ("UpdateUserBody", "name")]
        {
            let pattern = schemas[schema]["properties"][field]["pattern"].as_str().unwrap();
            let re = regex::Regex::new(pattern).unwrap();
            assert!(re.is_match("Ann Smith"), "{schema}");
            assert!(!re.is_match("Ann\u{1}"), "{schema}: control character allowed");
        }
        let me_name = update_me[0]["properties"]["name"]["pattern"].as_str().unwrap();
        assert!(!regex::Regex::new(me_name).unwrap().is_match("A\u{7}"));
        // The usage export answers JSON or CSV with 200: both are listed.
        let content = &doc["paths"]["/api/v1/admin/usage"]["get"]["responses"]["200"]["content"];
        assert!(content.get("application/json").is_some() && content.get("text/csv").is_some(), "{content}");
    }

    /// Every documented route answers on both prefixes with its method
    /// allowed (the control plane is unreachable: 401/400/503, never 404/405).
    #[tokio::test]
    async fn every_documented_route_is_served_on_both_prefixes() {
        use std::sync::Arc;

        use axum::body::Body;
        use tower::ServiceExt;

        use crate::config::EdgeConfig;
        use crate::cors::Cors;
        use crate::grpc::ControlPlane;
        use crate::state::AppState;

        let config = EdgeConfig { control_plane_url: "http://127.0.0.1:1".into(), ..EdgeConfig::default() };
        let state = Arc::new(AppState {
            control_plane: ControlPlane::new(&config.control_plane_url, 1).unwrap(),
            cors: Cors::new(&config.cors_origins),
            config,
        });
        let app = crate::app::service(state);
        for (method, path) in ROUTES {
            let concrete = path
                .replace("{sessionId}", "s1")
                .replace("{messageId}", "m1")
                .replace("{userId}", "u1")
                .replace("{workerId}", "w1")
                .replace("{deliveryId}", "d1")
                .replace("{groupId}", "120363000000000001@g.us")
                .replace("{mediaId}", "m1");
            let mut variants = vec![concrete.clone(), format!("{concrete}/")];
            if let Some(rest) = concrete.strip_prefix("/api/v1/") {
                variants.push(format!("/api/{rest}"));
            }
            for p in variants {
                let request = http::Request::builder().method(*method).uri(&p).body(Body::empty()).unwrap();
                let response = app.clone().oneshot(request).await.unwrap();
                let status = response.status().as_u16();
                assert!(status != 404 && status != 405, "{method} {p}: {status}");
            }
        }
    }
}
