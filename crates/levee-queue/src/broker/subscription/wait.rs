//! Receivers waiting for messages and publishers waiting for room, and the wakes that end
//! their waits.

use std::pin::pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use levee_core::Clock;

use super::shared::SubShared;

/// Counts a waiter in for as long as it lives (so a cancelled wait counts itself out).
pub(super) struct WaitGuard<'a>(&'a AtomicUsize);

impl<'a> WaitGuard<'a> {
    pub(super) fn new(count: &'a AtomicUsize) -> Self {
        // SeqCst pairs with the load in `wake_*`: either the waker sees this waiter, or the
        // waiter's following check under the lock sees the waker's change.
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl<T, C: Clock> SubShared<T, C> {
    pub(crate) fn wake_receivers(&self) {
        if self.receivers_waiting.load(Ordering::SeqCst) > 0 {
            self.ready.notify_waiters();
        }
    }

    pub(crate) fn wake_publishers(&self) {
        if self.publishers_waiting.load(Ordering::SeqCst) > 0 {
            self.space.notify_waiters();
        }
    }

    pub(crate) fn wake_all(&self) {
        self.ready.notify_waiters();
        self.space.notify_waiters();
    }

    /// The next time something is due, as a wait from now on the broker's clock.
    pub(super) fn next_wake(&self) -> Option<Duration> {
        let core = self.lock();
        let next = core.next_deadline()?;
        Some(Duration::from_nanos(next.saturating_sub(core.now())))
    }

    /// Waits until the backlog has room or the broker closes.
    pub(crate) async fn wait_for_space(&self) {
        let _waiting = WaitGuard::new(&self.publishers_waiting);
        let mut notified = pin!(self.space.notified());
        notified.as_mut().enable();
        let full = {
            let mut core = self.lock();
            let now = core.now();
            core.sweep(now);
            core.held() >= self.max_backlog
        };
        if full && !self.is_closed() {
            notified.await;
        }
    }
}
