//! The bulkhead's wait queue: FIFO waiters, each granted a permit directly by a releaser.

use std::collections::VecDeque;
use std::task::Waker;

use slab::Slab;

#[derive(Debug)]
struct Waiter {
    waker: Option<Waker>,
    granted: bool,
}

/// Waiters in arrival order. Lives under the bulkhead's mutex.
#[derive(Debug, Default)]
pub(super) struct WaitQueue {
    waiters: Slab<Waiter>,
    /// Keys of the waiters not yet granted, oldest first.
    order: VecDeque<usize>,
}

impl WaitQueue {
    /// Waiters not yet granted a permit.
    pub(super) fn len(&self) -> usize {
        self.order.len()
    }

    pub(super) fn push(&mut self, waker: Waker) -> usize {
        let key = self.waiters.insert(Waiter { waker: Some(waker), granted: false });
        self.order.push_back(key);
        key
    }

    /// Grants a permit to the oldest waiter; returns its waker to wake once the lock is
    /// released. `None` when nobody waits.
    pub(super) fn grant_next(&mut self) -> Option<Option<Waker>> {
        let key = self.order.pop_front()?;
        let waiter = &mut self.waiters[key];
        waiter.granted = true;
        Some(waiter.waker.take())
    }

    /// Whether `key` was granted; if so, removes it (the caller now owns the permit).
    pub(super) fn take_grant(&mut self, key: usize) -> bool {
        if self.waiters[key].granted {
            self.waiters.remove(key);
            true
        } else {
            false
        }
    }

    /// Updates the waker of a waiting `key`.
    pub(super) fn set_waker(&mut self, key: usize, waker: &Waker) {
        let slot = &mut self.waiters[key].waker;
        match slot {
            Some(w) if w.will_wake(waker) => {}
            _ => *slot = Some(waker.clone()),
        }
    }

    /// Removes `key`, granted or not. Returns whether it had been granted (then the caller
    /// holds a permit it must release).
    pub(super) fn remove(&mut self, key: usize) -> bool {
        let waiter = self.waiters.remove(key);
        if !waiter.granted {
            // Bounded by the maximum queue length.
            if let Some(pos) = self.order.iter().position(|&k| k == key) {
                self.order.remove(pos);
            }
        }
        waiter.granted
    }
}
