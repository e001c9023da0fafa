//! SessionService: create (tier limit, placement, API key, StartSession),
//! start again (after a QR timeout, a logout or an error), list, get, QR,
//! delete. Every lookup is scoped to the caller: another
//! user's session id is NOT_FOUND.

use chrono::Utc;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use wagate_proto::error::{ApiError, ErrorCode};
use wagate_proto::v1::{self, session_service_server::SessionService};

use crate::auth::{AuthUser, api_keys};
use crate::convert;
use crate::error::{CpError, CpResult, api, is_unique_violation};
use crate::fleet::placement::{self, Admission};
use crate::persistence::api_keys as key_rows;
use crate::persistence::enums::SessionStatus;
use crate::persistence::sessions::{self, Fence, Session, Undo};
use crate::persistence::{Conn, Db, Tx, users};
use crate::services::readable_session;
use crate::state::SharedState;
use crate::stream::custody;
use crate::telemetry::metrics;
use crate::validation;
use crate::webhooks::{EventType, live, outbox};

pub struct SessionApi {
    state: SharedState,
}

impl SessionApi {
    pub fn new(state: SharedState) -> Self {
        Self { state }
    }

    async fn create(
        &self,
        user: AuthUser,
        req: v1::CreateSessionRequest,
    ) -> CpResult<v1::CreateSessionResponse> {
        self.state.ensure_running()?;
        if self.state.email.settings.require_verification
            && user.email_verified_at.is_none()
            && user.role != crate::persistence::enums::UserRole::Administrator
        {
            return Err(api(
                ErrorCode::EmailNotVerified,
                "verify your email address first (the link mailed at sign-up; POST /api/v1/auth/verify-email/resend sends a new one)",
            ));
        }
        let name = validation::name("name", &req.name)?;
        let session_id = if req.session_id.trim().is_empty() {
            format!("ses_{}", uuid::Uuid::new_v4().simple())
        } else {
            validation::session_id("sessionId", &req.session_id)?
        };
        let db = &self.state.db;
        let limit = user.tier.session_limit();
        let key = api_keys::generate();
        let now = Utc::now();

        let txn = db.begin().await?;
        // Serialises concurrent creates of one user, so the tier limit holds.
        lock_user(db, &txn, &user.id).await?;
        let active = sessions::count_active_of_user(&txn, &user.id, None).await?;
        if active >= limit {
            return Err(tier_limit(&user));
        }
        if let Some(taken) = sessions::by_id(&txn, &session_id).await? {
            return Err(id_taken(&user, &taken.user_id));
        }
        let worker_id = self.reserve_slot(&txn, &user).await?;
        let written = Session {
            id: session_id.clone(),
            user_id: user.id.clone(),
            worker_id: Some(worker_id.clone()),
            name: name.clone(),
            phone_number: None,
            status: SessionStatus::Init,
            qr_code: None,
            last_seen_at: None,
            generation: 1,
            status_reason: None,
            qr_since: Some(now),
            created_at: now,
            updated_at: now,
        };
        if let Err(e) = sessions::insert(&txn, written.clone()).await {
            if !is_unique_violation(&e) {
                return Err(e.into());
            }
            // Taken meanwhile (by another user: their lock is not ours).
            drop(txn);
            let owner = sessions::by_id(&db.conn, &session_id).await?.map(|s| s.user_id);
            return Err(id_taken(&user, owner.as_deref().unwrap_or_default()));
        }
        key_rows::insert(
            &txn,
            key_rows::new_row(&session_id, key.hash.clone(), key.display_prefix.clone(), now, None),
        )
        .await?;
        txn.commit().await?;
        metrics::SESSIONS_CREATED.inc();

        // Committed: from here on only the worker's start may undo the
        // create (then nothing of it stays); nothing else may fail it, or
        // the API key, shown once, would be lost with a session that exists.
        let start = v1::StartSession {
            session_id: session_id.clone(),
            generation: 1,
            name: name.clone(),
            auth_state: None,
        };
        let outcome = self.state.dispatcher.run(&worker_id, start).await;
        let failure = match outcome {
            Ok(r) if r.ok => None,
            Ok(r) => Some(api(
                ErrorCode::WorkerError,
                format!("worker could not start the session: {}", r.error_message),
            )),
            Err(e) => Some(CpError::Dispatch(e)),
        };
        if let Some(err) = failure {
            tracing::warn!(session_id, worker_id, error = %err, "session start failed, rolling back");
            self.remove_session(&session_id).await?;
            return Err(err);
        }
        // The row as the worker's first events left it, or as it was
        // written if it cannot be read now.
        let row = match sessions::by_id(&db.conn, &session_id).await {
            Ok(Some(row)) => row,
            Ok(None) => return Err(api(ErrorCode::SessionNotFound, "session not found")),
            Err(err) => {
                tracing::warn!(session_id, error = %err, "created session not read back: answering what was written");
                written
            }
        };
        Ok(v1::CreateSessionResponse {
            session: Some(convert::session(&row, Some(key.display_prefix))),
            api_key: key.key,
        })
    }

    /// A slot for one of `user`'s sessions (the paid-tier reserve applies),
    /// or NO_AVAILABLE_WORKERS with a retry hint.
    async fn reserve_slot<C: Conn>(&self, txn: &C, user: &AuthUser) -> CpResult<String> {
        let db = &self.state.db;
        match placement::reserve_slot_for(db, txn, user.tier, self.state.config.paid_reserve_percent).await? {
            Admission::Reserved(worker_id) => Ok(worker_id),
            Admission::NoCapacity => Err(CpError::Api(
                ApiError::new(ErrorCode::NoAvailableWorkers, "no available workers: every worker is full or offline")
                    .with_retry_after(5),
            )),
            Admission::HeldForPaidTiers => Err(CpError::Api(
                ApiError::new(
                    ErrorCode::NoAvailableWorkers,
                    format!(
                        "no available workers for the {} tier: the remaining capacity is reserved for paid tiers",
                        user.tier.as_str()
                    ),
                )
                .with_retry_after(30),
            )),
        }
    }

    /// `POST /sessions/{id}/start`: a DISCONNECTED or ERROR session of the
    /// caller is placed on a worker again (same placement as create, tier
    /// limit and paid-tier reserve included) and started: a new QR code.
    async fn start(&self, user: AuthUser, session_id: &str) -> CpResult<v1::Session> {
        self.state.ensure_running()?;
        let found = self.owned(&user, session_id).await?;
        startable(&found)?;
        let db = &self.state.db;
        let now = Utc::now();
        let txn = db.begin().await?;
        // Same order as create: the user (tier limit), then the session.
        lock_user(db, &txn, &user.id).await?;
        sessions::lock_row(&txn, db, &found.id).await?;
        let row = sessions::by_id_of_user(&txn, &found.id, &user.id)
            .await?
            .ok_or_else(|| api(ErrorCode::SessionNotFound, "session not found"))?;
        startable(&row)?;
        let active = sessions::count_active_of_user(&txn, &user.id, Some(&row.id)).await?;
        if active >= user.tier.session_limit() {
            return Err(tier_limit(&user));
        }
        let worker_id = self.reserve_slot(&txn, &user).await?;
        if let Some(old) = &row.worker_id {
            placement::release_slot(db, &txn, old).await?;
        }
        let generation = row.generation + 1;
        sessions::place_for_start(&txn, db, &row.id, &worker_id, generation, now).await?;
        let event = outbox::session_status(
            &txn,
            &self.state,
            &row.id,
            "INIT",
            Some("started again by its owner".into()),
        )
        .await?;
        txn.commit().await?;
        if event {
            self.state.webhooks.committed();
        }
        crate::auth::invalidation::session(&self.state, &row.id).await;
        if let Some(old) = &row.worker_id {
            // An ERROR session may still run on its old worker.
            let stop = v1::StopSession {
                session_id: row.id.clone(),
                generation: u64::try_from(row.generation).unwrap_or_default(),
            };
            if let Err(e) = self.state.dispatcher.run(old, stop).await {
                tracing::warn!(session_id = row.id, worker_id = old, error = %e, "stop on the old worker not delivered");
            }
        }
        // A session that failed, or was stopped keeping its pairing, resumes
        // from its last snapshot; one logged out (its credentials wiped) or
        // never paired (QR expired) pairs again.
        let auth_state = custody::load(db, &self.state.vault, &row.id).await.unwrap_or_else(|err| {
            tracing::warn!(session_id = row.id, error = %err, "auth-state snapshot unreadable, pairing again");
            None
        });
        let start = v1::StartSession {
            session_id: row.id.clone(),
            generation: u64::try_from(generation).unwrap_or_default(),
            name: row.name.clone(),
            auth_state,
        };
        let failure = match self.state.dispatcher.run(&worker_id, start).await {
            Ok(r) if r.ok => None,
            Ok(r) => Some(api(
                ErrorCode::WorkerError,
                format!("worker could not start the session: {}", r.error_message),
            )),
            Err(e) => Some(CpError::Dispatch(e)),
        };
        if let Some(err) = failure {
            tracing::warn!(session_id = row.id, worker_id, error = %err, "session restart failed, slot given back");
            self.unplace(&row.id, &worker_id, generation, &format!("start failed: {err}")).await?;
            return Err(err);
        }
        tracing::info!(session_id = row.id, worker_id, generation, "session started again");
        let row = sessions::by_id(&db.conn, &row.id)
            .await?
            .ok_or_else(|| api(ErrorCode::SessionNotFound, "session not found"))?;
        let prefix = self.key_prefix(&row.id).await?;
        Ok(convert::session(&row, prefix))
    }

    /// Takes a session off the worker a start just placed it on (fenced on
    /// that placement): DISCONNECTED with `reason`, slot and route freed.
    async fn unplace(
        &self,
        session_id: &str,
        worker_id: &str,
        generation: i64,
        reason: &str,
    ) -> CpResult<()> {
        let db = &self.state.db;
        let txn = db.begin().await?;
        let fence = Fence::new(session_id, worker_id, generation);
        let reverted = sessions::undo_placement(
            &txn,
            db,
            &fence,
            Undo::Start,
            reason.chars().take(500).collect(),
            Utc::now(),
        )
        .await?;
        let mut event = false;
        if reverted > 0 {
            placement::release_slot(db, &txn, worker_id).await?;
            event = outbox::session_status(
                &txn,
                &self.state,
                session_id,
                "DISCONNECTED",
                Some(reason.to_owned()),
            )
            .await?;
        }
        txn.commit().await?;
        if event {
            self.state.webhooks.committed();
        }
        crate::auth::invalidation::session(&self.state, session_id).await;
        Ok(())
    }

    /// The caller's session, or NOT_FOUND (also for other users' ids).
    async fn owned(&self, user: &AuthUser, session_id: &str) -> CpResult<Session> {
        let not_found = || api(ErrorCode::SessionNotFound, "session not found");
        let id = validation::lookup_id(session_id).ok_or_else(not_found)?;
        sessions::by_id_of_user(&self.state.db.conn, id, &user.id).await?.ok_or_else(not_found)
    }

    async fn key_prefix(&self, session_id: &str) -> CpResult<Option<String>> {
        Ok(key_rows::of_session(&self.state.db, session_id).await?.map(|k| k.key_prefix))
    }

    async fn list(&self, user: AuthUser, req: v1::ListSessionsRequest) -> CpResult<v1::ListSessionsResponse> {
        let page = req.page.max(1);
        let limit = if req.limit == 0 { 20 } else { req.limit.min(100) };
        let (total, rows) = sessions::page_of_user(
            &self.state.db,
            &user.id,
            u64::from(page - 1) * u64::from(limit),
            u64::from(limit),
        )
        .await?;
        let ids: Vec<String> = rows.iter().map(|s| s.id.clone()).collect();
        let prefixes: std::collections::HashMap<String, String> = key_rows::of_sessions(&self.state.db, ids)
            .await?
            .into_iter()
            .map(|k| (k.session_id, k.key_prefix))
            .collect();
        let sessions = rows.iter().map(|s| convert::session(s, prefixes.get(&s.id).cloned())).collect();
        Ok(v1::ListSessionsResponse { sessions, total, page, limit })
    }

    async fn delete(
        &self,
        user: AuthUser,
        session_id: &str,
        keep_device: bool,
    ) -> CpResult<v1::DeleteSessionResponse> {
        self.state.ensure_running()?;
        let s = self.owned(&user, session_id).await?;
        if !keep_device && s.worker_id.is_some() && s.status == SessionStatus::Connected {
            // Unlink the device from the phone first (best effort: the
            // session is deleted either way).
            if let Some(worker_id) = &s.worker_id {
                let logout = v1::Logout {
                    session_id: s.id.clone(),
                    generation: u64::try_from(s.generation).unwrap_or_default(),
                };
                match self.state.dispatcher.run(worker_id, logout).await {
                    Ok(r) if r.ok => {}
                    Ok(r) => tracing::warn!(
                        session_id = s.id,
                        worker_id,
                        error = r.error_message,
                        "worker refused logout"
                    ),
                    Err(e) => {
                        tracing::warn!(session_id = s.id, worker_id, error = %e, "logout not delivered")
                    }
                }
            }
        } else {
            // Best effort: a worker that is gone no longer runs the session;
            // one that comes back is told to stop it (fencing on Hello).
            super::stop_on_worker(&self.state, &s).await;
        }
        self.remove_session(&s.id).await?;
        Ok(v1::DeleteSessionResponse { session_id: s.id, deleted: true })
    }

    /// Deletes the row (cascading to key and messages), frees the worker
    /// slot and the route. The slot freed is the one the row holds when it
    /// is deleted (a QR timeout or a move may have changed it since it was
    /// read), so a slot is never given back twice.
    async fn remove_session(&self, session_id: &str) -> CpResult<()> {
        let db = &self.state.db;
        let txn = db.begin().await?;
        if let Some(w) = sessions::delete(&txn, db, session_id).await? {
            placement::release_slot(db, &txn, &w).await?;
        }
        txn.commit().await?;
        // Its key must be refused at once, on every replica.
        crate::auth::invalidation::session(&self.state, session_id).await;
        Ok(())
    }
}

/// A client-chosen id that exists: the caller's own is ALREADY_EXISTS;
/// another user's answers as an id that does not exist would on a look-up
/// (SESSION_NOT_FOUND), so the create does not confirm that another
/// tenant's session exists.
fn id_taken(user: &AuthUser, owner_id: &str) -> CpError {
    if owner_id == user.id {
        api(ErrorCode::AlreadyExists, "a session with this id already exists")
    } else {
        api(ErrorCode::SessionNotFound, "session not found")
    }
}

/// TIER_LIMIT_EXCEEDED for a user at their tier's session limit.
fn tier_limit(user: &AuthUser) -> CpError {
    let limit = user.tier.session_limit();
    api(
        ErrorCode::TierLimitExceeded,
        format!(
            "session limit reached: the {} tier allows {limit} active session{}",
            user.tier.as_str(),
            if limit == 1 { "" } else { "s" }
        ),
    )
}

/// Only a DISCONNECTED or ERROR session can be started again.
fn startable(s: &Session) -> CpResult<()> {
    match s.status {
        SessionStatus::Disconnected | SessionStatus::Error => Ok(()),
        other => Err(api(
            ErrorCode::AlreadyExists,
            format!(
                "session is already running (status {}): only a DISCONNECTED or ERROR session can be started",
                other.db_value()
            ),
        )),
    }
}

#[tonic::async_trait]
impl SessionService for SessionApi {
    async fn create_session(
        &self,
        request: Request<v1::CreateSessionRequest>,
    ) -> Result<Response<v1::CreateSessionResponse>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        let span = tracing::info_span!("create_session", user_id = %user.id);
        Ok(Response::new(self.create(user, request.into_inner()).instrument(span).await?))
    }

    async fn list_sessions(
        &self,
        request: Request<v1::ListSessionsRequest>,
    ) -> Result<Response<v1::ListSessionsResponse>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        Ok(Response::new(self.list(user, request.into_inner()).await?))
    }

    async fn get_session(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        let s = readable_session(&self.state, request.metadata(), &request.get_ref().session_id).await?;
        let prefix = self.key_prefix(&s.id).await?;
        Ok(Response::new(convert::session(&s, prefix)))
    }

    async fn get_qr(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::QrResponse>, Status> {
        let s = readable_session(&self.state, request.metadata(), &request.get_ref().session_id).await?;
        let qr_code = if s.status == SessionStatus::QrRequired { s.qr_code.clone() } else { None };
        Ok(Response::new(v1::QrResponse {
            session_id: s.id,
            status: convert::session_status_to_proto(s.status) as i32,
            qr_code,
        }))
    }

    async fn start_session(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        let span = tracing::info_span!("start_session", user_id = %user.id, session_id = %request.get_ref().session_id);
        Ok(Response::new(self.start(user, &request.get_ref().session_id).instrument(span).await?))
    }

    async fn delete_session(
        &self,
        request: Request<v1::DeleteSessionRequest>,
    ) -> Result<Response<v1::DeleteSessionResponse>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        let req = request.into_inner();
        let span = tracing::info_span!("delete_session", user_id = %user.id, session_id = %req.session_id);
        Ok(Response::new(self.delete(user, &req.session_id, req.keep_device).instrument(span).await?))
    }

    async fn stop_session(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        let span = tracing::info_span!("stop_session", user_id = %user.id, session_id = %request.get_ref().session_id);
        let id = &request.get_ref().session_id;
        Ok(Response::new(self.stop_or_logout(user, id, Ending::Stop).instrument(span).await?))
    }

    async fn logout_session(
        &self,
        request: Request<v1::GetSessionRequest>,
    ) -> Result<Response<v1::Session>, Status> {
        let user = self.state.auth.user(request.metadata()).await?;
        let span = tracing::info_span!("logout_session", user_id = %user.id, session_id = %request.get_ref().session_id);
        let id = &request.get_ref().session_id;
        Ok(Response::new(self.stop_or_logout(user, id, Ending::Logout).instrument(span).await?))
    }

    type StreamEventsStream = tokio_stream::wrappers::ReceiverStream<Result<v1::LiveEvent, Status>>;

    async fn stream_events(
        &self,
        request: Request<v1::StreamEventsRequest>,
    ) -> Result<Response<Self::StreamEventsStream>, Status> {
        self.state.ensure_running()?;
        let s = readable_session(&self.state, request.metadata(), &request.get_ref().session_id).await?;
        let req = request.into_inner();
        let mut mask = 0;
        for name in &req.events {
            match EventType::parse(name.trim()) {
                Some(t) if t.is_subscribable() => mask |= t.bit(),
                _ => {
                    return Err(api(
                        ErrorCode::ValidationError,
                        format!(
                            "events: unknown event type {name:?}; expected {}",
                            EventType::list(EventType::SUBSCRIBABLE)
                        ),
                    )
                    .into());
                }
            }
        }
        if req.events.is_empty() {
            mask = EventType::mask_of(&req.events);
        }
        let rx = live::tail(&self.state, s.id, req.last_event_id.filter(|id| !id.is_empty()), mask).await?;
        Ok(Response::new(tokio_stream::wrappers::ReceiverStream::new(rx)))
    }
}

/// How a running session ends on its owner's request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// Stopped, keeping its pairing (resumes without a QR code).
    Stop,
    /// Logged out of WhatsApp: unlinked from the phone, credentials wiped.
    Logout,
}

impl Ending {
    fn reason(self) -> &'static str {
        match self {
            Ending::Stop => "STOPPED",
            Ending::Logout => "LOGGED_OUT",
        }
    }
}

impl SessionApi {
    /// Stops or logs out a session: DISCONNECTED with the reason, its slot
    /// freed (fenced on its placement, so a concurrent move or failover wins
    /// or loses cleanly), then the command to its worker; a logout also
    /// wipes its stored credentials.
    async fn stop_or_logout(
        &self,
        user: AuthUser,
        session_id: &str,
        ending: Ending,
    ) -> CpResult<v1::Session> {
        self.state.ensure_running()?;
        let s = self.owned(&user, session_id).await?;
        let db = &self.state.db;
        let paired = s.phone_number.is_some() || custody::held(db, &s.id).await.map_err(custody_error)?;
        if ending == Ending::Logout && !paired {
            return Err(api(
                ErrorCode::SessionNotConnected,
                "the session never paired with a phone: nothing to log out",
            ));
        }
        let running =
            s.worker_id.is_some() && !matches!(s.status, SessionStatus::Disconnected | SessionStatus::Error);
        if ending == Ending::Stop && !running {
            return Err(api(
                ErrorCode::SessionNotConnected,
                format!("session is not running (status {})", s.status.db_value()),
            ));
        }
        let generation = u64::try_from(s.generation).unwrap_or_default();
        if let Some(worker_id) = s.worker_id.as_deref().filter(|_| running) {
            let txn = db.begin().await?;
            let fence = Fence::new(&s.id, worker_id, s.generation);
            let updated = sessions::undo_placement(
                &txn,
                db,
                &fence,
                Undo::Start,
                ending.reason().to_owned(),
                Utc::now(),
            )
            .await?;
            if updated == 0 {
                txn.rollback().await?;
                return Err(CpError::Api(
                    ApiError::new(
                        ErrorCode::Unavailable,
                        "the session is moving between workers; retry in a moment",
                    )
                    .with_retry_after(1),
                ));
            }
            placement::release_slot(db, &txn, worker_id).await?;
            let event = outbox::session_status(
                &txn,
                &self.state,
                &s.id,
                "DISCONNECTED",
                Some(ending.reason().to_owned()),
            )
            .await?;
            txn.commit().await?;
            if event {
                self.state.webhooks.committed();
            }
            crate::auth::invalidation::session(&self.state, &s.id).await;
            // After the fenced write: whatever the worker still reports for
            // this placement is ignored; one that misses the command is told
            // to stop the session when it says Hello again.
            let outcome = match ending {
                Ending::Stop => {
                    let stop = v1::StopSession { session_id: s.id.clone(), generation };
                    self.state.dispatcher.run(worker_id, stop).await
                }
                Ending::Logout => {
                    let logout = v1::Logout { session_id: s.id.clone(), generation };
                    self.state.dispatcher.run(worker_id, logout).await
                }
            };
            match outcome {
                Ok(r) if r.ok => {}
                Ok(r) => tracing::warn!(
                    session_id = s.id,
                    worker_id,
                    error = r.error_message,
                    reason = ending.reason(),
                    "worker refused"
                ),
                Err(e) => {
                    tracing::warn!(session_id = s.id, worker_id, error = %e, reason = ending.reason(), "command not delivered")
                }
            }
        }
        if ending == Ending::Logout {
            custody::wipe(db, &s.id).await.map_err(custody_error)?;
        }
        tracing::info!(session_id = s.id, reason = ending.reason(), "session ended by its owner");
        let row = self.owned(&user, &s.id).await?;
        let prefix = self.key_prefix(&row.id).await?;
        Ok(convert::session(&row, prefix))
    }
}

fn custody_error(e: custody::CustodyError) -> CpError {
    match e {
        custody::CustodyError::Db(e) => CpError::Db(e),
        other => {
            tracing::error!(error = %other, "custody");
            CpError::Api(ApiError::new(ErrorCode::Internal, "internal error"))
        }
    }
}

/// Locks the user's row for the transaction (PostgreSQL; SQLite's
/// `BEGIN IMMEDIATE` already serialises writers): concurrent session
/// creates and starts of one user see each other, so the tier limit holds.
async fn lock_user(db: &Db, txn: &Tx, user_id: &str) -> CpResult<()> {
    Ok(users::lock_row(txn, db, user_id).await?)
}
