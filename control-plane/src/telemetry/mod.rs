//! What the control plane tells operators: metric names (`metrics`), the
//! gRPC call metrics layer (`grpc`), the `/metrics` listener (`http`) and
//! grpc.health.v1 (`health`); `chart` checks the Helm chart's alert rules
//! and dashboard against the exported names.

#[cfg(test)]
mod chart;
pub(crate) mod grpc;
pub(crate) mod health;
pub(crate) mod http;
pub(crate) mod metrics;
