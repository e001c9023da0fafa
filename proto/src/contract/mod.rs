//! What the parts of wagate must agree on besides the `.proto` messages,
//! defined once and used from here by the control plane, the edge (its
//! OpenAPI document derives from these types with the `openapi` feature)
//! and the limits layer:
//!
//! - [`events`]: the webhook event types (wire names, [`events::EventType::ALL`])
//!   and the JSON payloads the control plane POSTs;
//! - [`limits`]: the limits of a send body (and of a webhook's settings);
//! - [`services`]: every gRPC service the control plane serves, classified
//!   (public and rate limited, replica-to-replica, worker, infrastructure).

pub mod events;
pub mod limits;
pub mod services;
