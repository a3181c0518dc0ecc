//! What a bulkhead reports: the events its listeners get, the [`BulkheadStats`] snapshot and
//! the readings of its state. Apart from the permit protocol: nothing here changes state.

use std::time::Duration;

use levee_core::Clock;
use levee_core::sync::Ordering;

use super::{Bulkhead, BulkheadError};

/// What a bulkhead reports to its listeners.
///
/// ```
/// use std::sync::{Arc, Mutex};
/// use levee_limit::{Bulkhead, BulkheadError, BulkheadEvent};
///
/// let events = Arc::new(Mutex::new(Vec::new()));
/// let sink = events.clone();
/// let bulkhead = Bulkhead::builder(1).listener(move |e: &BulkheadEvent| sink.lock().unwrap().push(*e)).build()?;
/// let _held = bulkhead.try_acquire()?;
/// let _ = bulkhead.try_acquire();
/// assert_eq!(events.lock().unwrap()[..], [BulkheadEvent::Rejected(BulkheadError::Full { limit: 1 })]);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BulkheadEvent {
    /// A call was refused.
    Rejected(BulkheadError),
    /// A call got a permit after waiting `waited` in the queue.
    Waited {
        /// Time spent in the queue.
        waited: Duration,
    },
    /// The concurrency limit changed (by hand or by an adaptive algorithm).
    LimitChanged {
        /// The old limit.
        from: usize,
        /// The new limit.
        to: usize,
    },
}

/// A snapshot of a bulkhead's state and counters.
///
/// ```
/// use levee_limit::Bulkhead;
///
/// let bulkhead = Bulkhead::new(3)?;
/// let _a = bulkhead.try_acquire()?;
/// let stats = bulkhead.stats();
/// assert_eq!((stats.in_flight, stats.limit, bulkhead.available()), (1, 3, 2));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct BulkheadStats {
    /// Permits held right now.
    pub in_flight: usize,
    /// The concurrency limit.
    pub limit: usize,
    /// Callers waiting in the queue.
    pub queued: usize,
    /// Permits handed out; `None` unless counting was enabled (an atomic add per acquire).
    pub acquired: Option<u64>,
    /// Calls refused because the bulkhead (and its queue) was full.
    pub rejected: u64,
    /// Calls that timed out in the queue.
    pub timed_out: u64,
    /// Calls that got a permit after waiting.
    pub waited: u64,
}

impl<C: Clock> Bulkhead<C> {
    /// Permits held right now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.hot.in_flight.load(Ordering::Relaxed)
    }

    /// The concurrency limit.
    #[must_use]
    pub fn limit(&self) -> usize {
        self.hot.limit.load(Ordering::Relaxed)
    }

    /// Permits free right now.
    #[must_use]
    pub fn available(&self) -> usize {
        self.limit().saturating_sub(self.in_flight())
    }

    /// Callers waiting in the queue.
    #[must_use]
    pub fn queued(&self) -> usize {
        self.hot.queued.load(Ordering::Relaxed)
    }

    /// A snapshot of state and counters.
    #[must_use]
    pub fn stats(&self) -> BulkheadStats {
        BulkheadStats {
            in_flight: self.in_flight(),
            limit: self.limit(),
            queued: self.queued(),
            acquired: self.count_acquired.then(|| self.acquired.get()),
            rejected: self.rejected.get(),
            timed_out: self.timed_out.get(),
            waited: self.waited.get(),
        }
    }

    /// The bulkhead's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.clock
    }
}
