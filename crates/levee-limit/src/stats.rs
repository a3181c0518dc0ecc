//! What the limiters count and the events they emit.

use std::time::Duration;

use levee_core::{Counter, EventHook};

use crate::error::{CheckNError, Throttled};

/// Counters a rate limiter keeps (all `Relaxed`: statistics, read in snapshots).
#[derive(Debug, Default)]
pub(crate) struct RateCounters {
    pub(crate) admitted: Counter,
    pub(crate) rejected: Counter,
    pub(crate) waited: Counter,
}

impl RateCounters {
    /// Counts `cells` admitted cells when the limiter counts admissions (an atomic add that
    /// limiters built without counting skip).
    #[inline]
    pub(crate) fn admit(&self, count_admitted: bool, cells: u32) {
        if count_admitted {
            self.admitted.add(u64::from(cells));
        }
    }

    /// Counts the outcome of checking `cells` cells and passes it on: an admission as in
    /// [`admit`](Self::admit), a refusal as in [`record_throttled`](Self::record_throttled).
    #[inline]
    pub(crate) fn settle(
        &self,
        hook: &EventHook<RateEvent>,
        count_admitted: bool,
        cells: u32,
        result: Result<(), Throttled>,
    ) -> Result<(), Throttled> {
        match result {
            Ok(()) => {
                self.admit(count_admitted, cells);
                Ok(())
            }
            Err(refusal) => Err(self.record_throttled(hook, cells, refusal)),
        }
    }

    pub(crate) fn snapshot(&self, count_admitted: bool) -> RateStats {
        RateStats {
            admitted: count_admitted.then(|| self.admitted.get()),
            rejected: self.rejected.get(),
            waited: self.waited.get(),
        }
    }

    /// Counts a call refused "not now" and reports it to `hook`.
    #[cold]
    pub(crate) fn record_throttled(
        &self,
        hook: &EventHook<RateEvent>,
        cells: u32,
        refusal: Throttled,
    ) -> Throttled {
        self.rejected.incr();
        hook.emit(|| RateEvent::Throttled { cells, retry_after: refusal.retry_after() });
        refusal
    }

    /// Counts a refused `check_n` call; reports it to `hook` when it is a "not now" (a
    /// request larger than the burst is counted only).
    #[cold]
    pub(crate) fn record_refusal(
        &self,
        hook: &EventHook<RateEvent>,
        cells: u32,
        error: CheckNError,
    ) -> CheckNError {
        match error {
            CheckNError::Throttled(t) => self.record_throttled(hook, cells, t).into(),
            CheckNError::InsufficientCapacity(_) => {
                self.rejected.incr();
                error
            }
        }
    }

    /// Counts and reports an async call admitted after waiting `waited` nanoseconds in all
    /// (nothing when it did not wait).
    pub(crate) fn record_wait(&self, hook: &EventHook<RateEvent>, cells: u32, waited: u64) {
        if waited > 0 {
            self.waited.incr();
            hook.emit(|| RateEvent::Waited { cells, waited: Duration::from_nanos(waited) });
        }
    }
}

/// A snapshot of a rate limiter's counters.
///
/// ```
/// use levee_limit::{Quota, RateLimiter};
///
/// let limiter = RateLimiter::builder(Quota::per_second(1)).count_admitted(true).build()?;
/// limiter.check().unwrap();
/// assert!(limiter.check().is_err());
/// let stats = limiter.stats();
/// assert_eq!((stats.admitted, stats.rejected), (Some(1), 1));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct RateStats {
    /// Cells admitted (a `check_n(5)` counts five); `None` unless the limiter was built with
    /// admission counting on, which costs an atomic add per admission.
    pub admitted: Option<u64>,
    /// Calls refused (one per refused call, whatever its size).
    pub rejected: u64,
    /// Async calls that had to wait at least once before being admitted.
    pub waited: u64,
}

/// What a rate limiter (direct, keyed, window, warm-up or pacer) reports to its listeners.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_limit::{Quota, RateEvent, RateLimiter};
///
/// let seen = Arc::new(Mutex::new(Vec::new()));
/// let sink = seen.clone();
/// let limiter = RateLimiter::builder(Quota::per_second(1))
///     .listener(move |e: &RateEvent| sink.lock().unwrap().push(*e))
///     .build()?;
/// limiter.check().unwrap();
/// let _ = limiter.check();
/// assert!(matches!(seen.lock().unwrap()[..], [RateEvent::Throttled { cells: 1, .. }]));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum RateEvent {
    /// A call was refused; it can conform after `retry_after`.
    Throttled {
        /// Cells asked for.
        cells: u32,
        /// How long until it could conform.
        retry_after: Duration,
    },
    /// An async call waited `waited` in total before it was admitted.
    Waited {
        /// Cells admitted.
        cells: u32,
        /// Time spent waiting.
        waited: Duration,
    },
    /// A keyed limiter reclaimed `reclaimed` keys whose state equalled a fresh key's.
    KeysReclaimed {
        /// Keys removed.
        reclaimed: usize,
        /// Keys still tracked in that shard afterwards.
        remaining: usize,
    },
    /// A keyed limiter at its key limit evicted `evicted` keys to admit new ones.
    KeysEvicted {
        /// Keys removed.
        evicted: usize,
    },
}
