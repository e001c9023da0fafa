//! What every request shares: the configuration, the control plane pool and
//! the CORS policy.

use crate::config::EdgeConfig;
use crate::cors::Cors;
use crate::grpc::ControlPlane;

#[derive(Debug)]
pub struct AppState {
    pub config: EdgeConfig,
    pub control_plane: ControlPlane,
    pub cors: Cors,
}
