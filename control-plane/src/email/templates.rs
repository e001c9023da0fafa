//! Subjects and plain-text bodies of every mail (ASCII lines, no template
//! engine). Each returns `(subject, body)`.

/// The `kind` column of each mail (a bounded set: metric labels and the log filter).
pub mod kind {
    pub const PASSWORD_RESET: &str = "password_reset";
    pub const VERIFY_EMAIL: &str = "verify_email";
    pub const SESSION_DOWN: &str = "session_down";
    pub const SESSION_RECONNECTING: &str = "session_reconnecting";
    pub const QUOTA_80: &str = "quota_80";
    pub const QUOTA_100: &str = "quota_100";
    pub const WEBHOOK_DISABLED: &str = "webhook_disabled";
}

const SIGNATURE: &str = "\n-- \nwagate (you get this mail because of your wagate account; \
notifications can be switched off with PATCH /api/v1/me)\n";

pub fn password_reset(base: &str, token: &str, minutes: i64) -> (String, String) {
    (
        "Reset your wagate password".into(),
        format!(
            "Someone asked to reset the password of your wagate account.\n\n\
             Open {base}/reset-password?token={token}\n\
             or send POST /api/v1/auth/password-reset/confirm with {{\"token\": \"{token}\", \"password\": \"...\"}}.\n\n\
             The token works once, for {minutes} minutes. If you did not ask for it, ignore this mail:\n\
             your password stays as it is.\n{SIGNATURE}"
        ),
    )
}

pub fn verify_email(base: &str, token: &str, hours: i64) -> (String, String) {
    (
        "Confirm your email address for wagate".into(),
        format!(
            "Confirm that this address belongs to your wagate account:\n\n\
             {base}/api/v1/auth/verify-email?token={token}\n\n\
             The link works once, for {hours} hours.\n{SIGNATURE}"
        ),
    )
}

pub fn session_down(session: &str, name: &str, status: &str, reason: Option<&str>) -> (String, String) {
    let logged_out = reason.is_some_and(|r| r.eq_ignore_ascii_case("logged_out"));
    let what = if logged_out { "was logged out on the phone" } else { "disconnected" };
    let next = if logged_out {
        "Scan a new QR code to link it again (POST /api/v1/sessions/{id}/start)."
    } else {
        "wagate keeps trying to reconnect it; start it again if it stays down."
    };
    (
        format!("WhatsApp session \"{name}\" {what}"),
        format!(
            "Your WhatsApp session \"{name}\" ({session}) {what}: it is now {status}{}.\n\n{}\n{SIGNATURE}",
            reason.map(|r| format!(" (reason: {r})")).unwrap_or_default(),
            next.replace("{id}", session)
        ),
    )
}

pub fn session_reconnecting(session: &str, name: &str, minutes: u64) -> (String, String) {
    (
        format!("WhatsApp session \"{name}\" has been reconnecting for {minutes} minutes"),
        format!(
            "Your WhatsApp session \"{name}\" ({session}) lost its connection and has been RECONNECTING \
             for more than {minutes} minutes.\nCheck the phone (battery, network), or stop and start the session.\n{SIGNATURE}"
        ),
    )
}

pub fn quota(percent: u8, limit: u64, per: &str) -> (String, String) {
    let state = if percent >= 100 { "reached" } else { "is close to" };
    (
        format!("Your wagate message quota: {percent} % used"),
        format!(
            "Your account {state} its message quota: {percent} % of {limit} messages per {per}.\n\
             Sends beyond the quota are refused (429) until the window ends. Upgrade the tier for more.\n{SIGNATURE}"
        ),
    )
}

pub fn webhook_disabled(session: &str, name: &str, url: &str, reason: &str) -> (String, String) {
    (
        format!("Webhook of WhatsApp session \"{name}\" disabled"),
        format!(
            "The webhook {url} of your session \"{name}\" ({session}) was disabled: {reason}.\n\
             Its undelivered events are kept: fix the receiver, then turn it on again\n\
             (PUT /api/v1/sessions/{session}/webhook with isActive true) and replay them.\n{SIGNATURE}"
        ),
    )
}
