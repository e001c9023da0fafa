//! The sending loop of one replica: lease due mails (one replica per row,
//! `FOR UPDATE SKIP LOCKED` on PostgreSQL), send each, record SENT, a retry
//! at the schedule's next delay, or FAILED; then the periodic chores: the
//! RECONNECTING notification sweep, retention, the backlog gauges.

use std::time::{Duration, Instant};

use chrono::Utc;
use tracing::Instrument;

use crate::persistence::email_outbox::{self, Claimed};
use crate::persistence::{DbErr, account_tokens};
use crate::state::SharedState;
use crate::telemetry::metrics;

/// Mails leased per round.
const BATCH: usize = 16;
/// How often the notification sweep and the gauges run.
const CHORES_EVERY: Duration = Duration::from_secs(5);
const RETENTION_EVERY: Duration = Duration::from_secs(3600);

/// Starts the loop on the replica's task tracker (ends at shutdown).
pub fn spawn(state: &SharedState) {
    let st = state.clone();
    state.tasks.spawn(run(st).instrument(tracing::info_span!("email_outbox")));
}

async fn run(state: SharedState) {
    let mailer = &state.email;
    match email_outbox::release_leases_of(&state.db, &state.config.replica_id).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(released = n, "email leases of this replica's previous run released"),
        Err(e) => tracing::warn!(error = %e, "email leases of a previous run not released (they expire)"),
    }
    let mut chores_at = Instant::now();
    let mut retention_at: Option<Instant> = None;
    loop {
        match round(&state).await {
            // A full batch: there may be more due at once.
            Ok(n) if n >= BATCH => continue,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "email outbox round failed"),
        }
        if chores_at.elapsed() >= CHORES_EVERY.min(mailer.settings.poll_interval * 5) {
            chores_at = Instant::now();
            let retention = retention_at.is_none_or(|t| t.elapsed() >= RETENTION_EVERY);
            if let Err(e) = chores(&state, retention).await {
                tracing::warn!(error = %e, "email chores failed");
            } else if retention {
                retention_at = Some(Instant::now());
            }
        }
        tokio::select! {
            () = state.shutdown.cancelled() => break,
            () = mailer.wake.notified() => {}
            () = tokio::time::sleep(mailer.settings.poll_interval) => {}
        }
    }
}

/// One lease-and-send round; how many mails it leased.
async fn round(state: &SharedState) -> Result<usize, DbErr> {
    let settings = &state.email.settings;
    let now = Utc::now();
    // Long enough for the slowest conversation; a replica that dies holding
    // a lease leaves its mails to the others after it.
    let lease =
        now + chrono::Duration::from_std(settings.timeout * 2 + Duration::from_secs(30)).unwrap_or_default();
    let claimed = email_outbox::claim(&state.db, lease, &state.config.replica_id, now, BATCH).await?;
    let n = claimed.len();
    for mail in claimed {
        send_one(state, mail).await?;
    }
    Ok(n)
}

async fn send_one(state: &SharedState, mail: Claimed) -> Result<(), DbErr> {
    let settings = &state.email.settings;
    let attempts = mail.attempts.saturating_add(1);
    let result = state.email.transport.send(&mail.to, &mail.subject, &mail.body).await;
    let now = Utc::now();
    match result {
        Ok(()) => {
            email_outbox::record_sent(&state.db, &mail.id, attempts, now).await?;
            metrics::email_attempt("sent");
            tracing::info!(email_id = mail.id, kind = mail.kind, attempts, "email sent");
        }
        Err(e) => {
            let next = if e.permanent {
                None
            } else {
                settings.schedule.next_delay(u32::try_from(attempts).unwrap_or(u32::MAX))
            };
            let next_at = next.map(|d| now + chrono::Duration::from_std(d).unwrap_or_default());
            email_outbox::record_failure(&state.db, &mail.id, attempts, &e.message, next_at, now).await?;
            let outcome = if next_at.is_some() { "retrying" } else { "failed" };
            metrics::email_attempt(outcome);
            tracing::warn!(email_id = mail.id, kind = mail.kind, attempts, outcome, error = %e, "email not sent");
        }
    }
    Ok(())
}

async fn chores(state: &SharedState, retention: bool) -> Result<(), DbErr> {
    super::notify::sweep_reconnecting(state).await?;
    // The sessions gauge rides on the same period (the alert rules read it).
    metrics::sessions_by_status(&crate::persistence::sessions::count_by_status(&state.db).await?);
    let (n, oldest) = email_outbox::backlog(&state.db).await?;
    metrics::EMAIL_BACKLOG.set(n);
    metrics::EMAIL_OLDEST_PENDING.set(oldest.map_or(0, |t| (Utc::now() - t).num_seconds().max(0)));
    if retention {
        let now = Utc::now();
        let cutoff = now - chrono::Duration::from_std(state.email.settings.retention).unwrap_or_default();
        let removed = email_outbox::delete_before(&state.db, cutoff).await?;
        let expired = account_tokens::delete_expired(&state.db, now - chrono::Duration::days(1)).await?;
        if removed > 0 || expired > 0 {
            tracing::info!(removed, expired, "email log retention");
        }
    }
    Ok(())
}
