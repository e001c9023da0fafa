//! `wagate.v1.InternalService`: what other replicas call on this one.
//!
//! Authenticated with the shared internal secret only (`x-wagate-internal-token`,
//! WAGATE_INTERNAL_TOKEN); user JWTs, API keys and worker tokens are never
//! looked at. Runs commands on local streams only: no second hop.

use std::time::Duration;

use tonic::{Request, Response, Status};
use wagate_proto::v1::{self, dispatch_failure, dispatch_response, internal_service_server::InternalService};

use crate::auth::identity;
use crate::state::SharedState;
use crate::stream::registry::DispatchError;

pub struct InternalApi {
    state: SharedState,
}

impl InternalApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    fn authorize<T>(&self, request: &Request<T>) -> Result<(), Status> {
        let presented = request
            .metadata()
            .get(wagate_proto::metadata::INTERNAL_TOKEN)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if presented.is_empty() || !identity::secret_matches(presented, &self.state.config.internal_token) {
            ::metrics::counter!("wagate_internal_calls_refused_total").increment(1);
            return Err(Status::unauthenticated("internal calls need the internal token"));
        }
        Ok(())
    }
}

fn failure(kind: dispatch_failure::Kind, message: String) -> v1::DispatchResponse {
    v1::DispatchResponse {
        outcome: Some(dispatch_response::Outcome::Failure(v1::DispatchFailure {
            kind: kind as i32,
            message,
        })),
    }
}

#[tonic::async_trait]
impl InternalService for InternalApi {
    async fn dispatch(
        &self,
        request: Request<v1::DispatchRequest>,
    ) -> Result<Response<v1::DispatchResponse>, Status> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let Some(command) = req.command else {
            return Err(Status::invalid_argument("command is required"));
        };
        let Some(kind) = command.kind else {
            return Err(Status::invalid_argument("command kind is required"));
        };
        let deadline = Duration::from_millis(u64::from(command.deadline_ms.max(1)))
            .min(self.state.config.command_timeout * 2);
        // Local stream only: a forwarded command is never forwarded again.
        let Some(conn) = self.state.registry.get(&req.worker_id) else {
            return Ok(Response::new(failure(
                dispatch_failure::Kind::NotConnected,
                format!("worker {} is not connected to this replica", req.worker_id),
            )));
        };
        ::metrics::counter!("wagate_internal_dispatches_total").increment(1);
        let reply = match conn.call(kind, deadline).await {
            Ok(result) => v1::DispatchResponse { outcome: Some(dispatch_response::Outcome::Result(result)) },
            Err(e @ DispatchError::NotConnected(_)) | Err(e @ DispatchError::RouteUnavailable(_)) => {
                failure(dispatch_failure::Kind::NotConnected, e.to_string())
            }
            Err(e @ DispatchError::Busy(_)) => failure(dispatch_failure::Kind::Busy, e.to_string()),
            Err(e @ DispatchError::Timeout(_)) => failure(dispatch_failure::Kind::Timeout, e.to_string()),
            Err(e @ DispatchError::StreamClosed(_)) => {
                failure(dispatch_failure::Kind::StreamClosed, e.to_string())
            }
            Err(DispatchError::Unsupported(m)) => failure(dispatch_failure::Kind::Unsupported, m),
        };
        Ok(Response::new(reply))
    }

    async fn preempt(
        &self,
        request: Request<v1::PreemptRequest>,
    ) -> Result<Response<v1::PreemptResponse>, Status> {
        self.authorize(&request)?;
        let req = request.into_inner();
        let preempted = self.state.registry.preempt_older(&req.worker_id, req.epoch);
        if preempted {
            tracing::info!(
                worker_id = req.worker_id,
                epoch = req.epoch,
                "stale stream ended: worker moved to another replica"
            );
        }
        Ok(Response::new(v1::PreemptResponse { preempted }))
    }
}
