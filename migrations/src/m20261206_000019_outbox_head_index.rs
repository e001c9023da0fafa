//! The outbox's undelivered events by webhook, in delivery order (issue 25):
//! a partial index of the PENDING / RETRYING rows, so a webhook's head (its
//! oldest undelivered event) is the first entry of its range and the run
//! behind it the next ones, however many delivered rows the log keeps. The
//! dispatcher's claims (one probe per active webhook, then the run behind a
//! leased head) and the backlog gauge read it; it holds only the backlog,
//! not the 14 days of delivery log.
//!
//! `idx_webhook_deliveries_due` (status, next_retry) goes: only the former
//! claim read it, and every insert and every status change of a delivery
//! (status is in the key, so none is a HOT update) paid for it.

use sea_orm_migration::prelude::*;

use crate::ddl;

#[derive(DeriveMigrationName)]
pub struct Migration;

const UP: &str = "CREATE INDEX idx_webhook_deliveries_undelivered ON webhook_deliveries (webhook_id, id) \
    WHERE status IN ('PENDING', 'RETRYING'); \
    DROP INDEX IF EXISTS idx_webhook_deliveries_due";

const DOWN: &str = "CREATE INDEX idx_webhook_deliveries_due ON webhook_deliveries (status, next_retry); \
    DROP INDEX IF EXISTS idx_webhook_deliveries_undelivered";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::execute(manager, UP).await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        ddl::execute(manager, DOWN).await
    }
}
