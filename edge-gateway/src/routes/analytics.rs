//! `GET /admin/analytics`: system analytics over a time range (ADMINISTRATOR).

use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::v1::{self, GetAnalyticsRequest};

use super::{Answer, AppState, CallContext, Reply};
use crate::openapi::Envelope;
use crate::params::{Query, TimeRangeParams};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(analytics))
}

type Counts = std::collections::BTreeMap<String, u64>;

fn counts(entries: &[v1::CountEntry]) -> Counts {
    entries.iter().map(|e| (e.key.clone(), e.count)).collect()
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct OverviewDto {
    pub total_users: u64,
    pub total_sessions: u64,
    pub total_workers: u64,
    pub total_messages: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkerStatsDto {
    pub online: u64,
    pub offline: u64,
    pub maintenance: u64,
    pub avg_cpu_usage: f64,
    pub avg_memory_usage: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionStatsDto {
    pub connected: u64,
    pub disconnected: u64,
    /// Connected sessions as a percentage of all sessions.
    pub success_rate: f64,
    pub by_status: Counts,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct MessageStatsDto {
    /// Messages created in the time range.
    pub total: u64,
    pub by_type: Counts,
    pub by_status: Counts,
    pub by_direction: Counts,
    /// SENT + DELIVERED + READ as a percentage of the range's messages.
    pub success_rate: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatsDto {
    pub by_tier: Counts,
    /// Logged in within the last 7 days.
    pub active_users: u64,
    /// Registered in the time range.
    pub new_users: u64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct AnalyticsDto {
    pub time_range: String,
    pub overview: OverviewDto,
    pub workers: WorkerStatsDto,
    pub sessions: SessionStatsDto,
    pub messages: MessageStatsDto,
    pub users: UserStatsDto,
}

impl From<&v1::AnalyticsResponse> for AnalyticsDto {
    fn from(a: &v1::AnalyticsResponse) -> Self {
        AnalyticsDto {
            time_range: a.time_range.clone(),
            overview: OverviewDto {
                total_users: a.total_users,
                total_sessions: a.total_sessions,
                total_workers: a.total_workers,
                total_messages: a.total_messages,
            },
            workers: WorkerStatsDto {
                online: a.workers_online,
                offline: a.workers_offline,
                maintenance: a.workers_maintenance,
                avg_cpu_usage: a.avg_cpu_usage,
                avg_memory_usage: a.avg_memory_usage,
            },
            sessions: SessionStatsDto {
                connected: a.sessions_connected,
                disconnected: a.sessions_disconnected,
                success_rate: a.sessions_success_rate,
                by_status: counts(&a.sessions_by_status),
            },
            messages: MessageStatsDto {
                total: a.messages_in_range,
                by_type: counts(&a.messages_by_type),
                by_status: counts(&a.messages_by_status),
                by_direction: counts(&a.messages_by_direction),
                success_rate: a.messages_success_rate,
            },
            users: UserStatsDto {
                by_tier: counts(&a.users_by_tier),
                active_users: a.users_active,
                new_users: a.users_new_in_range,
            },
        }
    }
}

#[utoipa::path(get, path = "/admin/analytics", tag = "admin", summary = "System analytics",
    security(("bearer" = [])), params(TimeRangeParams),
    responses((status = 200, body = Envelope<AnalyticsDto>)))]
pub(crate) async fn analytics(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(q): Query<TimeRangeParams>,
) -> Answer {
    call.require_authorization()?;
    let request = GetAnalyticsRequest { time_range: q.value() };
    let r = call
        .unary("AdminService.GetAnalytics", state.control_plane.admin().get_analytics(call.request(request)))
        .await?;
    Ok(Reply::ok(&AnalyticsDto::from(&r)))
}
