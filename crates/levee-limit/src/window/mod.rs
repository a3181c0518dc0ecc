//! Window counters: "at most N per window", the way a shop operator states a limit.
//!
//! - [`FixedWindowLimiter`]: one counter per aligned window (`[k*w, (k+1)*w)`); simple and
//!   exact within each window, but up to 2N can pass around a window boundary.
//! - [`SlidingWindowLimiter`]: a ring of time buckets (Sentinel's `LeapArray`); the limit
//!   applies to every run of `buckets` consecutive buckets, so the boundary effect shrinks to
//!   one bucket.
//!
//! Both keep each counter in one atomic word that packs the window (or bucket) number with
//! the count, so moving to a new window and counting in it is a single compare-and-swap: a
//! stale bucket is reset and counted at once, and no concurrent count can be lost in between.

mod fixed;
mod sliding;

pub use fixed::{FixedWindowBuilder, FixedWindowLimiter};
pub use sliding::{MAX_BUCKETS, SlidingWindowBuilder, SlidingWindowLimiter, SlidingWindowSettings};

use std::time::Duration;

use levee_core::{ConfigError, nanos};

use crate::meter::at_most_max_span;

/// Bits of a window word holding the count.
const COUNT_BITS: u32 = 24;
/// The largest count a window word holds, and so the largest window limit: 16,777,215.
pub const MAX_WINDOW_LIMIT: u32 = (1 << COUNT_BITS) - 1;
/// Window numbers are kept modulo 2^40. A counter untouched for exactly a multiple of 2^40
/// windows would read its old count as current, which can only refuse more, never admit
/// more (and 2^40 windows of 1 ms are 34 years).
const INDEX_MASK: u64 = (1 << 40) - 1;

/// A window limit: at most `limit` cells per `window`.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::WindowQuota;
///
/// let quota = WindowQuota::per_minute(600);
/// assert_eq!(quota, WindowQuota::new(600, Duration::from_secs(60)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct WindowQuota {
    /// Most cells admitted per window (1 to [`MAX_WINDOW_LIMIT`]).
    pub limit: u32,
    /// The window length.
    pub window: Duration,
}

impl WindowQuota {
    /// `limit` cells per `window`.
    #[must_use]
    pub const fn new(limit: u32, window: Duration) -> Self {
        Self { limit, window }
    }

    /// `limit` cells per second.
    #[must_use]
    pub const fn per_second(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(1))
    }

    /// `limit` cells per minute.
    #[must_use]
    pub const fn per_minute(limit: u32) -> Self {
        Self::new(limit, Duration::from_secs(60))
    }

    /// Checks the quota; returns `(limit, window in ns)`.
    fn validate(&self) -> Result<(u32, u64), ConfigError> {
        let limit = ConfigError::require_nonzero("limit", self.limit)?;
        if limit > MAX_WINDOW_LIMIT {
            return Err(ConfigError::new(
                "limit",
                format!("must be at most {MAX_WINDOW_LIMIT}, got {limit}"),
            ));
        }
        let window = ConfigError::require_positive("window", self.window)?;
        at_most_max_span("window", window)?;
        Ok((limit, nanos(window)))
    }
}

#[inline]
const fn pack(index: u64, count: u32) -> u64 {
    ((index & INDEX_MASK) << COUNT_BITS) | count as u64
}

#[inline]
const fn index_of(word: u64) -> u64 {
    word >> COUNT_BITS
}

#[inline]
const fn count_of(word: u64) -> u32 {
    (word & MAX_WINDOW_LIMIT as u64) as u32
}

/// How many windows `later` is after `earlier`, both taken modulo 2^40.
#[inline]
const fn distance(later: u64, earlier: u64) -> u64 {
    later.wrapping_sub(earlier) & INDEX_MASK
}

/// A window word read against the window number of the caller's clock reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    /// The word counts the caller's window; this many so far.
    Current(u32),
    /// The word is from an earlier window: start the caller's window at zero.
    Stale,
    /// The word is from a *later* window: another thread read the clock after the caller
    /// and moved on. The caller re-reads the clock once; if the word still looks later, it
    /// is in fact 2^40 windows old (the number wrapped) and is treated as stale.
    Later,
}

#[inline]
const fn classify(word: u64, window: u64) -> Slot {
    let ahead = distance(index_of(word), window);
    if ahead == 0 {
        Slot::Current(count_of(word))
    } else if ahead < (1 << 39) {
        Slot::Later
    } else {
        Slot::Stale
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packing_round_trips_and_wraps() {
        let w = pack(INDEX_MASK + 5, 77);
        assert_eq!((index_of(w), count_of(w)), (4, 77));
        assert_eq!(distance(3, INDEX_MASK), 4);
        assert_eq!(distance(7, 7), 0);
        assert_eq!(classify(pack(10, 3), 10), Slot::Current(3));
        assert_eq!(classify(pack(12, 3), 10), Slot::Later);
        assert_eq!(classify(pack(9, 3), 10), Slot::Stale);
        assert_eq!(classify(pack(10, 3), 10 + (1 << 40)), Slot::Current(3), "wraps");
    }

    #[test]
    fn validates_limits() {
        assert_eq!(WindowQuota::per_second(0).validate().unwrap_err().setting, "limit");
        assert_eq!(
            WindowQuota::per_second(MAX_WINDOW_LIMIT + 1).validate().unwrap_err().setting,
            "limit"
        );
        assert_eq!(WindowQuota::new(1, Duration::ZERO).validate().unwrap_err().setting, "window");
        assert_eq!(WindowQuota::new(1, Duration::MAX).validate().unwrap_err().setting, "window");
        assert_eq!(WindowQuota::per_minute(5).validate(), Ok((5, 60_000_000_000)));
    }
}
