//! Email: account mails (password reset, verification) and notifications to
//! a session's owner, sent from a durable outbox (`email_outbox`) like the
//! webhooks: a mail is a row before it is a send, so a restart loses
//! nothing; one replica at a time leases a row, retries follow a backoff
//! schedule ([`crate::webhooks::RetrySchedule`]), and the table is the
//! delivery log administrators read (`GET /admin/emails`).
//!
//! ```text
//! auth / events / quota / webhooks ── Mailer::enqueue (dedup_key unique) ── email_outbox
//!                                                    │ claim (lease, FOR UPDATE SKIP LOCKED)
//!                                  outbox::run ── transport (SMTP via lettre, or the console)
//! ```
//!
//! - [`transport`]: SMTP (`SMTP_TLS=starttls|tls|none`) or the console when `SMTP_HOST` is unset;
//! - [`templates`]: subjects and plain-text bodies;
//! - [`outbox`]: the sending loop, retention and the backlog gauges;
//! - [`account`]: single-use tokens mailed for password resets and verification;
//! - [`notify`]: notifications, one mail per incident (de-duplicated by key).

pub mod account;
pub mod notify;
pub mod outbox;
pub mod templates;
pub mod transport;

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::Notify;

use crate::config::ConfigError;
use crate::persistence::email_outbox::{self, NewEmail};
use crate::persistence::{Db, DbErr};
use crate::webhooks::RetrySchedule;

/// Default delays before each attempt: at once, 30 s, 2 min, 10 min, 30 min,
/// 1 h, 2 h, 4 h (about 8 hours in all).
const DEFAULT_SCHEDULE: &str = "0,30,120,600,1800,3600,7200,14400";

/// Environment / command-line settings of email (the brief's `SMTP_*` names).
#[derive(clap::Args, Debug, Clone)]
pub struct EmailArgs {
    /// SMTP server; unset: every email is written to the log instead (local use).
    #[arg(long, env = "SMTP_HOST")]
    pub smtp_host: Option<String>,
    /// SMTP port (default: 587 for `starttls`, 465 for `tls`, 25 for `none`).
    #[arg(long, env = "SMTP_PORT")]
    pub smtp_port: Option<u16>,
    #[arg(long, env = "SMTP_USER")]
    pub smtp_user: Option<String>,
    #[arg(long, env = "SMTP_PASS", hide_env_values = true)]
    pub smtp_pass: Option<String>,
    /// Sender mailbox, `Name <address>` or `address`.
    #[arg(long, env = "SMTP_FROM", default_value = "wagate <no-reply@localhost>")]
    pub smtp_from: String,
    /// `starttls` (required STARTTLS), `tls` (implicit TLS) or `none` (plain text; local relays only).
    #[arg(long, env = "SMTP_TLS", default_value = "starttls")]
    pub smtp_tls: String,
    /// Deadline of one SMTP conversation.
    #[arg(long, env = "WAGATE_EMAIL_TIMEOUT_MS", default_value_t = 15_000)]
    pub email_timeout_ms: u64,
    /// Delays before each attempt (seconds, or `ms` suffix), comma-separated.
    #[arg(long, env = "WAGATE_EMAIL_RETRY_SCHEDULE", default_value = DEFAULT_SCHEDULE)]
    pub email_retry_schedule: String,
    /// How often the outbox is polled for due retries and other replicas' mails.
    #[arg(long, env = "WAGATE_EMAIL_POLL_MS", default_value_t = 1000)]
    pub email_poll_ms: u64,
    /// Days sent and failed mails stay in the delivery log.
    #[arg(long, env = "WAGATE_EMAIL_RETENTION_DAYS", default_value_t = 30)]
    pub email_retention_days: u32,
    /// Base URL of the links in mails (`{base}/verify-email?token=…`, `{base}/reset-password?token=…`).
    #[arg(long, env = "WAGATE_PUBLIC_URL", default_value = "http://localhost:8080")]
    pub public_url: String,
    /// Refuse session creation (403 EMAIL_NOT_VERIFIED) until the owner verified their email.
    #[arg(long, env = "WAGATE_REQUIRE_EMAIL_VERIFICATION", default_value_t = false, action = clap::ArgAction::Set)]
    pub require_email_verification: bool,
    /// A session RECONNECTING this many seconds gets its owner a notification.
    #[arg(long, env = "WAGATE_NOTIFY_RECONNECTING_SECS", default_value_t = 300)]
    pub notify_reconnecting_secs: u64,
}

/// How the SMTP connection is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    Starttls,
    Tls,
    None,
}

/// Where mails go.
#[derive(Debug, Clone)]
pub struct SmtpSettings {
    pub host: String,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub pass: Option<String>,
    pub tls: SmtpTls,
}

/// Resolved email settings.
#[derive(Debug, Clone)]
pub struct EmailSettings {
    /// `None`: the console transport.
    pub smtp: Option<SmtpSettings>,
    pub from: String,
    pub timeout: Duration,
    pub schedule: RetrySchedule,
    pub poll_interval: Duration,
    pub retention: Duration,
    pub public_url: String,
    pub require_verification: bool,
    pub reconnecting_after: Duration,
}

impl Default for EmailSettings {
    fn default() -> Self {
        Self {
            smtp: None,
            from: "wagate <no-reply@localhost>".into(),
            timeout: Duration::from_secs(15),
            schedule: RetrySchedule::parse(DEFAULT_SCHEDULE)
                .ok()
                .flatten()
                .unwrap_or_else(RetrySchedule::standard),
            poll_interval: Duration::from_secs(1),
            retention: Duration::from_secs(30 * 86_400),
            public_url: "http://localhost:8080".into(),
            require_verification: false,
            reconnecting_after: Duration::from_secs(300),
        }
    }
}

impl EmailArgs {
    pub fn into_settings(self) -> Result<EmailSettings, ConfigError> {
        let tls = match self.smtp_tls.trim().to_ascii_lowercase().as_str() {
            "starttls" | "" => SmtpTls::Starttls,
            "tls" => SmtpTls::Tls,
            "none" => SmtpTls::None,
            other => {
                return Err(ConfigError::Invalid {
                    name: "SMTP_TLS",
                    reason: format!("{other:?} is not starttls, tls or none"),
                });
            }
        };
        if self.smtp_from.parse::<lettre::message::Mailbox>().is_err() {
            return Err(ConfigError::Invalid {
                name: "SMTP_FROM",
                reason: format!("{:?} is not a mailbox (`Name <address>` or `address`)", self.smtp_from),
            });
        }
        let schedule = RetrySchedule::parse(&self.email_retry_schedule)
            .map_err(|e| ConfigError::Invalid { name: "WAGATE_EMAIL_RETRY_SCHEDULE", reason: e.to_string() })?
            .unwrap_or_else(|| EmailSettings::default().schedule);
        let smtp = self.smtp_host.filter(|h| !h.trim().is_empty()).map(|host| SmtpSettings {
            host: host.trim().to_owned(),
            port: self.smtp_port,
            user: self.smtp_user.filter(|u| !u.is_empty()),
            pass: self.smtp_pass.filter(|p| !p.is_empty()),
            tls,
        });
        Ok(EmailSettings {
            smtp,
            from: self.smtp_from,
            timeout: Duration::from_millis(self.email_timeout_ms.max(100)),
            schedule,
            poll_interval: Duration::from_millis(self.email_poll_ms.max(20)),
            retention: Duration::from_secs(u64::from(self.email_retention_days.max(1)) * 86_400),
            public_url: self.public_url.trim_end_matches('/').to_owned(),
            require_verification: self.require_email_verification,
            reconnecting_after: Duration::from_secs(self.notify_reconnecting_secs.max(1)),
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EmailInitError {
    #[error("SMTP transport: {0}")]
    Transport(#[from] lettre::transport::smtp::Error),
}

/// Most de-duplication keys remembered per replica (then forgotten at once).
const SEEN_CAPACITY: usize = 10_000;

/// Email state of one replica.
pub struct Mailer {
    pub settings: EmailSettings,
    pub transport: transport::Transport,
    /// Wakes the sending loop (a mail was committed).
    pub wake: Notify,
    /// Keys this replica enqueued (or found taken): a repeated notification
    /// (every send above 80 % of the quota) costs no statement.
    seen: Mutex<HashSet<String>>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer").field("settings", &self.settings).finish_non_exhaustive()
    }
}

impl Mailer {
    pub fn new(settings: EmailSettings) -> Result<Self, EmailInitError> {
        let transport = transport::Transport::new(&settings)?;
        Ok(Self { transport, settings, wake: Notify::new(), seen: Mutex::new(HashSet::new()) })
    }

    /// Whether `key` was enqueued from here already (and remembers it).
    fn seen_before(&self, key: &str) -> bool {
        let Ok(mut seen) = self.seen.lock() else { return false };
        if seen.contains(key) {
            return true;
        }
        if seen.len() >= SEEN_CAPACITY {
            seen.clear();
        }
        seen.insert(key.to_owned());
        false
    }

    /// Whether `key` was enqueued (or skipped) from here already: a caller
    /// on a hot path asks before any lookup.
    pub fn recently_handled(&self, key: &str) -> bool {
        self.seen.lock().is_ok_and(|seen| seen.contains(key))
    }

    /// Remembers `key` as handled without enqueueing (the owner switched
    /// that notification off: no lookup again for it).
    pub fn skip(&self, key: &str) {
        let _ = self.seen_before(key);
    }

    fn forget(&self, key: &str) {
        if let Ok(mut seen) = self.seen.lock() {
            seen.remove(key);
        }
    }

    /// Writes `mail` to the outbox unless its key is there already; true
    /// when this call wrote it. The sending loop of this replica looks at once.
    pub async fn enqueue(&self, db: &Db, mail: NewEmail) -> Result<bool, DbErr> {
        if self.seen_before(&mail.dedup_key) {
            return Ok(false);
        }
        let inserted = match email_outbox::enqueue(db, &mail, Utc::now()).await {
            Ok(v) => v,
            Err(e) => {
                self.forget(&mail.dedup_key);
                return Err(e);
            }
        };
        if inserted {
            crate::telemetry::metrics::EMAILS_ENQUEUED.inc();
            tracing::debug!(kind = mail.kind, "email enqueued");
            self.wake.notify_one();
        }
        Ok(inserted)
    }
}
