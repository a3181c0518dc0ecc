//! `ShardLocks`: a set of values, each behind a reader-writer lock whose readers write only
//! their own thread's cache line. The one read-mostly lock of the workspace (the cache's
//! shards, the keyed limiter's shards).
//!
//! **Why.** A reader of a plain `RwLock` does two atomic read-modify-writes on the lock word
//! (enter and leave), and two threads reading the same shard fight over that word's cache
//! line: on a hot path (a cache hit, a rate-limit check) that costs as much as the work
//! itself. Here a reader raises a counter in its own *row* and, when it leaves, lowers it
//! with a plain store; nobody else writes that row, so readers never share a written line.
//! After BRAVO (Dice and Kogan, "BRAVO: Biased Locking for Reader-Writer Locks", USENIX ATC
//! 2019), with exact per-thread rows instead of a hashed table.
//!
//! **Layout.** One row per [`thread_index`] below [`owned_slots`] (four per CPU, 8 to 256),
//! plus one shared overflow row for threads beyond it (and threads tearing down), which uses
//! read-modify-writes: correct, merely slower. A row is one padded line of [`CLASSES`]
//! reader counters and [`TALLIES`] event counts; shard `i` uses reader counter
//! `i % CLASSES`, so all the shards of a set cost a thread one line, and a writer waits only
//! for readers of its class. Each shard has a `state` word next to its value: the writer
//! takes the shard and flags it to readers in one compare-exchange (`WRITING`), so a write
//! costs two atomic read-modify-writes (take, release), as a plain lock's does.
//!
//! **Rows in use.** A writer scans only the rows of threads that have read this set: the set
//! keeps one more than the highest row a reader has used (the overflow row counts as the
//! last), raised by a reader before its first read (`R` below). On a 64-CPU machine a write
//! then costs a look at each reader's row, not at 257 (and one row, not 9, on this 2-CPU
//! machine: `cargo bench --bench cache -- cache/churn`).
//!
//! **Tallies.** A reader can count an event (a hit, a miss) in its own row for free: the row
//! is already in its cache and no one else writes it. [`ShardLocks::tally`] sums a count over
//! the rows.
//!
//! **The handshake** (Dekker's; the labels recur at each access below).
//!
//! ```text
//!   reader of shard i                       writer of shard i
//!   R: load rows_in_use        (SeqCst)
//!      if it misses this row: raise it
//!      (fetch_max, SeqCst)
//!   A: row[i % CLASSES] += 1   (SeqCst)     C: state[i]: 0 -> WRITING   (SeqCst)
//!   B: load state[i]           (SeqCst)        (compare-exchange; while another writer
//!      WRITING: undo A, sleep until               holds it: sleep until it leaves, retry)
//!           it is clear, retry              H: load rows_in_use         (SeqCst)
//!      clear: read the value                D: load row[i % CLASSES]    (SeqCst)
//!                                              of every row in use until all are 0
//!                                              write the value
//!   E: row[i % CLASSES] -= 1   (Release)    F: state[i] = 0 (swap,      Release)
//!                                              wake the sleepers if any
//! ```
//!
//! `R`, `A`, `B`, `C`, `H` and `D` are `SeqCst`, so they sit in one total order. If `B` reads
//! `false`, `B` precedes `C`, so `R` (or the raise `R` read) precedes `H`, which therefore
//! covers the reader's row, and `A` precedes `D`, which sees the raised count (or a later
//! value of that counter, which stays non-zero until `E`): the writer waits for `E`, whose
//! release orders the reader's accesses before the writer's. Otherwise `B` follows `C` and
//! the reader backs out. A reader that reads the value after `F` acquired it through `B`
//! (which reads `F`'s store, or a later writer's `C`, in which case it backs out again); a
//! writer's `C` acquires the previous writer's `F` the same way. On x86 the reader's `A` is
//! one `lock inc` and `E` a load and a plain store; `R`, `B`, `H` and `D` are plain loads; `C`
//! and `F` are the writer's two locked instructions.
//!
//! **Waiting.** A reader or writer that finds `WRITING` set spins for a while (a write is
//! short, and a sleep and a wake-up cost microseconds: on 2 threads, a 90/10 get/insert mix
//! on the cache ran 1.5 times slower when every such reader slept), then sleeps: under
//! the shard's `parking` mutex it adds `PARKED` to the state (only while `WRITING` is still
//! there) and waits on the shard's condition variable; a writer whose `F` swaps out a state
//! with `PARKED` takes that mutex (so every sleeper that set the bit is already waiting) and
//! wakes them all, and each retries. A writer waits for readers (short critical sections)
//! with [`Backoff`].
//!
//! **Do not nest.** A thread must not read a shard of a set while it reads a shard of the same
//! set: if a writer of a shard of the same class comes in between, the inner read waits for
//! that writer and the writer for the outer read. (A plain `RwLock` has the same rule.)
//!
//! **loom** models `SeqCst` accesses as acquire-release, too weak for this handshake, but it
//! models `SeqCst` fences exactly: the loom build adds one between `A` and `B` and between
//! `C` and `D` ([`handshake_fence`]), the real build pays nothing for it
//! (`tests/loom_sync.rs`).
#![allow(unsafe_code)]

use std::fmt;

use super::thread_index::{claimed_thread_index, owned_slots, thread_index};
use super::{
    AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Backoff, CachePadded, Condvar, Mutex, Ordering,
    UnsafeCell,
};

/// Reader counters in one row: shard `i` uses counter `i % CLASSES`.
pub const CLASSES: usize = 16;

/// Event counts in one row, for [`ShardLocks::read_tallied`].
pub const TALLIES: usize = 4;

/// A reader row: one reader counter per class of shards and the tallies, written only by the
/// row's thread (or, for the overflow row, with read-modify-writes). 96 bytes: one
/// `CachePadded` unit.
struct Row {
    readers: [AtomicU32; CLASSES],
    tallies: [AtomicU64; TALLIES],
}

impl Row {
    fn new() -> Self {
        Self {
            readers: std::array::from_fn(|_| AtomicU32::new(0)),
            tallies: std::array::from_fn(|_| AtomicU64::new(0)),
        }
    }
}

/// `Shard::state`: a writer holds the shard.
const WRITING: u8 = 1;
/// `Shard::state`: a thread sleeps until the writer leaves (only ever with `WRITING`).
const PARKED: u8 = 2;

struct Shard<T> {
    /// 0, `WRITING`, or `WRITING | PARKED` (module docs, "Waiting").
    state: AtomicU8,
    /// Held while a sleeper sets `PARKED` and until it waits; taken by the writer that wakes it.
    parking: Mutex<()>,
    /// Where threads wait for the writer to leave.
    left: Condvar,
    value: UnsafeCell<T>,
}

impl<T> Shard<T> {
    /// Waits until the shard's writer (if it still has one) leaves: spins a little first (a
    /// write is short; sleeping and waking cost a few microseconds each), then sleeps. May
    /// return early, so the caller retries (module docs, "Waiting"). Relaxed: the caller's
    /// retry is what orders.
    #[cold]
    #[inline(never)]
    fn wait_for_writer(&self) {
        let backoff = Backoff::new();
        while self.state.load(Ordering::Relaxed) & WRITING != 0 {
            if backoff.is_completed() {
                self.sleep_until_writer_leaves();
                return;
            }
            backoff.snooze();
        }
    }

    /// Sleeps until the shard's writer (if it still has one) leaves; may return early.
    fn sleep_until_writer_leaves(&self) {
        let parking = self.parking.lock();
        let mut state = self.state.load(Ordering::Relaxed);
        while state == WRITING {
            match self.state.compare_exchange_weak(
                WRITING,
                WRITING | PARKED,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => state = WRITING | PARKED,
                Err(now) => state = now,
            }
        }
        if state == WRITING | PARKED {
            drop(self.left.wait(parking));
        }
    }

    /// Wakes the threads that slept waiting for a writer, once it has left.
    #[cold]
    #[inline(never)]
    fn wake_sleepers(&self) {
        // Every sleeper that set `PARKED` holds `parking` until it waits: once we hold it,
        // they all wait.
        let _parking = self.parking.lock();
        self.left.notify_all();
    }
}

/// `n` values, each behind a reader-writer lock built for many readers and rare writers (see
/// the module docs): a read costs one atomic add on a cache line only the calling thread
/// writes; a write scans one counter per reader row in use.
///
/// ```
/// use levee_core::sync::ShardLocks;
///
/// let shards = ShardLocks::new(4, |i| vec![i]);
/// shards.write(2, |v| v.push(20));
/// assert_eq!(shards.read(2, |v| v.clone()), [2, 20]);
/// assert_eq!(shards.len(), 4);
/// ```
pub struct ShardLocks<T> {
    shards: Box<[CachePadded<Shard<T>>]>,
    /// Row `i` belongs to the thread of index `i`.
    rows: Box<[CachePadded<Row>]>,
    /// One more than the highest row a reader has used (`rows.len()` stands for the overflow
    /// row): writers scan no further (module docs, "Rows in use"). Only ever grows.
    rows_in_use: AtomicUsize,
    /// The row of every other thread.
    overflow: CachePadded<Row>,
}

// SAFETY: a `ShardLocks` hands out `&T` to many threads at once (so `T: Sync`) and `&mut T`
// to one thread at a time, possibly not the one that created it (so `T: Send`); every access
// goes through `read`/`write`, whose handshake (module docs) keeps the two apart.
unsafe impl<T: Send + Sync> Sync for ShardLocks<T> {}
// SAFETY: moving the set moves the `T`s it owns; nothing in it is tied to a thread.
unsafe impl<T: Send> Send for ShardLocks<T> {}

impl<T> fmt::Debug for ShardLocks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ShardLocks")
            .field("shards", &self.shards.len())
            .field("reader_rows", &(self.rows.len() + 1))
            .finish_non_exhaustive()
    }
}

impl<T> ShardLocks<T> {
    /// `shards` values (at least one), the `i`-th made by `init(i)`.
    ///
    /// # Panics
    /// When `shards` is zero.
    pub fn new(shards: usize, mut init: impl FnMut(usize) -> T) -> Self {
        assert!(shards > 0, "a ShardLocks needs at least one shard");
        Self {
            shards: (0..shards)
                .map(|i| {
                    CachePadded::new(Shard {
                        state: AtomicU8::new(0),
                        parking: Mutex::new(()),
                        left: Condvar::new(),
                        value: UnsafeCell::new(init(i)),
                    })
                })
                .collect(),
            rows: (0..owned_slots()).map(|_| CachePadded::new(Row::new())).collect(),
            rows_in_use: AtomicUsize::new(0),
            overflow: CachePadded::new(Row::new()),
        }
    }

    /// Number of shards.
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.len()
    }

    /// Always false: a set has at least one shard.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Runs `f` with shared access to shard `i`.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    #[inline]
    pub fn read<R>(&self, i: usize, f: impl FnOnce(&T) -> R) -> R {
        self.read_tallied(i, |value| (f(value), None))
    }

    /// As [`read`](Self::read), and counts one event in tally `k` of the calling thread's row
    /// when `f` returns `Some(k)` (`k < TALLIES`; see [`tally`](Self::tally)).
    ///
    /// # Panics
    /// When `i >= self.len()` or `f` returns `Some(k)` with `k >= TALLIES`.
    #[inline]
    pub fn read_tallied<R>(&self, i: usize, f: impl FnOnce(&T) -> (R, Option<usize>)) -> R {
        // The common read, with no call in it (so its caller keeps its values in scratch
        // registers, with nothing to save and restore around it): the thread has its number
        // and its own row, the row is in use (R), and no writer holds the shard (B). Any
        // other case takes the general path, from the start.
        let index = claimed_thread_index();
        if let Some(row) = self.rows.get(index)
            // R (SeqCst: module docs).
            && index < self.rows_in_use.load(Ordering::SeqCst)
        {
            let shard = &*self.shards[i];
            let counter = &row.readers[i % CLASSES];
            if try_enter(shard, counter, true) {
                return Self::read_entered::<true, R>(shard, row, counter, f);
            }
        }
        self.read_slow(i, f)
    }

    /// Every read [`read_tallied`](Self::read_tallied)'s common case does not cover: a
    /// thread without its number yet, or without a row of its own (the shared overflow
    /// row), a row not yet in use, a writer in the shard.
    #[cold]
    #[inline(never)]
    fn read_slow<R>(&self, i: usize, f: impl FnOnce(&T) -> (R, Option<usize>)) -> R {
        let index = thread_index();
        match self.rows.get(index) {
            Some(row) => self.read_row::<true, R>(i, row, index, f),
            None => self.read_row::<false, R>(i, &self.overflow, self.rows.len(), f),
        }
    }

    /// A read of shard `i` through `row` (the one at `slot`): the calling thread's own row
    /// (`EXCLUSIVE`) or the overflow row.
    #[inline(always)]
    fn read_row<const EXCLUSIVE: bool, R>(
        &self,
        i: usize,
        row: &Row,
        slot: usize,
        f: impl FnOnce(&T) -> (R, Option<usize>),
    ) -> R {
        let shard = &*self.shards[i];
        // R (SeqCst: module docs). A raise happens once per thread and set.
        if slot >= self.rows_in_use.load(Ordering::SeqCst) {
            self.rows_in_use.fetch_max(slot + 1, Ordering::SeqCst);
        }
        let counter = &row.readers[i % CLASSES];
        while !try_enter(shard, counter, EXCLUSIVE) {
            shard.wait_for_writer();
        }
        Self::read_entered::<EXCLUSIVE, R>(shard, row, counter, f)
    }

    /// The rest of a read once A and B let it in (through `counter`, of `row`): runs `f`,
    /// leaves (E), and counts `f`'s tally.
    #[inline(always)]
    fn read_entered<const EXCLUSIVE: bool, R>(
        shard: &Shard<T>,
        row: &Row,
        counter: &AtomicU32,
        f: impl FnOnce(&T) -> (R, Option<usize>),
    ) -> R {
        let leave_guard = Leave { counter, exclusive: EXCLUSIVE };
        // SAFETY: this thread's count is raised (A) and no writer was flagged after it (B),
        // so any writer of this shard waits in D until `leave_guard` drops (module docs);
        // other readers only read.
        let (result, tally) = shard.value.with(|p| f(unsafe { &*p }));
        drop(leave_guard);
        if let Some(k) = tally {
            let tally = &row.tallies[k];
            // Relaxed: a statistic. Only this thread writes an exclusive row.
            if EXCLUSIVE {
                tally.store(tally.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
            } else {
                tally.fetch_add(1, Ordering::Relaxed);
            }
        }
        result
    }

    /// Events counted in tally `k` by [`read_tallied`](Self::read_tallied), over all threads.
    ///
    /// # Panics
    /// When `k >= TALLIES`.
    #[must_use]
    pub fn tally(&self, k: usize) -> u64 {
        self.rows
            .iter()
            .chain(std::iter::once(&self.overflow))
            .map(|row| row.tallies[k].load(Ordering::Relaxed))
            .sum()
    }

    /// Runs `f` with exclusive access to shard `i`.
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn write<R>(&self, i: usize, f: impl FnOnce(&mut T) -> R) -> R {
        let shard = &*self.shards[i];
        // C (SeqCst: module docs; acquires the last writer's F).
        while shard.state.compare_exchange(0, WRITING, Ordering::SeqCst, Ordering::Relaxed).is_err()
        {
            shard.wait_for_writer();
        }
        let _leave = LeaveWriting(shard);
        handshake_fence();
        let class = i % CLASSES;
        // H (SeqCst: module docs).
        let in_use = self.rows_in_use.load(Ordering::SeqCst);
        let owned = &self.rows[..in_use.min(self.rows.len())];
        let overflow = (in_use > self.rows.len()).then_some(&self.overflow);
        for row in owned.iter().chain(overflow) {
            let backoff = Backoff::new();
            // D (SeqCst: module docs; acquires each reader's E).
            while row.readers[class].load(Ordering::SeqCst) != 0 {
                backoff.snooze();
            }
        }
        // SAFETY: we set `WRITING` (C: no other writer until `_leave` drops) and then saw
        // every reader count of this class at zero (D), so no reader is inside `read`'s
        // closure for this shard, and new ones back out until `_leave` drops (module docs).
        shard.value.with_mut(|p| f(unsafe { &mut *p }))
    }

    /// Exclusive access to shard `i` through `&mut self` (no locking).
    ///
    /// # Panics
    /// When `i >= self.len()`.
    pub fn get_mut(&mut self, i: usize) -> &mut T {
        // SAFETY: `&mut self` excludes every `read` and `write`.
        self.shards[i].value.with_mut(|p| unsafe { &mut *p })
    }
}

/// A `SeqCst` fence in the loom build only (module docs, "loom").
#[inline(always)]
fn handshake_fence() {
    #[cfg(loom)]
    super::fence(Ordering::SeqCst);
}

/// A and B: raises the reader's count in `counter` and looks for a writer in `shard`; true if
/// the read may go on, false (with A undone) if a writer holds the shard.
#[inline(always)]
fn try_enter<T>(shard: &Shard<T>, counter: &AtomicU32, exclusive: bool) -> bool {
    // A (SeqCst: module docs). One locked add even on the thread's own row: cheaper than a
    // load and an exchange.
    counter.fetch_add(1, Ordering::SeqCst);
    handshake_fence();
    // B (SeqCst: module docs; acquires the last writer's F).
    if shard.state.load(Ordering::SeqCst) & WRITING == 0 {
        return true;
    }
    leave(counter, exclusive); // undo A
    false
}

/// E: lowers the reader's count (Release: the reader's accesses happen before a writer's D
/// that reads this store).
#[inline]
fn leave(counter: &AtomicU32, exclusive: bool) {
    if exclusive {
        // Only this thread writes its own row: a load and a plain store stand in for a
        // read-modify-write. (Loaded here rather than kept from A: a register held across
        // the read costs the caller more than the load, `examples/cache_cost.rs hit`.)
        counter.store(counter.load(Ordering::Relaxed) - 1, Ordering::Release);
    } else {
        counter.fetch_sub(1, Ordering::Release);
    }
}

/// Leaves the read side, also when the reader's closure panics.
struct Leave<'a> {
    counter: &'a AtomicU32,
    exclusive: bool,
}

impl Drop for Leave<'_> {
    #[inline]
    fn drop(&mut self) {
        leave(self.counter, self.exclusive);
    }
}

/// F: clears the shard's state, also when the writer's closure panics (Release: the
/// writer's accesses happen before those of a reader whose B, or a writer whose C, reads
/// this store), and wakes whoever slept waiting.
struct LeaveWriting<'a, T>(&'a Shard<T>);

impl<T> Drop for LeaveWriting<'_, T> {
    #[inline]
    fn drop(&mut self) {
        if self.0.state.swap(0, Ordering::Release) & PARKED != 0 {
            self.0.wake_sleepers();
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::sync::AtomicBool;

    #[test]
    fn readers_and_writers_see_each_others_work() {
        let locks = ShardLocks::new(3, |_| 0u64);
        std::thread::scope(|s| {
            for t in 0..4 {
                let locks = &locks;
                s.spawn(move || {
                    for k in 0..1000 {
                        let i = (t + k) % 3;
                        locks.write(i, |v| *v += 1);
                        assert!(locks.read(i, |v| *v) >= 1);
                    }
                });
            }
        });
        assert_eq!((0..3).map(|i| locks.read(i, |v| *v)).sum::<u64>(), 4000);
    }

    #[test]
    fn a_panicking_reader_or_writer_releases_the_lock() {
        let locks = ShardLocks::new(1, |_| 1u32);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            locks.read(0, |_| panic!("reader panics"))
        }));
        assert!(r.is_err());
        locks.write(0, |v| *v = 2); // would wait forever if the reader were still counted
        let w = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            locks.write(0, |_| panic!("writer panics"))
        }));
        assert!(w.is_err());
        assert_eq!(locks.read(0, |v| *v), 2, "readers are not shut out by a dead writer");
    }

    #[test]
    fn readers_and_writers_sleep_while_a_writer_holds_the_shard_and_all_wake() {
        let locks = ShardLocks::new(1, |_| 0u64);
        let inside = std::sync::Barrier::new(2);
        std::thread::scope(|s| {
            s.spawn(|| {
                locks.write(0, |v| {
                    inside.wait();
                    // Long enough for the others to find `WRITING` and go to sleep.
                    std::thread::sleep(std::time::Duration::from_millis(50));
                    *v += 1;
                });
            });
            inside.wait();
            for _ in 0..3 {
                s.spawn(|| assert!(locks.read(0, |v| *v) >= 1, "a reader saw the write"));
                s.spawn(|| locks.write(0, |v| *v += 10));
            }
        });
        assert_eq!(locks.read(0, |v| *v), 31);
        assert_eq!(locks.shards[0].state.load(Ordering::Relaxed), 0, "nobody left asleep");
    }

    #[test]
    fn threads_beyond_the_rows_share_the_overflow_row() {
        let locks = ShardLocks::new(2, |_| 0u64);
        let threads = locks.rows.len() + 9;
        let barrier = std::sync::Barrier::new(threads);
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    let _ = thread_index();
                    barrier.wait(); // all alive at once: some have no row of their own
                    for k in 0..100 {
                        locks.write(k % 2, |v| *v += 1);
                        locks.read(k % 2, |v| assert!(*v >= 1));
                    }
                });
            }
        });
        assert_eq!(locks.read(0, |v| *v) + locks.read(1, |v| *v), 100 * threads as u64);
        let rows = || locks.rows.iter().chain(std::iter::once(&locks.overflow));
        assert!(rows().all(|r| r.readers.iter().all(|c| c.load(Ordering::Relaxed) == 0)));
    }

    #[test]
    fn writers_scan_only_the_rows_readers_have_used() {
        let locks = ShardLocks::new(1, |_| 0u64);
        locks.write(0, |v| *v += 1);
        assert_eq!(locks.rows_in_use.load(Ordering::Relaxed), 0, "a writer takes no row");
        let me = thread_index();
        locks.read(0, |_| ());
        assert_eq!(locks.rows_in_use.load(Ordering::Relaxed), me + 1);
        // A reader on another thread covers its row; a writer then waits on that row.
        let (entered, leave) = (std::sync::Barrier::new(2), std::sync::Barrier::new(2));
        let done = AtomicBool::new(false);
        let reader_index = std::sync::atomic::AtomicUsize::new(usize::MAX);
        std::thread::scope(|s| {
            s.spawn(|| {
                reader_index.store(thread_index(), Ordering::Relaxed);
                locks.read(0, |v| {
                    entered.wait();
                    leave.wait();
                    assert!(!done.load(Ordering::Relaxed), "the writer went in during a read");
                    assert_eq!(*v, 1);
                })
            });
            entered.wait();
            let covered = locks.rows_in_use.load(Ordering::Relaxed);
            assert!(covered > reader_index.load(Ordering::Relaxed).min(locks.rows.len()));
            s.spawn(|| {
                locks.write(0, |v| *v += 1);
                done.store(true, Ordering::Relaxed);
            });
            std::thread::sleep(std::time::Duration::from_millis(20));
            assert!(!done.load(Ordering::Relaxed), "the writer waits for the reader");
            leave.wait();
        });
        assert_eq!(locks.read(0, |v| *v), 2);
    }

    #[test]
    fn tallies_count_across_threads() {
        let locks = ShardLocks::new(2, |_| ());
        std::thread::scope(|s| {
            for _ in 0..locks.rows.len() + 4 {
                s.spawn(|| {
                    for k in 0..100 {
                        locks.read_tallied(k % 2, |()| ((), Some(k % 2)));
                        locks.read_tallied(0, |()| ((), None));
                    }
                });
            }
        });
        let threads = locks.rows.len() as u64 + 4;
        assert_eq!(
            (locks.tally(0), locks.tally(1), locks.tally(2)),
            (50 * threads, 50 * threads, 0)
        );
    }

    #[test]
    fn shards_of_one_class_are_still_separate_values() {
        let mut locks = ShardLocks::new(CLASSES + 1, |i| i);
        assert_eq!(locks.read(CLASSES, |v| *v), CLASSES);
        locks.write(0, |v| *v = 100);
        assert_eq!(locks.read(CLASSES, |v| *v), CLASSES);
        *locks.get_mut(CLASSES) += 1;
        assert_eq!(locks.read(CLASSES, |v| *v), CLASSES + 1);
        assert_eq!(locks.read(0, |v| *v), 100);
        assert!(!locks.is_empty());
        assert!(format!("{locks:?}").contains("ShardLocks"));
    }
}
