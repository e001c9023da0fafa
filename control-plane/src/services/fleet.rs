//! FleetService: capacity, drain and rebalance for administrators.

use tonic::{Request, Response, Status};
use wagate_proto::error::ErrorCode;
use wagate_proto::v1::{self, fleet_service_server::FleetService};

use crate::audit::{self, AuditEntry};
use crate::error::api;
use crate::fleet::{capacity, drain, rebalance};
use crate::state::SharedState;
use crate::validation;

pub struct FleetApi {
    state: SharedState,
}

impl FleetApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

#[tonic::async_trait]
impl FleetService for FleetApi {
    async fn get_fleet(
        &self,
        request: Request<v1::GetFleetRequest>,
    ) -> Result<Response<v1::FleetStatus>, Status> {
        self.state.auth.admin(request.metadata()).await?;
        let s = capacity::status(&self.state).await?;
        Ok(Response::new(v1::FleetStatus {
            online_workers: s.online_workers,
            total_slots: s.total_slots,
            used_slots: s.used_slots,
            free_slots: s.free_slots,
            utilization: s.utilization,
            waiting_sessions: s.waiting_sessions,
            target_utilization: s.target_utilization,
            recommended_workers: s.recommended_workers,
        }))
    }

    async fn drain_worker(
        &self,
        request: Request<v1::DrainWorkerRequest>,
    ) -> Result<Response<v1::DrainReport>, Status> {
        let admin = self.state.auth.admin(request.metadata()).await?;
        self.state.ensure_running()?;
        let id = validation::lookup_id(&request.get_ref().worker_id)
            .ok_or_else(|| api(ErrorCode::NotFound, "worker not found"))?
            .to_owned();
        audit::record(
            &self.state.db,
            "fleet",
            AuditEntry::new("worker drain requested").user(&admin.id).worker(&id),
        );
        let r = drain::drain(&self.state, &id).await?;
        Ok(Response::new(v1::DrainReport {
            worker_id: r.worker_id,
            total: count(r.total),
            moved: count(r.moved),
            waiting: count(r.waiting),
            skipped: count(r.skipped),
            failed: count(r.failed),
            remaining: count(r.remaining),
        }))
    }

    async fn rebalance(
        &self,
        request: Request<v1::RebalanceRequest>,
    ) -> Result<Response<v1::RebalanceReport>, Status> {
        let admin = self.state.auth.admin(request.metadata()).await?;
        self.state.ensure_running()?;
        let max = match request.get_ref().max_moves {
            0 => self.state.config.rebalance_max_moves,
            n => n.min(1000),
        };
        let r = rebalance::rebalance(&self.state, max).await?;
        audit::record(
            &self.state.db,
            "fleet",
            AuditEntry::new("rebalance")
                .user(&admin.id)
                .details(serde_json::json!({ "moves": r.moves.len() })),
        );
        Ok(Response::new(v1::RebalanceReport {
            moves: r
                .moves
                .into_iter()
                .map(|(session_id, from_worker_id, to_worker_id)| v1::SessionMove {
                    session_id,
                    from_worker_id,
                    to_worker_id,
                })
                .collect(),
        }))
    }
}
