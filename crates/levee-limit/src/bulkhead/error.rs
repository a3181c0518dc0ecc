//! Why a bulkhead refuses a call. Apart so that the error type, which the tower layer and the
//! adaptive bulkhead also name, reads on its own.

use std::time::Duration;

use crate::error::RetryAfter;

/// Why a bulkhead refused a call.
///
/// ```
/// use levee_limit::{Bulkhead, BulkheadError};
///
/// let bulkhead = Bulkhead::new(1)?;
/// let _held = bulkhead.try_acquire()?;
/// assert_eq!(bulkhead.try_acquire().unwrap_err(), BulkheadError::Full { limit: 1 });
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum BulkheadError {
    /// All permits are in use and the caller does not wait (`try_acquire`, or no queue).
    #[error("bulkhead full: {limit} calls in flight")]
    Full {
        /// The concurrency limit at the time.
        limit: usize,
    },
    /// All permits are in use and the wait queue is full too.
    #[error("bulkhead full and {queued} calls already waiting")]
    QueueFull {
        /// Waiters in the queue.
        queued: usize,
    },
    /// The caller waited the maximum time without getting a permit.
    #[error("no bulkhead permit within {waited:?}")]
    TimedOut {
        /// How long it waited.
        waited: Duration,
    },
}

/// A bulkhead refusal carries no time: when a permit frees up depends on calls in flight.
impl RetryAfter for BulkheadError {
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}
