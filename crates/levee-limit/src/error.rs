//! Refusals and errors: values that say what happened and when to come back.

use std::fmt;
use std::time::Duration;

/// Anything that can tell a caller how long to back off before trying again: levee-core's
/// trait, re-exported here. Every refusal in this crate implements it, so retry policies and
/// HTTP layers (`Retry-After`) can honour them without knowing which limiter refused.
pub use levee_core::RetryAfter;

/// A rate limiter said "not now": the request would exceed the quota.
///
/// It records the clock reading at which the decision was made and the earliest reading at
/// which the same request can conform, so callers can sleep exactly long enough (other
/// callers may take the capacity first, so conforming then is likely, not guaranteed).
///
/// ```
/// use std::time::Duration;
/// use levee_limit::Throttled;
///
/// let refusal = Throttled::new(1_000, 38_000_000);
/// assert_eq!(refusal.retry_after(), Duration::from_nanos(37_999_000));
/// assert_eq!(refusal.retry_after_from(40_000_000), Duration::ZERO);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Throttled {
    decided_at: u64,
    earliest: u64,
}

impl Throttled {
    /// A refusal decided at clock reading `decided_at` that can conform at `earliest`.
    #[inline]
    #[must_use]
    pub const fn new(decided_at: u64, earliest: u64) -> Self {
        Self { decided_at, earliest }
    }

    /// How long after the decision the request can conform.
    #[inline]
    #[must_use]
    pub const fn retry_after(&self) -> Duration {
        Duration::from_nanos(self.earliest.saturating_sub(self.decided_at))
    }

    /// How long after clock reading `now` the request can conform (zero if already past).
    #[inline]
    #[must_use]
    pub const fn retry_after_from(&self, now: u64) -> Duration {
        Duration::from_nanos(self.earliest.saturating_sub(now))
    }

    /// The limiter clock's reading (nanoseconds) at which the request can conform.
    #[inline]
    #[must_use]
    pub const fn earliest(&self) -> u64 {
        self.earliest
    }

    /// The limiter clock's reading (nanoseconds) when the request was refused.
    #[inline]
    #[must_use]
    pub const fn decided_at(&self) -> u64 {
        self.decided_at
    }
}

impl fmt::Display for Throttled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "rate limited, retry after {:?}", self.retry_after())
    }
}

impl std::error::Error for Throttled {}

impl RetryAfter for Throttled {
    fn retry_after(&self) -> Option<Duration> {
        Some(Throttled::retry_after(self))
    }
}

/// Why [`check_n`](crate::RateLimiter::check_n) (or another batch admission) refused.
///
/// ```
/// use levee_limit::{CheckNError, Quota, RateLimiter};
///
/// let limiter = RateLimiter::new(Quota::per_second(10).with_burst(4))?;
/// limiter.check_n(3)?;
/// match limiter.check_n(2) {
///     Err(CheckNError::Throttled(t)) => assert!(!t.retry_after().is_zero()),
///     other => panic!("expected a throttle, got {other:?}"),
/// }
/// assert!(matches!(limiter.check_n(5), Err(CheckNError::InsufficientCapacity(_))));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum CheckNError {
    /// Not now: the cells fit the burst but the limiter has not refilled enough yet.
    #[error(transparent)]
    Throttled(#[from] Throttled),
    /// Never: more cells than the burst can ever admit at once.
    #[error(transparent)]
    InsufficientCapacity(#[from] InsufficientCapacity),
}

/// More cells were asked for at once than the limiter's burst: waiting does not help, split
/// the batch (or raise the burst).
///
/// ```
/// use levee_limit::{CheckNError, InsufficientCapacity, Quota, RateLimiter, RetryAfter};
///
/// let limiter = RateLimiter::new(Quota::per_second(10).with_burst(4))?;
/// let Err(CheckNError::InsufficientCapacity(err)) = limiter.check_n(9) else { panic!() };
/// assert_eq!(err, InsufficientCapacity { requested: 9, burst: 4 });
/// assert_eq!(RetryAfter::retry_after(&err), None); // waiting never helps: split the batch
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{requested} cells exceed the burst of {burst} and can never be admitted at once")]
pub struct InsufficientCapacity {
    /// Cells asked for.
    pub requested: u32,
    /// The most the limiter admits at once.
    pub burst: u32,
}

impl RetryAfter for InsufficientCapacity {
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl RetryAfter for CheckNError {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled(t) => Some(t.retry_after()),
            Self::InsufficientCapacity(_) => None,
        }
    }
}

impl CheckNError {
    /// The refusal, if waiting can help.
    #[must_use]
    pub const fn throttled(&self) -> Option<Throttled> {
        match self {
            Self::Throttled(t) => Some(*t),
            Self::InsufficientCapacity(_) => None,
        }
    }

    /// The refusal of a request known to fit the burst (one cell, whose burst is at least
    /// one, or `n` checked against a burst that never changes): it can only be "not now".
    #[inline]
    #[track_caller]
    pub(crate) fn expect_throttled(self) -> Throttled {
        match self {
            Self::Throttled(t) => t,
            Self::InsufficientCapacity(_) => unreachable!("the request was known to fit"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_describe_themselves() {
        let t = Throttled::new(10, 2_000_010);
        assert_eq!(t.to_string(), "rate limited, retry after 2ms");
        assert_eq!((t.decided_at(), t.earliest()), (10, 2_000_010));
        assert_eq!(RetryAfter::retry_after(&t), Some(Duration::from_millis(2)));
        let e = CheckNError::from(t);
        assert_eq!(e.retry_after(), Some(Duration::from_millis(2)));
        assert_eq!(e.throttled(), Some(t));
        let e = CheckNError::from(InsufficientCapacity { requested: 9, burst: 5 });
        assert_eq!(e.retry_after(), None);
        assert_eq!(
            e.to_string(),
            "9 cells exceed the burst of 5 and can never be admitted at once"
        );
    }
}
