//! sea-orm entities of the tables the control plane reads and writes.

pub mod api_key;
pub mod media;
pub mod message;
pub mod refresh_token;
pub mod session;
pub mod system_log;
pub mod user;
pub mod worker;
pub mod worker_metric;
