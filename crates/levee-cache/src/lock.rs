//! The shard lock: a reader-writer lock whose readers never write a shared cache line.
//!
//! How it works. Every thread that reads owns a *slot* (a counter on its own cache line) in
//! every shard lock: slot numbers come from a small process-wide pool, taken on a thread's
//! first read and given back when it exits. A reader raises its own slot's count, then checks
//! the writer flag; a writer raises the flag, then waits for every slot to drain. Both sides
//! order that store before that load with `SeqCst` (Dekker's handshake), so either the writer
//! sees the reader's count or the reader sees the flag and backs out. Two threads reading the
//! same shard therefore touch two different cache lines, where a plain `RwLock` makes them
//! fight over its one lock word. And because nobody else writes a thread's own slot, entering
//! costs one exchange and leaving one plain store (a `RwLock` pays two atomic
//! read-modify-writes). Threads beyond the pool share one overflow slot, with atomic
//! read-modify-writes: correct, merely slower. Writers (inserts, evictions, invalidations) pay
//! for all this: they win the writer flag with a compare-exchange (which also keeps other
//! writers out) and scan every slot.
//!
//! Loom models `SeqCst` *accesses* as `AcqRel`, which is too weak for this handshake, so under
//! `cfg(loom)` both sides add the `fence(SeqCst)` that loom does model; natively the `SeqCst`
//! exchange and load already give the guarantee (and cost no extra instruction).
//!
//! Each slot also counts its thread's hits and misses, so counting costs no shared write.
//!
//! Readers and writers reach the data through closures (`read`, `write`), which is the form
//! loom's `UnsafeCell` can check.

#![allow(unsafe_code)]

use levee_core::sync::{AtomicBool, AtomicU64, Backoff, CachePadded, Ordering, UnsafeCell};

/// What a read saw, for the statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tally {
    /// Count nothing.
    Nothing,
    /// Count a hit.
    Hit,
    /// Count a miss.
    Miss,
}

#[derive(Debug, Default)]
struct Slot {
    /// Readers inside right now (more than one only when a read nests, or in the overflow slot).
    readers: AtomicU64,
    hits: AtomicU64,
    misses: AtomicU64,
}

/// A reader-writer lock for one cache shard; see the module docs.
pub(crate) struct ShardLock<T> {
    /// One slot per pool number, then the shared overflow slot.
    slots: Box<[CachePadded<Slot>]>,
    /// Set while a writer holds the lock or waits for readers to leave.
    writing: CachePadded<AtomicBool>,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&T` to many threads at once (so `T: Sync`) and `&mut T` to one
// thread at a time, possibly not the one that created it (so `T: Send`). Every access goes
// through `read`/`write`, which enforce that protocol.
unsafe impl<T: Send + Sync> Sync for ShardLock<T> {}
// SAFETY: moving the lock moves the `T` it owns; nothing in it is tied to a thread.
unsafe impl<T: Send> Send for ShardLock<T> {}

impl<T> ShardLock<T> {
    pub(crate) fn new(value: T) -> Self {
        Self {
            slots: (0..=pool::size()).map(|_| CachePadded::new(Slot::default())).collect(),
            writing: CachePadded::new(AtomicBool::new(false)),
            data: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with shared access. `f` says whether the read was a hit or a miss.
    #[inline]
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> (R, Tally)) -> R {
        let own = pool::mine();
        let overflow = self.slots.len() - 1;
        let (slot, exclusive) = match own {
            Some(i) if i < overflow => (&*self.slots[i], true),
            _ => (&*self.slots[overflow], false),
        };
        let backoff = Backoff::new();
        let before = loop {
            let before = if exclusive {
                // Only this thread writes its slot, so a load and an exchange (a full barrier
                // on every CPU) replace a read-modify-write.
                let n = slot.readers.load(Ordering::Relaxed);
                slot.readers.swap(n + 1, Ordering::SeqCst);
                n
            } else {
                slot.readers.fetch_add(1, Ordering::SeqCst)
            };
            handshake_fence();
            // SeqCst pairs with the writer's SeqCst store of `writing` and its SeqCst loads of
            // the slots: of "reader counted" and "writer flagged", the later one sees the
            // earlier, so reader and writer never both proceed.
            if !self.writing.load(Ordering::SeqCst) {
                break before;
            }
            // A writer is in or coming: step out of its way and wait for it.
            Self::leave(slot, exclusive, before);
            while self.writing.load(Ordering::Relaxed) {
                backoff.snooze();
            }
        };
        let mut release = ReadRelease { slot, exclusive, before, tally: Tally::Nothing };
        // SAFETY: this thread is counted in a slot and no writer is flagged, so no writer is
        // inside `write` (it waits for the slots to drain) until `release` drops.
        let (result, tally) = self.data.with(|p| f(unsafe { &*p }));
        release.tally = tally;
        result
    }

    #[inline]
    fn leave(slot: &Slot, exclusive: bool, before: u64) {
        // Release pairs with the writer's load of the slot: our reads of the data happen
        // before its writes.
        if exclusive {
            slot.readers.store(before, Ordering::Release);
        } else {
            slot.readers.fetch_sub(1, Ordering::Release);
        }
    }

    /// Runs `f` with exclusive access.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let backoff = Backoff::new();
        // Winning the flag keeps other writers out. SeqCst: see `read`; Acquire (within it)
        // pairs with the previous writer's Release when it lowered the flag.
        while self
            .writing
            .compare_exchange_weak(false, true, Ordering::SeqCst, Ordering::Relaxed)
            .is_err()
        {
            backoff.snooze();
        }
        handshake_fence();
        let backoff = Backoff::new();
        for slot in self.slots.iter() {
            // Acquire (within SeqCst) pairs with the readers' Release when they leave, so
            // everything they did under the lock happens before what we do now.
            while slot.readers.load(Ordering::SeqCst) != 0 {
                backoff.snooze();
            }
        }
        let _release = WriteRelease(&self.writing);
        // SAFETY: this thread set `writing` (so no other writer is in) and saw every slot
        // empty after setting it, so no reader is inside `read`'s closure, until `_release`
        // clears the flag.
        self.data.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// Hits and misses counted so far.
    pub(crate) fn tallies(&self) -> (u64, u64) {
        self.slots.iter().fold((0, 0), |(h, m), s| {
            (h + s.hits.load(Ordering::Relaxed), m + s.misses.load(Ordering::Relaxed))
        })
    }
}

/// The store-load barrier of the reader/writer handshake, for loom's benefit (see the module
/// docs); natively the `SeqCst` accesses around it already provide it.
#[inline(always)]
fn handshake_fence() {
    #[cfg(loom)]
    levee_core::sync::fence(Ordering::SeqCst);
}

/// Leaves the read side and counts the tally, also when the reader's closure panics.
struct ReadRelease<'a> {
    slot: &'a Slot,
    exclusive: bool,
    before: u64,
    tally: Tally,
}

impl Drop for ReadRelease<'_> {
    #[inline]
    fn drop(&mut self) {
        let counter = match self.tally {
            Tally::Hit => Some(&self.slot.hits),
            Tally::Miss => Some(&self.slot.misses),
            Tally::Nothing => None,
        };
        if let Some(counter) = counter {
            if self.exclusive {
                // Only this thread writes its slot: no read-modify-write needed.
                counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            } else {
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }
        ShardLock::<()>::leave(self.slot, self.exclusive, self.before);
    }
}

/// Lowers the writer flag, also when the writer's closure panics.
struct WriteRelease<'a>(&'a AtomicBool);

impl Drop for WriteRelease<'_> {
    fn drop(&mut self) {
        // Release pairs with the readers' load of the flag: our writes happen before their reads.
        self.0.store(false, Ordering::Release);
    }
}

/// The process-wide pool of reader slot numbers.
mod pool {
    use std::sync::OnceLock;
    // Plain std atomics even under loom: which number a thread gets is not part of any
    // modelled protocol (exclusivity is, and each number has one owner at a time).
    use std::sync::atomic::{AtomicU64, Ordering};

    struct Pool {
        taken: Box<[AtomicU64]>,
        size: usize,
    }

    fn pool() -> &'static Pool {
        static POOL: OnceLock<Pool> = OnceLock::new();
        POOL.get_or_init(|| {
            let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
            let size = (cpus * 4).clamp(8, 256);
            Pool { taken: (0..size.div_ceil(64)).map(|_| AtomicU64::new(0)).collect(), size }
        })
    }

    /// Number of exclusive slots every lock has.
    pub(super) fn size() -> usize {
        pool().size
    }

    fn take() -> Option<usize> {
        let pool = pool();
        for (w, word) in pool.taken.iter().enumerate() {
            let mut bits = word.load(Ordering::Relaxed);
            loop {
                let free = (!bits).trailing_zeros() as usize;
                if free == 64 || w * 64 + free >= pool.size {
                    break;
                }
                // AcqRel: the previous owner's last use of the number (its Release store to
                // its slots) happens before ours.
                match word.compare_exchange_weak(
                    bits,
                    bits | 1 << free,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Some(w * 64 + free),
                    Err(now) => bits = now,
                }
            }
        }
        None
    }

    /// A thread's slot number, given back when the thread exits.
    struct Claim(Option<usize>);

    impl Drop for Claim {
        fn drop(&mut self) {
            if let Some(i) = self.0 {
                pool().taken[i / 64].fetch_and(!(1 << (i % 64)), Ordering::Release);
            }
        }
    }

    // Loom's thread-local under `cfg(loom)`: one claim per modelled thread.
    levee_core::sync::thread_local! {
        static MINE: Claim = Claim(take());
    }

    /// This thread's slot number, or `None` when the pool is exhausted (or the thread is
    /// exiting): then the thread reads through the shared overflow slot.
    #[inline]
    pub(super) fn mine() -> Option<usize> {
        MINE.try_with(|c| c.0).ok().flatten()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn readers_and_writers_see_each_others_work() {
        let lock = ShardLock::new(0u64);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        lock.write(|v| *v += 1);
                        let seen = lock.read(|v| (*v, Tally::Hit));
                        assert!(seen >= 1);
                    }
                });
            }
        });
        assert_eq!(lock.read(|v| (*v, Tally::Miss)), 4000);
        assert_eq!(lock.tallies(), (4000, 1));
    }

    #[test]
    fn a_panicking_reader_releases_the_lock() {
        let lock = ShardLock::new(1u32);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lock.read(|_| -> ((), Tally) { panic!("reader panics") })
        }));
        assert!(r.is_err());
        lock.write(|v| *v = 2); // would spin forever if the reader were still counted
        assert_eq!(lock.read(|v| (*v, Tally::Nothing)), 2);
    }

    #[test]
    fn threads_beyond_the_pool_share_the_overflow_slot() {
        let lock = ShardLock::new(0u64);
        let threads = pool::size() + 8;
        let barrier = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    lock.read(|_| ((), Tally::Hit)); // claim a number (or not) first
                    barrier.wait(); // all alive at once: some get no number
                    for _ in 0..100 {
                        lock.write(|v| *v += 1);
                        lock.read(|v| (assert!(*v >= 1), Tally::Hit));
                    }
                });
            }
        });
        assert_eq!(lock.read(|v| (*v, Tally::Nothing)), 100 * threads as u64);
        assert_eq!(lock.tallies().0, 101 * threads as u64);
    }

    #[test]
    fn nested_reads_keep_the_lock_held() {
        let lock = ShardLock::new(5u32);
        let inner = lock.read(|_| (lock.read(|v| (*v, Tally::Hit)), Tally::Hit));
        assert_eq!(inner, 5);
        lock.write(|v| *v = 6);
        assert_eq!(lock.tallies(), (2, 0));
    }
}
