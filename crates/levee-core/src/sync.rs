//! The one place levee's concurrent code gets its atomics, cells, locks and threads.
//!
//! Under `--cfg loom` every item maps to [`loom`](https://docs.rs/loom), which explores all
//! interleavings of a test; otherwise to `std` and `parking_lot`. Code written against this
//! module is therefore model-checked by the same tests that run normally: see [`model`].
//!
//! [`UnsafeCell`] has loom's closure API (`with` / `with_mut`) in both builds, because that is
//! the form loom can check; raw `get()` is deliberately absent.
//!
//! [`thread_local!`](crate::sync::thread_local) declares a thread-local that is per *modelled*
//! thread under loom: loom runs all the threads of a model on one OS thread, so a plain
//! `std::thread_local!` would be shared by all of them, and never dropped when one exits.
//! Its keys have `with` and `try_with` in both builds.
//!
//! Built on the shim, the building blocks every concurrent primitive shares (the unsafe code
//! of the workspace's data structures lives here, each with its protocol written down and a
//! loom test in `tests/loom_sync.rs`):
//!
//! - [`thread_index`]: a small number per live thread, for stripes and per-thread rows
//!   ([`owned_slots`] of them for the first threads);
//! - [`ShardLocks`]: shards behind reader-writer locks whose readers write only their own
//!   thread's cache line (the cache's and the keyed limiter's shards);
//! - [`OnceSlots`]: slots whose keys are published once and then read concurrently (the keyed
//!   limiter's tables);
//! - [`Retained`]: a value replaced through `&self` while readers keep references to every
//!   version, one acquire load per read (live reconfiguration of the primitives).

mod once_slots;
mod retained;
mod shard_locks;
mod thread_index;

pub use crossbeam_utils::CachePadded;
pub use once_slots::{Entry, OnceSlots, Publisher, SlotState};
pub use retained::{Retained, Version};
pub use shard_locks::{CLASSES, ShardLocks, TALLIES};
pub use thread_index::{NO_THREAD_INDEX, owned_slots, thread_index};

#[cfg(loom)]
pub use loom::sync::Arc;
#[cfg(loom)]
pub use loom::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(loom)]
pub use loom::{cell::UnsafeCell, thread};

#[cfg(not(loom))]
pub use std::sync::Arc;
// std's own types (loom's under `cfg(loom)`): the docs link to std's pages rather than
// copying them here as if they were levee's.
#[cfg(not(loom))]
#[doc(no_inline)]
pub use std::sync::atomic::{
    AtomicBool, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence,
};
#[cfg(not(loom))]
#[doc(no_inline)]
pub use std::thread;

/// Declares thread-locals: `std::thread_local!` normally, loom's under `--cfg loom` (one value
/// per modelled thread, dropped when that thread exits). Use `with` or `try_with` on the key;
/// loom's macro takes the plain `static NAME: T = init;` form only (no `const { }` block).
///
/// ```
/// use std::cell::Cell;
///
/// levee_core::sync::thread_local! {
///     static CALLS: Cell<u32> = Cell::new(0);
/// }
///
/// CALLS.with(|c| c.set(c.get() + 1));
/// assert_eq!(CALLS.try_with(Cell::get), Ok(1));
/// ```
#[cfg(loom)]
pub use loom::thread_local;
/// Declares thread-locals: `std::thread_local!` normally, loom's under `--cfg loom` (one value
/// per modelled thread, dropped when that thread exits). Use `with` or `try_with` on the key;
/// loom's macro takes the plain `static NAME: T = init;` form only (no `const { }` block).
///
/// ```
/// use std::cell::Cell;
///
/// levee_core::sync::thread_local! {
///     static CALLS: Cell<u32> = Cell::new(0);
/// }
///
/// CALLS.with(|c| c.set(c.get() + 1));
/// assert_eq!(CALLS.try_with(Cell::get), Ok(1));
/// ```
#[cfg(not(loom))]
pub use std::thread_local;

/// Runs `body` once normally, or under loom's model checker when built with `--cfg loom`.
///
/// Write a concurrency test once and get both a smoke test in `cargo test` and an exhaustive
/// check under `RUSTFLAGS="--cfg loom" cargo test --release` (bound the search with
/// `LOOM_MAX_PREEMPTIONS=2`).
///
/// # What loom does not model the way the hardware does
///
/// - **`SeqCst` accesses are `AcqRel` to loom.** Loads and stores with `Ordering::SeqCst`
///   give no single total order in the model, so a Dekker-style handshake (each side stores
///   its flag, then loads the other's) passes natively but fails under loom. In the loom
///   build, put a [`fence(SeqCst)`](fence) between the store and the load on both sides, or
///   use read-modify-writes (`swap`, `fetch_add`), which loom does order (levee-cache's shard
///   lock adds the fence under `cfg(loom)` only).
/// - **A panic must not unwind through loom's `block_on`.** It poisons loom's own state and
///   the rest of the model fails with unrelated errors. A test that checks panic safety of
///   async code catches the panic inside the future it polls (`catch_unwind` around each
///   `poll`) and drives it with its own loop (levee-cache's `tests/loom_flight.rs`).
/// - **Yields are free switches.** Loom does not count a switch between two threads that
///   spin with [`spin_hint`] or [`Backoff`] as a preemption, so a model in which two threads
///   can spin on the same stopped third thread has an unbounded schedule and fails with
///   "exceeded maximum number of branches", although no real scheduler would starve the
///   third. Shape models so at most one thread waits on a peer at a time
///   (levee-queue's `tests/loom_channel.rs` explains its models that way).
///
/// ```
/// use levee_core::sync::{model, thread, Arc, AtomicUsize, Ordering};
///
/// model(|| {
///     let hits = Arc::new(AtomicUsize::new(0));
///     let other = hits.clone();
///     let t = thread::spawn(move || other.fetch_add(1, Ordering::Relaxed));
///     hits.fetch_add(1, Ordering::Relaxed);
///     t.join().unwrap();
///     assert_eq!(hits.load(Ordering::Relaxed), 2);
/// });
/// ```
pub fn model<F>(body: F)
where
    F: Fn() + Sync + Send + 'static,
{
    #[cfg(loom)]
    loom::model(body);
    #[cfg(not(loom))]
    body();
}

/// Tells the CPU (or, under loom, the model checker) that this thread is waiting on another.
///
/// Spin loops must call this: under loom a loop that does not yield never lets the thread it
/// waits for make progress.
///
/// ```
/// use levee_core::sync::{spin_hint, AtomicBool, Ordering};
/// let ready = AtomicBool::new(true);
/// while !ready.load(Ordering::Acquire) {
///     spin_hint();
/// }
/// ```
#[inline]
pub fn spin_hint() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Exponential backoff for CAS loops (crossbeam's `Backoff`, or a plain yield under loom).
///
/// ```
/// use levee_core::sync::{AtomicU64, Backoff, Ordering};
///
/// let word = AtomicU64::new(1);
/// let backoff = Backoff::new();
/// let mut current = word.load(Ordering::Relaxed);
/// while let Err(actual) =
///     word.compare_exchange_weak(current, current * 2, Ordering::AcqRel, Ordering::Relaxed)
/// {
///     current = actual;
///     backoff.spin();
/// }
/// assert_eq!(word.load(Ordering::Relaxed), 2);
/// ```
#[derive(Debug, Default)]
pub struct Backoff {
    #[cfg(not(loom))]
    inner: crossbeam_utils::Backoff,
}

impl Backoff {
    /// A fresh backoff.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Backs off after a lost CAS race.
    #[inline]
    pub fn spin(&self) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        self.inner.spin();
    }

    /// Backs off while waiting for another thread to make progress (yields once spinning
    /// stops paying off).
    #[inline]
    pub fn snooze(&self) {
        #[cfg(loom)]
        loom::thread::yield_now();
        #[cfg(not(loom))]
        self.inner.snooze();
    }

    /// True once spinning has gone on long enough that blocking would be better.
    #[inline]
    pub fn is_completed(&self) -> bool {
        #[cfg(loom)]
        return true;
        #[cfg(not(loom))]
        self.inner.is_completed()
    }
}

/// A mutual-exclusion lock whose `lock()` returns the guard directly (no poisoning).
///
/// `parking_lot::Mutex` normally, loom's mutex under `--cfg loom`.
///
/// ```
/// use levee_core::sync::Mutex;
/// let m = Mutex::new(vec![1]);
/// m.lock().push(2);
/// assert_eq!(m.into_inner(), [1, 2]);
/// ```
#[derive(Debug, Default)]
pub struct Mutex<T: ?Sized> {
    #[cfg(loom)]
    inner: loom::sync::Mutex<T>,
    #[cfg(not(loom))]
    inner: parking_lot::Mutex<T>,
}

/// The guard of a [`Mutex`]; the lock is released when it is dropped.
#[cfg(loom)]
pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;
/// The guard of a [`Mutex`]; the lock is released when it is dropped.
///
/// ```
/// use levee_core::sync::Mutex;
///
/// let m = Mutex::new(vec![1]);
/// m.lock().push(2); // the guard derefs to the value and unlocks at the end of the statement
/// assert_eq!(*m.lock(), [1, 2]);
/// ```
#[cfg(not(loom))]
pub type MutexGuard<'a, T> = parking_lot::MutexGuard<'a, T>;

impl<T> Mutex<T> {
    /// A new unlocked mutex holding `value`.
    pub fn new(value: T) -> Self {
        #[cfg(loom)]
        return Self { inner: loom::sync::Mutex::new(value) };
        #[cfg(not(loom))]
        Self { inner: parking_lot::Mutex::new(value) }
    }

    /// Consumes the mutex and returns its value.
    pub fn into_inner(self) -> T {
        #[cfg(loom)]
        return self.inner.into_inner().unwrap_or_else(|e| e.into_inner());
        #[cfg(not(loom))]
        self.inner.into_inner()
    }
}

impl<T: ?Sized> Mutex<T> {
    /// Blocks until the lock is held.
    #[inline]
    pub fn lock(&self) -> MutexGuard<'_, T> {
        #[cfg(loom)]
        return self.inner.lock().unwrap_or_else(|e| e.into_inner());
        #[cfg(not(loom))]
        self.inner.lock()
    }

    /// Takes the lock if it is free right now.
    #[inline]
    pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
        #[cfg(loom)]
        return self.inner.try_lock().ok();
        #[cfg(not(loom))]
        self.inner.try_lock()
    }
}

/// A condition variable for a [`Mutex`]: `parking_lot::Condvar` normally, loom's under
/// `--cfg loom`.
///
/// ```
/// use levee_core::sync::{Arc, Condvar, Mutex, thread};
///
/// let pair = Arc::new((Mutex::new(false), Condvar::new()));
/// let other = pair.clone();
/// let t = thread::spawn(move || {
///     *other.0.lock() = true;
///     other.1.notify_all();
/// });
/// let mut ready = pair.0.lock();
/// while !*ready {
///     ready = pair.1.wait(ready);
/// }
/// drop(ready);
/// t.join().unwrap();
/// ```
#[derive(Debug, Default)]
pub struct Condvar {
    #[cfg(loom)]
    inner: loom::sync::Condvar,
    #[cfg(not(loom))]
    inner: parking_lot::Condvar,
}

impl Condvar {
    /// A condition variable no thread waits on.
    #[must_use]
    pub fn new() -> Self {
        #[cfg(loom)]
        return Self { inner: loom::sync::Condvar::new() };
        #[cfg(not(loom))]
        Self { inner: parking_lot::Condvar::new() }
    }

    /// Releases `guard`'s lock, sleeps until notified (or woken spuriously), and takes the
    /// lock again: check the condition in a loop.
    pub fn wait<'a, T>(&self, guard: MutexGuard<'a, T>) -> MutexGuard<'a, T> {
        #[cfg(loom)]
        return self.inner.wait(guard).unwrap_or_else(|e| e.into_inner());
        #[cfg(not(loom))]
        {
            let mut guard = guard;
            self.inner.wait(&mut guard);
            guard
        }
    }

    /// Wakes every thread waiting on this condition variable.
    pub fn notify_all(&self) {
        self.inner.notify_all();
    }
}

/// A reader-writer lock: many readers or one writer, no poisoning.
///
/// `parking_lot::RwLock` normally, loom's under `--cfg loom`.
///
/// ```
/// use levee_core::sync::RwLock;
/// let l = RwLock::new(1);
/// *l.write() += 1;
/// assert_eq!(*l.read(), 2);
/// ```
#[derive(Debug, Default)]
pub struct RwLock<T: ?Sized> {
    #[cfg(loom)]
    inner: loom::sync::RwLock<T>,
    #[cfg(not(loom))]
    inner: parking_lot::RwLock<T>,
}

/// Shared access to a [`RwLock`]'s value.
#[cfg(loom)]
pub type RwLockReadGuard<'a, T> = loom::sync::RwLockReadGuard<'a, T>;
/// Shared access to a [`RwLock`]'s value.
///
/// ```
/// use levee_core::sync::RwLock;
///
/// let settings = RwLock::new(String::from("v1"));
/// let (a, b) = (settings.read(), settings.read()); // readers share the lock
/// assert_eq!((a.as_str(), b.as_str()), ("v1", "v1"));
/// ```
#[cfg(not(loom))]
pub type RwLockReadGuard<'a, T> = parking_lot::RwLockReadGuard<'a, T>;
/// Exclusive access to a [`RwLock`]'s value.
#[cfg(loom)]
pub type RwLockWriteGuard<'a, T> = loom::sync::RwLockWriteGuard<'a, T>;
/// Exclusive access to a [`RwLock`]'s value.
///
/// ```
/// use levee_core::sync::RwLock;
///
/// let settings = RwLock::new(String::from("v1"));
/// *settings.write() = String::from("v2");
/// assert_eq!(*settings.read(), "v2");
/// ```
#[cfg(not(loom))]
pub type RwLockWriteGuard<'a, T> = parking_lot::RwLockWriteGuard<'a, T>;

impl<T> RwLock<T> {
    /// A new unlocked lock holding `value`.
    pub fn new(value: T) -> Self {
        #[cfg(loom)]
        return Self { inner: loom::sync::RwLock::new(value) };
        #[cfg(not(loom))]
        Self { inner: parking_lot::RwLock::new(value) }
    }
}

impl<T: ?Sized> RwLock<T> {
    /// Blocks until shared access is held.
    #[inline]
    pub fn read(&self) -> RwLockReadGuard<'_, T> {
        #[cfg(loom)]
        return self.inner.read().unwrap_or_else(|e| e.into_inner());
        #[cfg(not(loom))]
        self.inner.read()
    }

    /// Blocks until exclusive access is held.
    #[inline]
    pub fn write(&self) -> RwLockWriteGuard<'_, T> {
        #[cfg(loom)]
        return self.inner.write().unwrap_or_else(|e| e.into_inner());
        #[cfg(not(loom))]
        self.inner.write()
    }
}

/// `std::cell::UnsafeCell` with loom's closure API, so loom can track every access.
///
/// ```
/// use levee_core::sync::UnsafeCell;
/// let cell = UnsafeCell::new(1);
/// // SAFETY: the cell is local; nothing else accesses it.
/// cell.with_mut(|p| unsafe { *p = 2 });
/// assert_eq!(cell.into_inner(), 2);
/// ```
#[cfg(not(loom))]
#[derive(Debug, Default)]
pub struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    /// Wraps `value`.
    #[inline]
    pub const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Unwraps the value.
    #[inline]
    pub fn into_inner(self) -> T {
        self.0.into_inner()
    }
}

#[cfg(not(loom))]
impl<T: ?Sized> UnsafeCell<T> {
    /// Calls `f` with a shared raw pointer to the value. Dereferencing it is the caller's
    /// `unsafe` responsibility: no writer may be active meanwhile.
    #[inline]
    pub fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Calls `f` with a mutable raw pointer to the value. Dereferencing it is the caller's
    /// `unsafe` responsibility: the access must be exclusive.
    #[inline]
    pub fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(all(test, not(loom)))]
#[allow(unsafe_code)]
mod tests {
    use super::*;

    #[test]
    fn mutex_and_rwlock_give_access() {
        let m = Mutex::new(1);
        *m.lock() += 1;
        assert!(m.try_lock().is_some());
        assert_eq!(m.into_inner(), 2);

        let l = RwLock::new(String::from("a"));
        l.write().push('b');
        assert_eq!(&*l.read(), "ab");
    }

    #[test]
    fn unsafe_cell_closures_reach_the_value() {
        let cell = UnsafeCell::new(5u32);
        // SAFETY: the cell is local to this test; no other access exists.
        cell.with_mut(|p| unsafe { *p += 1 });
        // SAFETY: as above, no writer is active.
        assert_eq!(cell.with(|p| unsafe { *p }), 6);
        assert_eq!(cell.into_inner(), 6);
    }

    #[test]
    fn backoff_completes_after_a_bounded_number_of_snoozes() {
        let b = Backoff::new();
        assert!(!b.is_completed(), "a fresh backoff spins before it says block");
        let mut snoozes = 0;
        while !b.is_completed() {
            assert!(snoozes < 64, "still not completed after {snoozes} snoozes");
            b.snooze();
            snoozes += 1;
        }
        assert!(snoozes > 1, "completed after {snoozes} snooze");
        b.spin();
        spin_hint();
        assert!(b.is_completed(), "spinning does not reset it");
    }
}
