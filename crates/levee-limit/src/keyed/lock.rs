//! A reader-biased lock for the keyed limiter's shards (after BRAVO: Dice and Kogan,
//! "BRAVO: Biased Locking for Reader-Writer Locks", USENIX ATC 2019).
//!
//! A plain reader-writer lock costs a reader two atomic read-modify-writes on the lock word
//! (enter and leave), which on the machines levee runs on cost as much as the rate-limit
//! check itself. While the lock is *biased*, a reader instead claims a slot in a small array
//! of reader slots (one compare-and-swap), re-checks the bias, reads, and clears its slot
//! with a plain release store: one RMW per read section instead of two, and none on a
//! shared lock word.
//!
//! **Writers** take the underlying lock exclusively (which excludes unbiased readers), then
//! revoke the bias and wait until no reader slot holds this lock's tag. Revocation scans
//! every slot, so after one, readers use the underlying lock for a while and re-enable the
//! bias only after [`REBIAS_AFTER`] unbiased read sections: write-heavy phases (a burst of
//! new keys) run as a plain rwlock.
//!
//! **Why a biased reader and a writer never overlap.** Reader: `A` claims its slot
//! (`compare_exchange`), then `B` loads the bias and proceeds only if it is still set; it
//! leaves with a plain release store. Writer: `C` clears the bias (`swap`), then `D` loads
//! each slot and waits while it holds the tag. `A`, `B`, `C` and `D` are `SeqCst`, so they
//! sit in one total order `S`. If `B` read the bias as set, `B` precedes `C` in `S`, hence
//! `A` precedes `D`, and `D` (a `SeqCst` load) reads `A`'s tag or a later value of the slot:
//! not an earlier clear, since every clear of that slot happens before the claim that read
//! it. So the writer waits until the reader's clearing store, whose release orders the
//! reader's accesses before the writer's. A reader whose `B` follows `C` sees the bias
//! cleared and uses the underlying lock. On x86 this costs what acquire-release would: the
//! CAS is a locked instruction either way, `SeqCst` loads are plain loads, and the clear is a
//! plain store; only the writer's `swap` is an `xchg`.
//!
//! **loom.** This is the store-buffering pattern, which needs the single order of `SeqCst`.
//! loom models `SeqCst` accesses as acquire-release (its documented limitation) and would
//! see a reader and a writer both read stale values, but it models `SeqCst` *fences*
//! exactly. The loom build therefore adds a `SeqCst` fence between `A` and `B` and between
//! `C` and `D` ([`loom_fence`]): the same protocol with its ordering spelled out in a form
//! loom can check, including every access to the cell (`tests/loom_keyed.rs`). The real
//! build does not pay for the fences (an `mfence` each on x86). The writer waits with plain
//! loads, which loom can model as a spin loop.
#![allow(unsafe_code)]

use levee_core::sync::{AtomicBool, AtomicU32, AtomicUsize, CachePadded, Ordering, RwLock};
use levee_core::sync::{UnsafeCell, spin_hint};

/// Unbiased read sections after which a reader turns the bias back on (one under loom, so
/// that the model checks see biased readers right after a write).
#[cfg(not(loom))]
pub(super) const REBIAS_AFTER: u32 = 256;
#[cfg(loom)]
pub(super) const REBIAS_AFTER: u32 = 1;

/// Reader slots shared by all shard locks of one limiter. A slot holds the tag of the lock
/// its reader is in (its shard index + 1), or 0.
pub(super) struct ReaderSlots {
    slots: Box<[CachePadded<AtomicUsize>]>,
}

impl ReaderSlots {
    /// `count` slots (a power of two).
    pub(super) fn new(count: usize) -> Self {
        debug_assert!(count.is_power_of_two());
        Self { slots: (0..count).map(|_| CachePadded::new(AtomicUsize::new(0))).collect() }
    }

    /// The slot this thread uses for lock `tag`.
    #[inline]
    fn slot_for(&self, tag: usize) -> &AtomicUsize {
        let mixed = (thread_token() ^ tag.rotate_left(17)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        &self.slots[(mixed >> 32) & (self.slots.len() - 1)]
    }
}

/// A `SeqCst` fence in the loom build only (module docs, "loom"): it restates, in a form
/// loom models, the order that `SeqCst` accesses already give the real build.
#[inline(always)]
fn loom_fence() {
    #[cfg(loom)]
    levee_core::sync::fence(Ordering::SeqCst);
}

/// A small number identifying the calling thread (never 0).
#[cfg(not(loom))]
#[inline]
fn thread_token() -> usize {
    use std::cell::Cell;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(1);
    thread_local!(static TOKEN: Cell<usize> = const { Cell::new(0) });
    TOKEN.with(|t| match t.get() {
        0 => {
            let token = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            t.set(token);
            token
        }
        token => token,
    })
}

/// Under loom, threads share one OS thread, so the token comes from loom's thread id. Its
/// `Hash` includes the exploration's number, which would make replays differ; its `Debug`
/// form is the thread's number within the exploration alone.
#[cfg(loom)]
fn thread_token() -> usize {
    use std::hash::BuildHasher;
    let id = format!("{:?}", levee_core::sync::thread::current().id());
    (foldhash::fast::FixedState::with_seed(0).hash_one(id) as usize) | 1
}

/// A reader-biased reader-writer lock around a `T` (see the module docs).
pub(super) struct ShardLock<T> {
    lock: RwLock<()>,
    biased: AtomicBool,
    /// Unbiased read sections left before the bias is turned back on.
    until_rebias: AtomicU32,
    value: UnsafeCell<T>,
}

// SAFETY: `value` is only reached through `read` (shared access, many threads at once, which
// needs `T: Sync`) and `write` (exclusive access, possibly from another thread than the one
// that created it, which needs `T: Send`); the protocol in the module docs guarantees that a
// `write` never overlaps any `read` or other `write`.
unsafe impl<T: Send + Sync> Sync for ShardLock<T> {}

impl<T> ShardLock<T> {
    pub(super) fn new(value: T) -> Self {
        Self {
            lock: RwLock::new(()),
            biased: AtomicBool::new(true),
            until_rebias: AtomicU32::new(0),
            value: UnsafeCell::new(value),
        }
    }

    /// Runs `f` with shared access. `tag` identifies this lock among those sharing `slots`
    /// (non-zero).
    #[inline]
    pub(super) fn read<R>(&self, slots: &ReaderSlots, tag: usize, f: impl FnOnce(&T) -> R) -> R {
        // Relaxed: a hint; the decision is the Acquire load `B` below.
        if self.biased.load(Ordering::Relaxed) {
            let slot = slots.slot_for(tag);
            // A: claim the slot (SeqCst: module docs).
            if slot.compare_exchange(0, tag, Ordering::SeqCst, Ordering::Relaxed).is_ok() {
                loom_fence();
                // B: is the bias still on? (SeqCst: module docs)
                if self.biased.load(Ordering::SeqCst) {
                    // SAFETY: we hold a reader slot tagged for this lock and saw the bias
                    // set after claiming it, so any writer waits for our slot to clear
                    // before touching `value` (module docs); other readers only read.
                    let result = self.value.with(|p| f(unsafe { &*p }));
                    // Release: our reads happen before a waiting writer's accesses.
                    slot.store(0, Ordering::Release);
                    return result;
                }
                slot.store(0, Ordering::Release);
            }
        }
        self.read_unbiased(f)
    }

    #[cold]
    fn read_unbiased<R>(&self, f: impl FnOnce(&T) -> R) -> R {
        let guard = self.lock.read();
        // Relaxed: a countdown hint. The bias is set under the read lock, so no writer is
        // running, and the next writer's lock acquisition orders it before that writer's
        // `C`.
        if !self.biased.load(Ordering::Relaxed)
            && self.until_rebias.fetch_sub(1, Ordering::Relaxed) == 1
        {
            self.biased.store(true, Ordering::SeqCst);
        }
        // SAFETY: we hold the underlying read lock, which excludes writers (they hold it
        // exclusively for their whole access); other readers only read.
        let result = self.value.with(|p| f(unsafe { &*p }));
        drop(guard);
        result
    }

    /// Runs `f` with exclusive access.
    pub(super) fn write<R>(
        &self,
        slots: &ReaderSlots,
        tag: usize,
        f: impl FnOnce(&mut T) -> R,
    ) -> R {
        let guard = self.lock.write();
        // C: revoke the bias (SeqCst: module docs).
        if self.biased.swap(false, Ordering::SeqCst) {
            loom_fence();
            // D: wait until no biased reader of this lock remains (SeqCst loads: module
            // docs; they also acquire the readers' clearing stores).
            for slot in slots.slots.iter() {
                while slot.load(Ordering::SeqCst) == tag {
                    spin_hint();
                }
            }
        }
        self.until_rebias.store(REBIAS_AFTER, Ordering::Relaxed);
        // SAFETY: we hold the underlying lock exclusively (no unbiased reader), and the bias
        // is off with every biased reader of this lock gone (module docs); new readers go to
        // the underlying lock until we release it.
        let result = self.value.with_mut(|p| f(unsafe { &mut *p }));
        drop(guard);
        result
    }
}
