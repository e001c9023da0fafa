//! Security-relevant events written to `system_logs` (off the request path).

use chrono::Utc;
use tracing::Instrument;

use crate::persistence::Db;
use crate::persistence::enums::LogLevel;
use crate::persistence::system_logs::{self, SystemLog};

#[derive(Default)]
pub struct AuditEntry {
    pub level: Option<LogLevel>,
    pub message: String,
    pub details: Option<serde_json::Value>,
    pub user_id: Option<String>,
    pub session_id: Option<String>,
    pub worker_id: Option<String>,
}

impl AuditEntry {
    pub fn new(message: impl Into<String>) -> Self {
        Self { message: message.into(), ..Default::default() }
    }
    pub fn level(mut self, level: LogLevel) -> Self {
        self.level = Some(level);
        self
    }
    pub fn user(mut self, id: impl Into<String>) -> Self {
        self.user_id = Some(id.into());
        self
    }
    pub fn session(mut self, id: impl Into<String>) -> Self {
        self.session_id = Some(id.into());
        self
    }
    pub fn worker(mut self, id: impl Into<String>) -> Self {
        self.worker_id = Some(id.into());
        self
    }
    pub fn details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }
}

/// Writes the entry in the background; a failure is logged, never surfaced.
pub fn record(db: &Db, service: &'static str, entry: AuditEntry) {
    let db = db.clone();
    let span = tracing::debug_span!("audit", service);
    tokio::spawn(
        async move {
            let row = SystemLog {
                id: uuid::Uuid::now_v7().to_string(),
                level: entry.level.unwrap_or(LogLevel::Info),
                service: service.to_owned(),
                message: entry.message,
                details: entry.details.map(|d| d.to_string()),
                user_id: entry.user_id,
                session_id: entry.session_id,
                worker_id: entry.worker_id,
                timestamp: Utc::now(),
            };
            if let Err(err) = system_logs::insert(&db, row).await {
                tracing::warn!(error = %err, "audit log write failed");
            }
        }
        .instrument(span),
    );
}
