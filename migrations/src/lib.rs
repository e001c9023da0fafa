//! wagate's schema as sea-orm migrations.
//!
//! The DDL is written once and rendered for PostgreSQL or SQLite: enums are
//! `TEXT` columns with `CHECK` constraints (portable, and readable in both),
//! timestamps are `TIMESTAMPTZ` on PostgreSQL and RFC 3339 `TEXT` on SQLite.

pub use sea_orm_migration::prelude::*;

mod ddl;
mod m20261125_000001_initial_schema;
mod m20261125_000010_fleet;
mod m20261127_000009_worker_epoch;
mod m20261127_000010_send_pipeline;
mod m20261127_000011_webhooks;
mod m20261127_000013_credentials;
mod m20261127_000014_capacity;
mod m20261127_000015_limits;
mod m20261127_000016_idempotency_partial;
mod m20261127_000017_dispatch_ledger_unbound;
mod m20261127_000018_worker_default_cap;
mod m20261206_000019_outbox_head_index;
mod m20261206_000020_wa_message_id_index;
mod m20261206_000021_media;
mod m20261206_000023_email;
mod m20261206_000026_session_events;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261125_000001_initial_schema::Migration),
            Box::new(m20261125_000010_fleet::Migration),
            Box::new(m20261127_000009_worker_epoch::Migration),
            Box::new(m20261127_000010_send_pipeline::Migration),
            Box::new(m20261127_000011_webhooks::Migration),
            Box::new(m20261127_000013_credentials::Migration),
            Box::new(m20261127_000014_capacity::Migration),
            Box::new(m20261127_000015_limits::Migration),
            Box::new(m20261127_000016_idempotency_partial::Migration),
            Box::new(m20261127_000017_dispatch_ledger_unbound::Migration),
            Box::new(m20261127_000018_worker_default_cap::Migration),
            Box::new(m20261206_000019_outbox_head_index::Migration),
            Box::new(m20261206_000020_wa_message_id_index::Migration),
            Box::new(m20261206_000021_media::Migration),
            Box::new(m20261206_000023_email::Migration),
            Box::new(m20261206_000026_session_events::Migration),
        ]
    }
}

/// Table names of the schema, in creation order.
pub const TABLES: &[&str] = &[
    "users",
    "workers",
    "sessions",
    "api_keys",
    "messages",
    "worker_metrics",
    "webhooks",
    "webhook_deliveries",
    "system_logs",
    "usage_records",
    "session_auth_states",
    "message_dispatch",
    "refresh_tokens",
    "media",
    "email_outbox",
    "account_tokens",
    "session_events",
];
