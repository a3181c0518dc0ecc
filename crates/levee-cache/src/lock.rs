//! The shard lock: a reader-writer lock whose readers never write a shared cache line.
//!
//! How it works. Every thread reads through one of several *stripes*, each a counter on its own
//! cache line, chosen once per thread. A reader increments its stripe, then checks the writer
//! flag; a writer raises the flag, then waits for every stripe to drain. Both sides use
//! `SeqCst` for that store-then-load pair (Dekker's handshake), so either the writer sees the
//! reader's count or the reader sees the flag and backs out. Two threads reading the same shard
//! therefore touch two different cache lines, where a plain `RwLock` makes them fight over its
//! one lock word (the cost that dominates a 2-thread hit path). Writers (inserts, evictions,
//! invalidations) pay for it: they take a mutex and scan every stripe.
//!
//! Loom models `SeqCst` *accesses* as `AcqRel`, which is too weak for this handshake, so under
//! `cfg(loom)` both sides add the `fence(SeqCst)` that loom does model; natively the `SeqCst`
//! read-modify-write and load already give the guarantee (and cost no extra instruction).
//!
//! The stripe word also counts the cache's hits: a reader releases with one `fetch_add` that
//! drops its reader count and adds a hit, so counting a hit costs nothing extra. Misses have
//! their own word on the same line.
//!
//! Readers and writers reach the data through closures (`read`, `write`), which is the form
//! loom's `UnsafeCell` can check.

#![allow(unsafe_code)]

use levee_core::sync::{AtomicBool, AtomicU64, Backoff, CachePadded, Mutex, Ordering, UnsafeCell};

/// Low bits of a stripe word: readers inside right now.
const READER_BITS: u32 = 16;
const READER: u64 = 1;
const READER_MASK: u64 = (1 << READER_BITS) - 1;
/// High bits of a stripe word: hits counted by readers of this stripe.
const HIT: u64 = 1 << READER_BITS;
/// Writers move a stripe's hit count into `harvested` once it passes this, long before the
/// 48 hit bits could wrap.
const HARVEST_AT: u64 = 1 << 40;

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
struct Stripe {
    /// Readers (low 16 bits) and hits (high 48 bits).
    word: AtomicU64,
    misses: AtomicU64,
}

/// A reader-writer lock for one cache shard; see the module docs.
pub(crate) struct ShardLock<T> {
    stripes: Box<[CachePadded<Stripe>]>,
    writing: CachePadded<AtomicBool>,
    writers: Mutex<()>,
    harvested: AtomicU64,
    data: UnsafeCell<T>,
}

// SAFETY: the lock hands out `&T` to many threads at once (so `T: Sync`) and `&mut T` to one
// thread at a time, possibly not the one that created it (so `T: Send`). Every access goes
// through `read`/`write`, which enforce that protocol.
unsafe impl<T: Send + Sync> Sync for ShardLock<T> {}
// SAFETY: moving the lock moves the `T` it owns; nothing in it is tied to a thread.
unsafe impl<T: Send> Send for ShardLock<T> {}

impl<T> ShardLock<T> {
    /// A lock with `stripes` reader stripes (rounded up to a power of two).
    pub(crate) fn new(value: T, stripes: usize) -> Self {
        let n = stripes.clamp(1, 256).next_power_of_two();
        Self {
            stripes: (0..n).map(|_| CachePadded::new(Stripe::default())).collect(),
            writing: CachePadded::new(AtomicBool::new(false)),
            writers: Mutex::new(()),
            harvested: AtomicU64::new(0),
            data: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with shared access. `f` says whether the read was a hit or a miss.
    #[inline]
    pub(crate) fn read<R>(&self, f: impl FnOnce(&T) -> (R, Tally)) -> R {
        let stripe = &self.stripes[stripe_index() & (self.stripes.len() - 1)];
        let backoff = Backoff::new();
        loop {
            // SeqCst pairs with the writer's SeqCst store of `writing` and its SeqCst loads of
            // the stripes: of "reader counted" and "writer flagged", the later one sees the
            // earlier, so reader and writer never both proceed.
            stripe.word.fetch_add(READER, Ordering::SeqCst);
            handshake_fence();
            if !self.writing.load(Ordering::SeqCst) {
                break;
            }
            // A writer is in or coming: step out of its way and wait for it.
            stripe.word.fetch_sub(READER, Ordering::Release);
            while self.writing.load(Ordering::Relaxed) {
                backoff.snooze();
            }
        }
        let mut release = ReadRelease { stripe, tally: Tally::Nothing };
        // SAFETY: this thread is counted in a stripe and no writer is flagged, so no writer
        // is inside `write` (it waits for the stripes to drain) until `release` drops.
        let (result, tally) = self.data.with(|p| f(unsafe { &*p }));
        release.tally = tally;
        result
    }

    /// Runs `f` with exclusive access.
    pub(crate) fn write<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        let _serial = self.writers.lock();
        // SeqCst: see `read`.
        self.writing.store(true, Ordering::SeqCst);
        handshake_fence();
        let backoff = Backoff::new();
        for stripe in self.stripes.iter() {
            loop {
                // Acquire (within SeqCst) pairs with the readers' Release when they leave, so
                // everything they did under the lock happens before what we do now.
                let word = stripe.word.load(Ordering::SeqCst);
                if word & READER_MASK == 0 {
                    if word >= HARVEST_AT {
                        self.harvest(stripe, word);
                    }
                    break;
                }
                backoff.snooze();
            }
        }
        let _release = WriteRelease(&self.writing);
        // SAFETY: `writing` is set and every stripe was seen empty after it was set, so no
        // reader is inside `read`'s closure, and `writers` keeps other writers out, until
        // `_release` clears the flag.
        self.data.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// Moves a stripe's hit count to `harvested`. Readers only ever add to the hit bits and
    /// add-then-subtract to the reader bits, so subtracting exactly the hits we read loses
    /// nothing even if readers arrive meanwhile.
    fn harvest(&self, stripe: &Stripe, word: u64) {
        let hits = word & !READER_MASK;
        stripe.word.fetch_sub(hits, Ordering::Relaxed);
        self.harvested.fetch_add(hits >> READER_BITS, Ordering::Relaxed);
    }

    /// Hits and misses counted so far.
    pub(crate) fn tallies(&self) -> (u64, u64) {
        let mut hits = self.harvested.load(Ordering::Relaxed);
        let mut misses = 0;
        for stripe in self.stripes.iter() {
            hits += stripe.word.load(Ordering::Relaxed) >> READER_BITS;
            misses += stripe.misses.load(Ordering::Relaxed);
        }
        (hits, misses)
    }
}

/// The store-load barrier of the reader/writer handshake, for loom's benefit (see the module
/// docs); natively the `SeqCst` accesses around it already provide it.
#[inline(always)]
fn handshake_fence() {
    #[cfg(loom)]
    levee_core::sync::fence(Ordering::SeqCst);
}

/// Leaves the read side, also when the reader's closure panics.
struct ReadRelease<'a> {
    stripe: &'a Stripe,
    tally: Tally,
}

impl Drop for ReadRelease<'_> {
    #[inline]
    fn drop(&mut self) {
        // Release pairs with the writer's load of the stripe: our reads of the data happen
        // before its writes. Leaving and counting a hit are one addition.
        let delta = match self.tally {
            Tally::Hit => HIT - READER,
            Tally::Miss => {
                self.stripe.misses.fetch_add(1, Ordering::Relaxed);
                READER.wrapping_neg()
            }
            Tally::Nothing => READER.wrapping_neg(),
        };
        self.stripe.word.fetch_add(delta, Ordering::Release);
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

/// Which stripe this thread reads through: threads are numbered in order of first use.
#[inline]
fn stripe_index() -> usize {
    use std::cell::Cell;
    // A plain std counter even under loom: it only spreads threads over stripes, and any
    // value is correct.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    thread_local! {
        static INDEX: Cell<usize> = const { Cell::new(usize::MAX) };
    }
    INDEX.with(|index| {
        let mut i = index.get();
        if i == usize::MAX {
            i = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            index.set(i);
        }
        i
    })
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn readers_and_writers_see_each_others_work() {
        let lock = ShardLock::new(0u64, 4);
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
        let lock = ShardLock::new(1u32, 2);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            lock.read(|_| -> ((), Tally) { panic!("reader panics") })
        }));
        assert!(r.is_err());
        lock.write(|v| *v = 2); // would spin forever if the reader were still counted
        assert_eq!(lock.read(|v| (*v, Tally::Nothing)), 2);
    }

    #[test]
    fn harvesting_keeps_the_hit_count() {
        let lock = ShardLock::new((), 1);
        lock.stripes[0].word.store(HARVEST_AT + 5 * HIT, Ordering::Relaxed);
        let before = lock.tallies().0;
        lock.write(|()| ());
        assert_eq!(lock.tallies().0, before);
        assert!(lock.stripes[0].word.load(Ordering::Relaxed) < HIT);
    }
}
