//! The state of the limit that applied to a call, carried as gRPC metadata
//! (`ratelimit-limit`, `ratelimit-remaining`, `ratelimit-reset`, the IETF
//! draft's names) and turned into the same HTTP headers by the edge.

use tonic::metadata::{MetadataMap, MetadataValue};

pub const LIMIT: &str = "ratelimit-limit";
pub const REMAINING: &str = "ratelimit-remaining";
/// Seconds until the window resets.
pub const RESET: &str = "ratelimit-reset";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitInfo {
    pub limit: u64,
    pub remaining: u64,
    pub reset_secs: u64,
}

impl RateLimitInfo {
    /// Writes the three entries (replacing earlier ones).
    pub fn write(&self, md: &mut MetadataMap) {
        md.insert(LIMIT, MetadataValue::from(self.limit));
        md.insert(REMAINING, MetadataValue::from(self.remaining));
        md.insert(RESET, MetadataValue::from(self.reset_secs));
    }

    /// Reads them back; `None` unless all three are present and numeric.
    pub fn read(md: &MetadataMap) -> Option<Self> {
        let num =
            |k: &str| md.get(k).and_then(|v| v.to_str().ok()).and_then(|s| s.trim().parse::<u64>().ok());
        Some(Self { limit: num(LIMIT)?, remaining: num(REMAINING)?, reset_secs: num(RESET)? })
    }

    /// The tighter of two: fewer calls left (then the later reset) wins.
    pub fn tighter(self, other: Self) -> Self {
        if (other.remaining, std::cmp::Reverse(other.reset_secs))
            < (self.remaining, std::cmp::Reverse(self.reset_secs))
        {
            other
        } else {
            self
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_tighter() {
        let a = RateLimitInfo { limit: 100, remaining: 3, reset_secs: 50 };
        let mut md = MetadataMap::new();
        a.write(&mut md);
        assert_eq!(RateLimitInfo::read(&md), Some(a));
        md.remove(RESET);
        assert_eq!(RateLimitInfo::read(&md), None);
        let b = RateLimitInfo { limit: 1000, remaining: 900, reset_secs: 10 };
        assert_eq!(a.tighter(b), a);
        assert_eq!(b.tighter(a), a);
    }
}
