//! The trait a worker implements to run WhatsApp sessions.

use async_trait::async_trait;
use wagate_proto::commands::CommandOutput;
use wagate_proto::v1::{self, command, command_result};
use wagate_proto::{CommandKind, CommandSet};

use crate::events::EventSink;

/// Machine-readable error codes used in `CommandResult.error_code`.
pub mod codes {
    /// The worker does not run this session.
    pub const UNKNOWN_SESSION: &str = "unknown_session";
    /// The session exists but is not paired/online.
    pub const NOT_CONNECTED: &str = "not_connected";
    /// The message to send is malformed (no recipient, no content, ...).
    pub const INVALID_MESSAGE: &str = "invalid_message";
    /// The command carries an older placement generation than the running session.
    pub const STALE_GENERATION: &str = "stale_generation";
    /// The command waited longer than its deadline before it could run.
    pub const DEADLINE_EXCEEDED: &str = "deadline_exceeded";
    /// The worker is shutting down and takes no new commands.
    pub const SHUTTING_DOWN: &str = "shutting_down";
    /// The command has no kind (or one this worker does not know).
    pub const INVALID_COMMAND: &str = "invalid_command";
    /// The worker's driver does not run this command (see
    /// [`SessionDriver::supported_commands`](super::SessionDriver::supported_commands)).
    pub const UNSUPPORTED_COMMAND: &str = "unsupported_command";
    /// What the command names (a group) is not the account's.
    pub const NOT_FOUND: &str = "not_found";
    /// Anything else that went wrong inside the driver.
    pub const INTERNAL: &str = "internal";
}

/// Why a driver could not carry out a command; becomes
/// `CommandResult { ok: false, error_code: code, error_message: message }`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct DriverError {
    /// Machine-readable reason (see [`codes`]).
    pub code: String,
    /// Human-readable detail.
    pub message: String,
}

impl DriverError {
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self { code: code.into(), message: message.into() }
    }

    pub fn unknown_session(session_id: &str) -> Self {
        Self::new(codes::UNKNOWN_SESSION, format!("session {session_id} is not running on this worker"))
    }

    pub fn not_connected(session_id: &str) -> Self {
        Self::new(codes::NOT_CONNECTED, format!("session {session_id} is not connected"))
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(codes::NOT_FOUND, message)
    }

    pub fn invalid_message(message: impl Into<String>) -> Self {
        Self::new(codes::INVALID_MESSAGE, message)
    }

    pub fn stale_generation(session_id: &str, got: u64, current: u64) -> Self {
        Self::new(
            codes::STALE_GENERATION,
            format!("session {session_id}: generation {got} is older than the running generation {current}"),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(codes::INTERNAL, message)
    }

    /// The default body of a command a driver does not implement.
    pub fn unsupported(kind: CommandKind) -> Self {
        Self::new(codes::UNSUPPORTED_COMMAND, format!("this worker's driver does not run the {kind} command"))
    }

    /// The failed `CommandResult` for `request_id`.
    pub fn into_result(self, request_id: u64) -> v1::CommandResult {
        v1::CommandResult {
            request_id,
            ok: false,
            error_code: self.code,
            error_message: self.message,
            payload: None,
        }
    }
}

/// What a worker implements to run sessions. The SDK calls it for every
/// command from the control plane; calls for different sessions (and for the
/// same session) may run concurrently.
///
/// Commands: the five of the original protocol (start, stop, logout, send,
/// status) are required; every command added since has a default body that
/// answers [`DriverError::unsupported`], so adding one never breaks a driver.
/// A driver that implements one declares it in [`supported_commands`](Self::supported_commands),
/// which the SDK sends in `Hello`: the control plane sends a driver only the
/// commands it declared (and answers the others `NOT_SUPPORTED_BY_WORKER`).
///
/// Generations fence placements: a session placed again (e.g. after a
/// failover) gets a higher generation, and a command with an older generation
/// than the running session should be refused with
/// [`DriverError::stale_generation`].
#[async_trait]
pub trait SessionDriver: Send + Sync + 'static {
    /// Starts (or resumes from `cmd.auth_state`) a session; the driver reports
    /// QR codes, status changes, inbound messages and auth-state snapshots for
    /// it through `events`. Idempotent for a session already running with the
    /// same or a newer generation.
    async fn start_session(&self, cmd: v1::StartSession, events: EventSink) -> Result<(), DriverError>;

    /// Stops a session (keeps its pairing). Stopping an unknown session is ok.
    async fn stop_session(&self, cmd: v1::StopSession) -> Result<(), DriverError>;

    /// Logs a session out of WhatsApp (unpairs it) and stops it.
    async fn logout(&self, cmd: v1::Logout) -> Result<(), DriverError>;

    /// Sends a message and returns its receipt.
    ///
    /// The control plane delivers `SendMessage` at least once; the SDK
    /// de-duplicates on `cmd.message_id` before calling this (a repeat of a
    /// message this worker sent, or is sending, is answered from its window
    /// with the first receipt), so a driver is called once per message per
    /// worker process while the id is in the window (`WorkerConfig::dedup_window`).
    /// A driver that persists state across restarts may de-duplicate too, but
    /// need not. `cmd.attempt` is the control plane's dispatch attempt (1 for
    /// the first; higher after a lost stream, a timeout or a failover).
    async fn send_message(&self, cmd: v1::SendMessage) -> Result<v1::SendReceipt, DriverError>;

    /// The current state of a session.
    async fn get_status(&self, cmd: v1::GetStatus) -> Result<v1::SessionState, DriverError>;

    /// Sessions currently running, reported in Hello after a (re)connect.
    fn held_sessions(&self) -> Vec<v1::HeldSession>;

    // Commands added after the original five: each has a default body, so a
    // driver built before it existed keeps compiling and is never sent it.

    /// Which of `cmd.numbers` (digits with country code) are on WhatsApp, in
    /// the order asked.
    async fn check_numbers(&self, cmd: v1::CheckNumbers) -> Result<v1::NumberChecks, DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::CheckNumbers))
    }

    /// Marks `cmd.message_ids` (WhatsApp ids of inbound messages) of chat
    /// `cmd.chat_id` read.
    async fn mark_read(&self, cmd: v1::MarkRead) -> Result<(), DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::MarkRead))
    }

    /// Shows `cmd.state` in chat `cmd.chat_id` (composing, recording, paused)
    /// or globally (available, unavailable: `chat_id` empty).
    async fn send_presence(&self, cmd: v1::SendPresence) -> Result<(), DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::SendPresence))
    }

    /// Reacts to message `cmd.wa_message_id` of chat `cmd.chat_id` with
    /// `cmd.emoji` (empty: removes this session's reaction).
    async fn send_reaction(&self, cmd: v1::SendReaction) -> Result<(), DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::SendReaction))
    }

    /// Edits the text of message `cmd.wa_message_id` (sent by this session)
    /// in chat `cmd.chat_id` to `cmd.text`.
    async fn edit_message(&self, cmd: v1::EditMessage) -> Result<(), DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::EditMessage))
    }

    /// Deletes message `cmd.wa_message_id` (sent by this session) of chat
    /// `cmd.chat_id` for everyone.
    async fn delete_message(&self, cmd: v1::DeleteMessage) -> Result<(), DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::DeleteMessage))
    }

    /// The groups the account is in.
    async fn list_groups(&self, cmd: v1::ListGroups) -> Result<v1::GroupList, DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::ListGroups))
    }

    /// One group the account is in (`not_found` when it is not).
    async fn get_group(&self, cmd: v1::GetGroup) -> Result<v1::GroupInfo, DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::GetGroup))
    }

    /// Creates a group with the account as its admin.
    async fn create_group(&self, cmd: v1::CreateGroup) -> Result<v1::GroupInfo, DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::CreateGroup))
    }

    /// Adds and removes participants; answers the group as it is now.
    async fn update_group_participants(
        &self,
        cmd: v1::UpdateGroupParticipants,
    ) -> Result<v1::GroupInfo, DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::UpdateGroupParticipants))
    }

    /// Leaves a group.
    async fn leave_group(&self, cmd: v1::LeaveGroup) -> Result<(), DriverError> {
        let _ = cmd;
        Err(DriverError::unsupported(CommandKind::LeaveGroup))
    }

    /// The commands this driver runs, declared in `Hello.commands`. The
    /// default is the original five; a driver that implements a newer
    /// command adds it (`CommandSet::BASELINE.with(CommandKind::…)`).
    fn supported_commands(&self) -> CommandSet {
        CommandSet::BASELINE
    }
}

/// Runs a command that goes straight to its driver method (the table's
/// `driver` rows, generated from `wagate_proto::for_each_worker_command!`);
/// gives back the commands the SDK runs itself (start, send).
macro_rules! driver_dispatch {
    (
        sdk { $($sv:ident($sn:ident) -> $so:ty,)* }
        driver { $($dv:ident($dn:ident) -> $do:ty,)* }
        baseline { $($bv:ident),* }
        payloads { $($p:ident),* }
    ) => {
        pub(crate) async fn run_on_driver(
            driver: &dyn SessionDriver,
            kind: command::Kind,
        ) -> Result<Result<Option<command_result::Payload>, DriverError>, command::Kind> {
            match kind {
                $(command::Kind::$dv(c) => Ok(driver.$dn(c).await.map(CommandOutput::into_payload)),)*
                other => Err(other),
            }
        }
    };
}

wagate_proto::for_each_worker_command!(driver_dispatch);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn driver_error_maps_into_a_failed_result() {
        let result = DriverError::unknown_session("s1").into_result(42);
        assert_eq!(result.request_id, 42);
        assert!(!result.ok);
        assert_eq!(result.error_code, codes::UNKNOWN_SESSION);
        assert!(result.error_message.contains("s1"));
        assert!(result.payload.is_none());
    }

    #[test]
    fn driver_error_displays_code_and_message() {
        let error = DriverError::new("not_connected", "session s1 is not connected");
        assert_eq!(error.to_string(), "not_connected: session s1 is not connected");
    }

    #[test]
    fn the_trait_is_object_safe() {
        fn assert_object(_: Option<std::sync::Arc<dyn SessionDriver>>) {}
        assert_object(None);
    }
}
