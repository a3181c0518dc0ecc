//! The bulkhead: at most N calls in flight, with a bounded, time-limited wait queue.
//!
//! **Fast path.** `in_flight`, `limit` and the number of queued waiters share one cache line.
//! `try_acquire` is a load and a CAS on `in_flight`; releasing is one `fetch_sub` and one load
//! of the queued count. No lock unless someone waits (tokio's `Semaphore` takes its waiter
//! lock on every release).
//!
//! **Waiting.** A caller that finds the bulkhead full (and may wait) joins a FIFO queue under
//! a mutex. Releasers hand permits to waiters directly: a releaser that sees waiters takes
//! the lock, acquires permits on their behalf and marks the oldest waiters granted, so a
//! granted permit can never be taken by someone else.
//!
//! **No lost wake-up.** A waiter publishes itself (`C`: `queued += 1`) and then re-reads
//! `in_flight` with a read-modify-write (`D`: `fetch_add(0)`); a releaser decrements (`A`:
//! `fetch_sub`, an acquire-release RMW) and then reads `queued` (`B`, a plain load). If `D`
//! still saw the permit taken, `D` precedes `A` in `in_flight`'s modification order, so `A`
//! reads from `D`'s release sequence and `D` synchronises with `A`: then `C -> D -> A -> B`
//! in happens-before and `B` must see the waiter. Otherwise `D` saw the permit free and the
//! waiter takes it. A limit change (`swap` on `limit`, then the same load) pairs with the
//! waiter's `fetch_add(0)` on `limit` the same way. Only the waiter, on the slow path, pays
//! for the extra RMWs; the release stays one RMW and one load. (The argument needs only
//! acquire-release, which is also what loom models, so loom checks exactly this code.)
//!
//! Callers that do not wait (`try_acquire`) may take a freed permit before a queued waiter
//! is granted one; waiters are served in order among themselves, and `max_wait` bounds how
//! long any of them waits.
//!
//! **Cancellation.** A permit is an RAII guard. An `acquire` future dropped while queued
//! leaves the queue; one dropped after being granted but before it was polled again releases
//! the granted permit (to the next waiter, if any). Nothing leaks.
//!
//! **Files.** This module holds the type and the design above; [`permits`] takes and gives
//! back permits (the protocol above), [`waiting`] is the queued `acquire` path and its
//! futures, [`guard`] the RAII permits, [`builder`] and [`settings`] the configuration,
//! [`error`] and [`stats`] what a bulkhead reports.

mod builder;
mod error;
mod guard;
mod permits;
mod queue;
mod settings;
mod stats;
mod waiting;

use std::fmt;
use std::time::Duration;

use levee_core::sync::{AtomicUsize, CachePadded, Mutex, Ordering};
use levee_core::{Counter, EventHook, FastClock};

use queue::WaitQueue;

pub use builder::{BulkheadBuilder, MAX_QUEUE};
pub use error::BulkheadError;
pub use guard::{OwnedPermit, Permit};
pub use settings::BulkheadSettings;
pub use stats::{BulkheadEvent, BulkheadStats};
pub use waiting::{Acquire, AcquireOwned};

/// The words every acquire and release touch, on one cache line.
#[derive(Debug)]
struct Hot {
    in_flight: AtomicUsize,
    limit: AtomicUsize,
    queued: AtomicUsize,
}

/// A concurrency limiter: at most `limit` permits out at once, a bounded FIFO queue for
/// callers willing to wait, and a maximum wait.
///
/// ```
/// use levee_limit::{Bulkhead, BulkheadError};
///
/// let bulkhead = Bulkhead::new(2)?;
/// let a = bulkhead.try_acquire()?;
/// let _b = bulkhead.try_acquire()?;
/// assert!(matches!(bulkhead.try_acquire(), Err(BulkheadError::Full { limit: 2 })));
/// drop(a); // released on drop
/// assert!(bulkhead.try_acquire().is_ok());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// Waiting, with a queue of 100 and at most 50 ms in it:
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use levee_limit::Bulkhead;
///
/// let bulkhead = Bulkhead::builder(8)
///     .max_queue(100)
///     .max_wait(Duration::from_millis(50))
///     .build()?;
/// let permit = bulkhead.acquire().await?;
/// assert_eq!(bulkhead.in_flight(), 1);
/// drop(permit);
/// # Ok(())
/// # }
/// ```
pub struct Bulkhead<C = FastClock> {
    hot: CachePadded<Hot>,
    waiters: Mutex<WaitQueue>,
    max_queue: usize,
    max_wait: Option<u64>,
    count_acquired: bool,
    clock: C,
    acquired: Counter,
    rejected: Counter,
    timed_out: Counter,
    waited: Counter,
    hook: EventHook<BulkheadEvent>,
}

impl<C> fmt::Debug for Bulkhead<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bulkhead")
            .field("in_flight", &self.hot.in_flight.load(Ordering::Relaxed))
            .field("limit", &self.hot.limit.load(Ordering::Relaxed))
            .field("max_queue", &self.max_queue)
            .field("max_wait", &self.max_wait.map(Duration::from_nanos))
            .finish_non_exhaustive()
    }
}
