//! The fixed-window counter.

use std::fmt;
use std::time::Duration;

use levee_core::sync::{AtomicU64, CachePadded, Ordering};
use levee_core::{Clock, ConfigError, FastClock};

use super::{Slot, WindowQuota, classify, pack};
use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::meter::{LimiterBuilder, Meter};
use crate::state::LimitState;
use crate::stats::RateStats;
use crate::wait::Jitter;

struct Hot<C> {
    /// Window number (mod 2^40) and the count in it; see the module docs.
    word: AtomicU64,
    limit: u32,
    window: u64,
    meter: Meter<C>,
}

/// At most `limit` cells per aligned window (`[k*window, (k+1)*window)` on the clock).
///
/// One atomic word holds the window number and its count; entering a new window resets and
/// counts in one compare-and-swap. Exact within each window; around a boundary up to
/// `2 * limit` can pass within one window's length (use [`SlidingWindowLimiter`] or
/// [`RateLimiter`] when that matters).
///
/// [`SlidingWindowLimiter`]: crate::SlidingWindowLimiter
/// [`RateLimiter`]: crate::RateLimiter
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{FixedWindowLimiter, WindowQuota};
///
/// let clock = ManualClock::new();
/// let limiter = FixedWindowLimiter::builder(WindowQuota::per_second(2))
///     .clock(clock.clone())
///     .build()?;
/// clock.advance(Duration::from_millis(400));
/// assert!(limiter.check().is_ok());
/// assert!(limiter.check().is_ok());
/// let refusal = limiter.check().unwrap_err();
/// assert_eq!(refusal.retry_after(), Duration::from_millis(600)); // the next window
/// assert_eq!(limiter.count(), 2);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct FixedWindowLimiter<C = FastClock> {
    hot: CachePadded<Hot<C>>,
    quota: WindowQuota,
}

/// Builds a [`FixedWindowLimiter`] (see [`LimiterBuilder`] for the shared settings).
///
/// ```
/// use levee_core::ManualClock;
/// use levee_limit::{FixedWindowLimiter, WindowQuota};
///
/// let limiter = FixedWindowLimiter::builder(WindowQuota::per_minute(2)).clock(ManualClock::new()).build()?;
/// assert!(limiter.check().is_ok() && limiter.check().is_ok());
/// assert!(limiter.check().is_err());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub type FixedWindowBuilder<C = FastClock> = LimiterBuilder<WindowQuota, C>;

impl<C> fmt::Debug for FixedWindowLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedWindowLimiter").field("quota", &self.quota).finish_non_exhaustive()
    }
}

impl FixedWindowLimiter<FastClock> {
    /// A limiter for `quota` on the default clock.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `limit` or `window` when one is zero or too large.
    pub fn new(quota: WindowQuota) -> Result<Self, ConfigError> {
        Self::builder(quota).build()
    }

    /// A builder for `quota`.
    pub fn builder(quota: WindowQuota) -> FixedWindowBuilder<FastClock> {
        LimiterBuilder::new(quota, true)
    }
}

impl<C: Clock> FixedWindowLimiter<C> {
    /// Admits one cell in the current window.
    ///
    /// # Errors
    /// [`Throttled`] until the next window when this one is full.
    #[inline]
    pub fn check(&self) -> Result<(), Throttled> {
        let meter = &self.hot.meter;
        meter.settle(self.admit(meter.now(), 1).map_err(CheckNError::expect_throttled))
    }

    /// Admits `n` cells at once in the current window (all or none; `n == 0` succeeds).
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they do not fit in this window;
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the limit.
    pub fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        let meter = &self.hot.meter;
        meter.settle_n(n, self.admit(meter.now(), n))
    }

    /// Admits `n` cells at clock reading `now` or says why not, without counting (the meter
    /// counts; waiting retries through here).
    fn admit(&self, now: u64, n: u32) -> Result<(), CheckNError> {
        let hot = &*self.hot;
        if n > hot.limit {
            return Err(InsufficientCapacity { requested: n, burst: hot.limit }.into());
        }
        if n == 0 {
            return Ok(());
        }
        let mut now = now;
        let mut window = now / hot.window;
        let mut reread = false;
        // Relaxed throughout: the word publishes no other memory; the CAS decides on the
        // latest value.
        let mut word = hot.word.load(Ordering::Relaxed);
        loop {
            let current = match classify(word, window) {
                Slot::Current(count) => count,
                Slot::Later if !reread => {
                    // Our clock reading is older than another thread's: read it again.
                    reread = true;
                    now = hot.meter.now();
                    window = now / hot.window;
                    continue;
                }
                Slot::Later | Slot::Stale => 0,
            };
            if current + n > hot.limit {
                let earliest = window.saturating_add(1).saturating_mul(hot.window);
                return Err(Throttled::new(now, earliest).into());
            }
            let next = pack(window, current + n);
            match hot.word.compare_exchange_weak(word, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => word = actual,
            }
        }
    }

    /// Cells counted in the current window.
    #[must_use]
    pub fn count(&self) -> u32 {
        self.count_at(self.hot.meter.now())
    }

    /// Cells counted in the window of clock reading `now`.
    fn count_at(&self, now: u64) -> u32 {
        let hot = &*self.hot;
        // Relaxed: a snapshot.
        match classify(hot.word.load(Ordering::Relaxed), now / hot.window) {
            Slot::Current(count) => count,
            Slot::Later | Slot::Stale => 0,
        }
    }

    /// The limiter's state now: the cells still admissible in this window, and the time
    /// until it ends (zero when nothing is counted in it: the limiter is full). See
    /// [`LimitState`].
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_core::ManualClock;
    /// use levee_limit::{FixedWindowLimiter, WindowQuota};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = FixedWindowLimiter::builder(WindowQuota::per_minute(10))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// assert_eq!(limiter.state().reset, Duration::ZERO, "full");
    /// clock.advance(Duration::from_secs(15));
    /// limiter.check_n(3)?;
    /// let state = limiter.state();
    /// assert_eq!((state.remaining, state.reset), (7, Duration::from_secs(45)));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn state(&self) -> LimitState {
        let hot = &*self.hot;
        let now = hot.meter.now();
        let count = self.count_at(now);
        let end = (now / hot.window).saturating_add(1).saturating_mul(hot.window);
        let reset = if count == 0 { 0 } else { end - now };
        LimitState {
            remaining: hot.limit.saturating_sub(count),
            reset: Duration::from_nanos(reset),
        }
    }

    /// Cells still admissible in the current window.
    #[must_use]
    pub fn remaining(&self) -> u32 {
        self.hot.limit.saturating_sub(self.count())
    }

    /// The current rate in cells per second: this window's count over the window length.
    #[must_use]
    pub fn rate(&self) -> f64 {
        f64::from(self.count()) / Duration::from_nanos(self.hot.window).as_secs_f64()
    }

    /// The quota.
    #[must_use]
    pub fn quota(&self) -> WindowQuota {
        self.quota
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> RateStats {
        self.hot.meter.stats()
    }

    /// Waits until one cell is admitted (in this window or a later one), sleeping on the
    /// limiter's clock. Cancellation-safe: dropping the future consumes nothing.
    pub async fn until_ready(&self) {
        // One cell always fits a limit of at least one.
        let _ = self.until_n_ready(1).await;
    }

    /// Waits until `n` cells are admitted at once. Cancellation-safe.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the limit.
    pub async fn until_n_ready(&self, n: u32) -> Result<(), InsufficientCapacity> {
        let hot = &*self.hot;
        hot.meter.wait(n, hot.limit, Jitter::NONE, |now, n| self.admit(now, n)).await
    }
}

impl<C: Clock> FixedWindowBuilder<C> {
    /// Builds the limiter.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `limit` or `window` when one is zero or too large.
    pub fn build(self) -> Result<FixedWindowLimiter<C>, ConfigError> {
        let (limit, window) = self.settings.validate()?;
        let start = self.now() / window;
        let (quota, meter) = self.into_parts();
        Ok(FixedWindowLimiter {
            hot: CachePadded::new(Hot {
                word: AtomicU64::new(pack(start, 0)),
                limit,
                window,
                meter,
            }),
            quota,
        })
    }
}
