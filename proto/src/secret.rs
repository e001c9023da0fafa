//! Strength of configured secrets: one rule for every binary (control plane,
//! edge gateway, worker), so a secret shared between them is judged alike.
//!
//! A secret is refused when it is a known placeholder, shorter than
//! [`MIN_SECRET_BYTES`], made of fewer than [`MIN_DISTINCT_CHARS`] distinct
//! characters, or when its estimated entropy ([`estimated_bits`]) is below
//! [`MIN_ESTIMATED_BITS`]. The estimate is a small cousin of zxcvbn's: each
//! character costs the bits of the character classes the secret uses
//! (digits, lower case, upper case, symbols), except that a character the
//! previous ones predict costs one bit — a repeat of the previous one, its
//! neighbour in the alphabet (`0-9a-z`) or on a keyboard row, or the next
//! step of an arithmetic run (`acegi`, `97531`) — and a copy of an earlier
//! stretch of four characters or more costs only the bits of a reference to
//! it. `openssl rand -hex 32` (64 characters, about 250 estimated bits) is
//! far above the bar; `0123456789abcdef0123456789abcdef` (about 30) and
//! `abcdefghijklmnopqrstuvwxyz012345` (about 40) are far below it. Words are
//! not recognised: the estimate catches runs and repeats, not passphrases.

/// Minimum length of a configured secret, in bytes.
pub const MIN_SECRET_BYTES: usize = 32;

/// Fewer distinct characters than this cannot be random.
pub const MIN_DISTINCT_CHARS: usize = 10;

/// Minimum [`estimated_bits`] of a configured secret. A uniformly random
/// 32-character hex string (16 random bytes) estimates at about 130 bits
/// (standard deviation about 10), so the bar refuses runs and repeats
/// without refusing random values.
pub const MIN_ESTIMATED_BITS: f64 = 80.0;

/// Only this many characters are analysed (a longer secret's tail only adds).
const ANALYSED_CHARS: usize = 256;

/// Shortest copy of an earlier stretch that counts as a repeat.
const MIN_REPEAT: usize = 4;

/// Placeholders seen in examples and docs (ours and common ones).
const PLACEHOLDERS: &[&str] = &[
    "change-me",
    "changeme",
    "change_me",
    "replace-me",
    "placeholder",
    "example",
    "dev-worker-token",
    "your-secret",
    "secret-key",
];

/// Orders in which a next character is predictable from the previous one
/// (compared in lower case): the alphabet and the rows of a US keyboard,
/// unshifted and shifted.
const SEQUENCES: &[&str] = &[
    "0123456789abcdefghijklmnopqrstuvwxyz",
    "`1234567890-=",
    "~!@#$%^&*()_+",
    "qwertyuiop[]\\",
    "qwertyuiop{}|",
    "asdfghjkl;'",
    "asdfghjkl:\"",
    "zxcvbnm,./",
    "zxcvbnm<>?",
];

/// A refused secret: the variable it came from and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name} is too weak: {reason}; generate one with `openssl rand -hex 32`")]
pub struct WeakSecret {
    /// The environment variable (or option) that holds it.
    pub name: &'static str,
    pub reason: &'static str,
}

/// Refuses a secret that is a known placeholder, short, made of too few
/// distinct characters, or predictable (see the module documentation).
pub fn check(name: &'static str, value: &str) -> Result<(), WeakSecret> {
    let weak = |reason| Err(WeakSecret { name, reason });
    let lower = value.to_ascii_lowercase();
    if PLACEHOLDERS.iter().any(|p| lower.contains(p)) {
        return weak("it is a known placeholder");
    }
    if value.len() < MIN_SECRET_BYTES {
        return weak("it must be at least 32 bytes");
    }
    let distinct: std::collections::HashSet<char> = value.chars().collect();
    if distinct.len() < MIN_DISTINCT_CHARS {
        return weak("it has too few distinct characters to be random");
    }
    if estimated_bits(value) < MIN_ESTIMATED_BITS {
        return weak("it is predictable (character runs, keyboard runs or repeats), not random");
    }
    Ok(())
}

/// Estimated entropy of `value` in bits (see the module documentation).
pub fn estimated_bits(value: &str) -> f64 {
    let chars: Vec<char> = value.chars().take(ANALYSED_CHARS).collect();
    let per_char = cardinality(&chars).log2();
    let mut bits = 0.0;
    let mut i = 0;
    while i < chars.len() {
        let repeat = longest_earlier_copy(&chars, i);
        if repeat >= MIN_REPEAT {
            // A reference: where the copy starts and how long it is.
            bits += (i as f64).log2() + (repeat as f64).log2() + 1.0;
            i += repeat;
            continue;
        }
        bits += if predictable(&chars, i) { 1.0 } else { per_char };
        i += 1;
    }
    bits
}

/// Size of the alphabet the secret draws from, by the classes it uses.
fn cardinality(chars: &[char]) -> f64 {
    let has = |f: fn(&char) -> bool| chars.iter().any(f);
    let mut n = 0.0;
    if has(char::is_ascii_digit) {
        n += 10.0;
    }
    if has(char::is_ascii_lowercase) {
        n += 26.0;
    }
    if has(char::is_ascii_uppercase) {
        n += 26.0;
    }
    if has(|c| c.is_ascii() && !c.is_ascii_alphanumeric()) {
        n += 33.0;
    }
    if has(|c| !c.is_ascii()) {
        n += 100.0;
    }
    f64::max(n, 2.0)
}

/// Whether `chars[i]` follows from the characters before it.
fn predictable(chars: &[char], i: usize) -> bool {
    let Some(prev) = i.checked_sub(1).map(|p| chars[p].to_ascii_lowercase()) else {
        return false;
    };
    let next = chars[i].to_ascii_lowercase();
    if next == prev || SEQUENCES.iter().any(|s| adjacent(s, prev, next)) {
        return true;
    }
    // The next step of an arithmetic run (`acegi`, `97531`).
    if let Some(before) = i.checked_sub(2).map(|p| chars[p].to_ascii_lowercase()) {
        let step = i64::from(u32::from(prev)) - i64::from(u32::from(before));
        let now = i64::from(u32::from(next)) - i64::from(u32::from(prev));
        return step == now && (1..=5).contains(&step.abs());
    }
    false
}

/// `a` and `b` are neighbours in `sequence`.
fn adjacent(sequence: &str, a: char, b: char) -> bool {
    let (Some(x), Some(y)) = (sequence.find(a), sequence.find(b)) else {
        return false;
    };
    x.abs_diff(y) == 1
}

/// Length of the longest stretch starting at `i` that also starts earlier
/// (overlapping copies count: `abababab` is `ab` then one copy).
fn longest_earlier_copy(chars: &[char], i: usize) -> usize {
    (0..i).map(|j| chars[i..].iter().zip(&chars[j..]).take_while(|(a, b)| a == b).count()).max().unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Output of `openssl rand -hex 32` and `openssl rand -base64 32`.
    const RANDOM: &[&str] = &[
        "3f9c1e07b2d84a6e95c0f1d7a3b86e24c9d05f1a7e3b2c8d4f60a19e7b3c5d28",
        "a41e9f03c7d2586b0e1f4a9c3d7b2e8f60c5a1d9e3b7f2048c6d1a5e9b3f7c20",
        "d0c4b1f78e2a93650f1c7e4d9a2b8c3e5f6071d2a9c4e8b3f1d6a07e5c9b2f48",
        "q8Yt1lC4zV0nW+u3R9sXo7eP2mJk5bHd6aGf/Ez1Lw4=",
        "Zr3kP9vQm2xT7bN5cW1yH8jL4dF6gS0a",
    ];

    #[test]
    fn runs_and_repeats_are_refused() {
        for weak in [
            "0123456789abcdef0123456789abcdef",
            "abcdefghijklmnopqrstuvwxyz012345",
            "zyxwvutsrqponmlkjihgfedcba987654",
            "qwertyuiopasdfghjklzxcvbnm1234567890",
            "acegikmoqsuwy02468bdfhjlnprtvxz13579",
            "k8Jq2mZpXw3Rk8Jq2mZpXw3Rk8Jq2mZpXw3R",
            "Tr0ub4dor&3Tr0ub4dor&3Tr0ub4dor&3",
        ] {
            let e = check("JWT_SECRET", weak).expect_err(weak);
            assert!(e.to_string().contains("JWT_SECRET is too weak"), "{e}");
            assert!(estimated_bits(weak) < MIN_ESTIMATED_BITS, "{weak}: {}", estimated_bits(weak));
        }
        assert!(estimated_bits("0123456789abcdef0123456789abcdef") < 40.0);
        assert!(estimated_bits("abcdefghijklmnopqrstuvwxyz012345") < 45.0);
    }

    #[test]
    fn placeholders_short_and_monotonous_values_are_refused() {
        let reason = |v: &str| check("X", v).map_err(|e| e.reason).expect_err(v);
        assert!(reason("change-me-to-64-random-hex-chars-please").contains("placeholder"));
        assert!(reason("s3cr3t-but-short").contains("32 bytes"));
        assert!(reason("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa").contains("distinct"));
    }

    #[test]
    fn random_values_pass() {
        for v in RANDOM {
            assert_eq!(check("JWT_SECRET", v), Ok(()), "{v}: {}", estimated_bits(v));
        }
        // Many random hex values of 64 (`openssl rand -hex 32`) and of 32
        // characters (16 bytes, the shortest accepted): none is refused.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut lowest = f64::MAX;
        for len in [32, 64] {
            for _ in 0..5_000 {
                let v: String =
                    (0..len).map(|_| char::from(b"0123456789abcdef"[(next() % 16) as usize])).collect();
                lowest = lowest.min(estimated_bits(&v));
                assert_eq!(check("WAGATE_INTERNAL_TOKEN", &v), Ok(()), "{v}: {}", estimated_bits(&v));
            }
        }
        assert!(lowest > MIN_ESTIMATED_BITS + 10.0, "lowest estimate {lowest}");
        // A per-worker token as the control plane issues it.
        let token = format!("wkt_{}", RANDOM[0]);
        assert_eq!(check("WORKER_AUTH_TOKEN", &token), Ok(()));
    }
}
