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

mod queue;

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use levee_core::sync::{AtomicUsize, CachePadded, Mutex, Ordering};
use levee_core::{Clock, ConfigError, Counter, EventHook, FastClock, Listener, Sleep, nanos};

use crate::error::RetryAfter;
use crate::quota::MAX_SPAN;
use queue::WaitQueue;

/// Why a bulkhead refused a call.
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

/// What a bulkhead reports to its listeners.
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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
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

impl<C: Clock> Bulkhead<C> {
    /// Takes a permit if one is free, without waiting.
    ///
    /// # Errors
    /// [`BulkheadError::Full`] when all permits are out.
    #[inline]
    pub fn try_acquire(&self) -> Result<Permit<'_, C>, BulkheadError> {
        if self.try_take() { Ok(Permit { bulkhead: self }) } else { Err(self.full()) }
    }

    /// As [`try_acquire`](Self::try_acquire), returning a permit that owns a handle to the
    /// bulkhead (to move into a spawned task or a response future).
    ///
    /// # Errors
    /// [`BulkheadError::Full`] when all permits are out.
    #[inline]
    pub fn try_acquire_owned(self: &Arc<Self>) -> Result<OwnedPermit<C>, BulkheadError> {
        if self.try_take() {
            Ok(OwnedPermit { bulkhead: Arc::clone(self) })
        } else {
            Err(self.full())
        }
    }

    /// Takes a permit if `in_flight < limit`.
    #[inline]
    fn try_take(&self) -> bool {
        let hot = &*self.hot;
        // Relaxed: the limit is a setting; a stale read only delays a limit change by one
        // call (waiters re-read it with `try_take_published`).
        let limit = hot.limit.load(Ordering::Relaxed);
        // Relaxed: a stale count only fails the CAS, which then sees the latest value.
        let current = hot.in_flight.load(Ordering::Relaxed);
        self.take_from(current, limit)
    }

    /// The waiter's re-read (module docs, "No lost wake-up"): after publishing itself in
    /// `queued`, reads `limit` and `in_flight` with acquire-release read-modify-writes, which
    /// read the latest values and join the releasers' synchronisation. Slow path only.
    fn try_take_published(&self) -> bool {
        let hot = &*self.hot;
        let limit = hot.limit.fetch_add(0, Ordering::AcqRel);
        let current = hot.in_flight.fetch_add(0, Ordering::AcqRel);
        self.take_from(current, limit)
    }

    #[inline]
    fn take_from(&self, mut current: usize, limit: usize) -> bool {
        let hot = &*self.hot;
        loop {
            if current >= limit {
                return false;
            }
            // Acquire on success pairs with the Release half of `release`: what the previous
            // holder of a permit did happens before the next holder's work.
            match hot.in_flight.compare_exchange_weak(
                current,
                current + 1,
                Ordering::Acquire,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if self.count_acquired {
                        self.acquired.incr();
                    }
                    return true;
                }
                Err(actual) => current = actual,
            }
        }
    }

    #[cold]
    fn full(&self) -> BulkheadError {
        let error = BulkheadError::Full { limit: self.hot.limit.load(Ordering::Relaxed) };
        self.reject(error)
    }

    fn reject(&self, error: BulkheadError) -> BulkheadError {
        match error {
            BulkheadError::TimedOut { waited } => {
                self.timed_out.incr();
                self.hook.emit(|| BulkheadEvent::Rejected(BulkheadError::TimedOut { waited }));
            }
            _ => {
                self.rejected.incr();
                self.hook.emit(|| BulkheadEvent::Rejected(error));
            }
        }
        error
    }

    /// Takes waiter `key` out of the queue (a timed-out or dropped acquire). Returns whether
    /// it had been granted a permit, which the caller then holds; a waiter that was still
    /// waiting stops counting as queued.
    fn leave_queue(&self, key: usize) -> bool {
        let mut queue = self.waiters.lock();
        let granted = queue.remove(key);
        if !granted {
            // Under the lock, like every change of `queued`.
            self.hot.queued.fetch_sub(1, Ordering::AcqRel);
        }
        granted
    }

    /// Gives a permit back, handing it to a waiter if one is queued.
    #[inline]
    pub(crate) fn release(&self) {
        // AcqRel: Release for the next holder (see `take_from`); Acquire so that a waiter's
        // re-read that preceded this decrement synchronises with it (module docs).
        self.hot.in_flight.fetch_sub(1, Ordering::AcqRel);
        if self.waiters_published() {
            self.grant_waiters();
        }
    }

    /// Whether waiters are queued, read after a release or a limit change. A plain load:
    /// the module docs ("No lost wake-up") show why it cannot miss a waiter that did not
    /// see the release. On x86 it is a `mov`, so releasing costs one RMW and no lock.
    #[inline]
    fn waiters_published(&self) -> bool {
        self.hot.queued.load(Ordering::Acquire) > 0
    }

    /// Hands free permits to the oldest waiters.
    #[cold]
    fn grant_waiters(&self) {
        let mut wakers = Vec::new();
        {
            let mut queue = self.waiters.lock();
            while queue.len() > 0 && self.try_take_published() {
                if let Some(waker) = queue.grant_next() {
                    // Under the lock; releasers only read `queued` as a hint to take it.
                    self.hot.queued.fetch_sub(1, Ordering::AcqRel);
                    wakers.extend(waker);
                }
            }
        }
        wakers.into_iter().for_each(std::task::Waker::wake);
    }

    /// Changes the concurrency limit (at least one). Permits already out stay valid: when
    /// the limit shrinks, new acquisitions wait until enough are released; when it grows,
    /// queued waiters are granted the new permits at once.
    pub fn set_limit(&self, limit: usize) {
        let limit = limit.max(1);
        // AcqRel: pairs with a waiter's re-read of `limit` like a release (module docs).
        let from = self.hot.limit.swap(limit, Ordering::AcqRel);
        if from != limit {
            self.hook.emit(|| BulkheadEvent::LimitChanged { from, to: limit });
        }
        if limit > from && self.waiters_published() {
            self.grant_waiters();
        }
    }

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

impl<C: Clock> Bulkhead<C> {
    /// Waits for a permit: at once if one is free, else in the FIFO queue (if it has room)
    /// for at most the maximum wait.
    ///
    /// Cancellation-safe: dropping the future leaves the queue, and a permit granted to it
    /// in the meantime goes to the next waiter. The maximum wait is a sleep on the
    /// bulkhead's clock.
    ///
    /// # Errors
    /// [`BulkheadError::Full`] when full and queueing is off, [`BulkheadError::QueueFull`],
    /// or [`BulkheadError::TimedOut`].
    pub fn acquire(&self) -> Acquire<'_, C> {
        Acquire { bulkhead: self, wait: Wait::Start }
    }

    /// As [`acquire`](Self::acquire), for a permit that owns a handle to the bulkhead.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_owned(self: &Arc<Self>) -> AcquireOwned<C> {
        AcquireOwned { bulkhead: Arc::clone(self), wait: Wait::Start }
    }
}

/// Where an acquire future stands.
enum Wait {
    Start,
    Queued { key: usize, since: u64, timeout: Option<Pin<Box<Sleep>>> },
    Done,
}

impl Wait {
    /// Polls for a permit; on `Ready(Ok(()))` the caller owns one.
    fn poll<C: Clock>(
        &mut self,
        bulkhead: &Bulkhead<C>,
        cx: &mut Context<'_>,
    ) -> Poll<Result<(), BulkheadError>> {
        loop {
            match self {
                Wait::Start => {
                    if bulkhead.try_take() {
                        *self = Wait::Done;
                        return Poll::Ready(Ok(()));
                    }
                    if bulkhead.max_queue == 0 {
                        *self = Wait::Done;
                        return Poll::Ready(Err(bulkhead.full()));
                    }
                    let mut queue = bulkhead.waiters.lock();
                    if queue.len() >= bulkhead.max_queue {
                        let queued = queue.len();
                        drop(queue);
                        *self = Wait::Done;
                        return Poll::Ready(Err(
                            bulkhead.reject(BulkheadError::QueueFull { queued })
                        ));
                    }
                    let key = queue.push(cx.waker().clone());
                    // Publish the waiter, then re-read (module docs, "No lost wake-up").
                    bulkhead.hot.queued.fetch_add(1, Ordering::AcqRel);
                    if bulkhead.try_take_published() {
                        queue.remove(key);
                        bulkhead.hot.queued.fetch_sub(1, Ordering::AcqRel);
                        *self = Wait::Done;
                        return Poll::Ready(Ok(()));
                    }
                    drop(queue);
                    let since = bulkhead.clock.now();
                    let timeout = bulkhead
                        .max_wait
                        .map(|max| Box::pin(bulkhead.clock.sleep_until(since.saturating_add(max))));
                    *self = Wait::Queued { key, since, timeout };
                }
                Wait::Queued { key, since, timeout } => {
                    let key = *key;
                    {
                        let mut queue = bulkhead.waiters.lock();
                        if queue.take_grant(key) {
                            let waited = bulkhead.clock.now().saturating_sub(*since);
                            drop(queue);
                            *self = Wait::Done;
                            bulkhead.waited.incr();
                            bulkhead.hook.emit(|| BulkheadEvent::Waited {
                                waited: Duration::from_nanos(waited),
                            });
                            return Poll::Ready(Ok(()));
                        }
                        queue.set_waker(key, cx.waker());
                    }
                    let expired = timeout.as_mut().is_some_and(|t| t.as_mut().poll(cx).is_ready());
                    if !expired {
                        return Poll::Pending;
                    }
                    let waited = Duration::from_nanos(bulkhead.clock.now().saturating_sub(*since));
                    *self = Wait::Done;
                    if bulkhead.leave_queue(key) {
                        // Granted just as the time ran out: take it.
                        return Poll::Ready(Ok(()));
                    }
                    return Poll::Ready(Err(bulkhead.reject(BulkheadError::TimedOut { waited })));
                }
                Wait::Done => panic!("acquire future polled after completion"),
            }
        }
    }

    /// Leaves the queue when the future is dropped unfinished.
    fn cancel<C: Clock>(&mut self, bulkhead: &Bulkhead<C>) {
        if let Wait::Queued { key, .. } = *self {
            if bulkhead.leave_queue(key) {
                // A permit was handed to us but never taken: pass it on.
                bulkhead.release();
            }
        }
        *self = Wait::Done;
    }
}

/// The future of [`Bulkhead::acquire`].
#[must_use = "futures do nothing unless polled"]
pub struct Acquire<'a, C: Clock> {
    bulkhead: &'a Bulkhead<C>,
    wait: Wait,
}

impl<C: Clock> fmt::Debug for Acquire<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Acquire").finish_non_exhaustive()
    }
}

impl<'a, C: Clock> Future for Acquire<'a, C> {
    type Output = Result<Permit<'a, C>, BulkheadError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        let bulkhead = this.bulkhead;
        this.wait.poll(bulkhead, cx).map_ok(|()| Permit { bulkhead })
    }
}

impl<C: Clock> Drop for Acquire<'_, C> {
    fn drop(&mut self) {
        self.wait.cancel(self.bulkhead);
    }
}

/// The future of [`Bulkhead::acquire_owned`].
#[must_use = "futures do nothing unless polled"]
pub struct AcquireOwned<C: Clock> {
    bulkhead: Arc<Bulkhead<C>>,
    wait: Wait,
}

impl<C: Clock> fmt::Debug for AcquireOwned<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AcquireOwned").finish_non_exhaustive()
    }
}

impl<C: Clock> Future for AcquireOwned<C> {
    type Output = Result<OwnedPermit<C>, BulkheadError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        this.wait
            .poll(&this.bulkhead, cx)
            .map_ok(|()| OwnedPermit { bulkhead: Arc::clone(&this.bulkhead) })
    }
}

impl<C: Clock> Drop for AcquireOwned<C> {
    fn drop(&mut self) {
        self.wait.cancel(&self.bulkhead);
    }
}

/// A bulkhead permit; released when dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit<'a, C: Clock = FastClock> {
    bulkhead: &'a Bulkhead<C>,
}

impl<C: Clock> fmt::Debug for Permit<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Permit").finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for Permit<'_, C> {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

/// A bulkhead permit holding its own handle to the bulkhead; released when dropped.
#[must_use = "the permit is released as soon as it is dropped"]
pub struct OwnedPermit<C: Clock = FastClock> {
    bulkhead: Arc<Bulkhead<C>>,
}

impl<C: Clock> OwnedPermit<C> {
    /// The bulkhead this permit belongs to.
    #[must_use]
    pub fn bulkhead(&self) -> &Arc<Bulkhead<C>> {
        &self.bulkhead
    }
}

impl<C: Clock> fmt::Debug for OwnedPermit<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OwnedPermit").finish_non_exhaustive()
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    #[inline]
    fn drop(&mut self) {
        self.bulkhead.release();
    }
}

/// Builds a [`Bulkhead`].
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
