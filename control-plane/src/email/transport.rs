//! Where a mail goes: an SMTP server through lettre (rustls on ring), or,
//! when `SMTP_HOST` is unset, the log (so the flows work on a laptop: the
//! reset token is in the console).

use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{EmailInitError, EmailSettings, SmtpTls};

/// Why a mail did not go.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    /// The server refused it for good (5xx) or the mail cannot be built:
    /// retrying changes nothing.
    pub permanent: bool,
    pub message: String,
}

pub enum Transport {
    /// Boxed: one per replica, and the enum stays small.
    Smtp {
        smtp: Box<AsyncSmtpTransport<Tokio1Executor>>,
        from: Mailbox,
    },
    Console,
}

impl Transport {
    pub fn new(settings: &EmailSettings) -> Result<Self, EmailInitError> {
        let Some(s) = &settings.smtp else {
            tracing::warn!("SMTP_HOST is not set: emails are written to the log, not sent");
            return Ok(Self::Console);
        };
        let mut builder = match s.tls {
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host)?,
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host)?,
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host),
        };
        if let Some(port) = s.port {
            builder = builder.port(port);
        }
        if let (Some(user), Some(pass)) = (&s.user, &s.pass) {
            builder = builder.credentials(Credentials::new(user.clone(), pass.clone()));
        }
        builder = builder.timeout(Some(settings.timeout));
        // Checked at start-up (EmailArgs::into_settings); the default otherwise.
        let from = settings.from.parse::<Mailbox>().unwrap_or_else(|_| {
            Mailbox::new(None, lettre::Address::new("no-reply", "localhost").expect("valid"))
        });
        Ok(Self::Smtp { smtp: Box::new(builder.build()), from })
    }

    /// Sends one plain-text mail.
    pub async fn send(&self, to: &str, subject: &str, body: &str) -> Result<(), SendError> {
        match self {
            Self::Console => {
                tracing::info!(to, subject, body, "email (console transport: SMTP_HOST is not set)");
                Ok(())
            }
            Self::Smtp { smtp, from } => {
                let permanent = |message: String| SendError { permanent: true, message };
                let to: Mailbox = to.parse().map_err(|e| permanent(format!("recipient: {e}")))?;
                let message = Message::builder()
                    .from(from.clone())
                    .to(to)
                    .subject(subject)
                    .header(ContentType::TEXT_PLAIN)
                    .body(body.to_owned())
                    .map_err(|e| permanent(format!("message: {e}")))?;
                smtp.send(message).await.map(|_| ()).map_err(|e| SendError {
                    permanent: e.is_permanent(),
                    message: truncate(&e.to_string(), 500),
                })
            }
        }
    }
}

fn truncate(s: &str, max: usize) -> String {
    s.chars().take(max).collect()
}
