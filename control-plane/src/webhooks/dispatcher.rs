//! The dispatcher: claims due deliveries from the outbox, POSTs them and
//! records the outcome.
//!
//! - **Claims** are leases (`locked_until`, `locked_by`). The global claim
//!   takes the *heads* (oldest undelivered event) of active webhooks, one
//!   probe of the undelivered index per webhook (`FOR UPDATE SKIP LOCKED`
//!   on PostgreSQL), so any number of replicas deliver from one outbox
//!   without sending an event twice (SQLite runs one dispatcher).
//! - **Runs**: the task that holds a head leases the events behind it (up
//!   to `RUN_MAX`, one statement), POSTs them one after the other on a
//!   kept-alive connection, writes the successes in one statement per run,
//!   and leases the next run behind the last event *before* writing, so the
//!   webhook's head stays leased here from run to run. No other replica
//!   can lease an event behind a head leased elsewhere, which keeps a
//!   session's events in order with any number of replicas.
//! - **Order**: a later event waits while an earlier one is retrying: a
//!   failed attempt ends the run, its retry is recorded and the events
//!   behind it are given back.
//! - **Limits**: deliveries in flight per replica and per receiver
//!   (host:port) are bounded; one HTTP client (connection reuse). A task
//!   waits up to `RECEIVER_WAIT` for a slot of its receiver.
//! - **Outcome**: only 2xx succeeds, redirects are not followed, attempts
//!   have a deadline; failures retry on the schedule (`Retry-After`
//!   honoured on 429/503); 410 disables the webhook at once; a delivery
//!   that fails its last attempt is FAILED, and N of those in a row
//!   disable the webhook (with a `system_logs` entry). Undelivered events
//!   of a disabled webhook stay in the outbox for replay.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::config::WebhookRow;
use super::{WebhookSettings, signing, ssrf};
use crate::audit::{self, AuditEntry};
use crate::persistence::enums::LogLevel;
pub use crate::persistence::webhooks::Claimed;
use crate::persistence::{DbErr, session_events, sessions, webhooks};
use crate::state::SharedState;

/// Response bodies are kept up to this many bytes.
const BODY_KEEP: usize = 1024;
/// Claimed per round at most.
const CLAIM_MAX: usize = 64;
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(5);
const RETENTION_EVERY: Duration = Duration::from_secs(300);
/// A delivery task re-reads its webhook at least this often.
const HOOK_REFRESH: Duration = Duration::from_secs(1);
/// Events leased in one run (the head and the events behind it).
const RUN_MAX: usize = 128;
/// Events of one webhook one delivery task sends back to back at most
/// (then the receiver's slot goes to another webhook).
const LANE_MAX: usize = 1024;
/// A claim that found nothing is not repeated sooner than this.
const MIN_CLAIM_GAP: Duration = Duration::from_millis(10);
/// A lease lasts the attempt deadline plus this.
const LEASE_MARGIN: Duration = Duration::from_secs(30);
/// No attempt of a run starts later than this after its lease was taken, so
/// every attempt ends and is recorded well within the lease
/// (`timeout + LEASE_MARGIN`).
const RUN_BUDGET: Duration = Duration::from_secs(20);
/// How long a delivery waits for a slot of its receiver before it is given back.
const RECEIVER_WAIT: Duration = Duration::from_secs(2);
/// `webhooks.last_delivery` is refreshed at most this often.
const LAST_DELIVERY_EVERY_SECS: i64 = 5;
/// Delay before a delivery whose receiver stayed at its limit is looked at again.
const RECEIVER_BUSY_DELAY: Duration = Duration::from_millis(50);

/// The HTTP client of all deliveries: no redirects, no proxies from the
/// environment, a per-attempt deadline, and a resolver that refuses
/// internal addresses (unless allowed).
pub fn http_client(settings: &WebhookSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .no_proxy()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout.min(Duration::from_secs(5)))
        .pool_max_idle_per_host(settings.per_receiver)
        .pool_idle_timeout(Duration::from_secs(60))
        .tcp_nodelay(true)
        .user_agent(concat!("wagate-webhooks/", env!("CARGO_PKG_VERSION")))
        .dns_resolver(Arc::new(ssrf::GuardedResolver { allow_private: settings.allow_private }))
        .build()
}

/// Deliveries in flight per receiver (`host:port`).
pub struct ReceiverLimits {
    per: usize,
    map: Mutex<HashMap<String, Arc<Semaphore>>>,
}

impl ReceiverLimits {
    pub fn new(per: usize) -> Self {
        Self { per, map: Mutex::new(HashMap::new()) }
    }

    /// A slot of receiver `key`, waiting up to `wait` for one.
    async fn acquire(&self, key: &str, wait: Duration) -> Option<OwnedSemaphorePermit> {
        let sem = {
            let mut map = self.map.lock().ok()?;
            if map.len() > 10_000 {
                map.retain(|_, s| s.available_permits() < self.per);
            }
            map.entry(key.to_owned()).or_insert_with(|| Arc::new(Semaphore::new(self.per))).clone()
        };
        match sem.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => tokio::time::timeout(wait, sem.acquire_owned()).await.ok()?.ok(),
        }
    }
}

/// What one attempt gave.
#[derive(Debug, Clone, Default)]
pub struct Attempt {
    pub status: Option<u16>,
    pub body: Option<String>,
    pub error: Option<String>,
    pub retry_after: Option<Duration>,
}

impl Attempt {
    pub fn ok(&self) -> bool {
        self.status.is_some_and(|s| (200..300).contains(&s))
    }
}

/// Starts the dispatcher of this replica.
pub fn spawn(state: &SharedState) {
    let st = state.clone();
    state.tasks.spawn(async move { run(st).await });
}

async fn run(state: SharedState) {
    let hooks = &state.webhooks;
    let mut housekeeping_at = Instant::now() - HOUSEKEEPING_EVERY;
    let mut retention_at = Instant::now();
    loop {
        if state.shutdown.is_cancelled() {
            break;
        }
        if housekeeping_at.elapsed() >= HOUSEKEEPING_EVERY {
            housekeeping_at = Instant::now();
            if let Err(e) = housekeeping(&state, retention_at.elapsed() >= RETENTION_EVERY).await {
                tracing::warn!(error = %e, "webhook housekeeping failed");
            }
            if retention_at.elapsed() >= RETENTION_EVERY {
                retention_at = Instant::now();
            }
        }
        let free = hooks.global.available_permits().min(CLAIM_MAX);
        let mut claimed = 0;
        if free > 0 {
            match claim(&state, free).await {
                Ok(rows) => {
                    claimed = rows.len();
                    match webhooks_of(&state, &rows).await {
                        Ok(hooks) => {
                            for row in rows {
                                // None: deleted meanwhile (its deliveries with it).
                                if let Some(hook) = hooks.get(&row.webhook_id) {
                                    start(&state, hook.clone(), row).await;
                                }
                            }
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "webhook lookup failed");
                            for row in rows {
                                release(&state, &row.id, Duration::ZERO).await;
                            }
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "webhook claim failed"),
            }
        }
        if claimed > 0 {
            continue;
        }
        // Woken by every commit of events: while every webhook with events
        // has a delivery task (their heads leased), a claim finds nothing,
        // so claims are spaced a little (the tasks take the events behind).
        let quiet = tokio::time::sleep(MIN_CLAIM_GAP);
        tokio::select! {
            () = quiet => {}
            () = state.shutdown.cancelled() => break,
        }
        tokio::select! {
            () = hooks.wake.notified() => {}
            () = tokio::time::sleep(hooks.settings.poll_interval) => {}
            () = state.shutdown.cancelled() => break,
        }
    }
    tracing::debug!("webhook dispatcher stopped");
}

/// Leases up to `limit` due deliveries, each the oldest undelivered event
/// of an active webhook.
async fn claim(state: &SharedState, limit: usize) -> Result<Vec<Claimed>, DbErr> {
    let now = Utc::now();
    webhooks::claim(&state.db, lease_until(state, now), &state.config.replica_id, now, limit).await
}

/// The webhooks of a claimed batch, in one query.
async fn webhooks_of(
    state: &SharedState,
    rows: &[Claimed],
) -> Result<HashMap<String, Arc<WebhookRow>>, DbErr> {
    let mut ids: Vec<&str> = rows.iter().map(|r| r.webhook_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut out = HashMap::with_capacity(ids.len());
    let db = &state.db;
    for chunk in ids.chunks(CLAIM_MAX) {
        // Padded to a few sizes (repeating the last id) so few statements are prepared.
        let target = [1, 4, 16, 64].into_iter().find(|&c| c >= chunk.len()).unwrap_or(chunk.len());
        let mut list: Vec<&str> = chunk.to_vec();
        while list.len() < target {
            list.push(chunk[chunk.len() - 1]);
        }
        for hook in webhooks::by_ids(db, &list).await? {
            out.insert(hook.id.clone(), Arc::new(hook));
        }
    }
    Ok(out)
}

async fn start(state: &SharedState, hook: Arc<WebhookRow>, row: Claimed) {
    let Ok(global) = state.webhooks.global.clone().try_acquire_owned() else {
        release(state, &row.id, Duration::ZERO).await;
        return;
    };
    let st = state.clone();
    state.tasks.spawn(async move {
        let _global = global;
        if let Err(e) = deliver(&st, &hook, &row).await {
            tracing::warn!(delivery_id = row.id, error = %e, "webhook delivery not recorded; retried after its lease");
        }
        st.webhooks.wake.notify_one();
    });
}

/// Gives a claim back without counting an attempt.
async fn release(state: &SharedState, id: &str, delay: Duration) {
    let db = &state.db;
    let next = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
    if let Err(e) = webhooks::release(db, id, next).await {
        tracing::warn!(delivery_id = id, error = %e, "webhook claim not released; retried after its lease");
    }
}

/// Delivers `row` (a head leased here) and the run of events behind it,
/// then (while the receiver keeps succeeding) the next runs of the same
/// webhook: one POST after the other (per-session order, one connection
/// kept alive), the successes recorded in one statement per run, the next
/// run leased in one statement.
async fn deliver(state: &SharedState, hook: &WebhookRow, row: &Claimed) -> Result<(), DbErr> {
    let receiver = reqwest::Url::parse(&hook.url)
        .ok()
        .map(|u| format!("{}:{}", u.host_str().unwrap_or_default(), u.port_or_known_default().unwrap_or(0)))
        .unwrap_or_default();
    let Some(_receiver) = state.webhooks.receivers.acquire(&receiver, RECEIVER_WAIT).await else {
        release(state, &row.id, RECEIVER_BUSY_DELAY).await;
        return Ok(());
    };
    let mut hook = hook.clone();
    let (mut loaded_at, mut generation) = (Instant::now(), state.webhooks.generation());
    let mut sent = 0;
    let mut leased_at = Instant::now();
    let mut run = vec![row.clone()];
    match claim_run(state, &hook.id, &row.id).await {
        Ok(rest) => run.extend(rest),
        Err(e) => {
            tracing::warn!(webhook_id = hook.id, error = %e, "webhook run not leased; sending its head alone")
        }
    }
    let mut outcome = RunOutcome::default();
    loop {
        let mut next = 0;
        let mut go_on = true;
        while next < run.len() {
            let row = &run[next];
            if state.shutdown.is_cancelled() || leased_at.elapsed() >= RUN_BUDGET {
                break;
            }
            if loaded_at.elapsed() >= HOOK_REFRESH || generation != state.webhooks.generation() {
                // Changed here (secret, URL, deleted) or possibly on another replica.
                (loaded_at, generation) = (Instant::now(), state.webhooks.generation());
                match WebhookRow::by_id(&state.db.conn, &state.db, &hook.id).await {
                    Ok(Some(h)) if h.is_active => hook = h,
                    Ok(_) => {
                        go_on = false;
                        break;
                    }
                    Err(e) => {
                        finish(state, &mut hook, &mut outcome, &run[next..]).await?;
                        return Err(e);
                    }
                }
            }
            let started = Instant::now();
            let attempt = send(state, &hook, &row.id, &row.payload).await;
            metrics::histogram!("wagate_webhook_attempt_seconds").record(started.elapsed().as_secs_f64());
            next += 1;
            if attempt.ok() {
                outcome.delivered(row, &attempt);
                continue;
            }
            // The successes before it first, then the failure (its retry
            // or dead letter and the webhook's failure bookkeeping).
            outcome.flush(state, &mut hook).await?;
            record(state, &hook, row, &attempt).await?;
            go_on = false;
            break;
        }
        sent += next;
        let stop = !go_on || next < run.len() || state.shutdown.is_cancelled() || sent >= LANE_MAX;
        if stop {
            // Leased, not attempted: back to the outbox as they were.
            return finish(state, &mut hook, &mut outcome, &run[next..]).await;
        }
        // The next run, leased behind the last event while this run's
        // successes (the webhook's head) are still leased here, so no other
        // claim can take it meanwhile; then this run's successes are written.
        let Some(last) = run.last().map(|r| r.id.clone()) else { break };
        leased_at = Instant::now();
        let following = claim_run(state, &hook.id, &last).await;
        outcome.flush(state, &mut hook).await?;
        run = following?;
        if run.is_empty() {
            break;
        }
    }
    Ok(())
}

/// Writes the successes of the run and gives back its events not attempted.
async fn finish(
    state: &SharedState,
    hook: &mut WebhookRow,
    outcome: &mut RunOutcome,
    rest: &[Claimed],
) -> Result<(), DbErr> {
    outcome.flush(state, hook).await?;
    let rest: Vec<&str> = rest.iter().map(|r| r.id.as_str()).collect();
    if !rest.is_empty() {
        webhooks::release_many(&state.db, &rest).await?;
    }
    Ok(())
}

/// The successes of a run not yet written, by answer (status, body): one
/// statement per distinct answer.
#[derive(Default)]
struct RunOutcome {
    by_answer: Vec<(Answer, Vec<String>)>,
}

/// A receiver's answer as it is logged: status and (kept part of the) body.
type Answer = (Option<i32>, Option<String>);

impl RunOutcome {
    fn delivered(&mut self, row: &Claimed, a: &Attempt) {
        let answer = (a.status.map(i32::from), a.body.clone());
        match self.by_answer.iter_mut().find(|(k, _)| *k == answer) {
            Some((_, ids)) => ids.push(row.id.clone()),
            None => self.by_answer.push((answer, vec![row.id.clone()])),
        }
        metrics::counter!("wagate_webhook_deliveries_total", "outcome" => "delivered").increment(1);
        metrics::histogram!("wagate_webhook_event_age_seconds")
            .record((Utc::now() - row.created_at).num_milliseconds().max(0) as f64 / 1000.0);
    }

    /// Writes the successes (DELIVERED, leases released) and the webhook's
    /// bookkeeping (no failures in a row, `lastDelivery` every few seconds).
    async fn flush(&mut self, state: &SharedState, hook: &mut WebhookRow) -> Result<(), DbErr> {
        if self.by_answer.is_empty() {
            return Ok(());
        }
        let now = Utc::now();
        for ((code, body), ids) in std::mem::take(&mut self.by_answer) {
            let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
            webhooks::record_delivered_many(&state.db, &ids, code, body, now).await?;
        }
        // `lastDelivery` is informational: written at most every few seconds.
        let stale = hook.last_delivery.is_none_or(|t| (now - t).num_seconds() >= LAST_DELIVERY_EVERY_SECS);
        if hook.failure_count != 0 || stale {
            webhooks::reset_failures(&state.db, &hook.id, now).await?;
            hook.last_delivery = Some(now);
        }
        hook.failure_count = 0;
        Ok(())
    }
}

/// Leases the run of events behind `head` (leased here).
async fn claim_run(state: &SharedState, webhook_id: &str, head: &str) -> Result<Vec<Claimed>, DbErr> {
    let now = Utc::now();
    webhooks::claim_run(
        &state.db,
        webhook_id,
        head,
        lease_until(state, now),
        &state.config.replica_id,
        now,
        RUN_MAX - 1,
    )
    .await
}

fn lease_until(state: &SharedState, now: chrono::DateTime<Utc>) -> chrono::DateTime<Utc> {
    now + chrono::Duration::from_std(state.webhooks.settings.timeout + LEASE_MARGIN)
        .unwrap_or_else(|_| chrono::Duration::seconds(60))
}

/// One signed POST of `payload` as event `id` to the webhook.
pub async fn send(state: &SharedState, hook: &WebhookRow, id: &str, payload: &str) -> Attempt {
    let settings = &state.webhooks.settings;
    let url = match reqwest::Url::parse(&hook.url) {
        Ok(u) => u,
        Err(_) => return Attempt { error: Some("invalid url".into()), ..Default::default() },
    };
    if !settings.allow_private
        && let Some(ip) = ssrf::literal_ip(&url)
        && ssrf::is_internal(ip)
    {
        return Attempt {
            error: Some(format!("refused: {ip} is an internal address")),
            ..Default::default()
        };
    }
    let now = Utc::now();
    let ts = now.timestamp();
    let keys = hook.signing_keys(now);
    let signature = signing::signature_header(&keys, id, ts, payload.as_bytes());
    let request = state
        .webhooks
        .client
        .post(url)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", signature)
        .body(payload.to_owned());
    match request.send().await {
        Ok(mut resp) => {
            let status = resp.status().as_u16();
            let retry_after = resp
                .headers()
                .get(http::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.min(24 * 3600)));
            let mut body = Vec::new();
            while body.len() < BODY_KEEP {
                match resp.chunk().await {
                    Ok(Some(c)) => body.extend_from_slice(&c),
                    _ => break,
                }
            }
            body.truncate(BODY_KEEP);
            let body = String::from_utf8_lossy(&body).into_owned();
            Attempt {
                status: Some(status),
                body: (!body.is_empty()).then_some(body),
                error: None,
                retry_after: retry_after.filter(|_| status == 429 || status == 503),
            }
        }
        Err(e) => {
            let error = if e.is_timeout() {
                "timeout".to_owned()
            } else if e.is_connect() {
                format!("connect: {}", root_cause(&e))
            } else {
                root_cause(&e)
            };
            Attempt { error: Some(error), ..Default::default() }
        }
    }
}

fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string().chars().take(300).collect()
}

/// Writes the outcome of a failed attempt: RETRYING (next time from the
/// schedule) or FAILED, and the webhook's failure bookkeeping (successes
/// are written by runs, [`RunOutcome::flush`]). The webhook's next event
/// waits: for the retry, or for the global claim after a FAILED.
async fn record(state: &SharedState, hook: &WebhookRow, row: &Claimed, a: &Attempt) -> Result<(), DbErr> {
    let db = &state.db;
    let now = Utc::now();
    let attempts = row.attempts.saturating_add(1);
    let outcome = webhooks::Outcome {
        attempts,
        response_code: a.status.map(i32::from).into(),
        response_body: a.body.clone().into(),
        last_error: a.error.clone().or_else(|| a.status.map(|s| format!("HTTP {s}"))).into(),
        now,
    };
    let gone = a.status == Some(410);
    let next = if gone {
        None
    } else {
        state.webhooks.settings.schedule.next_delay(u32::try_from(attempts).unwrap_or(u32::MAX))
    };
    if let Some(delay) = next {
        let delay = a.retry_after.map_or(delay, |r| r.max(delay));
        let at = now + chrono::Duration::from_std(delay).unwrap_or_else(|_| chrono::Duration::hours(24));
        webhooks::record_retrying(db, &row.id, outcome, at).await?;
        metrics::counter!("wagate_webhook_deliveries_total", "outcome" => "retrying").increment(1);
        tracing::debug!(
            delivery_id = row.id,
            attempts,
            delay_ms = delay.as_millis() as u64,
            "webhook attempt failed, retrying"
        );
        return Ok(());
    }
    webhooks::record_failed(db, &row.id, outcome).await?;
    metrics::counter!("wagate_webhook_deliveries_total", "outcome" => "failed").increment(1);
    let failures = hook.failure_count.saturating_add(1);
    webhooks::count_failure(db, &hook.id).await?;
    let max = i32::try_from(state.webhooks.settings.max_failures).unwrap_or(i32::MAX);
    if gone {
        disable(state, hook, "the receiver answered 410 Gone").await?;
    } else if failures >= max {
        disable(state, hook, &format!("{failures} consecutive deliveries failed")).await?;
    }
    // FAILED: the next event waits for the global claim (fresh bookkeeping).
    Ok(())
}

/// Turns a webhook off; its undelivered events stay for replay.
async fn disable(state: &SharedState, hook: &WebhookRow, reason: &str) -> Result<(), DbErr> {
    let db = &state.db;
    let now = Utc::now();
    webhooks::disable(db, &hook.id, reason, now).await?;
    crate::auth::invalidation::webhook(state, &hook.session_id).await;
    metrics::counter!("wagate_webhook_disabled_total").increment(1);
    tracing::warn!(webhook_id = hook.id, session_id = hook.session_id, reason, "webhook disabled");
    // The owner is told (the row's last change before this names the incident).
    if let Err(e) = crate::email::notify::webhook_disabled(
        state,
        &hook.session_id,
        &hook.id,
        &hook.url,
        reason,
        hook.updated_at,
    )
    .await
    {
        tracing::warn!(webhook_id = hook.id, error = %e, "webhook notification not enqueued");
    }
    audit::record(
        db,
        "webhooks",
        AuditEntry::new(format!("webhook disabled: {reason}"))
            .level(LogLevel::Warn)
            .session(hook.session_id.clone())
            .details(serde_json::json!({ "webhookId": hook.id, "url": hook.url, "reason": reason })),
    );
    Ok(())
}

/// Gauges (queue depth, age of the oldest undelivered event), whether any
/// webhook is active, and retention.
async fn housekeeping(state: &SharedState, retention: bool) -> Result<(), DbErr> {
    let db = &state.db;
    // A webhook that changed while this was read (here or on another
    // replica) keeps the flag on: never turn event writing off on a stale read.
    let generation = state.webhooks.generation();
    let any = webhooks::any_recording(db).await? || sessions::any_live(db, Utc::now()).await?;
    if any || state.webhooks.generation() == generation {
        state.webhooks.set_any_active(any);
    }
    if let Some((n, oldest)) = webhooks::backlog(db).await? {
        metrics::gauge!("wagate_webhook_queue_depth").set(n as f64);
        let age = oldest.map_or(0.0, |t| (Utc::now() - t).num_milliseconds().max(0) as f64 / 1000.0);
        metrics::gauge!("wagate_webhook_oldest_pending_seconds").set(age);
    }
    if retention {
        let cutoff = Utc::now()
            - chrono::Duration::from_std(state.webhooks.settings.retention)
                .unwrap_or_else(|_| chrono::Duration::days(14));
        let deleted = webhooks::delete_before(db, cutoff).await?;
        if deleted > 0 {
            tracing::info!(deleted, "webhook deliveries past retention deleted");
        }
        let live = chrono::Duration::from_std(state.webhooks.live.retention)
            .unwrap_or_else(|_| chrono::Duration::days(1));
        let deleted = session_events::delete_before(db, Utc::now() - live).await?;
        if deleted > 0 {
            tracing::info!(deleted, "live events past retention deleted");
        }
    }
    Ok(())
}
