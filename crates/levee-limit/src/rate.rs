//! The direct (unkeyed) GCRA rate limiter.

use std::fmt;

use levee_core::sync::{AtomicU64, CachePadded, Ordering};
use levee_core::{Clock, ConfigError, FastClock};

use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::meter::{LimiterBuilder, Meter};
use crate::quota::{Gcra, Quota};
use crate::state::LimitState;
use crate::stats::RateStats;
use crate::wait::Jitter;

/// What `check` touches. The state word has a cache line of its own: under contention
/// another core's CAS then invalidates only that line, and the parameters read alongside it
/// stay cached (measured: about 5% less CPU per check with two threads).
struct Hot<C> {
    tat: CachePadded<AtomicU64>,
    gcra: Gcra,
    meter: Meter<C>,
}

/// A lock-free rate limiter: GCRA on a single `AtomicU64`.
///
/// `check()` reads the clock once, loads the state and, when it admits, makes one
/// compare-and-swap; it never locks, never allocates, and a refusal ([`Throttled`]) says when
/// to come back. Share it by reference or in an `Arc`; it is `Send + Sync`.
///
/// The clock is a type parameter: [`FastClock`] (the TSC, the default) in production,
/// [`ManualClock`](levee_core::ManualClock) in tests.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{Quota, RateLimiter};
///
/// let clock = ManualClock::new();
/// // 10 per second, bursts of up to 2.
/// let limiter = RateLimiter::with_clock(Quota::per_second(10).with_burst(2), clock.clone())?;
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// let refusal = limiter.check().unwrap_err();
/// assert_eq!(refusal.retry_after(), Duration::from_millis(100));
///
/// clock.advance(refusal.retry_after());
/// assert!(limiter.check().is_ok());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct RateLimiter<C = FastClock> {
    hot: CachePadded<Hot<C>>,
    quota: Quota,
}

/// Builds a [`RateLimiter`]: quota, clock, listeners (see [`LimiterBuilder`]).
pub type RateLimiterBuilder<C = FastClock> = LimiterBuilder<Quota, C>;

impl<C> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimiter")
            .field("quota", &self.quota)
            .field("tat", &self.hot.tat.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RateLimiter<FastClock> {
    /// A limiter for `quota` on the default clock.
    ///
    /// # Errors
    /// A [`ConfigError`] when the quota is invalid (see [`Quota::gcra`]).
    pub fn new(quota: Quota) -> Result<Self, ConfigError> {
        Self::builder(quota).build()
    }

    /// A builder for `quota`, to set the clock or add listeners.
    pub fn builder(quota: Quota) -> RateLimiterBuilder<FastClock> {
        LimiterBuilder::new(quota, false)
    }
}

impl<C: Clock> RateLimiter<C> {
    /// A limiter for `quota` reading time from `clock`.
    ///
    /// # Errors
    /// A [`ConfigError`] when the quota is invalid (see [`Quota::gcra`]).
    pub fn with_clock(quota: Quota, clock: C) -> Result<Self, ConfigError> {
        RateLimiter::builder(quota).clock(clock).build()
    }

    /// Admits one cell now, or says when it could be admitted.
    ///
    /// # Errors
    /// [`Throttled`] when the quota is used up; nothing is consumed.
    #[inline]
    pub fn check(&self) -> Result<(), Throttled> {
        self.check_at(self.hot.meter.now())
    }

    /// Admits `n` cells at once (all or none). `n == 0` always succeeds and consumes nothing.
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they do not fit now (nothing is consumed);
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the burst, so they never will.
    #[inline]
    pub fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        self.check_n_at(n, self.hot.meter.now())
    }

    /// As [`check`](Self::check), judged at clock reading `now` that the caller already
    /// took from this limiter's [`clock`](Self::clock) (a policy pipeline that reads the
    /// clock once for several primitives saves the read, which is most of a check's cost).
    /// The call is judged as if made at `now`, so pass a fresh reading: a stale one admits
    /// as if the request had come earlier.
    ///
    /// # Errors
    /// [`Throttled`] when the quota is used up at `now`.
    #[inline]
    pub fn check_at(&self, now: u64) -> Result<(), Throttled> {
        let hot = &*self.hot;
        hot.meter.settle(hot.gcra.check(&hot.tat, now))
    }

    /// As [`check_n`](Self::check_n), judged at clock reading `now` (see
    /// [`check_at`](Self::check_at)).
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    #[inline]
    pub fn check_n_at(&self, n: u32, now: u64) -> Result<(), CheckNError> {
        let hot = &*self.hot;
        hot.meter.settle_n(n, hot.gcra.check_n(&hot.tat, now, n))
    }

    /// Cells that would be admitted right now (at most the burst). A snapshot: other
    /// callers may take them first.
    #[must_use]
    pub fn available(&self) -> u32 {
        let hot = &*self.hot;
        hot.gcra.available(hot.tat.load(Ordering::Relaxed), hot.meter.now())
    }

    /// The limiter's state now: the cells admissible now and the time until the whole
    /// burst is (see [`LimitState`]). A snapshot: other callers may take them first.
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_core::ManualClock;
    /// use levee_limit::{Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10), clock.clone())?;
    /// limiter.check_n(4)?;
    /// let state = limiter.state();
    /// assert_eq!((state.remaining, state.reset), (6, Duration::from_millis(400)));
    /// clock.advance(Duration::from_millis(100));
    /// assert_eq!(limiter.state().remaining, 7);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn state(&self) -> LimitState {
        let hot = &*self.hot;
        // Relaxed: a snapshot.
        hot.gcra.state(hot.tat.load(Ordering::Relaxed), hot.meter.now())
    }

    /// Refills the limiter completely, as if it had been idle for a long time.
    pub fn reset(&self) {
        // Relaxed: a plain state change; checks racing with it see before or after.
        self.hot.tat.store(0, Ordering::Relaxed);
    }

    /// The quota this limiter enforces.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The validated GCRA parameters.
    #[must_use]
    pub fn gcra(&self) -> Gcra {
        self.hot.gcra
    }

    /// The limiter's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.hot.meter.clock
    }

    /// A snapshot of the counters (`admitted` only when the builder enabled
    /// [`count_admitted`](LimiterBuilder::count_admitted)).
    #[must_use]
    pub fn stats(&self) -> RateStats {
        self.hot.meter.stats()
    }

    /// Waits until one cell is admitted, sleeping on the limiter's clock
    /// ([`Clock::sleep_until`]).
    ///
    /// Cancellation-safe: the future holds nothing while it sleeps, and dropping it at any
    /// point consumes nothing.
    pub async fn until_ready(&self) {
        self.until_ready_with_jitter(Jitter::NONE).await;
    }

    /// As [`until_ready`](Self::until_ready), adding `jitter` to each wait so that callers
    /// refused together do not all retry at the same instant.
    pub async fn until_ready_with_jitter(&self, jitter: Jitter) {
        // One cell always fits a burst of at least one.
        let _ = self.until_n_ready_with_jitter(1, jitter).await;
    }

    /// Waits until `n` cells are admitted at once.
    ///
    /// Cancellation-safe like [`until_ready`](Self::until_ready).
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the burst (waiting would never end).
    pub async fn until_n_ready(&self, n: u32) -> Result<(), InsufficientCapacity> {
        self.until_n_ready_with_jitter(n, Jitter::NONE).await
    }

    /// As [`until_n_ready`](Self::until_n_ready) with `jitter` added to each wait.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the burst.
    pub async fn until_n_ready_with_jitter(
        &self,
        n: u32,
        jitter: Jitter,
    ) -> Result<(), InsufficientCapacity> {
        let hot = &*self.hot;
        hot.meter.wait(n, hot.gcra.burst, jitter, |now, n| hot.gcra.check_n(&hot.tat, now, n)).await
    }
}

impl<C: Clock> RateLimiterBuilder<C> {
    /// Builds the limiter, full (a burst is admissible at once).
    ///
    /// # Errors
    /// A [`ConfigError`] when the quota is invalid (see [`Quota::gcra`]).
    pub fn build(self) -> Result<RateLimiter<C>, ConfigError> {
        let gcra = self.settings.gcra()?;
        let (quota, meter) = self.into_parts();
        Ok(RateLimiter {
            hot: CachePadded::new(Hot { tat: CachePadded::new(AtomicU64::new(0)), gcra, meter }),
            quota,
        })
    }
}
