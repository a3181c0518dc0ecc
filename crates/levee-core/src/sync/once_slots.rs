//! `OnceSlots`: a fixed array of slots, each empty or holding a key and a non-zero state
//! word, where a key is written once (while readers look at other slots) and then only read.
//! The storage of the keyed limiter's tables: a slot is 8 bytes plus the key, and inserting a
//! key needs no exclusive lock on the table.
//!
//! **Protocol.** A slot's state word is 0 while the slot is empty and non-zero once its key
//! is published; nothing can set it back to 0 through `&self`, so a published key stays
//! until the array is taken apart through `&mut self`.
//!
//! ```text
//!   publisher (one at a time: the array's mutex)    reader
//!   P1: write the key into an empty slot            R1: load state          (Acquire)
//!   P2: store state = s, s != 0      (Release)      R2: state != 0: read the key
//! ```
//!
//! If `R1` reads `P2`'s value (or a later one: every later value is also non-zero and written
//! by a read-modify-write on it, continuing the release sequence), `P1` happens before `R2`.
//! If `R1` reads 0 the reader never touches the key. Two publishers are kept apart by the
//! mutex, whose unlock and lock also order one publisher's writes before the next one's
//! check that a slot is empty. `&mut self` excludes everyone.
//!
//! The state word is handed out as a [`SlotState`], an `AtomicU64` that refuses to store 0:
//! that is the whole invariant, so no caller can make an empty slot look published.
#![allow(unsafe_code)]

use std::fmt;
use std::mem::MaybeUninit;
use std::num::NonZeroU64;

use super::{AtomicU64, AtomicUsize, Mutex, MutexGuard, Ordering, UnsafeCell};

/// A published slot's state word: an `AtomicU64` that is never 0 (0 marks an empty slot).
///
/// ```
/// use std::num::NonZeroU64;
/// use levee_core::sync::{Entry, OnceSlots, Ordering};
///
/// let slots = OnceSlots::<&str>::new(2);
/// slots.publisher().publish(0, "k", NonZeroU64::new(5).unwrap()).unwrap();
/// if let Entry::Full(_, state) = slots.get(0) {
///     state.store(NonZeroU64::new(6).unwrap(), Ordering::Relaxed); // the word is the key's state
///     assert_eq!(state.load(Ordering::Relaxed), 6);
/// }
/// ```
#[repr(transparent)]
pub struct SlotState(AtomicU64);

impl SlotState {
    /// Loads the value (never 0 once published).
    #[inline]
    pub fn load(&self, order: Ordering) -> u64 {
        self.0.load(order)
    }

    /// Stores a value that cannot be 0.
    #[inline]
    pub fn store(&self, value: NonZeroU64, order: Ordering) {
        self.0.store(value.get(), order);
    }

    /// As `AtomicU64::compare_exchange_weak`, with a new value that cannot be 0.
    ///
    /// # Errors
    /// The current value, when it was not `current` (or spuriously).
    #[inline]
    pub fn compare_exchange_weak(
        &self,
        current: u64,
        new: NonZeroU64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.0.compare_exchange_weak(current, new.get(), success, failure)
    }

    /// As `AtomicU64::compare_exchange`, with a new value that cannot be 0.
    ///
    /// # Errors
    /// The current value, when it was not `current`.
    #[inline]
    pub fn compare_exchange(
        &self,
        current: u64,
        new: NonZeroU64,
        success: Ordering,
        failure: Ordering,
    ) -> Result<u64, u64> {
        self.0.compare_exchange(current, new.get(), success, failure)
    }
}

impl fmt::Debug for SlotState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SlotState").field(&self.0.load(Ordering::Relaxed)).finish()
    }
}

struct Slot<K> {
    state: SlotState,
    key: UnsafeCell<MaybeUninit<K>>,
}

/// What a slot holds.
///
/// ```
/// use std::num::NonZeroU64;
/// use levee_core::sync::{Entry, OnceSlots};
///
/// let slots = OnceSlots::<u32>::new(2);
/// assert!(matches!(slots.get(0), Entry::Empty));
/// slots.publisher().publish(0, 42, NonZeroU64::new(1).unwrap()).unwrap();
/// assert!(matches!(slots.get(0), Entry::Full(&42, _)));
/// ```
pub enum Entry<'a, K> {
    /// Nothing (yet).
    Empty,
    /// A published key and its state.
    Full(&'a K, &'a SlotState),
}

impl<K> Clone for Entry<'_, K> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<K> Copy for Entry<'_, K> {}

impl<K: fmt::Debug> fmt::Debug for Entry<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Entry::Empty => f.write_str("Empty"),
            Entry::Full(key, state) => f.debug_tuple("Full").field(key).field(state).finish(),
        }
    }
}

/// A fixed array of slots whose keys are published once and then read concurrently (see the
/// module docs). Readers use [`get`](Self::get); one [`Publisher`] at a time fills empty
/// slots; `&mut self` takes keys out.
///
/// ```
/// use std::num::NonZeroU64;
/// use levee_core::sync::{Entry, OnceSlots, Ordering};
///
/// let slots = OnceSlots::<String>::new(4);
/// assert!(matches!(slots.get(1), Entry::Empty));
/// let one = NonZeroU64::new(1).unwrap();
/// slots.publisher().publish(1, "key".to_owned(), one).unwrap();
/// match slots.get(1) {
///     Entry::Full(key, state) => assert_eq!((key.as_str(), state.load(Ordering::Relaxed)), ("key", 1)),
///     Entry::Empty => unreachable!(),
/// }
/// assert_eq!(slots.len(), 1);
/// let mut slots = slots;
/// assert_eq!(slots.take_all().collect::<Vec<_>>(), [("key".to_owned(), 1)]);
/// ```
pub struct OnceSlots<K> {
    slots: Box<[Slot<K>]>,
    /// Published slots; changed only by the publisher (under `publishing`) or `&mut self`.
    len: AtomicUsize,
    publishing: Mutex<()>,
}

// SAFETY: readers on many threads get `&K` at once (so `K: Sync`); a publisher moves keys in
// from whatever thread it runs on, and `&mut self` moves them out (so `K: Send`). The protocol
// in the module docs keeps every write of a key apart from every read of it.
unsafe impl<K: Send + Sync> Sync for OnceSlots<K> {}
// SAFETY: moving the array moves the keys it owns; nothing in it is tied to a thread.
unsafe impl<K: Send> Send for OnceSlots<K> {}

impl<K> fmt::Debug for OnceSlots<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OnceSlots")
            .field("capacity", &self.slots.len())
            .field("len", &self.len())
            .finish_non_exhaustive()
    }
}

impl<K> OnceSlots<K> {
    /// `capacity` empty slots.
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity)
                .map(|_| Slot {
                    state: SlotState(AtomicU64::new(0)),
                    key: UnsafeCell::new(MaybeUninit::uninit()),
                })
                .collect(),
            len: AtomicUsize::new(0),
            publishing: Mutex::new(()),
        }
    }

    /// Number of slots.
    #[inline]
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Published slots.
    #[inline]
    #[must_use]
    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// True when no slot is published.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes held by the slot array (each slot is the state word plus room for a `K`).
    #[must_use]
    pub fn footprint(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }

    /// What slot `i` holds.
    ///
    /// # Panics
    /// When `i >= self.capacity()`.
    #[inline]
    pub fn get(&self, i: usize) -> Entry<'_, K> {
        let slot = &self.slots[i];
        // R1 (Acquire: module docs).
        if slot.state.0.load(Ordering::Acquire) == 0 {
            return Entry::Empty;
        }
        // SAFETY: a non-zero state was stored (P2) after the key was written (P1), and R1's
        // acquire makes that write visible; no one writes a published key through `&self`.
        let key = slot.key.with(|p| unsafe { (*p).assume_init_ref() });
        Entry::Full(key, &slot.state)
    }

    /// The right to publish: one publisher at a time (it holds the array's mutex).
    pub fn publisher(&self) -> Publisher<'_, K> {
        Publisher { slots: self, _lock: self.publishing.lock() }
    }

    /// Publishes `key` in empty slot `i` through exclusive access.
    ///
    /// # Errors
    /// Gives `key` back when slot `i` is already published.
    ///
    /// # Panics
    /// When `i >= self.capacity()`.
    pub fn publish_mut(&mut self, i: usize, key: K, state: NonZeroU64) -> Result<(), K> {
        // SAFETY: `&mut self` excludes readers and publishers (module docs).
        unsafe { self.publish_unchecked(i, key, state) }
    }

    /// # Safety
    /// The caller excludes every other publisher (the mutex, or `&mut self`).
    unsafe fn publish_unchecked(&self, i: usize, key: K, state: NonZeroU64) -> Result<(), K> {
        let slot = &self.slots[i];
        // Relaxed: publishers are ordered by the mutex (or `&mut self`), which makes any
        // earlier publication of this slot visible; readers never make a slot non-zero.
        if slot.state.0.load(Ordering::Relaxed) != 0 {
            return Err(key);
        }
        // P1. SAFETY: the slot is empty, so no reader reads its key (they stop at R1), and
        // the caller excludes other publishers.
        slot.key.with_mut(|p| unsafe { (*p).write(key) });
        // P2 (Release: module docs).
        slot.state.0.store(state.get(), Ordering::Release);
        // Relaxed: a count for sizing decisions, changed only by the one publisher.
        self.len.store(self.len.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        Ok(())
    }

    /// The published keys and their states, in slot order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &SlotState)> {
        (0..self.slots.len()).filter_map(|i| match self.get(i) {
            Entry::Full(key, state) => Some((key, state)),
            Entry::Empty => None,
        })
    }

    /// Takes every published key out with its state, leaving the array empty.
    pub fn take_all(&mut self) -> impl Iterator<Item = (K, u64)> + '_ {
        let len = &self.len;
        self.slots.iter_mut().filter_map(move |slot| {
            let state = take_mut(&mut slot.state.0);
            if state == 0 {
                return None;
            }
            len.store(len.load(Ordering::Relaxed) - 1, Ordering::Relaxed);
            // SAFETY: `&mut self`: no reader or publisher; a non-zero state means the key
            // was written (P1) and not taken since (taking zeroes the state first).
            Some(slot.key.with_mut(|p| (unsafe { (*p).assume_init_read() }, state)))
        })
    }
}

/// Zeroes an atomic through exclusive access (no atomic instruction) and returns its value.
#[cfg(not(loom))]
fn take_mut(word: &mut AtomicU64) -> u64 {
    std::mem::take(word.get_mut())
}

#[cfg(loom)]
fn take_mut(word: &mut AtomicU64) -> u64 {
    word.with_mut(std::mem::take)
}

impl<K> Drop for OnceSlots<K> {
    fn drop(&mut self) {
        if std::mem::needs_drop::<K>() {
            self.take_all().for_each(drop);
        }
    }
}

/// The right to publish into an [`OnceSlots`]: holds its mutex until dropped.
///
/// ```
/// use std::num::NonZeroU64;
/// use levee_core::sync::OnceSlots;
///
/// let slots = OnceSlots::<u32>::new(4);
/// let publisher = slots.publisher(); // one publisher at a time; readers never wait
/// publisher.publish(0, 7, NonZeroU64::new(1).unwrap()).unwrap();
/// publisher.publish(1, 8, NonZeroU64::new(1).unwrap()).unwrap();
/// drop(publisher);
/// assert_eq!(slots.len(), 2);
/// ```
pub struct Publisher<'a, K> {
    slots: &'a OnceSlots<K>,
    _lock: MutexGuard<'a, ()>,
}

impl<K> fmt::Debug for Publisher<'_, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher").finish_non_exhaustive()
    }
}

impl<'a, K> Publisher<'a, K> {
    /// What slot `i` holds (a slot stays empty while this publisher lives unless it fills it).
    /// A published entry lives as long as the array's borrow, past this publisher.
    ///
    /// # Panics
    /// When `i >= capacity`.
    #[inline]
    pub fn get(&self, i: usize) -> Entry<'a, K> {
        self.slots.get(i)
    }

    /// Publishes `key` with `state` in empty slot `i`.
    ///
    /// # Errors
    /// Gives `key` back when slot `i` is already published.
    ///
    /// # Panics
    /// When `i >= capacity`.
    pub fn publish(&self, i: usize, key: K, state: NonZeroU64) -> Result<(), K> {
        // SAFETY: this publisher holds the array's mutex.
        unsafe { self.slots.publish_unchecked(i, key, state) }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn nz(v: u64) -> NonZeroU64 {
        NonZeroU64::new(v).unwrap()
    }

    #[test]
    fn publishes_once_and_takes_out() {
        let mut slots = OnceSlots::<String>::new(3);
        assert_eq!((slots.capacity(), slots.len()), (3, 0));
        assert!(slots.is_empty());
        assert_eq!(OnceSlots::<u64>::new(4).footprint(), 4 * 16, "8 bytes of state per key");
        slots.publisher().publish(0, "a".into(), nz(5)).unwrap();
        assert_eq!(slots.publisher().publish(0, "b".into(), nz(6)), Err("b".into()));
        slots.publish_mut(2, "c".into(), nz(7)).unwrap();
        assert_eq!(slots.publish_mut(2, "d".into(), nz(8)), Err("d".into()));
        assert_eq!(slots.len(), 2);
        match slots.get(0) {
            Entry::Full(k, s) => {
                assert_eq!(k, "a");
                assert_eq!(
                    s.compare_exchange(5, nz(9), Ordering::Relaxed, Ordering::Relaxed),
                    Ok(5)
                );
                assert_eq!(s.load(Ordering::Relaxed), 9);
            }
            Entry::Empty => panic!("published"),
        }
        assert!(matches!(slots.get(1), Entry::Empty));
        let seen: Vec<_> =
            slots.iter().map(|(k, s)| (k.clone(), s.load(Ordering::Relaxed))).collect();
        assert_eq!(seen, [("a".to_owned(), 9), ("c".to_owned(), 7)]);
        let taken: Vec<_> = slots.take_all().collect();
        assert_eq!(taken, [("a".to_owned(), 9), ("c".to_owned(), 7)]);
        assert!(slots.is_empty());
        assert!(matches!(slots.get(0), Entry::Empty));
        slots.publish_mut(0, "again".into(), nz(1)).unwrap();
    }

    #[test]
    fn dropping_drops_every_published_key_once() {
        let witness = std::sync::Arc::new(());
        let slots = OnceSlots::new(8);
        for i in [1, 4, 7] {
            slots.publisher().publish(i, witness.clone(), nz(1)).unwrap();
        }
        assert_eq!(std::sync::Arc::strong_count(&witness), 4);
        drop(slots);
        assert_eq!(std::sync::Arc::strong_count(&witness), 1);
    }

    #[test]
    fn readers_see_keys_published_meanwhile() {
        let slots = OnceSlots::<Box<u64>>::new(64);
        std::thread::scope(|s| {
            s.spawn(|| {
                for i in 0..64 {
                    slots.publisher().publish(i, Box::new(i as u64), nz(i as u64 + 1)).unwrap();
                }
            });
            s.spawn(|| {
                let mut seen = 0;
                while seen < 64 {
                    seen = 0;
                    for i in 0..64 {
                        if let Entry::Full(key, state) = slots.get(i) {
                            assert_eq!(**key + 1, state.load(Ordering::Relaxed));
                            seen += 1;
                        }
                    }
                }
            });
        });
        assert_eq!(slots.len(), 64);
    }
}
