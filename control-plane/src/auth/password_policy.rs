//! The password policy of NIST SP 800-63B (§5.1.1.2): a minimum length, no
//! composition rules, and a check against passwords that are known to be
//! common or breached, against words of the account's own context (its
//! email, the email's local part and domain, its name), and a strength
//! estimate by `zxcvbn` (Dropbox's estimator: dictionaries, keyboard
//! patterns, repeats, sequences, dates, l33t) fed with those same words,
//! which must reach [`MIN_SCORE`]. Each refusal names the rule that was
//! broken. Applied wherever a password is set: sign-up, password change, the
//! bootstrap administrator (`WAGATE_ADMIN_PASSWORD`, the embedded `wagate`).

use std::collections::HashSet;
use std::sync::LazyLock;

use crate::error::{CpError, invalid};

/// Minimum length in characters (NIST: at least 8; we ask for 10).
pub const MIN_CHARS: usize = 10;
/// Maximum length in bytes (argon2 input stays bounded).
pub const MAX_BYTES: usize = 128;
/// Minimum `zxcvbn` score (0-4): 3 is "safely unguessable: moderate
/// protection from an offline slow-hash scenario" (about 10^8 guesses or more).
pub const MIN_SCORE: u8 = 3;

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
    Weak,
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
            Rule::Context => "password must not be built from your email, its domain or your name \
                 (rule: context-specific words)"
                .into(),
            Rule::Weak => "password is too easy to guess: use a longer passphrase of unrelated words \
                 (rule: strength estimate)"
                .into(),
        }
    }
}

/// Checks `password` for an account with this email and display name.
pub fn check(password: &str, email: &str, name: &str) -> Result<(), CpError> {
    evaluate(password, email, name).map_err(|rule| {
        tracing::debug!(rule = ?rule, "password refused by the policy");
        invalid("password", rule.message())
    })
}

/// The words of the account's context: the email, its local part, its
/// domain and the domain's labels (but the top-level one), the name, the
/// name without spaces and each of its words. Lower case, 3+ characters.
fn context_words(email: &str, name: &str) -> Vec<String> {
    let email = email.trim().to_lowercase();
    let (local, domain) = email.split_once('@').unwrap_or((email.as_str(), ""));
    let name = name.trim().to_lowercase();
    let mut words = vec![email.clone(), local.to_owned(), domain.to_owned()];
    let labels: Vec<&str> = domain.split('.').collect();
    words.extend(labels.iter().take(labels.len().saturating_sub(1)).map(|l| (*l).to_owned()));
    words.extend(local.split(|c: char| !c.is_alphanumeric()).map(str::to_owned));
    words.push(name.clone());
    words.push(name.chars().filter(|c| c.is_alphanumeric()).collect());
    words.extend(name.split(|c: char| !c.is_alphanumeric()).map(str::to_owned));
    words.retain(|w| w.chars().count() >= 3);
    words.sort_by_key(|w| std::cmp::Reverse(w.chars().count()));
    words.dedup();
    words
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
    let words = context_words(email, name);
    let inputs: Vec<&str> = words.iter().map(String::as_str).collect();
    // Built from the context: what is left once its words are taken out must
    // be strong on its own ("example2026!!", "AnnLee1990").
    let mut rest = lower.clone();
    for w in &words {
        rest = rest.replace(w.as_str(), "");
    }
    if rest != lower && !strong(&rest, &[]) {
        return Err(Rule::Context);
    }
    if !strong(password, &inputs) {
        return Err(Rule::Weak);
    }
    Ok(())
}

/// `zxcvbn`'s score of `password`, knowing `inputs`, is at least [`MIN_SCORE`].
fn strong(password: &str, inputs: &[&str]) -> bool {
    !password.is_empty() && u8::from(zxcvbn::zxcvbn(password, inputs).score()) >= MIN_SCORE
}

/// A short unit repeated ("abababab", "passwordpassword", "Xy7!Xy7!Xy7!":
/// at least two whole copies, the last may be cut), or a run of one step
/// ("1234567890", "zyxwvutsrq").
fn is_repetitive(s: &str) -> bool {
    let chars: Vec<char> = s.chars().collect();
    if chars.len() < 2 {
        return true;
    }
    let periodic =
        (1..=chars.len() / 2).any(|p| chars.iter().enumerate().skip(p).all(|(i, c)| *c == chars[i - p]));
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

    /// What issue 20 saw accepted: a repeated word, the email's domain +
    /// digits, the user's name + digits.
    #[test]
    fn refuses_repeats_domain_and_name_with_digits() {
        let e = "ann@example.com";
        assert_eq!(evaluate("passwordpassword", e, "Ann Lee"), Err(Rule::Repetitive));
        assert_eq!(evaluate("Xy7!Xy7!Xy7!", e, "Ann Lee"), Err(Rule::Repetitive));
        assert_eq!(evaluate("example12345", e, "Ann Lee"), Err(Rule::Context));
        assert_eq!(evaluate("Example.com2026", e, "Ann Lee"), Err(Rule::Context));
        assert_eq!(evaluate("annlee12345", e, "Ann Lee"), Err(Rule::Context));
        assert_eq!(evaluate("AnnLee2026!!", e, "Ann Lee"), Err(Rule::Context));
        assert_eq!(evaluate("Ann-Lee-1990", e, "Ann Lee"), Err(Rule::Context));
        assert_eq!(evaluate("ann1234567", e, "Ann"), Err(Rule::Context));
        assert_eq!(evaluate("johnathan2026", "js@example.com", "Johnathan"), Err(Rule::Context));
        // weak without any context word
        assert_eq!(evaluate("Mississippi20", e, "Ann"), Err(Rule::Weak));
        assert_eq!(evaluate("12/31/1999-x", e, "Ann"), Err(Rule::Weak));
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
            "fleet-keeper-77",
            "kq8-Vandal-Orbit",
            "ann-correct-horse-battery",
        ] {
            assert_eq!(evaluate(ok, "ann@example.com", "Ann"), Ok(()), "{ok}");
        }
        assert!(check("correct-horse-9", "ann@example.com", "").is_ok());
        let err = check("password1234", "ann@example.com", "").unwrap_err().to_string();
        assert!(err.contains("common"), "{err}");
    }
}
