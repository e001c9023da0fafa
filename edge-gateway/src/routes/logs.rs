//! `GET /admin/logs`: the audit and system log, newest first (ADMINISTRATOR).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::v1::{self, ListLogsRequest};

use super::{Answer, AppState, CallContext, Reply};
use crate::model::{PaginationDto, Ts};
use crate::names;
use crate::openapi::Envelope;
use crate::params::{Names, Query, one_of, positive, text, time};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(logs))
}

names!(Level { Error = "ERROR", Warn = "WARN", Info = "INFO", Debug = "DEBUG" });

/// Filters of the log.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LogParams {
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub page: Option<u32>,
    /// Page size (values above 100 are capped at 100).
    #[serde(default, deserialize_with = "positive")]
    #[param(minimum = 1, maximum = 2147483647)]
    pub limit: Option<u32>,
    #[serde(default, deserialize_with = "one_of")]
    #[param(schema_with = Level::schema)]
    pub level: Option<Level>,
    /// auth, users, api_keys, admin, workers, ...
    #[serde(default, deserialize_with = "text::<_, 64>")]
    #[param(max_length = 64)]
    pub service: Option<String>,
    #[serde(default, rename = "userId", deserialize_with = "text::<_, 64>")]
    #[param(rename = "userId", schema_with = crate::schema::query_id)]
    pub user_id: Option<String>,
    /// RFC 3339, inclusive.
    #[serde(default, deserialize_with = "time")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<prost_types::Timestamp>,
    /// RFC 3339, inclusive.
    #[serde(default, deserialize_with = "time")]
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<prost_types::Timestamp>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogDto {
    pub id: String,
    /// ERROR, WARN, INFO or DEBUG.
    pub level: String,
    pub service: String,
    pub message: String,
    /// Parsed JSON details.
    #[schema(value_type = Option<Object>)]
    pub details: Option<serde_json::Value>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub worker_id: Option<String>,
    pub timestamp: Option<Ts>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LogListDto {
    pub logs: Vec<LogDto>,
    pub pagination: PaginationDto,
}

impl From<&v1::ListLogsResponse> for LogListDto {
    fn from(r: &v1::ListLogsResponse) -> Self {
        LogListDto {
            logs: r
                .logs
                .iter()
                .map(|l| LogDto {
                    id: l.id.clone(),
                    level: l.level.clone(),
                    service: l.service.clone(),
                    message: l.message.clone(),
                    details: l.details.as_deref().and_then(|d| serde_json::from_str(d).ok()),
                    user_id: l.user_id.clone(),
                    session_id: l.session_id.clone(),
                    worker_id: l.worker_id.clone(),
                    timestamp: Ts::from_proto(l.timestamp.as_ref()),
                })
                .collect(),
            pagination: PaginationDto::from_proto(r.pagination.as_ref()),
        }
    }
}

#[utoipa::path(get, path = "/admin/logs", tag = "admin", summary = "Audit and system logs, newest first",
    security(("bearer" = [])), params(LogParams),
    responses((status = 200, body = Envelope<LogListDto>)))]
pub(crate) async fn logs(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(q): Query<LogParams>,
) -> Answer {
    let request = ListLogsRequest {
        page: q.page.unwrap_or(0),
        limit: q.limit.unwrap_or(0),
        level: q.level.map_or("", |l| l.name()).to_owned(),
        service: q.service.unwrap_or_default(),
        user_id: q.user_id.unwrap_or_default(),
        from: q.from,
        to: q.to,
    };
    call.require_authorization()?;
    let r = call
        .unary("AdminService.ListLogs", state.control_plane.admin().list_logs(call.request(request)))
        .await?;
    Ok(Reply::ok(&LogListDto::from(&r)))
}
