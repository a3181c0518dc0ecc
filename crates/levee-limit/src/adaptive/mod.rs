//! Adaptive concurrency: a [`Bulkhead`] whose limit follows the latency and the overload
//! signals of the calls it admits (after Netflix's `concurrency-limits`).
//!
//! Each permit records, when it is released, how long the call took and whether it
//! signalled overload ([`AdaptivePermit::dropped`]). Samples are summed lock-free into the
//! current window (a few relaxed atomics). When a window is both old enough and holds enough
//! samples, the first release to notice takes the algorithm's lock (`try_lock`: nobody
//! waits for it), hands the window to the [`LimitAlgorithm`], clamps the answer to
//! `min_limit..=max_limit`, and sets it on the bulkhead.

mod algorithms;

pub use algorithms::{Aimd, Gradient2, LimitAlgorithm, SampleWindow, Vegas};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use levee_core::sync::{AtomicU64, AtomicUsize, Mutex, Ordering};
use levee_core::{Clock, ConfigError, FastClock, nanos};

use crate::bulkhead::{Bulkhead, BulkheadBuilder, BulkheadError};

/// Samples of the current window, summed lock-free (all `Relaxed`: statistics; a sample
/// racing with the end of a window may land in either).
#[derive(Debug, Default)]
struct Window {
    samples: AtomicU64,
    drops: AtomicU64,
    rtt_sum: AtomicU64,
    min_rtt: AtomicU64,
    max_in_flight: AtomicUsize,
    started: AtomicU64,
}

/// A bulkhead whose concurrency limit adapts to observed latency and drops.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{AdaptiveBulkhead, Aimd};
///
/// let clock = ManualClock::new();
/// let bulkhead = AdaptiveBulkhead::builder(Aimd::new())
///     .initial_limit(10)
///     .limits(2, 100)
///     .window(Duration::from_millis(100), 5)
///     .clock(clock.clone())
///     .build()?;
/// // A window of calls that time out downstream: the limit backs off.
/// for _ in 0..5 {
///     let permit = bulkhead.try_acquire()?;
///     clock.advance(Duration::from_millis(30));
///     permit.dropped();
/// }
/// assert_eq!(bulkhead.limit(), 9);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct AdaptiveBulkhead<C = FastClock> {
    bulkhead: Bulkhead<C>,
    algorithm: Mutex<Box<dyn LimitAlgorithm>>,
    window: Window,
    window_len: u64,
    min_samples: u64,
    min_limit: usize,
    max_limit: usize,
}

impl<C> fmt::Debug for AdaptiveBulkhead<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveBulkhead")
            .field("bulkhead", &self.bulkhead)
            .field("min_limit", &self.min_limit)
            .field("max_limit", &self.max_limit)
            .finish_non_exhaustive()
    }
}

/// How a call ended, for the limit algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    Dropped,
    Ignored,
}

impl AdaptiveBulkhead<FastClock> {
    /// A builder using `algorithm` (initial limit 20, limits 1..=1000, windows of at least
    /// 100 ms and 10 samples, no queue).
    pub fn builder(algorithm: impl LimitAlgorithm) -> AdaptiveBuilder<FastClock> {
        AdaptiveBuilder {
            algorithm: Box::new(algorithm),
            initial: 20,
            min_limit: 1,
            max_limit: 1000,
            window: Duration::from_millis(100),
            min_samples: 10,
            bulkhead: Bulkhead::builder(20),
        }
    }
}

impl<C: Clock> AdaptiveBulkhead<C> {
    /// Takes a permit if one is free.
    ///
    /// # Errors
    /// [`BulkheadError::Full`] when the current limit is reached.
    pub fn try_acquire(&self) -> Result<AdaptivePermit<'_, C>, BulkheadError> {
        let permit = self.bulkhead.try_acquire()?;
        std::mem::forget(permit); // the adaptive permit releases it
        Ok(AdaptivePermit { adaptive: self, start: self.started(), outcome: Outcome::Success })
    }

    /// As [`try_acquire`](Self::try_acquire), for a permit owning a handle (for tasks and
    /// response futures).
    ///
    /// # Errors
    /// [`BulkheadError::Full`] when the current limit is reached.
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<AdaptiveOwnedPermit<C>, BulkheadError> {
        let permit = self.bulkhead.try_acquire()?;
        std::mem::forget(permit);
        Ok(AdaptiveOwnedPermit {
            adaptive: Arc::clone(self),
            start: self.started(),
            outcome: Outcome::Success,
        })
    }

    /// Notes the start of a call: its time and the in-flight count it started with.
    fn started(&self) -> u64 {
        // Relaxed: a statistic.
        self.window.max_in_flight.fetch_max(self.bulkhead.in_flight(), Ordering::Relaxed);
        self.bulkhead.clock().now()
    }

    /// Records a finished call and releases its permit.
    fn finish(&self, start: u64, outcome: Outcome) {
        let now = self.bulkhead.clock().now();
        if outcome != Outcome::Ignored {
            let rtt = now.saturating_sub(start);
            let w = &self.window;
            // Relaxed throughout: statistics (see `Window`).
            w.samples.fetch_add(1, Ordering::Relaxed);
            w.rtt_sum.fetch_add(rtt, Ordering::Relaxed);
            w.min_rtt.fetch_min(rtt, Ordering::Relaxed);
            if outcome == Outcome::Dropped {
                w.drops.fetch_add(1, Ordering::Relaxed);
            }
            if now.saturating_sub(w.started.load(Ordering::Relaxed)) >= self.window_len
                && w.samples.load(Ordering::Relaxed) >= self.min_samples
            {
                self.end_window(now);
            }
        }
        self.bulkhead.release();
    }

    #[cold]
    fn end_window(&self, now: u64) {
        let Some(mut algorithm) = self.algorithm.try_lock() else { return };
        let w = &self.window;
        // Re-check under the lock: another release may have just ended this window.
        if now.saturating_sub(w.started.load(Ordering::Relaxed)) < self.window_len {
            return;
        }
        let samples = w.samples.swap(0, Ordering::Relaxed);
        if samples == 0 {
            return;
        }
        let window = SampleWindow {
            samples,
            drops: w.drops.swap(0, Ordering::Relaxed),
            avg_rtt: Duration::from_nanos(w.rtt_sum.swap(0, Ordering::Relaxed) / samples),
            min_rtt: Duration::from_nanos(w.min_rtt.swap(u64::MAX, Ordering::Relaxed)),
            max_in_flight: w.max_in_flight.swap(self.bulkhead.in_flight(), Ordering::Relaxed),
        };
        w.started.store(now, Ordering::Relaxed);
        let next = algorithm.update(self.limit(), &window).clamp(self.min_limit, self.max_limit);
        self.bulkhead.set_limit(next);
    }

    /// The current concurrency limit.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.bulkhead.limit()
    }

    /// The bulkhead underneath (for its counters, in-flight count and queue).
    #[must_use]
    pub fn bulkhead(&self) -> &Bulkhead<C> {
        &self.bulkhead
    }
}

impl<C: Clock> AdaptiveBulkhead<C> {
    /// Waits for a permit, as [`Bulkhead::acquire`] (queue and maximum wait as configured).
    ///
    /// # Errors
    /// As [`Bulkhead::acquire`].
    pub async fn acquire(&self) -> Result<AdaptivePermit<'_, C>, BulkheadError> {
        let permit = self.bulkhead.acquire().await?;
        std::mem::forget(permit);
        Ok(AdaptivePermit { adaptive: self, start: self.started(), outcome: Outcome::Success })
    }
}

/// A permit of an [`AdaptiveBulkhead`]. Released on drop, recording the call as a success
/// unless marked otherwise.
///
/// ```
/// use levee_limit::{AdaptiveBulkhead, Vegas};
///
/// let bulkhead = AdaptiveBulkhead::builder(Vegas::new()).build()?;
/// let permit = bulkhead.try_acquire()?;
/// // ... call the backend ...
/// permit.dropped(); // it was overloaded: the algorithm hears a drop, not a latency sample
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "the permit is released as soon as it is dropped"]
pub struct AdaptivePermit<'a, C: Clock = FastClock> {
    adaptive: &'a AdaptiveBulkhead<C>,
    start: u64,
    outcome: Outcome,
}

impl<C: Clock> AdaptivePermit<'_, C> {
    /// Releases the permit, recording the call as overloaded downstream (timeout, 503, a
    /// refusal): algorithms back off on these.
    pub fn dropped(mut self) {
        self.outcome = Outcome::Dropped;
    }

    /// Releases the permit without recording a sample (for calls that say nothing about
    /// the downstream's capacity, such as client errors).
    pub fn ignore(mut self) {
        self.outcome = Outcome::Ignored;
    }

    /// Releases the permit, recording a success (what dropping it does).
    pub fn success(self) {}
}

impl<C: Clock> fmt::Debug for AdaptivePermit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptivePermit").field("outcome", &self.outcome).finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for AdaptivePermit<'_, C> {
    fn drop(&mut self) {
        self.adaptive.finish(self.start, self.outcome);
    }
}

/// An owned permit of an [`AdaptiveBulkhead`]; see [`AdaptivePermit`].
///
/// ```
/// use std::sync::Arc;
/// use levee_limit::{AdaptiveBulkhead, Aimd};
///
/// let bulkhead = Arc::new(AdaptiveBulkhead::builder(Aimd::new()).initial_limit(1).build()?);
/// let permit = bulkhead.try_acquire_owned().unwrap(); // 'static: can move into a task
/// assert!(bulkhead.try_acquire_owned().is_err()); // the limit is 1
/// permit.dropped(); // report an overload signal (a timeout, a 503) as it is released
/// assert!(bulkhead.try_acquire_owned().is_ok());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[must_use = "the permit is released as soon as it is dropped"]
pub struct AdaptiveOwnedPermit<C: Clock = FastClock> {
    adaptive: Arc<AdaptiveBulkhead<C>>,
    start: u64,
    outcome: Outcome,
}

impl<C: Clock> AdaptiveOwnedPermit<C> {
    /// Releases the permit, recording the call as overloaded downstream.
    pub fn dropped(mut self) {
        self.outcome = Outcome::Dropped;
    }

    /// Releases the permit without recording a sample.
    pub fn ignore(mut self) {
        self.outcome = Outcome::Ignored;
    }

    /// Releases the permit, recording a success (what dropping it does).
    pub fn success(self) {}
}

impl<C: Clock> fmt::Debug for AdaptiveOwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveOwnedPermit")
            .field("outcome", &self.outcome)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for AdaptiveOwnedPermit<C> {
    fn drop(&mut self) {
        self.adaptive.finish(self.start, self.outcome);
    }
}

/// Builds an [`AdaptiveBulkhead`].
///
/// ```
/// use std::time::Duration;
/// use levee_limit::{AdaptiveBulkhead, Aimd};
///
/// let bulkhead = AdaptiveBulkhead::builder(Aimd::new().backoff(0.9))
///     .initial_limit(20)
///     .limits(2, 200)
///     .window(Duration::from_secs(1), 10)
///     .build()?;
/// assert_eq!(bulkhead.limit(), 20);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[must_use]
pub struct AdaptiveBuilder<C> {
    algorithm: Box<dyn LimitAlgorithm>,
    initial: usize,
    min_limit: usize,
    max_limit: usize,
    window: Duration,
    min_samples: u64,
    bulkhead: BulkheadBuilder<C>,
}

impl<C> fmt::Debug for AdaptiveBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdaptiveBuilder")
            .field("algorithm", &self.algorithm)
            .field("initial", &self.initial)
            .field("min_limit", &self.min_limit)
            .field("max_limit", &self.max_limit)
            .finish_non_exhaustive()
    }
}

impl<C: Clock> AdaptiveBuilder<C> {
    /// The limit to start from (default 20).
    pub fn initial_limit(mut self, limit: usize) -> Self {
        self.initial = limit;
        self
    }

    /// Bounds for the limit (default `1..=1000`).
    pub fn limits(mut self, min: usize, max: usize) -> Self {
        self.min_limit = min;
        self.max_limit = max;
        self
    }

    /// A window closes after at least `length` and `min_samples` samples (default 100 ms
    /// and 10).
    pub fn window(mut self, length: Duration, min_samples: u64) -> Self {
        self.window = length;
        self.min_samples = min_samples;
        self
    }

    /// Configures the underlying bulkhead (queue, maximum wait, listeners); its
    /// `max_concurrent` is replaced by the initial limit.
    pub fn bulkhead(
        mut self,
        configure: impl FnOnce(BulkheadBuilder<C>) -> BulkheadBuilder<C>,
    ) -> Self {
        self.bulkhead = configure(self.bulkhead);
        self
    }

    /// Reads time from `clock` instead.
    pub fn clock<C2: Clock>(self, clock: C2) -> AdaptiveBuilder<C2> {
        AdaptiveBuilder {
            algorithm: self.algorithm,
            initial: self.initial,
            min_limit: self.min_limit,
            max_limit: self.max_limit,
            window: self.window,
            min_samples: self.min_samples,
            bulkhead: self.bulkhead.clock(clock),
        }
    }

    /// Builds the adaptive bulkhead.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `min_limit` (zero), `max_limit` (below `min_limit`),
    /// `initial_limit` (outside the bounds), `window` (zero) or a bulkhead setting.
    pub fn build(self) -> Result<AdaptiveBulkhead<C>, ConfigError> {
        let min_limit = ConfigError::require_nonzero("min_limit", self.min_limit)?;
        if self.max_limit < min_limit || self.max_limit > usize::MAX / 2 {
            return Err(ConfigError::new(
                "max_limit",
                format!("must be between min_limit ({min_limit}) and usize::MAX / 2"),
            ));
        }
        if !(min_limit..=self.max_limit).contains(&self.initial) {
            return Err(ConfigError::new(
                "initial_limit",
                format!("must be within {min_limit}..={}, got {}", self.max_limit, self.initial),
            ));
        }
        let window = nanos(ConfigError::require_positive("window", self.window)?);
        let bulkhead = self.bulkhead.build()?;
        bulkhead.set_limit(self.initial);
        let now = bulkhead.clock().now();
        let state = Window {
            min_rtt: AtomicU64::new(u64::MAX),
            started: AtomicU64::new(now),
            ..Window::default()
        };
        Ok(AdaptiveBulkhead {
            bulkhead,
            algorithm: Mutex::new(self.algorithm),
            window: state,
            window_len: window,
            min_samples: self.min_samples.max(1),
            min_limit,
            max_limit: self.max_limit,
        })
    }
}
