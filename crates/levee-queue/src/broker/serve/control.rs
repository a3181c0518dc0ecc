//! The state a [`ServeHandle`](super::ServeHandle) shares with its consumers and handlers:
//! the phase of the run and the counters.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::Poll;
use std::time::Duration;

use tokio::sync::Notify;

use super::stats::Counters;

/// Where a run is: phases only move forward.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
pub(crate) enum Phase {
    /// Consumers receive and handlers run.
    Running = 0,
    /// Consumers stop receiving; running handlers finish.
    Draining = 1,
    /// The drain deadline passed: running handlers are cancelled.
    Abort = 2,
}

#[derive(Debug)]
pub(crate) struct Control {
    phase: AtomicU8,
    changed: Notify,
    pub(crate) stats: Counters,
    pub(crate) drain_timeout: Duration,
}

impl Control {
    pub(crate) fn new(drain_timeout: Duration) -> Self {
        Self {
            phase: AtomicU8::new(Phase::Running as u8),
            changed: Notify::new(),
            stats: Counters::default(),
            drain_timeout,
        }
    }

    pub(crate) fn is(&self, phase: Phase) -> bool {
        self.phase.load(Ordering::SeqCst) == phase as u8
    }

    /// Moves the run to `phase` (never back) and wakes everyone waiting for a phase.
    pub(crate) fn advance(&self, phase: Phase) {
        // SeqCst pairs with the load in `reached`, made after its waiter is registered:
        // either the waiter sees the new phase, or it is registered in time to be woken.
        self.phase.fetch_max(phase as u8, Ordering::SeqCst);
        self.changed.notify_waiters();
    }

    /// Completes once the run has reached `phase`.
    pub(crate) async fn reached(&self, phase: Phase) {
        loop {
            let mut changed = pin!(self.changed.notified());
            changed.as_mut().enable();
            if self.phase.load(Ordering::SeqCst) >= phase as u8 {
                return;
            }
            changed.await;
        }
    }
}

/// Which of two futures finished first.
pub(crate) enum Either<A, B> {
    Left(A),
    Right(B),
}

/// Runs `a` and `b` together until one finishes (`a` polled first); the other is dropped.
pub(crate) async fn first<A: Future, B: Future>(a: A, b: B) -> Either<A::Output, B::Output> {
    let (mut a, mut b) = (pin!(a), pin!(b));
    std::future::poll_fn(|cx| {
        if let Poll::Ready(x) = a.as_mut().poll(cx) {
            return Poll::Ready(Either::Left(x));
        }
        if let Poll::Ready(y) = b.as_mut().poll(cx) {
            return Poll::Ready(Either::Right(y));
        }
        Poll::Pending
    })
    .await
}
