//! Taking and giving back permits: `try_acquire`, the CAS on `in_flight`, the release that
//! hands a freed permit to the oldest waiter, and limit changes. This is the lock-free
//! protocol the module docs of [`super`] argue for ("No lost wake-up"); the waiting path in
//! `waiting` builds on the `pub(super)` steps here. Apart so the protocol reads in one place.

use std::sync::Arc;

use levee_core::Clock;
use levee_core::sync::Ordering;

use super::queue::WakeList;
use super::{Bulkhead, BulkheadError, BulkheadEvent, OwnedPermit, Permit};

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
    pub(super) fn try_take(&self) -> bool {
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
    pub(super) fn try_take_published(&self) -> bool {
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
    pub(super) fn full(&self) -> BulkheadError {
        let error = BulkheadError::Full { limit: self.hot.limit.load(Ordering::Relaxed) };
        self.reject(error)
    }

    pub(super) fn reject(&self, error: BulkheadError) -> BulkheadError {
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
    pub(super) fn leave_queue(&self, key: usize) -> bool {
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

    /// Hands free permits to the oldest waiters, waking them once the lock is released. A
    /// release usually grants one waiter, whose waker is kept aside; more go into a
    /// [`WakeList`] (at most [`WakeList::CAPACITY`] per lock hold), so nothing is allocated.
    #[cold]
    fn grant_waiters(&self) {
        loop {
            let mut first = None;
            let mut rest: Option<WakeList> = None;
            let more = {
                let mut queue = self.waiters.lock();
                loop {
                    if rest.as_ref().is_some_and(WakeList::is_full) {
                        break queue.len() > 0;
                    }
                    // A plain `try_take`: under the lock the queue is what it is (a waiter
                    // publishes itself and re-reads under it too), the CAS acts on the latest
                    // `in_flight`, and a limit raised by another thread is granted by the
                    // `set_limit` that raised it.
                    if queue.len() == 0 || !self.try_take() {
                        break false;
                    }
                    let Some(waker) = queue.grant_next() else { break false };
                    // Under the lock; releasers only read `queued` as a hint to take it.
                    self.hot.queued.fetch_sub(1, Ordering::AcqRel);
                    match first {
                        None => first = Some(waker),
                        Some(_) => rest.get_or_insert_with(WakeList::new).push(waker),
                    }
                }
            };
            if let Some(waker) = first.flatten() {
                waker.wake();
            }
            if let Some(rest) = rest {
                rest.wake_all();
            }
            if !more {
                return;
            }
        }
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
}
