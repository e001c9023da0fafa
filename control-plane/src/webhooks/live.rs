//! The live event log: `GET /sessions/{id}/events` (Server-Sent Events at
//! the edge, `SessionService.StreamEvents` here).
//!
//! A live client turns its session's log on ([`enable`]: `sessions.live_until`
//! set for the retention period and broadcast to every replica like a webhook
//! change), after which every event of the session is written to
//! `session_events` next to its webhook's outbox rows, in the same
//! transaction. [`tail`] streams the log from the client's `Last-Event-ID`
//! (or from now): woken by commits on this replica, polling for the other
//! replicas' events, re-reading a short window behind its cursor so an event
//! committed late (its id taken before an earlier-committed one's) is not
//! skipped, and never sending an id twice.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tracing::Instrument;
use wagate_proto::error::ErrorCode;
use wagate_proto::v1;

use super::EventType;
use crate::error::{CpResult, api};
use crate::persistence::{session_events, sessions};
use crate::state::SharedState;

/// Rows read per query.
const PAGE: u64 = 256;
/// How far behind its cursor the tail re-reads (events committed late).
const LATE_WINDOW_MS: i64 = 3_000;

/// Settings of the live log.
#[derive(Debug, Clone)]
pub struct LiveSettings {
    /// How long a session's log stays on after a client connected, and how
    /// long its events are kept.
    pub retention: Duration,
    /// How often a tail looks for other replicas' events.
    pub poll: Duration,
    /// Heartbeats on an idle stream (the edge writes them as SSE comments).
    pub heartbeat: Duration,
}

impl Default for LiveSettings {
    fn default() -> Self {
        Self {
            retention: Duration::from_secs(24 * 3600),
            poll: Duration::from_millis(1000),
            heartbeat: Duration::from_secs(15),
        }
    }
}

/// An event id (`evt_` + 32 hex digits of a UUID v7).
pub fn valid_event_id(id: &str) -> bool {
    id.strip_prefix("evt_").is_some_and(|h| h.len() == 32 && h.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The smallest event id of millisecond `ms` (a UUID v7 is its time first).
fn id_floor(ms: i64) -> String {
    format!("evt_{:012x}{}", ms.max(0), "0".repeat(20))
}

/// The creation time of an event id, in Unix milliseconds.
fn id_ms(id: &str) -> Option<i64> {
    let hex = id.strip_prefix("evt_")?.get(..12)?;
    i64::from_str_radix(hex, 16).ok()
}

/// Turns the session's live log on for the retention period, here and on
/// every replica.
pub async fn enable(state: &SharedState, session_id: &str) -> CpResult<()> {
    let retention = state.webhooks.live.retention;
    let until =
        Utc::now() + chrono::Duration::from_std(retention).unwrap_or_else(|_| chrono::Duration::days(1));
    sessions::extend_live(&state.db, session_id, until).await?;
    crate::auth::invalidation::webhook(state, session_id).await;
    Ok(())
}

/// Streams the session's events (those in `mask`) after `last_event_id`,
/// or from now; heartbeats (an event with an empty id) when idle. Ends when
/// the receiver goes away or the replica shuts down (the client reconnects
/// with its `Last-Event-ID`, to any replica).
pub async fn tail(
    state: &SharedState,
    session_id: String,
    last_event_id: Option<String>,
    mask: u32,
) -> CpResult<mpsc::Receiver<Result<v1::LiveEvent, tonic::Status>>> {
    let start = match last_event_id {
        Some(id) if valid_event_id(&id) => id,
        Some(_) => {
            return Err(api(
                ErrorCode::ValidationError,
                "Last-Event-ID is not an event id of this API (evt_ and 32 hex digits)",
            ));
        }
        None => id_floor(Utc::now().timestamp_millis()),
    };
    enable(state, &session_id).await?;
    let (tx, rx) = mpsc::channel(64);
    let st = state.clone();
    let span = tracing::info_span!("live_tail", session_id = %session_id);
    state.tasks.spawn(
        async move {
            if let Err(e) = run(&st, &session_id, start, mask, &tx).await {
                tracing::warn!(error = %e, "live tail ended");
                let _ = tx.send(Err(e.into())).await;
            }
        }
        .instrument(span),
    );
    Ok(rx)
}

async fn run(
    state: &SharedState,
    session_id: &str,
    start: String,
    mask: u32,
    tx: &mpsc::Sender<Result<v1::LiveEvent, tonic::Status>>,
) -> CpResult<()> {
    let settings = state.webhooks.live.clone();
    let mut ticks = state.webhooks.live_ticks();
    let floor_ms = id_ms(&start).unwrap_or(0);
    let mut cursor = start.clone();
    // Ids sent that are still inside the re-read window.
    let mut sent: HashSet<String> = HashSet::new();
    let mut idle_since = tokio::time::Instant::now();
    let mut renewed: DateTime<Utc> = Utc::now();
    let _gauge = StreamGauge::open();
    loop {
        // Re-read from a little behind the cursor, but never before the start.
        let window_ms = id_ms(&cursor).map_or(floor_ms, |ms| (ms - LATE_WINDOW_MS).max(floor_ms));
        let mut from = if window_ms > floor_ms { id_floor(window_ms) } else { start.clone() };
        sent.retain(|id| *id > from);
        loop {
            let rows = session_events::after(&state.db, session_id, &from, PAGE).await?;
            let full = rows.len() as u64 == PAGE;
            for row in rows {
                from.clone_from(&row.id);
                if sent.contains(&row.id) {
                    continue;
                }
                if row.id > cursor {
                    cursor.clone_from(&row.id);
                }
                sent.insert(row.id.clone());
                if EventType::parse(&row.event).is_some_and(|t| mask & t.bit() == 0) {
                    continue;
                }
                let event = v1::LiveEvent { id: row.id, r#type: row.event, data: row.payload };
                if tx.send(Ok(event)).await.is_err() {
                    return Ok(());
                }
                idle_since = tokio::time::Instant::now();
            }
            if !full {
                break;
            }
        }
        // A client connected for long keeps the log on.
        if Utc::now() - renewed > chrono::Duration::hours(1) {
            enable(state, session_id).await?;
            renewed = Utc::now();
        }
        let heartbeat_at = idle_since + settings.heartbeat;
        tokio::select! {
            () = state.shutdown.cancelled() => return Ok(()),
            () = tx.closed() => return Ok(()),
            _ = ticks.changed() => {}
            () = tokio::time::sleep(settings.poll) => {}
            () = tokio::time::sleep_until(heartbeat_at) => {
                if tx.send(Ok(v1::LiveEvent::default())).await.is_err() {
                    return Ok(());
                }
                idle_since = tokio::time::Instant::now();
            }
        }
    }
}

/// `wagate_live_streams`: tails open on this replica.
struct StreamGauge;

impl StreamGauge {
    fn open() -> Self {
        metrics::gauge!("wagate_live_streams").increment(1.0);
        Self
    }
}

impl Drop for StreamGauge {
    fn drop(&mut self) {
        metrics::gauge!("wagate_live_streams").decrement(1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_time() {
        let id = crate::webhooks::payload::new_event_id();
        assert!(valid_event_id(&id), "{id}");
        let ms = id_ms(&id).unwrap();
        assert!((ms - Utc::now().timestamp_millis()).abs() < 5_000);
        assert!(id_floor(ms) <= id && id < id_floor(ms + 1), "{id}");
        assert!(!valid_event_id("evt_x") && !valid_event_id("1") && !valid_event_id(&format!("{id}0")));
    }
}
