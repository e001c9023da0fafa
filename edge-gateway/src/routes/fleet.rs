//! Fleet orchestration for administrators: capacity / scaling signal, drain
//! a worker, rebalance (→ `wagate.v1.FleetService`).

use serde::Serialize;
use wagate_proto::error::ApiError;
use wagate_proto::v1::{DrainWorkerRequest, GetFleetRequest, RebalanceRequest};

use crate::envelope::Reply;
use crate::grpc::call_failed;
use crate::query::Query;
use crate::router::Ctx;

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

pub(crate) async fn fleet(ctx: &Ctx) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let f = ctx
        .control_plane()
        .fleet()
        .get_fleet(ctx.call.request(GetFleetRequest {}))
        .await
        .map_err(|s| call_failed("FleetService.GetFleet", &s))?
        .into_inner();
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

pub(crate) async fn drain(ctx: &Ctx, worker_id: &str) -> Result<Reply, ApiError> {
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .fleet()
        .drain_worker(ctx.call.request(DrainWorkerRequest { worker_id: worker_id.to_owned() }))
        .await
        .map_err(|s| call_failed("FleetService.DrainWorker", &s))?
        .into_inner();
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

pub(crate) async fn rebalance(ctx: &Ctx) -> Result<Reply, ApiError> {
    let q = Query::parse(ctx.query.as_deref())?;
    let max_moves = q.positive("maxMoves")?;
    if max_moves > 1000 {
        return Err(ApiError::invalid("maxMoves", "maxMoves must be at most 1000"));
    }
    ctx.require_authorization()?;
    let r = ctx
        .control_plane()
        .fleet()
        .rebalance(ctx.call.request(RebalanceRequest { max_moves }))
        .await
        .map_err(|s| call_failed("FleetService.Rebalance", &s))?
        .into_inner();
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
