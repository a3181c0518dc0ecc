//! The direct (unkeyed) GCRA rate limiter.

use std::fmt;

use levee_core::sync::CachePadded;
use levee_core::{Clock, ConfigError, FastClock};

use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::live::LiveGcra;
use crate::meter::{LimiterBuilder, Meter};
use crate::quota::{Gcra, Quota};
use crate::state::LimitState;
use crate::stats::RateStats;
use crate::wait::Jitter;

/// What `check` touches: the current quota's epoch (parameters and state word, `live.rs`)
/// and the meter. The state word has a cache line of its own: under contention another
/// core's CAS then invalidates only that line, and the parameters read alongside it stay
/// cached (measured: about 5% less CPU per check with two threads).
struct Hot<C> {
    live: LiveGcra,
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
/// The quota can change while the limiter runs, from any thread, keeping what callers owe:
/// see [`reconfigure`](Self::reconfigure).
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
}

/// Builds a [`RateLimiter`]: quota, clock, listeners (see [`LimiterBuilder`]).
///
/// ```
/// use levee_core::ManualClock;
/// use levee_limit::{Quota, RateEvent, RateLimiter};
///
/// let limiter = RateLimiter::builder(Quota::per_second(100).with_burst(10))
///     .clock(ManualClock::new())
///     .count_admitted(true)
///     .listener(|e: &RateEvent| println!("{e:?}"))
///     .build()?;
/// assert!(limiter.check().is_ok());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub type RateLimiterBuilder<C = FastClock> = LimiterBuilder<Quota, C>;

impl<C> fmt::Debug for RateLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (epoch, tat) = self.hot.live.tat();
        f.debug_struct("RateLimiter")
            .field("quota", &epoch.quota)
            .field("tat", &tat)
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
        hot.meter.settle(hot.live.run(|epoch| epoch.gcra.check(&epoch.tat, now)))
    }

    /// As [`check_n`](Self::check_n), judged at clock reading `now` (see
    /// [`check_at`](Self::check_at)).
    ///
    /// # Errors
    /// As [`check_n`](Self::check_n).
    #[inline]
    pub fn check_n_at(&self, n: u32, now: u64) -> Result<(), CheckNError> {
        let hot = &*self.hot;
        hot.meter.settle_n(n, hot.live.run(|epoch| epoch.gcra.check_n(&epoch.tat, now, n)))
    }

    /// Cells that would be admitted right now (at most the burst). A snapshot: other
    /// callers may take them first.
    #[must_use]
    pub fn available(&self) -> u32 {
        let (epoch, tat) = self.hot.live.tat();
        epoch.gcra.available(tat, self.hot.meter.now())
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
        let (epoch, tat) = self.hot.live.tat();
        epoch.gcra.state(tat, self.hot.meter.now())
    }

    /// Refills the limiter completely, as if it had been idle for a long time.
    pub fn reset(&self) {
        self.hot.live.reset();
    }

    /// Changes the quota now, keeping what callers owe; returns the quota it replaces.
    /// Callable from any thread while others check: a check never waits for it (it runs
    /// on the quota before or after the change, never a mix), and changes are applied one
    /// at a time.
    ///
    /// **The rule.** The cells owed are kept: with `T` and `T'` the old and new emission
    /// intervals, the state `TAT` becomes `now + ceil((TAT - now) * T' / T)`, at most a
    /// drained limiter under the new quota (`now + burst' * T'`). So a limiter that owed 3
    /// cells still owes 3 (paid back at the new rate), a full one stays full (exactly a fresh
    /// limiter with the new quota), and a burst that shrank below the debt caps it.
    ///
    /// **Limits.** Each quota the limiter has had is kept (a few hundred bytes) until the
    /// limiter is dropped, so that a check never needs a reference count: change quotas as
    /// an operator does (a few times an hour), not per request. The clock's readings must
    /// stay below 2^62 ns (146 years from its origin; every levee clock starts near 0).
    /// A waiter in [`until_n_ready`](Self::until_n_ready) whose `n` no longer fits a smaller
    /// burst ends with [`InsufficientCapacity`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_core::ManualClock;
    /// use levee_limit::{Quota, RateLimiter};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = RateLimiter::with_clock(Quota::per_second(10), clock.clone())?;
    /// limiter.check_n(10)?; // drained: 10 cells owed at 100 ms each
    /// // Twice the rate, same burst: the 10 cells are still owed, now at 50 ms each.
    /// limiter.reconfigure(Quota::per_second(20).with_burst(10))?;
    /// let refusal = limiter.check().unwrap_err();
    /// assert_eq!(refusal.retry_after(), Duration::from_millis(50));
    /// assert_eq!(limiter.state().reset, Duration::from_millis(500));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`ConfigError`] when `quota` is invalid (see [`Quota::gcra`]); the limiter keeps
    /// its quota.
    pub fn reconfigure(&self, quota: Quota) -> Result<Quota, ConfigError> {
        let gcra = quota.gcra()?;
        Ok(self.hot.live.reconfigure(gcra, quota, self.hot.meter.now()))
    }

    /// How many quotas this limiter has had, the first included (each is kept until the
    /// limiter is dropped; see [`reconfigure`](Self::reconfigure)).
    #[must_use]
    pub fn quotas_kept(&self) -> usize {
        self.hot.live.epochs()
    }

    /// The quota this limiter enforces now.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.hot.live.current().quota
    }

    /// The validated GCRA parameters now.
    #[must_use]
    pub fn gcra(&self) -> Gcra {
        self.hot.live.current().gcra
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
        let burst = hot.live.current().gcra.burst;
        let decide = |now, n| hot.live.run(|epoch| epoch.gcra.check_n(&epoch.tat, now, n));
        hot.meter.wait(n, burst, jitter, decide).await
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
        Ok(RateLimiter { hot: CachePadded::new(Hot { live: LiveGcra::new(gcra, quota), meter }) })
    }
}
