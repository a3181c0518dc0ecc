//! The waiting path: [`Bulkhead::acquire`] and [`Bulkhead::acquire_owned`], the state of a
//! queued acquire, and its futures, cancellation-safe. Apart from the permit protocol: only
//! callers that find the bulkhead full get here, and they take the queue's lock.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use levee_core::sync::Ordering;
use levee_core::{Clock, Sleep};

use super::{Bulkhead, BulkheadError, BulkheadEvent, OwnedPermit, Permit};

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
                    // The clock is read only for a maximum wait or a listener of the time
                    // waited (0: not measured).
                    let measure = bulkhead.max_wait.is_some() || !bulkhead.hook.is_empty();
                    let since = if measure { bulkhead.clock.now() } else { 0 };
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
                            drop(queue);
                            let since = *since;
                            *self = Wait::Done;
                            bulkhead.waited.incr();
                            bulkhead.hook.emit(|| BulkheadEvent::Waited {
                                waited: Duration::from_nanos(
                                    bulkhead.clock.now().saturating_sub(since),
                                ),
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
///
/// ```
/// use levee_limit::Bulkhead;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let bulkhead = Bulkhead::new(1).unwrap();
/// let permit = bulkhead.acquire().await.unwrap(); // an Acquire future: waits for a permit
/// assert_eq!(bulkhead.available(), 0);
/// drop(permit);
/// assert_eq!(bulkhead.available(), 1);
/// # });
/// ```
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
///
/// ```
/// use std::sync::Arc;
/// use levee_limit::Bulkhead;
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let bulkhead = Arc::new(Bulkhead::new(2).unwrap());
/// let permit = bulkhead.acquire_owned().await.unwrap(); // an OwnedPermit, 'static
/// let task = tokio::spawn(async move {
///     let _held = permit; // released when the task ends
/// });
/// task.await.unwrap();
/// assert_eq!(bulkhead.in_flight(), 0);
/// # });
/// ```
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
