//! `GET /admin/emails`: the email delivery log, newest first (ADMINISTRATOR).
//! Bodies are never shown (a reset mail carries a token).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::v1::{self, ListEmailsRequest};

use super::{Answer, AppState, CallContext, Reply};
use crate::model::{PaginationDto, Ts};
use crate::names;
use crate::openapi::Envelope;
use crate::params::{Names, Query, one_of, positive};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(emails))
}

names!(EmailStatus { Pending = "PENDING", Retrying = "RETRYING", Sent = "SENT", Failed = "FAILED" });

/// Filters of the delivery log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct EmailParams {
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub page: Option<u32>,
    /// Page size (values above 100 are capped at 100).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub limit: Option<u32>,
    #[serde(default, deserialize_with = "one_of")]
    #[param(schema_with = EmailStatus::schema)]
    pub status: Option<EmailStatus>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailDto {
    pub id: String,
    /// password_reset, verify_email, session_down, session_reconnecting, quota_80, quota_100, webhook_disabled.
    pub kind: String,
    pub to: String,
    pub subject: String,
    /// PENDING, RETRYING, SENT or FAILED.
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
    pub user_id: Option<String>,
    pub created_at: Option<Ts>,
    pub sent_at: Option<Ts>,
    /// When the next attempt is due (PENDING / RETRYING).
    pub next_attempt_at: Option<Ts>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EmailListDto {
    pub emails: Vec<EmailDto>,
    pub pagination: PaginationDto,
}

impl From<&v1::ListEmailsResponse> for EmailListDto {
    fn from(r: &v1::ListEmailsResponse) -> Self {
        EmailListDto {
            emails: r
                .emails
                .iter()
                .map(|e| EmailDto {
                    id: e.id.clone(),
                    kind: e.kind.clone(),
                    to: e.to.clone(),
                    subject: e.subject.clone(),
                    status: e.status.clone(),
                    attempts: e.attempts,
                    last_error: e.last_error.clone(),
                    user_id: e.user_id.clone(),
                    created_at: Ts::from_proto(e.created_at.as_ref()),
                    sent_at: Ts::from_proto(e.sent_at.as_ref()),
                    next_attempt_at: Ts::from_proto(e.next_attempt_at.as_ref()),
                })
                .collect(),
            pagination: PaginationDto::from_proto(r.pagination.as_ref()),
        }
    }
}

#[utoipa::path(get, path = "/admin/emails", tag = "admin", summary = "The email delivery log, newest first",
    security(("bearer" = [])), params(EmailParams),
    responses((status = 200, body = Envelope<EmailListDto>)))]
pub(crate) async fn emails(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(q): Query<EmailParams>,
) -> Answer {
    let request = ListEmailsRequest {
        page: q.page.unwrap_or(0),
        limit: q.limit.unwrap_or(0),
        status: q.status.map_or("", |s| s.name()).to_owned(),
    };
    call.require_authorization()?;
    let r = call
        .unary("AdminService.ListEmails", state.control_plane.admin().list_emails(call.request(request)))
        .await?;
    Ok(Reply::ok(&EmailListDto::from(&r)))
}
