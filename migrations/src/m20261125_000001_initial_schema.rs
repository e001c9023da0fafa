//! The brief's ten tables, enums as checked text, indexes for the queries we run.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = r#"
CREATE TABLE users (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL DEFAULT 'USER' CHECK (role IN ('USER', 'ADMINISTRATOR')),
    tier TEXT NOT NULL DEFAULT 'BASIC' CHECK (tier IN ('BASIC', 'PRO', 'MAX')),
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    last_login_at {ts},
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);

CREATE TABLE workers (
    id TEXT PRIMARY KEY,
    endpoint TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL DEFAULT 'ONLINE' CHECK (status IN ('ONLINE', 'OFFLINE', 'MAINTENANCE')),
    session_count INTEGER NOT NULL DEFAULT 0 CHECK (session_count >= 0),
    max_sessions INTEGER NOT NULL DEFAULT 50 CHECK (max_sessions >= 0),
    cpu_usage DOUBLE PRECISION NOT NULL DEFAULT 0,
    memory_usage DOUBLE PRECISION NOT NULL DEFAULT 0,
    last_heartbeat {ts} NOT NULL,
    description TEXT,
    version TEXT,
    token_hash TEXT,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE INDEX idx_workers_placement ON workers (status, session_count);

CREATE TABLE sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    worker_id TEXT REFERENCES workers (id) ON DELETE SET NULL,
    name TEXT NOT NULL,
    phone_number TEXT,
    status TEXT NOT NULL DEFAULT 'DISCONNECTED'
        CHECK (status IN ('INIT', 'QR_REQUIRED', 'CONNECTED', 'DISCONNECTED', 'RECONNECTING', 'ERROR')),
    qr_code TEXT,
    last_seen_at {ts},
    generation BIGINT NOT NULL DEFAULT 0,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);
CREATE INDEX idx_sessions_user ON sessions (user_id, created_at);
CREATE INDEX idx_sessions_worker ON sessions (worker_id);
CREATE INDEX idx_sessions_status ON sessions (status);

CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    key_hash TEXT NOT NULL UNIQUE,
    key_prefix TEXT NOT NULL,
    session_id TEXT NOT NULL UNIQUE REFERENCES sessions (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    last_used {ts},
    created_at {ts} NOT NULL,
    expires_at {ts}
);

CREATE TABLE messages (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    direction TEXT NOT NULL CHECK (direction IN ('INBOUND', 'OUTBOUND')),
    from_number TEXT,
    to_number TEXT NOT NULL,
    message_type TEXT NOT NULL
        CHECK (message_type IN ('TEXT', 'IMAGE', 'DOCUMENT', 'AUDIO', 'VIDEO', 'STICKER', 'LOCATION', 'CONTACT')),
    content TEXT NOT NULL,
    media_url TEXT,
    filename TEXT,
    caption TEXT,
    status TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'SENT', 'DELIVERED', 'READ', 'FAILED')),
    error_message TEXT,
    sent_at {ts},
    delivered_at {ts},
    read_at {ts},
    created_at {ts} NOT NULL,
    wa_message_id TEXT,
    idempotency_key TEXT,
    metadata TEXT
);
CREATE INDEX idx_messages_session_created ON messages (session_id, created_at);
CREATE INDEX idx_messages_created ON messages (created_at);
CREATE UNIQUE INDEX idx_messages_idempotency ON messages (session_id, idempotency_key);

CREATE TABLE worker_metrics (
    id TEXT PRIMARY KEY,
    worker_id TEXT NOT NULL REFERENCES workers (id) ON DELETE CASCADE,
    cpu_usage DOUBLE PRECISION NOT NULL,
    memory_usage DOUBLE PRECISION NOT NULL,
    session_count INTEGER NOT NULL,
    message_count BIGINT NOT NULL,
    uptime BIGINT NOT NULL DEFAULT 0,
    timestamp {ts} NOT NULL
);
CREATE INDEX idx_worker_metrics_worker_time ON worker_metrics (worker_id, timestamp);
CREATE INDEX idx_worker_metrics_time ON worker_metrics (timestamp);

CREATE TABLE webhooks (
    id TEXT PRIMARY KEY,
    session_id TEXT NOT NULL UNIQUE REFERENCES sessions (id) ON DELETE CASCADE,
    url TEXT NOT NULL,
    events TEXT NOT NULL DEFAULT '[]',
    secret TEXT,
    is_active BOOLEAN NOT NULL DEFAULT TRUE,
    last_delivery {ts},
    failure_count INTEGER NOT NULL DEFAULT 0,
    created_at {ts} NOT NULL,
    updated_at {ts} NOT NULL
);

CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    webhook_id TEXT NOT NULL REFERENCES webhooks (id) ON DELETE CASCADE,
    event TEXT NOT NULL,
    payload TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'PENDING' CHECK (status IN ('PENDING', 'DELIVERED', 'FAILED', 'RETRYING')),
    response_code INTEGER,
    response_body TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_retry {ts},
    created_at {ts} NOT NULL,
    delivered_at {ts}
);
CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (status, next_retry);
CREATE INDEX idx_webhook_deliveries_webhook ON webhook_deliveries (webhook_id, created_at);

CREATE TABLE system_logs (
    id TEXT PRIMARY KEY,
    level TEXT NOT NULL CHECK (level IN ('ERROR', 'WARN', 'INFO', 'DEBUG')),
    service TEXT NOT NULL,
    message TEXT NOT NULL,
    details TEXT,
    user_id TEXT,
    session_id TEXT,
    worker_id TEXT,
    timestamp {ts} NOT NULL
);
CREATE INDEX idx_system_logs_time ON system_logs (timestamp);
CREATE INDEX idx_system_logs_level_time ON system_logs (level, timestamp);
CREATE INDEX idx_system_logs_user ON system_logs (user_id, timestamp);

CREATE TABLE usage_records (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    session_id TEXT REFERENCES sessions (id) ON DELETE SET NULL,
    api_key_id TEXT NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    usage_count INTEGER NOT NULL DEFAULT 0,
    billing_date {ts} NOT NULL,
    created_at {ts} NOT NULL
);
CREATE INDEX idx_usage_user_billing ON usage_records (user_id, billing_date);
CREATE INDEX idx_usage_key_billing ON usage_records (api_key_id, billing_date);
CREATE INDEX idx_usage_session_billing ON usage_records (session_id, billing_date);
"#;

const DOWN: &str = r#"
DROP TABLE IF EXISTS usage_records;
DROP TABLE IF EXISTS system_logs;
DROP TABLE IF EXISTS webhook_deliveries;
DROP TABLE IF EXISTS webhooks;
DROP TABLE IF EXISTS worker_metrics;
DROP TABLE IF EXISTS messages;
DROP TABLE IF EXISTS api_keys;
DROP TABLE IF EXISTS sessions;
DROP TABLE IF EXISTS workers;
DROP TABLE IF EXISTS users;
"#;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::execute(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::execute(manager, DOWN).await
    }
}
