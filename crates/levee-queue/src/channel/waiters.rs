//! Lists of blocked senders or receivers: parked threads and async tasks in one queue.
//!
//! The list is a mutex-protected FIFO plus one atomic flag that says whether anybody waits.
//! `notify_one` on the hot path reads that flag and returns: a channel nobody blocks on pays a
//! load and a branch per operation, no lock.
//!
//! ## The handshake that loses no wake-up
//!
//! A waiter registers (flag set to true, SeqCst, under the lock), then issues a SeqCst fence
//! and retries its operation. An operation that makes room or a message (a SeqCst CAS on the
//! channel's head or tail) then reads the flag (SeqCst). Either the flag read sees the
//! registration (the waiter is woken), or the registration came later in the single total
//! order of SeqCst operations, and then the waiter's retry, ordered after its fence, sees the
//! CAS. Loom models SeqCst loads and RMWs as AcqRel (its README, "limitations"), so under
//! `--cfg loom` [`notify_one`](WaitList::notify_one) adds an explicit SeqCst fence, which loom
//! does model; in normal builds the SeqCst CAS already orders it (on x86 the CAS is a full
//! barrier and the load a plain `mov`).
//!
//! ## Notifications are handed on, never lost
//!
//! `notify_one` removes the first waiter from the list and wakes it. A waiter that finds its
//! entry gone was notified. An async waiter dropped after being notified (a cancelled
//! future) passes the notification to the next waiter, so a message (or a free slot) never
//! sits unnoticed while someone waits for it.

use std::collections::VecDeque;
use std::task::Waker;

use levee_core::sync::{AtomicBool, CachePadded, Mutex, Ordering, fence, thread};

/// How to wake one waiter.
#[derive(Debug)]
pub(crate) enum Wake {
    /// A thread blocked in `send`/`recv`, parked.
    Thread(thread::Thread),
    /// A task awaiting `send_async`/`recv_async`.
    Task(Waker),
}

impl Wake {
    fn wake(self) {
        match self {
            Self::Thread(t) => t.unpark(),
            Self::Task(w) => w.wake(),
        }
    }
}

#[derive(Debug, Default)]
struct Entries {
    queue: VecDeque<(u64, Wake)>,
    next_id: u64,
}

/// A FIFO of waiters with a lock-free "anybody there?" check.
#[derive(Debug)]
pub(crate) struct WaitList {
    /// True while `entries.queue` is non-empty; written only under the lock.
    waiting: CachePadded<AtomicBool>,
    entries: Mutex<Entries>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        Self {
            waiting: CachePadded::new(AtomicBool::new(false)),
            entries: Mutex::new(Entries::default()),
        }
    }

    /// Adds a waiter and returns its ticket. The caller must then call [`fence_after_register`]
    /// and retry its operation before it sleeps.
    pub(crate) fn register(&self, wake: Wake) -> u64 {
        let mut entries = self.entries.lock();
        let id = entries.next_id;
        entries.next_id += 1;
        entries.queue.push_back((id, wake));
        // SeqCst: one half of the handshake described in the module docs.
        self.waiting.store(true, Ordering::SeqCst);
        id
    }

    /// Replaces the waker of a still-registered task. Returns false when the entry is gone,
    /// that is, the task was notified and must retry (and register again if it still waits).
    pub(crate) fn update(&self, id: u64, waker: &Waker) -> bool {
        let mut entries = self.entries.lock();
        match entries.queue.iter_mut().find(|(i, _)| *i == id) {
            Some((_, wake)) => {
                if !matches!(wake, Wake::Task(w) if w.will_wake(waker)) {
                    *wake = Wake::Task(waker.clone());
                }
                true
            }
            None => false,
        }
    }

    /// Removes a waiter. Returns true if it was still registered, false if it had been
    /// notified (its entry was taken by `notify_*`).
    pub(crate) fn cancel(&self, id: u64) -> bool {
        let mut entries = self.entries.lock();
        let Some(pos) = entries.queue.iter().position(|(i, _)| *i == id) else {
            return false;
        };
        entries.queue.remove(pos);
        self.waiting.store(!entries.queue.is_empty(), Ordering::SeqCst);
        true
    }

    /// True while the waiter has not been notified.
    pub(crate) fn is_registered(&self, id: u64) -> bool {
        self.entries.lock().queue.iter().any(|(i, _)| *i == id)
    }

    /// True while anybody is registered (for tests that wait for a waiter to block).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn is_waiting(&self) -> bool {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Wakes the longest-waiting waiter, if any. Costs one load when nobody waits.
    #[inline]
    pub(crate) fn notify_one(&self) {
        // See the module docs: loom needs the fence that x86's locked CAS gives for free.
        #[cfg(loom)]
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::SeqCst) {
            self.notify_one_slow();
        }
    }

    #[cold]
    fn notify_one_slow(&self) {
        let wake = {
            let mut entries = self.entries.lock();
            let first = entries.queue.pop_front();
            self.waiting.store(!entries.queue.is_empty(), Ordering::SeqCst);
            first
        };
        // Wake outside the lock: a woken thread's first act may be to take it.
        if let Some((_, wake)) = wake {
            wake.wake();
        }
    }

    /// Wakes every waiter (the channel closed).
    pub(crate) fn notify_all(&self) {
        let all = {
            let mut entries = self.entries.lock();
            self.waiting.store(false, Ordering::SeqCst);
            std::mem::take(&mut entries.queue)
        };
        for (_, wake) in all {
            wake.wake();
        }
    }
}

/// The waiter's half of the handshake: between registering and retrying the operation.
#[inline]
pub(crate) fn fence_after_register() {
    fence(Ordering::SeqCst);
}
