//! How the driver hands due items to the [`Expirations`](super::Expirations) stream: a pass's
//! batch at a time.
//!
//! The driver appends a whole pass to a shared queue under one lock and wakes the consumer
//! once; the consumer swaps the shared queue for its own drained one under one lock, then
//! takes items with no synchronisation at all. A lock and a wake-up per pass, a move per item
//! (an `mpsc` channel paid a slot claim, a block write and a waker check on each side per
//! item). The two queues trade places, so their capacity is reused and a steady stream of
//! passes allocates nothing.
//!
//! `backlog` counts the items handed over and not yet taken (in either queue), for
//! [`TimerStats::backlog`](super::TimerStats::backlog).

use std::collections::VecDeque;
use std::mem;
use std::sync::{Arc, PoisonError};
use std::task::{Context, Poll, Waker};

use levee_core::sync::{AtomicUsize, Mutex, Ordering};

use crate::sharded::TimerHandle;

type Item<T> = (TimerHandle, T);

struct State<T> {
    items: VecDeque<Item<T>>,
    /// The consumer, when it found nothing and waits.
    waker: Option<Waker>,
    /// The service is gone: no more batches.
    closed: bool,
    /// The stream is gone: batches are dropped, not kept.
    abandoned: bool,
}

/// The driver's end, held by the service.
pub(super) struct Sender<T> {
    state: Arc<Mutex<State<T>>>,
    backlog: Arc<AtomicUsize>,
}

/// The stream's end: the shared queue plus the batch it is taking items from.
pub(super) struct Receiver<T> {
    state: Arc<Mutex<State<T>>>,
    /// Only ever reached through `get_mut` (no locking): the lock is there so the stream is
    /// `Sync` whenever `T` is `Send`, as a channel receiver is.
    local: std::sync::Mutex<VecDeque<Item<T>>>,
    backlog: Arc<AtomicUsize>,
}

/// A connected pair that keeps `backlog` (read by the service's stats) up to date.
pub(super) fn handoff<T>(backlog: Arc<AtomicUsize>) -> (Sender<T>, Receiver<T>) {
    let state = Arc::new(Mutex::new(State {
        items: VecDeque::new(),
        waker: None,
        closed: false,
        abandoned: false,
    }));
    let tx = Sender { state: state.clone(), backlog: backlog.clone() };
    (tx, Receiver { state, local: std::sync::Mutex::default(), backlog })
}

impl<T> Sender<T> {
    /// Hands `batch` over (leaving it empty) and wakes the consumer. When the stream is gone
    /// the items are dropped instead.
    pub(super) fn send(&self, batch: &mut Vec<Item<T>>) {
        let waker = {
            let mut state = self.state.lock();
            if state.abandoned {
                drop(state);
                batch.clear(); // items' drops run outside the lock
                return;
            }
            // Under the lock, so the consumer cannot take (and uncount) them first.
            self.backlog.fetch_add(batch.len(), Ordering::Relaxed);
            state.items.extend(batch.drain(..));
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let waker = {
            let mut state = self.state.lock();
            state.closed = true;
            state.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

// Items are moved in and out, never pinned in place.
impl<T> Unpin for Receiver<T> {}

impl<T> Receiver<T> {
    /// The next item; with `cx`, registers for a wake-up when there is none yet.
    pub(super) fn poll_recv(&mut self, cx: Option<&mut Context<'_>>) -> Poll<Option<Item<T>>> {
        if let Some(item) = self.take() {
            return Poll::Ready(Some(item));
        }
        let mut state = self.state.lock();
        if !state.items.is_empty() {
            // `local` is empty: it goes back as the driver's next queue.
            mem::swap(&mut state.items, unlocked(&mut self.local));
            drop(state);
            return Poll::Ready(self.take());
        }
        if state.closed {
            return Poll::Ready(None);
        }
        if let Some(cx) = cx {
            match &mut state.waker {
                Some(w) if w.will_wake(cx.waker()) => {}
                slot => *slot = Some(cx.waker().clone()),
            }
        }
        Poll::Pending
    }

    fn take(&mut self) -> Option<Item<T>> {
        let item = unlocked(&mut self.local).pop_front()?;
        self.backlog.fetch_sub(1, Ordering::Relaxed);
        Some(item)
    }

    /// Items handed over and not yet taken.
    pub(super) fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let left = {
            let mut state = self.state.lock();
            state.abandoned = true;
            state.waker = None;
            mem::take(&mut state.items)
        };
        let kept = unlocked(&mut self.local).len();
        self.backlog.fetch_sub(left.len() + kept, Ordering::Relaxed);
        drop(left); // items' drops run outside the lock
    }
}

/// What a lock holds, reached through `&mut` without locking (never locked, never poisoned).
fn unlocked<X>(lock: &mut std::sync::Mutex<X>) -> &mut X {
    lock.get_mut().unwrap_or_else(PoisonError::into_inner)
}
