//! The rate limiter's check path as it was before quotas could change at run time (one
//! fixed `Gcra` beside the state word), kept only so that the `reconfig` benchmark can put
//! the fixed and the reconfigurable read paths side by side in one criterion group (issue
//! 22 asks that the second cost at most 5 % more). Not part of the API.

use levee_core::sync::{AtomicU64, CachePadded};
use levee_core::{Clock, ConfigError, FastClock};

use crate::error::Throttled;
use crate::meter::{LimiterBuilder, Meter};
use crate::quota::{Gcra, Quota};

/// What the fixed limiter's `check` touched (the same layout as before issue 22).
struct Hot<C> {
    tat: CachePadded<AtomicU64>,
    gcra: Gcra,
    meter: Meter<C>,
}

/// A GCRA limiter whose quota is fixed at build time: the pre-issue-22 `RateLimiter` check
/// path, for benchmarks only.
pub struct FixedRateLimiter<C = FastClock> {
    hot: CachePadded<Hot<C>>,
}

impl FixedRateLimiter<FastClock> {
    /// A fixed limiter for `quota` on the default clock.
    ///
    /// # Errors
    /// A [`ConfigError`] when the quota is invalid.
    pub fn new(quota: Quota) -> Result<Self, ConfigError> {
        let gcra = quota.gcra()?;
        let (_, meter) = LimiterBuilder::<Quota, FastClock>::new(quota, false).into_parts();
        let tat = CachePadded::new(AtomicU64::new(0));
        Ok(Self { hot: CachePadded::new(Hot { tat, gcra, meter }) })
    }
}

impl<C: Clock> FixedRateLimiter<C> {
    /// Admits one cell now (as `RateLimiter::check`).
    ///
    /// # Errors
    /// [`Throttled`] when the quota is used up.
    #[inline]
    pub fn check(&self) -> Result<(), Throttled> {
        self.check_at(self.hot.meter.now())
    }

    /// Admits one cell at `now` (as `RateLimiter::check_at`).
    ///
    /// # Errors
    /// [`Throttled`] when the quota is used up at `now`.
    #[inline]
    pub fn check_at(&self, now: u64) -> Result<(), Throttled> {
        let hot = &*self.hot;
        hot.meter.settle(hot.gcra.check(&hot.tat, now))
    }
}
