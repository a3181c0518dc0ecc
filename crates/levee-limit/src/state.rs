//! What a rate limiter can tell its clients: the limit it enforces ([`LimitPolicy`]) and
//! where it stands now ([`LimitState`]), as HTTP's rate-limit header fields carry them
//! (`RateLimit-Policy: "default";q=100;w=60`, `RateLimit: "default";r=42;t=17`; see
//! [`RateLimitHeaders`](crate::tower::RateLimitHeaders) with the `http` feature).

use std::time::Duration;

use crate::quota::Quota;
use crate::window::WindowQuota;

/// A rate limiter's state at one instant, as a client can act on it.
///
/// `remaining` is what can be admitted right now; `reset` is how long until the limiter is
/// full again (its whole burst, or its whole window limit, admissible), zero when it is
/// full. What that means per algorithm ([`RateLimit::state`](crate::RateLimit::state)):
///
/// | limiter | `remaining` | `reset` |
/// |---|---|---|
/// | GCRA ([`RateLimiter`](crate::RateLimiter), [`Pacer`](crate::Pacer), a key of a [`KeyedRateLimiter`](crate::KeyedRateLimiter)) | cells admissible now, one at a time or at once | until the theoretical arrival time: the burst is back |
/// | [`WarmUpLimiter`](crate::WarmUpLimiter) | a lower bound: cells admissible now one at a time at the current (cold) spacing | as GCRA |
/// | [`FixedWindowLimiter`](crate::FixedWindowLimiter) | the limit less this window's count | until the window ends (zero when nothing is counted) |
/// | [`SlidingWindowLimiter`](crate::SlidingWindowLimiter) | the limit less the window's count | until the newest counted bucket leaves the window |
///
/// A snapshot: other callers may take the cells first.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{LimitState, Quota, RateLimit, RateLimiter};
///
/// let limiter = RateLimiter::with_clock(Quota::per_second(10).with_burst(5), ManualClock::new())?;
/// limiter.check_n(2)?;
/// assert_eq!(limiter.state(), LimitState { remaining: 3, reset: Duration::from_millis(200) });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct LimitState {
    /// Cells admissible now.
    pub remaining: u32,
    /// Time until the limiter is full again; zero when it is.
    pub reset: Duration,
}

/// The limit a rate limiter enforces, as clients are told it: `quota` cells per `window`
/// (a quota's count per period; a window limit per window). The burst is not part of it:
/// [`LimitState::remaining`] tells how much can go at once.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::{LimitPolicy, Quota, WindowQuota};
///
/// let gcra = LimitPolicy::from(Quota::per_minute(100).with_burst(10));
/// assert_eq!(gcra, LimitPolicy { quota: 100, window: Duration::from_secs(60) });
/// assert_eq!(LimitPolicy::from(WindowQuota::per_second(5)).quota, 5);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LimitPolicy {
    /// Cells per `window` in the long run.
    pub quota: u32,
    /// The time `quota` refers to.
    pub window: Duration,
}

impl From<Quota> for LimitPolicy {
    fn from(quota: Quota) -> Self {
        Self { quota: quota.count, window: quota.period }
    }
}

impl From<WindowQuota> for LimitPolicy {
    fn from(quota: WindowQuota) -> Self {
        Self { quota: quota.limit, window: quota.window }
    }
}
