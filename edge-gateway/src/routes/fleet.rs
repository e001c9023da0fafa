//! Fleet orchestration for administrators: capacity / scaling signal, drain
//! a worker, rebalance (→ `wagate.v1.FleetService`).

use std::sync::Arc;

use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;
use wagate_proto::v1::{DrainWorkerRequest, GetFleetRequest, RebalanceRequest};

use super::{Answer, AppState, CallContext, Reply};
use crate::openapi::Envelope;
use crate::params::{PathIds, Query};

pub(crate) fn router() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(fleet)).routes(routes!(drain)).routes(routes!(rebalance))
}

/// `?maxMoves=`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RebalanceParams {
    /// Moves at most (1-1000; default from the control plane's configuration).
    #[serde(default, rename = "maxMoves", deserialize_with = "max_moves")]
    #[param(rename = "maxMoves", minimum = 1, maximum = 1000)]
    pub max_moves: Option<u32>,
}

fn max_moves<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    match crate::params::positive(d)? {
        Some(n) if n > 1000 => Err(serde::de::Error::custom("must be at most 1000")),
        other => Ok(other),
    }
}

/// Fleet capacity and the recommended worker count (autoscaling signal).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct FleetDto {
    pub online_workers: i64,
    pub total_slots: i64,
    pub used_slots: i64,
    pub free_slots: i64,
    /// usedSlots / totalSlots.
    pub utilization: f64,
    /// Sessions waiting for a worker with free capacity.
    pub waiting_sessions: i64,
    pub target_utilization: f64,
    /// Workers needed for used + waiting sessions at the target utilisation.
    pub recommended_workers: i64,
}

/// Outcome of draining a worker.
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct DrainDto {
    pub worker_id: String,
    pub total: u32,
    pub moved: u32,
    /// Sessions that found no capacity and wait to be placed.
    pub waiting: u32,
    pub skipped: u32,
    pub failed: u32,
    /// Sessions still on the worker afterwards.
    pub remaining: u32,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionMoveDto {
    pub session_id: String,
    pub from_worker_id: String,
    pub to_worker_id: String,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct RebalanceDto {
    pub moves: Vec<SessionMoveDto>,
}

#[utoipa::path(get, path = "/admin/fleet", tag = "fleet",
    summary = "Fleet capacity, waiting sessions and the recommended worker count (autoscaling signal)",
    security(("bearer" = [])),
    responses((status = 200, body = Envelope<FleetDto>)))]
pub(crate) async fn fleet(State(state): State<Arc<AppState>>, call: CallContext) -> Answer {
    call.require_authorization()?;
    let f = call
        .unary(
            "FleetService.GetFleet",
            state.control_plane.fleet().get_fleet(call.request(GetFleetRequest {})),
        )
        .await?;
    Ok(Reply::ok(&FleetDto {
        online_workers: f.online_workers,
        total_slots: f.total_slots,
        used_slots: f.used_slots,
        free_slots: f.free_slots,
        utilization: f.utilization,
        waiting_sessions: f.waiting_sessions,
        target_utilization: f.target_utilization,
        recommended_workers: f.recommended_workers,
    }))
}

#[utoipa::path(post, path = "/admin/workers/{workerId}/drain", tag = "fleet",
    summary = "Drain a worker: MAINTENANCE, then move each session (start on the new worker with its auth state, stop on the old)",
    security(("bearer" = [])), params(("workerId" = String, Path, pattern = "^[A-Za-z0-9._-]{1,64}$", max_length = 64)),
    responses((status = 200, body = Envelope<DrainDto>)))]
pub(crate) async fn drain(State(state): State<Arc<AppState>>, call: CallContext, ids: PathIds) -> Answer {
    let request = DrainWorkerRequest { worker_id: ids.id("workerId", "worker")? };
    call.require_authorization()?;
    let r = call
        .unary("FleetService.DrainWorker", state.control_plane.fleet().drain_worker(call.request(request)))
        .await?;
    Ok(Reply::ok(&DrainDto {
        worker_id: r.worker_id,
        total: r.total,
        moved: r.moved,
        waiting: r.waiting,
        skipped: r.skipped,
        failed: r.failed,
        remaining: r.remaining,
    }))
}

#[utoipa::path(post, path = "/admin/rebalance", tag = "fleet",
    summary = "Move up to maxMoves sessions from the busiest to the idlest workers (never one mid-send)",
    security(("bearer" = [])), params(RebalanceParams),
    responses((status = 200, body = Envelope<RebalanceDto>)))]
pub(crate) async fn rebalance(
    State(state): State<Arc<AppState>>,
    call: CallContext,
    Query(q): Query<RebalanceParams>,
) -> Answer {
    call.require_authorization()?;
    let request = RebalanceRequest { max_moves: q.max_moves.unwrap_or(0) };
    let r = call
        .unary("FleetService.Rebalance", state.control_plane.fleet().rebalance(call.request(request)))
        .await?;
    Ok(Reply::ok(&RebalanceDto {
        moves: r
            .moves
            .into_iter()
            .map(|m| SessionMoveDto {
                session_id: m.session_id,
                from_worker_id: m.from_worker_id,
                to_worker_id: m.to_worker_id,
            })
            .collect(),
    }))
}
