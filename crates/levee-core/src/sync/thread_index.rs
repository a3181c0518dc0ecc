//! A small number per live thread: the one per-thread index of the workspace.
//!
//! Stripes (counters, histograms, timer shards) and the reader rows of [`ShardLocks`] need to
//! tell threads apart cheaply. A thread takes its number on first use, from a process-wide
//! pool that hands out the smallest free number, and gives it back when it exits. So the
//! numbers of the threads alive at any moment are distinct and dense (`0..live threads`,
//! give or take the gaps of threads that exited): with `n` stripes, the first `n` threads
//! each own one, and a structure that keeps one slot per number can let the owner write its
//! slot without a read-modify-write.
//!
//! Taking and giving back a number locks a mutex; reading it afterwards is one thread-local
//! load: the number is kept twice, in a thread-local with a destructor (which gives it back)
//! and in a plain copy without one, which the compiler reads with no "alive yet?" check.
//!
//! [`ShardLocks`]: super::ShardLocks
// Under loom the number comes from loom's thread id, and the pool is unused.
#![cfg_attr(loom, allow(dead_code))]

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::Mutex;

/// How many per-thread slots a structure keeps for threads to own (stripes, reader rows):
/// four per CPU, from 8 to 256 (3 under loom, so that models stay small and a fourth thread
/// takes the shared path). A thread whose [`thread_index`] is at or above it uses a shared
/// slot with read-modify-writes. The same for every caller, and computed once.
///
/// ```
/// use levee_core::sync::{owned_slots, thread_index};
///
/// let stripes: Vec<u64> = vec![0; owned_slots()];
/// // The first threads each own a stripe; later ones share a fallback.
/// let mine = stripes.get(thread_index());
/// assert!(owned_slots() >= 8 && mine.is_some());
/// ```
#[must_use]
pub fn owned_slots() -> usize {
    if cfg!(loom) {
        return 3;
    }
    // Plain std atomics: a cache of a value every thread computes alike (0: not yet).
    static SLOTS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    match SLOTS.load(std::sync::atomic::Ordering::Relaxed) {
        0 => {
            let cpus = std::thread::available_parallelism().map_or(4, std::num::NonZeroUsize::get);
            let slots = (cpus * 4).clamp(8, 256);
            SLOTS.store(slots, std::sync::atomic::Ordering::Relaxed);
            slots
        }
        slots => slots,
    }
}

/// What [`thread_index`] returns on a thread whose thread-locals are being destroyed (its
/// number may already belong to another thread). Larger than any real number, so a caller
/// that checks `index < slots` before treating a slot as its own falls back correctly.
pub const NO_THREAD_INDEX: usize = usize::MAX;

/// The pool of numbers, behind a plain std mutex whose release and acquire order one
/// owner's last use of a number before the next owner's first.
struct Pool {
    /// Numbers never handed out start here.
    next: usize,
    /// Numbers given back, smallest first.
    free: BinaryHeap<Reverse<usize>>,
}

impl Pool {
    const fn new() -> Self {
        Self { next: 0, free: BinaryHeap::new() }
    }

    fn take(&mut self) -> usize {
        match self.free.pop() {
            Some(Reverse(index)) => index,
            None => {
                self.next += 1;
                self.next - 1
            }
        }
    }

    fn give_back(&mut self, index: usize) {
        self.free.push(Reverse(index));
    }
}

static POOL: Mutex<Pool> = Mutex::new(Pool::new());

fn pool() -> std::sync::MutexGuard<'static, Pool> {
    // Nothing can panic while the lock is held; a poisoned pool is still consistent.
    POOL.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A thread's number, given back when the thread exits.
struct Claim(std::cell::Cell<usize>);

impl Claim {
    #[inline]
    fn get(&self) -> usize {
        match self.0.get() {
            NO_THREAD_INDEX => self.claim(),
            index => index,
        }
    }

    #[cold]
    fn claim(&self) -> usize {
        let index = pool().take();
        self.0.set(index);
        index
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        #[cfg(not(loom))]
        INDEX.set(NO_THREAD_INDEX); // before the number can go to another thread
        let index = self.0.replace(NO_THREAD_INDEX);
        if index != NO_THREAD_INDEX {
            pool().give_back(index);
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static CLAIM: Claim = const { Claim(std::cell::Cell::new(NO_THREAD_INDEX)) };
    /// `CLAIM`'s number, or `NO_THREAD_INDEX` before the claim and from its drop on. No
    /// destructor, so it is readable at any time at the cost of one load.
    static INDEX: std::cell::Cell<usize> = const { std::cell::Cell::new(NO_THREAD_INDEX) };
}

/// This thread's number: distinct from the number of every other live thread, and small
/// (the pool hands out the smallest free one). [`NO_THREAD_INDEX`] while the thread's
/// thread-locals are being destroyed.
///
/// A structure with `n` per-thread slots treats slot `index` as the caller's own only when
/// `index < n`, and sends everyone else to a shared slot updated with read-modify-writes.
///
/// ```
/// use levee_core::sync::thread_index;
///
/// let mine = thread_index();
/// assert_eq!(thread_index(), mine, "stable for the thread's life");
/// let other = std::thread::spawn(thread_index).join().unwrap();
/// assert_ne!(other, mine, "live threads never share a number");
/// ```
#[cfg(not(loom))]
#[inline]
#[must_use]
pub fn thread_index() -> usize {
    match INDEX.get() {
        NO_THREAD_INDEX => claim_index(),
        index => index,
    }
}

/// This thread's number if it has claimed one, else [`NO_THREAD_INDEX`] (which no slot
/// structure treats as its own): [`thread_index`] without the claim, for a hot path that
/// sends an unclaimed thread to its slow path, which claims (with no call in the hot path).
#[cfg(not(loom))]
#[inline]
pub(super) fn claimed_thread_index() -> usize {
    INDEX.get()
}

/// Under loom, [`thread_index`] (the claim is no call worth avoiding in a model).
#[cfg(loom)]
pub(super) fn claimed_thread_index() -> usize {
    thread_index()
}

/// The first call on a thread (or one after its claim was dropped, which finds `CLAIM`
/// destroyed and claims nothing).
#[cfg(not(loom))]
#[cold]
fn claim_index() -> usize {
    CLAIM
        .try_with(|claim| {
            let index = claim.get();
            INDEX.set(index);
            index
        })
        .unwrap_or(NO_THREAD_INDEX)
}

/// Under loom, the modelled thread's number within the execution (0 for the model's main
/// thread, then 1, 2, ... in spawn order): distinct, dense and the same on every replay of a
/// schedule, whatever other tests in the process do (a process-wide pool would not be).
/// Loom's `ThreadId` prints that number and nothing else.
#[cfg(loom)]
#[must_use]
pub fn thread_index() -> usize {
    crate::sync::thread_local! {
        static INDEX: std::cell::Cell<usize> = std::cell::Cell::new(NO_THREAD_INDEX);
    }
    INDEX
        .try_with(|index| {
            if index.get() == NO_THREAD_INDEX {
                let id = format!("{:?}", crate::sync::thread::current().id());
                let number = id.trim_start_matches("ThreadId(").trim_end_matches(')');
                index.set(number.parse().expect("loom's ThreadId prints its number"));
            }
            index.get()
        })
        .unwrap_or(NO_THREAD_INDEX)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn live_threads_have_distinct_numbers() {
        let barrier = std::sync::Barrier::new(8);
        let mut seen: Vec<usize> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let index = thread_index();
                        barrier.wait(); // all eight alive at once
                        index
                    })
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), 8, "numbers of live threads are distinct");
    }

    #[test]
    fn the_pool_hands_out_the_smallest_free_number() {
        let mut pool = Pool::new();
        assert_eq!((pool.take(), pool.take(), pool.take()), (0, 1, 2));
        pool.give_back(2);
        pool.give_back(0);
        assert_eq!(pool.take(), 0, "smallest first: numbers stay dense");
        assert_eq!(pool.take(), 2);
        assert_eq!(pool.take(), 3, "fresh numbers only once the freed ones are gone");
    }

    #[test]
    fn a_thread_keeps_its_number() {
        let a = thread_index();
        assert_ne!(a, NO_THREAD_INDEX);
        assert_eq!(thread_index(), a);
    }
}
