//! The QR timeout (issue 12): a session that waits for a QR scan on a worker
//! (INIT / QR_REQUIRED) for longer than `WAGATE_QR_TIMEOUT_SECS` since
//! `sessions.qr_since` gives its worker slot back, as WhatsApp itself expires
//! QR codes: it is marked DISCONNECTED with a reason (a `session.status`
//! webhook event and an audit entry), its slot is released and it is stopped
//! on its worker. `POST /sessions/{id}/start` places it again.
//!
//! Run by the fleet sweep (one replica, under the `sweep` lease). Every
//! expiry is one fenced UPDATE (same worker, same generation, still
//! unpaired, clock still past the cutoff): a session paired meanwhile, moved,
//! or restarted is left alone, and two replicas can never both expire one.

use chrono::Utc;
use wagate_proto::v1;

use crate::audit::{self, AuditEntry};
use crate::error::CpResult;
use crate::fleet::placement;
use crate::persistence::sessions::{self, Fence, QrWaiting};
use crate::state::SharedState;
use crate::telemetry::metrics;
use crate::webhooks::outbox;

/// Sessions expired per sweep at most (the rest wait for the next tick).
const BATCH: u64 = 100;

/// The status reason of an expired session.
pub fn reason(timeout: std::time::Duration) -> String {
    format!("qr code not scanned within {} s", timeout.as_secs().max(1))
}

/// Expires every unpaired session whose QR clock ran out; the number expired.
pub async fn expire_unpaired(state: &SharedState) -> CpResult<usize> {
    let Some(timeout) = state.config.qr_timeout else { return Ok(0) };
    let cutoff = Utc::now() - chrono::Duration::from_std(timeout).unwrap_or_default();
    let db = &state.db;
    let rows = sessions::qr_waiting_since(db, cutoff, BATCH).await?;
    let reason = reason(timeout);
    let mut expired = 0;
    for candidate in rows {
        if expire(state, &candidate, cutoff, &reason).await? {
            expired += 1;
        }
    }
    Ok(expired)
}

/// Expires one session if it is still what the sweep read; `false` when it
/// changed meanwhile (paired, moved, restarted, deleted).
async fn expire(
    state: &SharedState,
    s: &QrWaiting,
    cutoff: chrono::DateTime<Utc>,
    reason: &str,
) -> CpResult<bool> {
    let db = &state.db;
    let txn = db.begin().await?;
    let fence = Fence::new(&s.id, &s.worker_id, s.generation);
    let updated = sessions::expire_qr(&txn, db, &fence, reason, cutoff).await?;
    if updated == 0 {
        txn.rollback().await?;
        return Ok(false);
    }
    // The one place a session gives its slot back.
    placement::release_slot(db, &txn, &s.worker_id).await?;
    let event = outbox::session_status(&txn, state, &s.id, "DISCONNECTED", Some(reason.to_owned())).await?;
    txn.commit().await?;
    if event {
        state.webhooks.committed();
    }
    crate::auth::invalidation::session(state, &s.id).await;
    // Best effort, after the fenced write: whatever the worker still says
    // about the session is ignored now, and a worker that does not get the
    // stop is told again when it reconnects (its Hello lists the session).
    let stop = v1::StopSession {
        session_id: s.id.clone(),
        generation: u64::try_from(s.generation).unwrap_or_default(),
    };
    match state.dispatcher.run(&s.worker_id, stop).await {
        Ok(r) if !r.ok => tracing::warn!(
            session_id = s.id,
            worker_id = s.worker_id,
            error = r.error_message,
            "worker refused stop of an expired session"
        ),
        Err(err) => {
            tracing::warn!(session_id = s.id, worker_id = s.worker_id, error = %err, "stop of an expired session not delivered")
        }
        Ok(_) => {}
    }
    metrics::SESSIONS_QR_EXPIRED.inc();
    audit::record(
        db,
        "sessions",
        AuditEntry::new("qr code not scanned in time: session stopped, worker slot freed")
            .user(&s.user_id)
            .session(&s.id)
            .worker(&s.worker_id)
            .details(serde_json::json!({ "reason": reason, "generation": s.generation })),
    );
    tracing::info!(
        session_id = s.id,
        worker_id = s.worker_id,
        "qr timeout: session disconnected, slot freed"
    );
    Ok(true)
}
