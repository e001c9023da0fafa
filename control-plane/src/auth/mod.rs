//! Who is calling: passwords, user tokens (JWT), session API keys, worker
//! tokens, and the extraction of credentials from gRPC metadata.
//!
//! The edge never decides who someone is; every credential is checked here.

pub mod api_keys;
pub mod client_addr;
pub mod identity;
pub(crate) mod invalidation;
pub mod jwt;
pub mod key_cache;
pub(crate) mod key_usage;
pub mod password_policy;
pub mod passwords;
pub mod refresh;

pub use identity::{AuthUser, Authenticator};
