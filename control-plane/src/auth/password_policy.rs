//! The password policy of NIST SP 800-63B (§5.1.1.2): a minimum length, no
//! composition rules, and a check against passwords that are known to be
//! common or breached, and against words of the account's own context (its
//! email and name). Each refusal names the rule that was broken.

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::error::{CpError, invalid};

/// Minimum length in characters (NIST: at least 8; we ask for 10).
pub const MIN_CHARS: usize = 10;
/// Maximum length in bytes (argon2 input stays bounded).
pub const MAX_BYTES: usize = 128;

/// The 20,000 most common passwords, shipped with the binary.
static COMMON: LazyLock<HashSet<&'static str>> = LazyLock::new(|| {
    include_str!("common_passwords.txt")
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
});

/// Why a password is refused (the message names the rule).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    TooShort,
    TooLong,
    Common,
    Repetitive,
    Context,
}

impl Rule {
    pub fn message(self) -> String {
        match self {
            Rule::TooShort => {
                format!("password must be at least {MIN_CHARS} characters (rule: minimum length)")
            }
            Rule::TooLong => format!("password must be at most {MAX_BYTES} bytes (rule: maximum length)"),
            Rule::Common => {
                "password is too common: it appears in lists of breached passwords (rule: common password)"
                    .into()
            }
            Rule::Repetitive => {
                "password is a repeated or sequential pattern (rule: repetitive or sequential characters)"
                    .into()
            }
            Rule::Context => {
                "password must not contain your email or name (rule: context-specific words)".into()
            }
        }
    }
}

/// Checks `password` for an account with this email and display name.
pub fn check(password: &str, email: &str, name: &str) -> Result<(), CpError> {
    evaluate(password, email, name).map_err(|rule| invalid("password", rule.message()))
}

/// The first rule `password` breaks, if any.
pub fn evaluate(password: &str, email: &str, name: &str) -> Result<(), Rule> {
    if password.len() > MAX_BYTES {
        return Err(Rule::TooLong);
    }
    if password.chars().count() < MIN_CHARS {
        return Err(Rule::TooShort);
    }
    let lower = password.to_lowercase();
    let compact: String = lower.chars().filter(|c| !c.is_whitespace()).collect();
    if compact.chars().count() < MIN_CHARS / 2 || is_repetitive(&compact) {
        return Err(Rule::Repetitive);
    }
    // The password itself, or a common word with digits/symbols around it
    // ("Password2026!", "!!qwerty123").
    let core = lower.trim_matches(|c: char| !c.is_alphabetic());
    let stem = lower.trim_end_matches(|c: char| !c.is_alphabetic());
    if COMMON.contains(lower.as_str())
        || COMMON.contains(compact.as_str())
        || (core.chars().count() >= 4 && COMMON.contains(core))
        || (stem.chars().count() >= 4 && COMMON.contains(stem))
    {
        return Err(Rule::Common);
    }
    let email = email.trim().to_lowercase();
    let local = email.split('@').next().unwrap_or_default();
    let name = name.trim().to_lowercase();
    let words = [email.as_str(), local, name.as_str()];
    if words.iter().any(|w| w.chars().count() >= 4 && (lower.contains(w) || compact.contains(w))) {
        return Err(Rule::Context);
    }
    Ok(())
}

/// One character repeated, or a run of one period ("abababab", "1234567890").
fn is_repetitive(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 2 {
        return true;
    }
    let periodic =
        (1..=3).any(|p| p < chars.len() && chars.iter().enumerate().skip(p).all(|(i, c)| *c == chars[i - p]));
    let steps: Vec<i64> =
        chars.windows(2).map(|w| i64::from(u32::from(w[1])) - i64::from(u32::from(w[0]))).collect();
    let sequential = steps.iter().all(|d| *d == steps[0] && d.abs() <= 1);
    periodic || sequential
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_what_the_attack_tried() {
        let e = "ann@example.com";
        assert_eq!(evaluate("password", e, "Ann"), Err(Rule::TooShort));
        assert_eq!(evaluate("12345678", e, "Ann"), Err(Rule::TooShort));
        assert_eq!(evaluate("        ", e, "Ann"), Err(Rule::TooShort));
        assert_eq!(evaluate("          ", e, "Ann"), Err(Rule::Repetitive));
        assert_eq!(evaluate("ann@example.com", e, "Ann"), Err(Rule::Context));
        assert_eq!(evaluate("my-ann@example.com!", e, "Ann"), Err(Rule::Context));
        assert_eq!(evaluate("password1234", e, "Ann"), Err(Rule::Common));
        assert_eq!(evaluate("Password2026!", e, "Ann"), Err(Rule::Common));
        assert_eq!(evaluate("qwertyuiop", e, "Ann"), Err(Rule::Common));
        assert_eq!(evaluate("1234567890", e, "Ann"), Err(Rule::Common));
        assert_eq!(evaluate("aaaaaaaaaaaa", e, "Ann"), Err(Rule::Repetitive));
        assert_eq!(evaluate("abcabcabcabc", e, "Ann"), Err(Rule::Repetitive));
        assert_eq!(evaluate("zyxwvutsrqpo", e, "Ann"), Err(Rule::Repetitive));
        assert_eq!(
            evaluate("Johnathan Smithers", "js@example.com", "Johnathan Smithers"),
            Err(Rule::Context)
        );
        assert_eq!(evaluate(&"x".repeat(129), e, "Ann"), Err(Rule::TooLong));
    }

    #[test]
    fn accepts_reasonable_passphrases() {
        for ok in [
            "correct-horse-9",
            "new-password-1",
            "long-enough-1",
            "admin-password-1",
            "tr0ub4dor&3x",
            "ünïcödé pässwörd",
        ] {
            assert_eq!(evaluate(ok, "ann@example.com", "Ann"), Ok(()), "{ok}");
        }
        assert!(check("correct-horse-9", "ann@example.com", "").is_ok());
        let err = check("password1234", "ann@example.com", "").unwrap_err().to_string();
        assert!(err.contains("common"), "{err}");
    }
}
