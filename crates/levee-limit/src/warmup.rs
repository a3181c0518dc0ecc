//! Warm-up: after a quiet spell the allowed rate starts at `rate / cold_factor` and ramps up
//! to the full rate over the warm-up period, so a cold backend (empty caches, cold JIT, a
//! connection pool to fill) is not flooded the moment traffic returns.
//!
//! The model is Guava's `SmoothWarmingUp`, which Sentinel's warm-up controller follows:
//! idle time is stored as "permits" up to a maximum; while more than half the warm-up
//! period's worth is stored, each admitted cell costs more than the stable interval `t`,
//! rising linearly to `cold_factor * t` when full. Consuming stored permits warms the limiter
//! up; with full-rate demand it goes from cold to warm in exactly the warm-up period.
//!
//! **Lock-free.** The admission decision is the GCRA compare-and-swap on `tat` (as in
//! [`RateLimiter`](crate::RateLimiter)) with a cell weight of `t` plus the cold surcharge,
//! so the full rate and the burst are never exceeded. The stored permits live in a second
//! word, credited with exactly the idle time the winning CAS replaced (no idle time is
//! credited twice) and debited by the permits consumed. Under concurrency a check may read
//! the stored amount a moment stale, which only shifts how fast the ramp proceeds.

use std::fmt;
use std::time::Duration;

use levee_core::sync::{AtomicU64, CachePadded, Ordering};
use levee_core::{Clock, ConfigError, FastClock, nanos};

use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::meter::{LimiterBuilder, Meter, at_most_max_span};
use crate::quota::{Gcra, Quota};
use crate::state::LimitState;
use crate::stats::RateStats;
use crate::wait::Jitter;

/// The warm-up curve, in nanoseconds.
#[derive(Debug, Clone, Copy)]
struct Curve {
    /// Stored time when full: the warm-up period (`max permits * cool_down`).
    max_stored: u64,
    /// Stored time above which cells cost extra (half the warm-up period's permits).
    threshold: f64,
    /// Stored time per permit.
    cool_down: f64,
    /// The surcharge per cell when full: `(cold_factor - 1) * t`.
    cold_extra: f64,
}

impl Curve {
    fn new(t: u64, warm_up: u64, cold_factor: f64) -> Self {
        let (t, w) = (t as f64, warm_up as f64);
        let threshold_permits = 0.5 * w / t;
        let max_permits = threshold_permits + 2.0 * w / (t + cold_factor * t);
        let cool_down = w / max_permits;
        Self {
            max_stored: warm_up,
            threshold: threshold_permits * cool_down,
            cool_down,
            cold_extra: (cold_factor - 1.0) * t,
        }
    }

    /// The surcharge (ns) for taking `n` cells with `stored` ns stored, and the stored time
    /// they consume.
    fn surcharge(&self, stored: u64, n: u32) -> (u64, u64) {
        let take = (f64::from(n) * self.cool_down).min(stored as f64);
        let (high, low) = (stored as f64, stored as f64 - take);
        // The surcharge grows linearly above the threshold: integrate it over the permits
        // taken (a trapezoid), in units of permits (divide by the cool-down).
        let above = |x: f64| (x - self.threshold).max(0.0);
        let span = self.max_stored as f64 - self.threshold;
        let extra = if span > 0.0 {
            self.cold_extra * (above(high).powi(2) - above(low).powi(2))
                / (2.0 * span * self.cool_down)
        } else {
            0.0
        };
        (extra as u64, take as u64)
    }
}

struct Hot<C> {
    tat: AtomicU64,
    /// Stored idle time in ns, `0..=max_stored`.
    stored: AtomicU64,
    gcra: Gcra,
    curve: Curve,
    meter: Meter<C>,
}

/// A rate limiter that warms up: after idleness it allows `rate / cold_factor`, ramping to
/// the full rate over the warm-up period (see the module docs for the model).
///
/// It starts cold. Use a burst of one for an even ramp; a larger burst is admitted at the
/// full rate's tolerance.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{Quota, WarmUpLimiter};
///
/// let clock = ManualClock::new();
/// let limiter = WarmUpLimiter::builder(Quota::per_second(100).with_burst(1))
///     .warm_up(Duration::from_secs(10))
///     .cold_factor(3.0)
///     .clock(clock.clone())
///     .build()?;
/// // Cold: cells are 30 ms apart rather than 10 ms.
/// assert!(limiter.check().is_ok());
/// let refusal = limiter.check().unwrap_err();
/// assert!(refusal.retry_after() > Duration::from_millis(29));
/// assert!((limiter.current_rate() - 100.0 / 3.0).abs() < 1.0);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct WarmUpLimiter<C = FastClock> {
    hot: CachePadded<Hot<C>>,
    quota: Quota,
    warm_up: Duration,
    cold_factor: f64,
}

impl<C> fmt::Debug for WarmUpLimiter<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WarmUpLimiter")
            .field("quota", &self.quota)
            .field("warm_up", &self.warm_up)
            .field("cold_factor", &self.cold_factor)
            .finish_non_exhaustive()
    }
}

impl WarmUpLimiter<FastClock> {
    /// A builder for `quota` (the full rate); warm-up 10 s and cold factor 3 unless set.
    pub fn builder(quota: Quota) -> WarmUpBuilder<FastClock> {
        let settings = WarmUpSettings { quota, warm_up: Duration::from_secs(10), cold_factor: 3.0 };
        LimiterBuilder::new(settings, true)
    }
}

impl<C: Clock> WarmUpLimiter<C> {
    /// Admits one cell.
    ///
    /// # Errors
    /// [`Throttled`] when the current (possibly cold) rate is used up.
    #[inline]
    pub fn check(&self) -> Result<(), Throttled> {
        let hot = &*self.hot;
        hot.meter.settle(self.admit(hot.meter.now(), 1).map_err(CheckNError::expect_throttled))
    }

    /// Admits `n` cells at once (all or none; `n == 0` succeeds).
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they do not fit now;
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the burst.
    pub fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        let hot = &*self.hot;
        hot.meter.settle_n(n, self.admit(hot.meter.now(), n))
    }

    /// Admits `n` cells at `now` or says why not, without counting (the meter counts).
    fn admit(&self, now: u64, n: u32) -> Result<(), CheckNError> {
        let hot = &*self.hot;
        let g = hot.gcra;
        if n > g.burst {
            return Err(InsufficientCapacity { requested: n, burst: g.burst }.into());
        }
        if n == 0 {
            return Ok(());
        }
        let limit = now.saturating_add(g.tau);
        let stable = u64::from(n) * g.t; // n <= burst, so at most t + tau <= 2^62
        // Relaxed: the decision is the CAS on `tat` alone (module docs); `stored` only
        // shapes the cost and may be read slightly stale.
        let mut current = hot.tat.load(Ordering::Relaxed);
        loop {
            let last = current.saturating_add(stable - g.t);
            if last > limit {
                return Err(Throttled::new(now, last - g.tau).into());
            }
            let idle = now.saturating_sub(current);
            let stored = self.stored_after_idle(idle);
            let (extra, _) = hot.curve.surcharge(stored, n);
            let next = current.max(now).saturating_add(stable).saturating_add(extra);
            match hot.tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => {
                    self.settle(idle, n);
                    return Ok(());
                }
                Err(actual) => current = actual,
            }
        }
    }

    fn stored_after_idle(&self, idle: u64) -> u64 {
        let hot = &*self.hot;
        // Relaxed: see `check_n`.
        hot.stored.load(Ordering::Relaxed).saturating_add(idle).min(hot.curve.max_stored)
    }

    /// Credits the idle time our CAS replaced and debits the permits taken.
    fn settle(&self, idle: u64, n: u32) {
        let curve = self.hot.curve;
        // Relaxed: a statistic-like quantity; the CAS on `tat` already decided admission.
        let _ = self.hot.stored.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |stored| {
            let stored = stored.saturating_add(idle).min(curve.max_stored);
            let (_, take) = curve.surcharge(stored, n);
            Some(stored - take.min(stored))
        });
    }

    /// The spacing a cell arriving now would get (between `t` warm and `cold_factor * t`
    /// cold).
    #[must_use]
    pub fn current_interval(&self) -> Duration {
        let hot = &*self.hot;
        // Relaxed: a snapshot.
        Duration::from_nanos(self.interval_at(hot.tat.load(Ordering::Relaxed), hot.meter.now()))
    }

    /// The spacing (ns) of a cell arriving at `now` with state `tat`.
    fn interval_at(&self, tat: u64, now: u64) -> u64 {
        let hot = &*self.hot;
        let (extra, _) = hot.curve.surcharge(self.stored_after_idle(now.saturating_sub(tat)), 1);
        hot.gcra.t + extra
    }

    /// The limiter's state now (see [`LimitState`]). `remaining` is a lower bound: the cells
    /// admissible now one at a time at the current spacing ([`current_interval`]). While
    /// cold, each admitted cell makes the next one cheaper, so a few more may pass; once warm
    /// it is exact. `reset` is the time until the whole burst is admissible again.
    ///
    /// [`current_interval`]: Self::current_interval
    #[must_use]
    pub fn state(&self) -> LimitState {
        let hot = &*self.hot;
        let g = hot.gcra;
        let now = hot.meter.now();
        let tat = hot.tat.load(Ordering::Relaxed); // Relaxed: a snapshot.
        let limit = now.saturating_add(g.tau);
        // Cell k goes while its predecessors' costs, each at most the current spacing (the
        // surcharge only falls as stored time is spent), fit in the room before `limit`.
        let remaining = match limit.checked_sub(tat.max(now)) {
            Some(room) => (room / self.interval_at(tat, now) + 1).min(u64::from(g.burst)) as u32,
            None => 0, // tat > now + tau: drained
        };
        LimitState { remaining, reset: Duration::from_nanos(tat.saturating_sub(now)) }
    }

    /// The rate (cells per second) a cell arriving now would be admitted at.
    #[must_use]
    pub fn current_rate(&self) -> f64 {
        1.0 / self.current_interval().as_secs_f64()
    }

    /// The full (warm) quota.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The limiter's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.hot.meter.clock
    }

    /// A snapshot of the counters.
    #[must_use]
    pub fn stats(&self) -> RateStats {
        self.hot.meter.stats()
    }

    /// Waits until one cell is admitted, sleeping on the limiter's clock. Cancellation-safe:
    /// dropping the future consumes nothing.
    pub async fn until_ready(&self) {
        self.until_ready_with_jitter(Jitter::NONE).await;
    }

    /// As [`until_ready`](Self::until_ready) with `jitter` added to each wait.
    pub async fn until_ready_with_jitter(&self, jitter: Jitter) {
        // One cell always fits a burst of at least one.
        let _ =
            self.hot.meter.wait(1, self.hot.gcra.burst, jitter, |now, n| self.admit(now, n)).await;
    }

    /// Waits until `n` cells are admitted at once. Cancellation-safe.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the burst.
    pub async fn until_n_ready(&self, n: u32) -> Result<(), InsufficientCapacity> {
        self.hot.meter.wait(n, self.hot.gcra.burst, Jitter::NONE, |now, n| self.admit(now, n)).await
    }
}

/// What a [`WarmUpBuilder`] collects besides the shared settings.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::{Quota, WarmUpLimiter};
///
/// // The settings a `WarmUpBuilder` carries: set through its methods.
/// let limiter = WarmUpLimiter::builder(Quota::per_second(100))
///     .warm_up(Duration::from_secs(10))
///     .cold_factor(4.0)
///     .build()?;
/// assert!(limiter.check().is_ok());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WarmUpSettings {
    quota: Quota,
    warm_up: Duration,
    cold_factor: f64,
}

/// Builds a [`WarmUpLimiter`] (see [`LimiterBuilder`] for the shared settings).
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{Quota, WarmUpLimiter};
///
/// let limiter = WarmUpLimiter::builder(Quota::per_second(1000))
///     .warm_up(Duration::from_secs(30))
///     .cold_factor(3.0)
///     .clock(ManualClock::new())
///     .build()?;
/// assert!(limiter.check().is_ok());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub type WarmUpBuilder<C = FastClock> = LimiterBuilder<WarmUpSettings, C>;

impl<C: Clock> WarmUpBuilder<C> {
    /// How long full-rate demand takes to bring a cold limiter to the full rate.
    pub fn warm_up(mut self, period: Duration) -> Self {
        self.settings.warm_up = period;
        self
    }

    /// How much slower than the full rate a cold limiter starts (at least 1; default 3).
    pub fn cold_factor(mut self, factor: f64) -> Self {
        self.settings.cold_factor = factor;
        self
    }

    /// Builds the limiter, cold.
    ///
    /// # Errors
    /// A [`ConfigError`] for an invalid quota, a zero or over-long `warm_up`, or a
    /// `cold_factor` below 1, above 1000 or not finite.
    pub fn build(self) -> Result<WarmUpLimiter<C>, ConfigError> {
        let WarmUpSettings { quota, warm_up, cold_factor } = self.settings;
        let gcra = quota.gcra()?;
        let warm_up = ConfigError::require_positive("warm_up", warm_up)?;
        at_most_max_span("warm_up", warm_up)?;
        if !(1.0..=1000.0).contains(&cold_factor) {
            return Err(ConfigError::new(
                "cold_factor",
                format!("must be between 1 and 1000, got {cold_factor}"),
            ));
        }
        let curve = Curve::new(gcra.t, nanos(warm_up), cold_factor);
        let (_, meter) = self.into_parts();
        Ok(WarmUpLimiter {
            hot: CachePadded::new(Hot {
                tat: AtomicU64::new(0),
                stored: AtomicU64::new(curve.max_stored),
                gcra,
                curve,
                meter,
            }),
            quota,
            warm_up,
            cold_factor,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn curve_costs_cold_factor_when_full_and_nothing_when_warm() {
        // 100/s (t = 10 ms), 10 s warm-up, cold factor 3.
        let curve = Curve::new(10_000_000, 10_000_000_000, 3.0);
        let (extra, take) = curve.surcharge(curve.max_stored, 1);
        // The first permit from full costs almost the full surcharge of 2t.
        assert!((19_000_000..=20_000_000).contains(&extra), "{extra}");
        assert_eq!(take as f64, curve.cool_down.floor());
        assert_eq!(curve.surcharge(0, 1), (0, 0));
        let below = curve.threshold as u64 / 2;
        assert_eq!(curve.surcharge(below, 1).0, 0, "below the threshold cells cost t");
        // Draining from full down to the threshold costs the warm-up period minus the
        // stable cost of those permits (Guava's construction).
        let permits_above = ((curve.max_stored as f64 - curve.threshold) / curve.cool_down) as u32;
        let (extra, _) = curve.surcharge(curve.max_stored, permits_above);
        let total = extra as f64 + f64::from(permits_above) * 10_000_000.0;
        assert!((total / 10_000_000_000.0 - 1.0).abs() < 0.01, "{total}");
    }

    #[test]
    fn rejects_bad_settings() {
        let q = Quota::per_second(10);
        let err = |b: WarmUpBuilder<FastClock>| b.build().unwrap_err().setting;
        assert_eq!(err(WarmUpLimiter::builder(q).warm_up(Duration::ZERO)), "warm_up");
        assert_eq!(err(WarmUpLimiter::builder(q).warm_up(Duration::MAX)), "warm_up");
        assert_eq!(err(WarmUpLimiter::builder(q).cold_factor(0.5)), "cold_factor");
        assert_eq!(err(WarmUpLimiter::builder(q).cold_factor(f64::NAN)), "cold_factor");
        assert_eq!(err(WarmUpLimiter::builder(Quota::per_second(0))), "quota.count");
    }
}
