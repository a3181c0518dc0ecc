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

/// Wakers collected under the queue's lock and woken after it is released: a fixed batch on
/// the stack (as tokio's `WakeList`), so granting permits allocates nothing.
pub(super) struct WakeList {
    wakers: [Option<Waker>; Self::CAPACITY],
    len: usize,
}

impl WakeList {
    /// Wakers per batch.
    pub(super) const CAPACITY: usize = 16;

    pub(super) fn new() -> Self {
        Self { wakers: [const { None }; Self::CAPACITY], len: 0 }
    }

    pub(super) fn is_full(&self) -> bool {
        self.len == Self::CAPACITY
    }

    /// Adds a granted waiter's waker (`None`: it had none yet). At most `CAPACITY`.
    pub(super) fn push(&mut self, waker: Option<Waker>) {
        self.wakers[self.len] = waker;
        self.len += 1;
    }

    pub(super) fn wake_all(mut self) {
        self.wakers[..self.len].iter_mut().filter_map(Option::take).for_each(Waker::wake);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_wake_list_wakes_each_waker_once() {
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let mut list = WakeList::new();
        for i in 0..WakeList::CAPACITY {
            list.push((i % 3 != 0).then(|| Waker::from(count.clone())));
        }
        assert!(list.is_full());
        list.wake_all();
        assert_eq!(count.0.load(Ordering::Relaxed), WakeList::CAPACITY - 6);
    }
}
