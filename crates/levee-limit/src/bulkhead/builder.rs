//! Building a bulkhead: [`Bulkhead::new`], [`Bulkhead::builder`], [`BulkheadBuilder`] and the
//! checks that turn bad settings into a [`ConfigError`]. Apart because configuration is read
//! once and never on a caller's path.

use std::fmt;
use std::time::Duration;

use levee_core::sync::{AtomicUsize, CachePadded, Mutex};
use levee_core::{Clock, ConfigError, Counter, EventHook, FastClock, Listener, nanos};

use super::queue::WaitQueue;
use super::{Bulkhead, BulkheadEvent, Hot};
use crate::quota::MAX_SPAN;

impl Bulkhead<FastClock> {
    /// A bulkhead of `max_concurrent` permits that never queues.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `max_concurrent` when it is zero.
    pub fn new(max_concurrent: usize) -> Result<Self, ConfigError> {
        Self::builder(max_concurrent).build()
    }

    /// A builder for `max_concurrent` permits (no queue, no maximum wait unless set).
    pub fn builder(max_concurrent: usize) -> BulkheadBuilder<FastClock> {
        BulkheadBuilder {
            max_concurrent,
            max_queue: 0,
            max_wait: None,
            count_acquired: false,
            clock: FastClock,
            hook: EventHook::none(),
        }
    }
}

/// Builds a [`Bulkhead`].
///
/// ```
/// use std::time::Duration;
/// use levee_limit::Bulkhead;
///
/// let bulkhead = Bulkhead::builder(8)
///     .max_queue(32)
///     .max_wait(Duration::from_millis(50))
///     .count_acquired(true)
///     .build()?;
/// let permit = bulkhead.try_acquire()?;
/// assert_eq!(bulkhead.stats().in_flight, 1);
/// drop(permit);
/// assert_eq!(bulkhead.stats().acquired, Some(1));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct BulkheadBuilder<C> {
    max_concurrent: usize,
    max_queue: usize,
    max_wait: Option<Duration>,
    count_acquired: bool,
    clock: C,
    hook: EventHook<BulkheadEvent>,
}

impl<C> fmt::Debug for BulkheadBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BulkheadBuilder")
            .field("max_concurrent", &self.max_concurrent)
            .field("max_queue", &self.max_queue)
            .field("max_wait", &self.max_wait)
            .finish_non_exhaustive()
    }
}

/// The largest queue a bulkhead accepts.
pub const MAX_QUEUE: usize = 1 << 20;

impl<C: Clock> BulkheadBuilder<C> {
    /// How many callers may wait for a permit (default 0: `acquire` fails at once when
    /// full, like `try_acquire`). At most [`MAX_QUEUE`].
    pub fn max_queue(mut self, max_queue: usize) -> Self {
        self.max_queue = max_queue;
        self
    }

    /// The longest a caller waits in the queue (default: as long as it takes).
    pub fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// Also counts permits handed out (off by default: an atomic add per acquire).
    pub fn count_acquired(mut self, yes: bool) -> Self {
        self.count_acquired = yes;
        self
    }

    /// Reads time from `clock` (to measure and bound waits).
    pub fn clock<C2: Clock>(self, clock: C2) -> BulkheadBuilder<C2> {
        BulkheadBuilder {
            max_concurrent: self.max_concurrent,
            max_queue: self.max_queue,
            max_wait: self.max_wait,
            count_acquired: self.count_acquired,
            clock,
            hook: self.hook,
        }
    }

    /// Adds a listener for [`BulkheadEvent`]s.
    pub fn listener(mut self, listener: impl Listener<BulkheadEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Builds the bulkhead.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `max_concurrent` (zero or above `usize::MAX / 2`),
    /// `max_queue` (above [`MAX_QUEUE`]) or `max_wait` (zero or above 146 years).
    pub fn build(self) -> Result<Bulkhead<C>, ConfigError> {
        let limit = ConfigError::require_nonzero("max_concurrent", self.max_concurrent)?;
        if limit > usize::MAX / 2 {
            return Err(ConfigError::new("max_concurrent", "must be at most usize::MAX / 2"));
        }
        if self.max_queue > MAX_QUEUE {
            return Err(ConfigError::new(
                "max_queue",
                format!("must be at most {MAX_QUEUE}, got {}", self.max_queue),
            ));
        }
        let max_wait = match self.max_wait {
            None => None,
            Some(d) => {
                let d = ConfigError::require_positive("max_wait", d)?;
                if d > MAX_SPAN {
                    return Err(ConfigError::new(
                        "max_wait",
                        "must be at most 2^62 ns (146 years)",
                    ));
                }
                Some(nanos(d))
            }
        };
        Ok(Bulkhead {
            hot: CachePadded::new(Hot {
                in_flight: AtomicUsize::new(0),
                limit: AtomicUsize::new(limit),
                queued: AtomicUsize::new(0),
            }),
            waiters: Mutex::new(WaitQueue::default()),
            max_queue: self.max_queue,
            max_wait,
            count_acquired: self.count_acquired,
            clock: self.clock,
            acquired: Counter::new(),
            rejected: Counter::new(),
            timed_out: Counter::new(),
            waited: Counter::new(),
            hook: self.hook,
        })
    }
}
