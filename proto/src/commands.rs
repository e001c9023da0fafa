//! The one table of worker commands.
//!
//! Every command the control plane sends down a worker's stream is one line
//! of [`for_each_worker_command!`]: its `Command.kind` variant (= its proto
//! message), its name (metric label, log field, capability name in `Hello`)
//! and the payload its `CommandResult` carries. Everything else derives from
//! the table:
//!
//! - here: [`CommandKind`] (the kind without its body: names, `ALL`),
//!   [`CommandSet`] (what a worker declares in `Hello.commands`),
//!   [`WorkerCommand`] (a typed command: `From<C> for command::Kind`, its
//!   kind, its session and its result payload), `command::Kind::kind()` /
//!   `session_id()`;
//! - in the control plane: one generic `Dispatcher::run`, the metric labels,
//!   the capability check before a command is sent;
//! - in the worker SDK: `Hello.commands` from the driver's declaration, the
//!   dispatch of a command to its `SessionDriver` method, log fields.
//!
//! Adding a command: its message in `worker.proto` (a new `Command.kind`
//! variant, and a `CommandResult.payload` variant if it answers with data),
//! one line under `driver` below (and its payload type under `payloads` if
//! new), one `SessionDriver` method with a default body that answers
//! `unsupported`, the drivers that support it (each declares it in
//! `supported_commands`), and the control-plane handler + route that send it.

use crate::v1::{self, command, command_result};

/// Calls `$callback!` with the table of worker commands.
///
/// `sdk` commands are run by the worker SDK around the driver (session start
/// hands the driver its event sink; sends are de-duplicated); `driver`
/// commands go straight to the `SessionDriver` method of the same name.
/// `baseline` lists the commands every worker ran before workers declared
/// their commands: a worker whose `Hello.commands` is empty (built before the
/// declaration existed) is taken to support exactly these.
#[macro_export]
macro_rules! for_each_worker_command {
    ($callback:path) => {
        $callback! {
            sdk {
                StartSession(start_session) -> (),
                SendMessage(send_message) -> $crate::v1::SendReceipt,
            }
            driver {
                StopSession(stop_session) -> (),
                Logout(logout) -> (),
                GetStatus(get_status) -> $crate::v1::SessionState,
                CheckNumbers(check_numbers) -> $crate::v1::NumberChecks,
                MarkRead(mark_read) -> (),
                SendPresence(send_presence) -> (),
                SendReaction(send_reaction) -> (),
                EditMessage(edit_message) -> (),
                DeleteMessage(delete_message) -> (),
                ListGroups(list_groups) -> $crate::v1::GroupList,
                GetGroup(get_group) -> $crate::v1::GroupInfo,
                CreateGroup(create_group) -> $crate::v1::GroupInfo,
                UpdateGroupParticipants(update_group_participants) -> $crate::v1::GroupInfo,
                LeaveGroup(leave_group) -> (),
            }
            baseline { StartSession, SendMessage, StopSession, Logout, GetStatus }
            payloads { SendReceipt, SessionState, NumberChecks, GroupInfo, GroupList }
        }
    };
}

/// A command's result payload type (`()` for commands that answer only ok).
pub trait CommandOutput: Sized {
    fn into_payload(self) -> Option<command_result::Payload>;
    /// The payload of a successful result, `None` when it is missing or of
    /// another type (a worker that answered with the wrong payload).
    fn from_payload(payload: Option<command_result::Payload>) -> Option<Self>;
}

impl CommandOutput for () {
    fn into_payload(self) -> Option<command_result::Payload> {
        None
    }
    fn from_payload(_: Option<command_result::Payload>) -> Option<Self> {
        Some(())
    }
}

/// A typed worker command: one `Command.kind` variant's message.
pub trait WorkerCommand: Into<command::Kind> + Send + 'static {
    const KIND: CommandKind;
    /// What a successful `CommandResult` carries.
    type Output: CommandOutput;
    fn session_id(&self) -> &str;
}

macro_rules! define_commands {
    (
        sdk { $($sv:ident($sn:ident) -> $so:ty,)* }
        driver { $($dv:ident($dn:ident) -> $do:ty,)* }
        baseline { $($bv:ident),* }
        payloads { $($p:ident),* }
    ) => {
        /// A worker command's kind, without its body.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum CommandKind {
            $($sv,)*
            $($dv,)*
        }

        impl CommandKind {
            /// Every command, in table order.
            pub const ALL: &'static [CommandKind] = &[$(CommandKind::$sv,)* $(CommandKind::$dv,)*];

            /// Its name: the metric label, the log field and the capability
            /// name in `Hello.commands`.
            pub const fn name(self) -> &'static str {
                match self {
                    $(CommandKind::$sv => stringify!($sn),)*
                    $(CommandKind::$dv => stringify!($dn),)*
                }
            }

            pub fn from_name(name: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|k| k.name() == name)
            }
        }

        impl CommandSet {
            /// What a worker that declares nothing runs (see the table's `baseline`).
            pub const BASELINE: CommandSet = CommandSet::EMPTY$(.with(CommandKind::$bv))*;
            /// Every command of this build.
            pub const ALL: CommandSet = CommandSet::EMPTY$(.with(CommandKind::$sv))*$(.with(CommandKind::$dv))*;
        }

        impl command::Kind {
            pub const fn kind(&self) -> CommandKind {
                match self {
                    $(command::Kind::$sv(_) => CommandKind::$sv,)*
                    $(command::Kind::$dv(_) => CommandKind::$dv,)*
                }
            }

            /// The session the command is about.
            pub fn session_id(&self) -> &str {
                match self {
                    $(command::Kind::$sv(c) => &c.session_id,)*
                    $(command::Kind::$dv(c) => &c.session_id,)*
                }
            }
        }

        $(
            impl WorkerCommand for v1::$sv {
                const KIND: CommandKind = CommandKind::$sv;
                type Output = $so;
                fn session_id(&self) -> &str {
                    &self.session_id
                }
            }
            impl From<v1::$sv> for command::Kind {
                fn from(c: v1::$sv) -> Self {
                    command::Kind::$sv(c)
                }
            }
        )*
        $(
            impl WorkerCommand for v1::$dv {
                const KIND: CommandKind = CommandKind::$dv;
                type Output = $do;
                fn session_id(&self) -> &str {
                    &self.session_id
                }
            }
            impl From<v1::$dv> for command::Kind {
                fn from(c: v1::$dv) -> Self {
                    command::Kind::$dv(c)
                }
            }
        )*
        $(
            impl CommandOutput for v1::$p {
                fn into_payload(self) -> Option<command_result::Payload> {
                    Some(command_result::Payload::$p(self))
                }
                #[allow(irrefutable_let_patterns)]
                fn from_payload(payload: Option<command_result::Payload>) -> Option<Self> {
                    if let Some(command_result::Payload::$p(p)) = payload { Some(p) } else { None }
                }
            }
        )*
    };
}

for_each_worker_command!(define_commands);

/// A set of commands (what a worker runs), as a bit set over [`CommandKind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CommandSet(u64);

impl CommandSet {
    pub const EMPTY: CommandSet = CommandSet(0);

    pub const fn with(self, kind: CommandKind) -> Self {
        CommandSet(self.0 | (1 << kind as u32))
    }

    pub const fn without(self, kind: CommandKind) -> Self {
        CommandSet(self.0 & !(1 << kind as u32))
    }

    pub const fn contains(self, kind: CommandKind) -> bool {
        self.0 & (1 << kind as u32) != 0
    }

    pub fn iter(self) -> impl Iterator<Item = CommandKind> {
        CommandKind::ALL.iter().copied().filter(move |k| self.contains(*k))
    }

    /// The names to put in `Hello.commands`.
    pub fn names(self) -> Vec<String> {
        self.iter().map(|k| k.name().to_owned()).collect()
    }

    /// What a worker's `Hello.commands` declares: names this build does not
    /// know (a newer worker) are skipped; an empty list is a worker built
    /// before workers declared their commands, which runs the baseline.
    pub fn from_names<S: AsRef<str>>(names: &[S]) -> Self {
        if names.is_empty() {
            return Self::BASELINE;
        }
        names.iter().filter_map(|n| CommandKind::from_name(n.as_ref())).fold(Self::EMPTY, Self::with)
    }
}

impl std::fmt::Display for CommandKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::fmt::Display for CommandSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names: Vec<&str> = self.iter().map(CommandKind::name).collect();
        f.write_str(&names.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for kind in CommandKind::ALL {
            assert!(seen.insert(kind.name()), "duplicate name {}", kind.name());
            assert_eq!(CommandKind::from_name(kind.name()), Some(*kind));
        }
        assert_eq!(CommandKind::from_name("no_such_command"), None);
        assert!(CommandKind::ALL.len() < 64, "CommandSet is a u64");
    }

    #[test]
    fn a_hello_without_commands_reads_as_the_baseline_and_unknown_names_are_skipped() {
        assert_eq!(CommandSet::from_names::<&str>(&[]), CommandSet::BASELINE);
        let set = CommandSet::from_names(&["send_message", "from_a_newer_worker"]);
        assert!(set.contains(CommandKind::SendMessage));
        assert!(!set.contains(CommandKind::StopSession));
        assert_eq!(set.iter().count(), 1);
        assert_eq!(CommandSet::from_names(&CommandSet::ALL.names()), CommandSet::ALL);
    }

    #[test]
    fn a_kind_knows_its_session_and_payload() {
        let kind: command::Kind = v1::GetStatus { session_id: "s1".into() }.into();
        assert_eq!(kind.kind(), CommandKind::GetStatus);
        assert_eq!(kind.session_id(), "s1");
        let state = v1::SessionState { session_id: "s1".into(), ..Default::default() };
        let payload = state.clone().into_payload();
        assert_eq!(<v1::GetStatus as WorkerCommand>::Output::from_payload(payload), Some(state));
        let receipt = v1::SendReceipt { wa_message_id: "w".into() }.into_payload();
        assert_eq!(v1::SessionState::from_payload(receipt), None);
    }
}
