//! Every gRPC service the control plane serves, classified: which ones the
//! public calls (and so are rate limited per client IP), which are for
//! workers, other replicas, or infrastructure (health, reflection). The
//! limits layer and the health reporter use this list; a `wagate.v1`
//! service missing from it fails a test (`every_service_is_classified`),
//! so a new service can no longer be silently exempt from rate limits.

use crate::v1;

/// Who calls a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Access {
    /// Users and their integrations (directly or through the edge):
    /// limited per client IP.
    Public,
    /// Workers' streams (authenticated by the worker token): not limited.
    Worker,
    /// Replica to replica (the internal token): not limited.
    Internal,
    /// Health checks and server reflection (not `wagate.v1`): not limited.
    Infrastructure,
}

/// One gRPC service and who calls it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GrpcService {
    /// Fully qualified name (`wagate.v1.AuthService`), the tonic server's `NamedService::NAME`.
    pub name: &'static str,
    pub access: Access,
}

const fn service(name: &'static str, access: Access) -> GrpcService {
    GrpcService { name, access }
}

/// `grpc.health.v1` (tonic-health).
pub const HEALTH: &str = "grpc.health.v1.Health";
/// Server reflection v1 (tonic-reflection).
pub const REFLECTION_V1: &str = "grpc.reflection.v1.ServerReflection";
/// Server reflection v1alpha (tonic-reflection).
pub const REFLECTION_V1ALPHA: &str = "grpc.reflection.v1alpha.ServerReflection";

/// Every service of the control plane's gRPC server.
pub const SERVICES: &[GrpcService] = &[
    service(v1::auth_service_server::SERVICE_NAME, Access::Public),
    service(v1::session_service_server::SERVICE_NAME, Access::Public),
    service(v1::message_service_server::SERVICE_NAME, Access::Public),
    service(v1::message_history_service_server::SERVICE_NAME, Access::Public),
    service(v1::api_key_service_server::SERVICE_NAME, Access::Public),
    service(v1::user_service_server::SERVICE_NAME, Access::Public),
    service(v1::admin_service_server::SERVICE_NAME, Access::Public),
    service(v1::fleet_service_server::SERVICE_NAME, Access::Public),
    service(v1::webhook_service_server::SERVICE_NAME, Access::Public),
    service(v1::usage_service_server::SERVICE_NAME, Access::Public),
    service(v1::media_service_server::SERVICE_NAME, Access::Public),
    service(v1::worker_service_server::SERVICE_NAME, Access::Worker),
    service(v1::internal_service_server::SERVICE_NAME, Access::Internal),
    service(HEALTH, Access::Infrastructure),
    service(REFLECTION_V1, Access::Infrastructure),
    service(REFLECTION_V1ALPHA, Access::Infrastructure),
];

/// The service of a fully qualified name, if classified.
pub fn by_name(name: &str) -> Option<&'static GrpcService> {
    SERVICES.iter().find(|s| s.name == name)
}

/// The service a request path (`/wagate.v1.AuthService/Login`) calls, if classified.
pub fn of_path(path: &str) -> Option<&'static GrpcService> {
    let (name, _method) = path.strip_prefix('/')?.split_once('/')?;
    by_name(name)
}

/// The `wagate.v1` services (what the control plane reports health for).
pub fn wagate() -> impl Iterator<Item = &'static GrpcService> {
    SERVICES.iter().filter(|s| s.access != Access::Infrastructure)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message as _;

    use super::*;

    /// Every service of the descriptor set is classified, and every
    /// classified `wagate.v1` service exists: adding a service to a
    /// `.proto` without deciding who may call it fails here.
    #[test]
    fn every_service_is_classified() {
        let fds = prost_types::FileDescriptorSet::decode(crate::FILE_DESCRIPTOR_SET).unwrap();
        let described: BTreeSet<String> = fds
            .file
            .iter()
            .flat_map(|f| f.service.iter().map(move |s| format!("{}.{}", f.package(), s.name())))
            .collect();
        assert!(described.len() >= 12, "{described:?}");
        for name in &described {
            assert!(by_name(name).is_some(), "gRPC service {name} is not classified in contract::services");
        }
        let classified: BTreeSet<String> = wagate().map(|s| s.name.to_owned()).collect();
        assert_eq!(classified, described, "classified wagate.v1 services and the descriptor set differ");
        let names: BTreeSet<&str> = SERVICES.iter().map(|s| s.name).collect();
        assert_eq!(names.len(), SERVICES.len(), "a service is listed twice");
    }

    #[test]
    fn paths() {
        assert_eq!(of_path("/wagate.v1.MessageService/Send").map(|s| s.access), Some(Access::Public));
        assert_eq!(of_path("/wagate.v1.WorkerService/Connect").map(|s| s.access), Some(Access::Worker));
        assert_eq!(of_path("/grpc.health.v1.Health/Check").map(|s| s.access), Some(Access::Infrastructure));
        for unknown in
            ["/wagate.v1.MessageService", "/wagate.v1.Nope/X", "/", "", "wagate.v1.AuthService/Login"]
        {
            assert_eq!(of_path(unknown), None, "{unknown}");
        }
        // The method list generated from the descriptors agrees.
        for m in crate::text::GRPC_METHODS {
            assert!(of_path(m).is_some(), "{m}");
        }
    }
}
