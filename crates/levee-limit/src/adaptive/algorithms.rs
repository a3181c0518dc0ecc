//! Limit algorithms: how a window of samples moves the concurrency limit.
//!
//! After Netflix's `concurrency-limits` (`AIMDLimit`, `Gradient2Limit`, `VegasLimit`), fed
//! with one aggregated window of samples at a time instead of every sample, so the hot path
//! only adds to a few counters.

use std::fmt;
use std::time::Duration;

/// What a window of completed calls looked like.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::{Aimd, LimitAlgorithm, SampleWindow};
///
/// let calm = SampleWindow {
///     samples: 100,
///     drops: 0,
///     min_rtt: Duration::from_millis(5),
///     avg_rtt: Duration::from_millis(8),
///     max_in_flight: 10,
/// };
/// let overloaded = SampleWindow { drops: 7, ..calm };
/// let mut aimd = Aimd::new().increase(1).backoff(0.5);
/// assert_eq!(aimd.update(10, &calm), 11); // saturated and healthy: one more
/// assert_eq!(aimd.update(10, &overloaded), 5); // drops: halve
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SampleWindow {
    /// Calls completed in the window (dropped ones included).
    pub samples: u64,
    /// Calls that signalled overload (timeouts, 503s, refusals from downstream).
    pub drops: u64,
    /// The fastest completion.
    pub min_rtt: Duration,
    /// The mean completion time.
    pub avg_rtt: Duration,
    /// The most calls in flight seen when a call in the window started.
    pub max_in_flight: usize,
}

/// Moves a concurrency limit from one window of samples to the next.
///
/// The returned limit is clamped to the adaptive bulkhead's `min_limit..=max_limit`.
///
/// ```
/// use levee_limit::{AdaptiveBulkhead, LimitAlgorithm, SampleWindow};
///
/// /// Doubles while nothing is dropped, falls back to 1 on any drop.
/// #[derive(Debug)]
/// struct DoubleOrReset;
///
/// impl LimitAlgorithm for DoubleOrReset {
///     fn update(&mut self, limit: usize, window: &SampleWindow) -> usize {
///         if window.drops > 0 { 1 } else { limit * 2 }
///     }
/// }
///
/// let bulkhead = AdaptiveBulkhead::builder(DoubleOrReset).initial_limit(4).limits(1, 64).build()?;
/// assert_eq!(bulkhead.limit(), 4);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait LimitAlgorithm: Send + fmt::Debug + 'static {
    /// The next limit, given the current one and the last window.
    fn update(&mut self, limit: usize, window: &SampleWindow) -> usize;
}

/// Additive increase, multiplicative decrease (TCP Reno's rule, Netflix's `AIMDLimit`):
/// a window with drops multiplies the limit by `backoff`; a window without drops in which
/// the limit was actually used (in flight at least half the limit) adds `increase`.
///
/// ```
/// use levee_limit::{AdaptiveBulkhead, Aimd};
///
/// // Grow the limit by 2 per good window, cut it to 80 % on a drop.
/// let bulkhead = AdaptiveBulkhead::builder(Aimd::new().increase(2).backoff(0.8)).build()?;
/// assert!(bulkhead.limit() > 0);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Aimd {
    backoff: f64,
    increase: usize,
}

impl Default for Aimd {
    fn default() -> Self {
        Self { backoff: 0.9, increase: 1 }
    }
}

impl Aimd {
    /// AIMD with backoff ratio 0.9 and increase 1.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// The factor applied on drops, clamped to `0.5..=0.99` (NaN counts as 0.9).
    #[must_use]
    pub fn backoff(mut self, ratio: f64) -> Self {
        self.backoff = if ratio.is_nan() { 0.9 } else { ratio.clamp(0.5, 0.99) };
        self
    }

    /// The step added per good window (at least 1).
    #[must_use]
    pub fn increase(mut self, step: usize) -> Self {
        self.increase = step.max(1);
        self
    }
}

impl LimitAlgorithm for Aimd {
    fn update(&mut self, limit: usize, window: &SampleWindow) -> usize {
        if window.drops > 0 {
            ((limit as f64) * self.backoff) as usize
        } else if window.max_in_flight * 2 >= limit {
            limit.saturating_add(self.increase)
        } else {
            limit
        }
    }
}

/// Netflix's `Gradient2Limit`: compares a short-term RTT (this window's mean) with a
/// long-term exponential average and scales the limit by their ratio, plus a small queue
/// allowance, smoothed.
///
/// `gradient = clamp(tolerance * long_rtt / short_rtt, 0.5, 1)`;
/// `limit' = limit * (1 - smoothing) + (limit * gradient + queue) * smoothing`.
/// When latency rises above `tolerance` times its long-term level the limit shrinks
/// (by at most half per window); otherwise it grows by the queue allowance. Windows that
/// did not use half the limit do not grow it (the caller, not the backend, was the limit).
/// The long-term average decays quickly when it is more than twice the short one, so a
/// recovered backend is not judged by its old latency. Drops are not used (latency alone
/// drives Gradient2, as in Netflix's).
///
/// ```
/// use levee_limit::{AdaptiveBulkhead, Gradient2};
///
/// let bulkhead = AdaptiveBulkhead::builder(Gradient2::new().rtt_tolerance(1.5).queue_size(4)).build()?;
/// assert!(bulkhead.limit() > 0);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Gradient2 {
    smoothing: f64,
    tolerance: f64,
    long_window: f64,
    queue: Option<usize>,
    long_rtt: Option<f64>,
    estimate: Option<f64>,
}

impl Default for Gradient2 {
    fn default() -> Self {
        Self {
            smoothing: 0.2,
            tolerance: 1.5,
            long_window: 600.0,
            queue: None,
            long_rtt: None,
            estimate: None,
        }
    }
}

impl Gradient2 {
    /// Gradient2 with Netflix's defaults: smoothing 0.2, RTT tolerance 1.5, a long-term
    /// average over about 600 windows, and a queue allowance of `sqrt(limit)`, at least 4.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// How much of each new estimate is taken (clamped to `0.01..=1`).
    #[must_use]
    pub fn smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = if smoothing.is_nan() { 0.2 } else { smoothing.clamp(0.01, 1.0) };
        self
    }

    /// How much latency may rise over its long-term level before the limit shrinks
    /// (clamped to `1..=10`).
    #[must_use]
    pub fn rtt_tolerance(mut self, tolerance: f64) -> Self {
        self.tolerance = if tolerance.is_nan() { 1.5 } else { tolerance.clamp(1.0, 10.0) };
        self
    }

    /// Windows the long-term RTT averages over (at least 1).
    #[must_use]
    pub fn long_window(mut self, windows: u32) -> Self {
        self.long_window = f64::from(windows.max(1));
        self
    }

    /// A fixed queue allowance instead of `sqrt(limit)`.
    #[must_use]
    pub fn queue_size(mut self, queue: usize) -> Self {
        self.queue = Some(queue);
        self
    }
}

impl LimitAlgorithm for Gradient2 {
    fn update(&mut self, limit: usize, window: &SampleWindow) -> usize {
        let short = window.avg_rtt.as_secs_f64();
        if short <= 0.0 {
            return limit;
        }
        let estimate = *self.estimate.get_or_insert(limit as f64);
        let long = match self.long_rtt {
            None => short,
            Some(long) => {
                let factor = 2.0 / (self.long_window + 1.0);
                let long = long * (1.0 - factor) + short * factor;
                // Recover quickly once latency has dropped well below the long-term level.
                if long / short > 2.0 { long * 0.95 } else { long }
            }
        };
        self.long_rtt = Some(long);
        if (window.max_in_flight as f64) < estimate / 2.0 {
            return estimate as usize;
        }
        let gradient = (self.tolerance * long / short).clamp(0.5, 1.0);
        let queue = self.queue.map_or_else(|| estimate.sqrt().max(4.0), |q| q as f64);
        let target = estimate * gradient + queue;
        let next = estimate * (1.0 - self.smoothing) + target * self.smoothing;
        self.estimate = Some(next);
        next as usize
    }
}

/// Netflix's `VegasLimit` (TCP Vegas): estimates the queue building up downstream from how
/// far the window's mean RTT is above the lowest RTT seen (`queue = limit * (1 - min/rtt)`)
/// and grows the limit while that queue is small, shrinks it when large or on drops.
///
/// ```
/// use levee_limit::{AdaptiveBulkhead, Vegas};
///
/// let bulkhead = AdaptiveBulkhead::builder(Vegas::new()).initial_limit(10).build()?;
/// assert_eq!(bulkhead.limit(), 10);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vegas {
    rtt_no_load: Option<Duration>,
}

impl Vegas {
    /// Vegas with Netflix's thresholds (`alpha = 3 log10 limit`, `beta = 6 log10 limit`).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }
}

impl LimitAlgorithm for Vegas {
    fn update(&mut self, limit: usize, window: &SampleWindow) -> usize {
        if window.min_rtt.is_zero() {
            return limit;
        }
        let no_load = *self
            .rtt_no_load
            .insert(self.rtt_no_load.map_or(window.min_rtt, |r| r.min(window.min_rtt)));
        let l = limit.max(1) as f64;
        let log = l.log10().max(1.0);
        if window.drops > 0 {
            return (l - log) as usize;
        }
        if window.max_in_flight * 2 < limit {
            return limit;
        }
        let rtt = window.avg_rtt.max(no_load).as_secs_f64();
        let queue = (l * (1.0 - no_load.as_secs_f64() / rtt)).ceil();
        let next = if queue <= log {
            l + 6.0 * log
        } else if queue < 3.0 * log {
            l + log
        } else if queue > 6.0 * log {
            l - log
        } else {
            l
        };
        next as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window(drops: u64, avg_ms: u64, min_ms: u64, in_flight: usize) -> SampleWindow {
        SampleWindow {
            samples: 100,
            drops,
            min_rtt: Duration::from_millis(min_ms),
            avg_rtt: Duration::from_millis(avg_ms),
            max_in_flight: in_flight,
        }
    }

    #[test]
    fn aimd_backs_off_on_drops_and_grows_when_used() {
        let mut a = Aimd::new();
        assert_eq!(a.update(100, &window(1, 10, 10, 100)), 90);
        assert_eq!(a.update(100, &window(0, 10, 10, 60)), 101);
        assert_eq!(a.update(100, &window(0, 10, 10, 10)), 100, "app-limited: unchanged");
        let mut a = Aimd::new().backoff(0.5).increase(5);
        assert_eq!(a.update(10, &window(2, 10, 10, 10)), 5);
        assert_eq!(a.update(10, &window(0, 10, 10, 10)), 15);
    }

    #[test]
    fn gradient2_shrinks_when_latency_rises_and_grows_when_flat() {
        let mut g = Gradient2::new();
        let mut limit = 20;
        for _ in 0..20 {
            limit = g.update(limit, &window(0, 10, 10, limit));
        }
        assert!(limit > 20, "flat latency grows the limit: {limit}");
        let before = limit;
        for _ in 0..20 {
            limit = g.update(limit, &window(0, 100, 10, limit));
        }
        assert!(limit < before, "10x latency shrinks it: {before} -> {limit}");
    }

    #[test]
    fn vegas_grows_with_no_queue_and_shrinks_with_a_long_one() {
        let mut v = Vegas::new();
        assert!(v.update(20, &window(0, 10, 10, 20)) > 20);
        assert!(v.update(100, &window(0, 100, 10, 100)) < 100);
        assert!(v.update(100, &window(1, 10, 10, 100)) < 100);
    }
}
