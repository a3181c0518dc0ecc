//! What the limiter does when Redis cannot answer, and how it leases cells: plain data,
//! validated when the limiter is built.

use std::time::Duration;

use levee_core::ConfigError;
use levee_limit::Quota;

/// The longest burst span (`burst` emission intervals) a Redis quota may cover: 2^52 ns,
/// about 52 days. The server runs Lua 5.1, whose numbers are doubles; below this every
/// quantity the script computes is an exact integer (see `script.rs`). levee-limit's local
/// limiters allow longer spans ([`levee_limit::MAX_SPAN`]).
pub const MAX_SPAN: Duration = Duration::from_nanos(1 << 52);

/// What a check decides when Redis cannot: its circuit breaker is open, or the call failed
/// or timed out.
///
/// ```
/// use levee_limit::Quota;
/// use levee_redis::{FailMode, RedisRateLimiter};
///
/// // Three replicas: while Redis is away each admits a third of the quota on its own.
/// let open = RedisRateLimiter::builder(Quota::per_second(300)).fail_mode(FailMode::open(1.0 / 3.0));
/// // A limit that protects money is better refused than exceeded.
/// let closed = RedisRateLimiter::builder(Quota::per_minute(5)).fail_mode(FailMode::Closed);
/// # let _ = (open, closed);
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields))]
pub enum FailMode {
    /// Fail open, with bounds: each process limits each key locally to `share` of the quota
    /// (rate and burst; at least one cell each). With `share = 1 / replicas` the cluster as a
    /// whole stays near the quota while Redis is away.
    Open {
        /// The fraction of the quota each process admits on its own, `(0, 1]`.
        share: f64,
    },
    /// Fail closed: refuse every check until Redis answers again. The refusal's retry-after
    /// is the breaker's remaining open time, or one emission interval when the breaker has
    /// not opened yet.
    Closed,
}

impl FailMode {
    /// Fail open at `share` of the quota per process.
    #[must_use]
    pub const fn open(share: f64) -> Self {
        Self::Open { share }
    }

    /// The local quota for failing open at `share` of `quota`: rate and burst scaled down
    /// (rounded down, at least one).
    pub(crate) fn local_quota(share: f64, quota: Quota) -> Quota {
        let scale = |v: u32| ((f64::from(v) * share).floor() as u32).max(1);
        Quota::new(scale(quota.count), quota.period).with_burst(scale(quota.burst()))
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        match *self {
            Self::Open { share } if !(share > 0.0 && share <= 1.0) => {
                Err(ConfigError::new("fail_mode.share", format!("must be in (0, 1], got {share}")))
            }
            _ => Ok(()),
        }
    }
}

impl Default for FailMode {
    /// Fail open at a quarter of the quota per process.
    fn default() -> Self {
        Self::open(0.25)
    }
}

/// Lease mode: a process takes a small batch of cells from Redis in one round trip and
/// admits from it locally until it runs out or expires.
///
/// **Precision.** Every admitted cell was granted by the server's GCRA, so over a whole run
/// the total never exceeds `burst + rate x elapsed`. Over any window of length `w`, the
/// admissions can exceed the exact limit `burst + rate x w` by cells granted before the
/// window and spent in it: at most `max_batch - 1` per process, and at most what the server
/// grants in `ttl` (plus one round trip). So the excess is at most
/// `min(P x (max_batch - 1), rate x (ttl + rtt))` for `P` processes. In the other direction,
/// cells leased but not yet spent (at most `P x (max_batch - 1)`) are not available to the
/// other processes, and those that expire unspent are lost.
///
/// **Cost.** About one round trip per batch instead of per check. The batch adapts per key:
/// it starts at one cell (a cold key costs as much as without leases and loses nothing),
/// doubles each time a lease is spent before it expires, and halves when one expires
/// unspent, within `1..=max_batch`.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::Quota;
/// use levee_redis::{LeaseSettings, RedisRateLimiter};
///
/// // Hot keys take up to 32 cells per round trip, spent locally within 20 ms.
/// let builder = RedisRateLimiter::builder(Quota::per_second(10_000))
///     .lease(LeaseSettings { max_batch: 32, ttl: Duration::from_millis(20), ..LeaseSettings::default() });
/// # let _ = builder;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct LeaseSettings {
    /// The most cells one lease takes, `1..=MAX_BATCH`.
    pub max_batch: u32,
    /// How long leased cells stay usable, at least a millisecond.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub ttl: Duration,
    /// Keys with local lease state at most (hot keys; the least useful are evicted).
    pub max_keys: u64,
}

/// The largest lease batch (the cell count shares a word with the expiry).
pub const MAX_BATCH: u32 = (1 << 24) - 1;

impl Default for LeaseSettings {
    /// Batches of up to 16 cells, usable for 50 ms, for up to 10 000 hot keys.
    fn default() -> Self {
        Self { max_batch: 16, ttl: Duration::from_millis(50), max_keys: 10_000 }
    }
}

impl LeaseSettings {
    /// Batches of at most `max_batch` cells that stay usable for `ttl`.
    #[must_use]
    pub fn new(max_batch: u32, ttl: Duration) -> Self {
        Self { max_batch, ttl, ..Self::default() }
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::require_nonzero("lease.max_batch", self.max_batch)?;
        if self.max_batch > MAX_BATCH {
            return Err(ConfigError::new(
                "lease.max_batch",
                format!("must be at most {MAX_BATCH}, got {}", self.max_batch),
            ));
        }
        if self.ttl < Duration::from_millis(1) || self.ttl > Duration::from_secs(3600) {
            return Err(ConfigError::new("lease.ttl", "must be between 1 ms and 1 hour"));
        }
        ConfigError::require_nonzero("lease.max_keys", self.max_keys)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn local_quota_scales_rate_and_burst() {
        let q = FailMode::local_quota(0.25, Quota::per_second(100).with_burst(10));
        assert_eq!((q.count, q.burst()), (25, 2));
        let q = FailMode::local_quota(0.01, Quota::per_second(10));
        assert_eq!((q.count, q.burst()), (1, 1), "never below one cell");
        let q = FailMode::local_quota(1.0, Quota::per_minute(7));
        assert_eq!((q.count, q.burst(), q.period), (7, 7, Duration::from_secs(60)));
    }

    #[test]
    fn invalid_settings_name_themselves() {
        for share in [0.0, -1.0, 1.5, f64::NAN] {
            assert_eq!(FailMode::open(share).validate().unwrap_err().setting, "fail_mode.share");
        }
        assert!(FailMode::Closed.validate().is_ok());
        let bad = |s: LeaseSettings| s.validate().unwrap_err().setting;
        assert_eq!(bad(LeaseSettings::new(0, Duration::from_millis(5))), "lease.max_batch");
        assert_eq!(bad(LeaseSettings::new(1 << 24, Duration::from_millis(5))), "lease.max_batch");
        assert_eq!(bad(LeaseSettings::new(4, Duration::ZERO)), "lease.ttl");
        assert_eq!(
            bad(LeaseSettings { max_keys: 0, ..LeaseSettings::default() }),
            "lease.max_keys"
        );
        assert!(LeaseSettings::default().validate().is_ok());
    }

    #[test]
    fn settings_read_from_json() {
        let mode: FailMode = serde_json::from_str(r#"{"mode": "open", "share": 0.5}"#).unwrap();
        assert_eq!(mode, FailMode::open(0.5));
        let mode: FailMode = serde_json::from_str(r#"{"mode": "closed"}"#).unwrap();
        assert_eq!(mode, FailMode::Closed);
        let lease: LeaseSettings =
            serde_json::from_str(r#"{"max_batch": 8, "ttl": "20ms", "max_keys": 100}"#).unwrap();
        assert_eq!(
            lease,
            LeaseSettings { max_batch: 8, ttl: Duration::from_millis(20), max_keys: 100 }
        );
    }
}
