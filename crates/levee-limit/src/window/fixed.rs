//! The fixed-window counter.

use std::fmt;
use std::time::Duration;

use levee_core::sync::{AtomicU64, CachePadded, Ordering};
use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener};

use super::{Slot, WindowQuota, classify, pack, wait_for};
use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::stats::{RateCounters, RateEvent, RateStats};
use crate::wait::AsyncClock;

struct Hot<C> {
    /// Window number (mod 2^40) and the count in it; see the module docs.
    word: AtomicU64,
    limit: u32,
    window: u64,
    clock: C,
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
    counters: RateCounters,
    hook: EventHook<RateEvent>,
}

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
        FixedWindowBuilder { quota, clock: FastClock, hook: EventHook::none() }
    }
}

impl<C: Clock> FixedWindowLimiter<C> {
    /// Admits one cell in the current window.
    ///
    /// # Errors
    /// [`Throttled`] until the next window when this one is full.
    #[inline]
    pub fn check(&self) -> Result<(), Throttled> {
        self.check_n(1).map_err(CheckNError::expect_throttled)
    }

    /// Admits `n` cells at once in the current window (all or none; `n == 0` succeeds).
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they do not fit in this window;
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the limit.
    pub fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        self.admit(n).map_err(|e| self.counters.record_refusal(&self.hook, n, e))
    }

    /// Admits `n` cells or says why not, without counting or reporting a refusal (waiting
    /// retries through here).
    fn admit(&self, n: u32) -> Result<(), CheckNError> {
        let hot = &*self.hot;
        if n > hot.limit {
            return Err(InsufficientCapacity { requested: n, burst: hot.limit }.into());
        }
        if n == 0 {
            return Ok(());
        }
        let mut now = hot.clock.now();
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
                    now = hot.clock.now();
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
                Ok(_) => {
                    self.counters.admitted.add(u64::from(n));
                    return Ok(());
                }
                Err(actual) => word = actual,
            }
        }
    }

    /// Cells counted in the current window.
    #[must_use]
    pub fn count(&self) -> u32 {
        let hot = &*self.hot;
        let window = hot.clock.now() / hot.window;
        // Relaxed: a snapshot.
        match classify(hot.word.load(Ordering::Relaxed), window) {
            Slot::Current(count) => count,
            Slot::Later | Slot::Stale => 0,
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
        self.counters.snapshot(true)
    }
}

impl<C: AsyncClock> FixedWindowLimiter<C> {
    /// Waits until one cell is admitted (in this window or a later one). Cancellation-safe:
    /// dropping the future consumes nothing.
    pub async fn until_ready(&self) {
        // One cell always fits a limit of at least one.
        let _ = self.until_n_ready(1).await;
    }

    /// Waits until `n` cells are admitted at once. Cancellation-safe.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the limit.
    pub async fn until_n_ready(&self, n: u32) -> Result<(), InsufficientCapacity> {
        wait_for(&self.hot.clock, &self.counters, &self.hook, n, self.hot.limit, || self.admit(n))
            .await
    }
}

/// Builds a [`FixedWindowLimiter`].
#[must_use]
pub struct FixedWindowBuilder<C> {
    quota: WindowQuota,
    clock: C,
    hook: EventHook<RateEvent>,
}

impl<C> fmt::Debug for FixedWindowBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FixedWindowBuilder").field("quota", &self.quota).finish_non_exhaustive()
    }
}

impl<C: Clock> FixedWindowBuilder<C> {
    /// Reads time from `clock` instead.
    pub fn clock<C2: Clock>(self, clock: C2) -> FixedWindowBuilder<C2> {
        FixedWindowBuilder { quota: self.quota, clock, hook: self.hook }
    }

    /// Adds a listener for [`RateEvent`]s.
    pub fn listener(mut self, listener: impl Listener<RateEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Builds the limiter.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `limit` or `window` when one is zero or too large.
    pub fn build(self) -> Result<FixedWindowLimiter<C>, ConfigError> {
        let (limit, window) = self.quota.validate()?;
        let start = self.clock.now() / window;
        Ok(FixedWindowLimiter {
            hot: CachePadded::new(Hot {
                word: AtomicU64::new(pack(start, 0)),
                limit,
                window,
                clock: self.clock,
            }),
            quota: self.quota,
            counters: RateCounters::default(),
            hook: self.hook,
        })
    }
}
