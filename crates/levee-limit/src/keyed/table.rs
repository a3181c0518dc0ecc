//! One shard's table: open addressing with linear probing, each slot holding the key's hash,
//! its GCRA state and the key side by side, so a lookup of a present key usually touches one
//! cache line (a SwissTable touches its control bytes and then the bucket: two).
//!
//! Entries are never removed one by one: reclamation and growth both rebuild the table from
//! the entries worth keeping, so probing needs no tombstones. The load stays at or below 3/4,
//! so every probe sequence ends at an empty slot.

use std::borrow::Borrow;

use levee_core::sync::{AtomicU64, Ordering};

/// Smallest table (slots); 16 x 32 bytes for `u64` keys.
const MIN_CAPACITY: usize = 16;

pub(super) struct Entry<K> {
    hash: u64,
    /// GCRA theoretical arrival time; see `gcra.rs`.
    pub(super) tat: AtomicU64,
    key: K,
}

/// A slot, aligned so that small entries never straddle two cache lines.
#[repr(align(32))]
struct Slot<K>(Option<Entry<K>>);

pub(super) struct Table<K> {
    slots: Box<[Slot<K>]>,
    len: usize,
}

impl<K> Table<K> {
    pub(super) fn new() -> Self {
        Self { slots: empty_slots(MIN_CAPACITY), len: 0 }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// True when one more entry would take the load above 3/4.
    pub(super) fn is_full(&self) -> bool {
        (self.len + 1) * 4 > self.slots.len() * 3
    }

    /// The state of `key`, if present.
    #[inline]
    pub(super) fn find<Q>(&self, hash: u64, key: &Q) -> Option<&AtomicU64>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let mask = self.slots.len() - 1;
        let mut i = hash as usize & mask;
        loop {
            match &self.slots[i].0 {
                None => return None,
                Some(e) if e.hash == hash && e.key.borrow() == key => return Some(&e.tat),
                Some(_) => i = (i + 1) & mask,
            }
        }
    }

    /// Adds an entry known to be absent. The caller keeps the load at or below 3/4
    /// (`is_full` first, then `rebuild`).
    pub(super) fn insert(&mut self, hash: u64, key: K, tat: u64) {
        debug_assert!(!self.is_full());
        place(&mut self.slots, Entry { hash, tat: AtomicU64::new(tat), key });
        self.len += 1;
    }

    /// The smallest state in the table (the entry that becomes fresh first).
    pub(super) fn min_tat(&self) -> Option<u64> {
        self.entries().map(|e| e.tat.load(Ordering::Relaxed)).min()
    }

    /// States of all entries (for choosing eviction victims).
    pub(super) fn tats(&self) -> Vec<u64> {
        self.entries().map(|e| e.tat.load(Ordering::Relaxed)).collect()
    }

    fn entries(&self) -> impl Iterator<Item = &Entry<K>> {
        self.slots.iter().filter_map(|s| s.0.as_ref())
    }

    /// Rebuilds the table keeping only entries whose state is above `keep_above` (an entry at
    /// or below the clock is a fresh key's state: dropping it loses nothing), sized for the
    /// survivors plus `room` more at a load of at most 1/2. Returns how many were dropped.
    ///
    /// Called with the shard's write lock held, so `Relaxed` loads see every state (the
    /// lock orders them).
    pub(super) fn rebuild(&mut self, keep_above: u64, room: usize) -> usize {
        let live = self.entries().filter(|e| e.tat.load(Ordering::Relaxed) > keep_above).count();
        let capacity = ((live + room) * 2).next_power_of_two().max(MIN_CAPACITY);
        let old = std::mem::replace(&mut self.slots, empty_slots(capacity));
        for entry in old.into_vec().into_iter().filter_map(|s| s.0) {
            if entry.tat.load(Ordering::Relaxed) > keep_above {
                place(&mut self.slots, entry);
            }
        }
        let dropped = self.len - live;
        self.len = live;
        dropped
    }

    /// Bytes held by the slot array.
    pub(super) fn footprint(&self) -> usize {
        std::mem::size_of_val(&*self.slots)
    }
}

fn empty_slots<K>(capacity: usize) -> Box<[Slot<K>]> {
    (0..capacity).map(|_| Slot(None)).collect()
}

fn place<K>(slots: &mut [Slot<K>], entry: Entry<K>) {
    let mask = slots.len() - 1;
    let mut i = entry.hash as usize & mask;
    while slots[i].0.is_some() {
        i = (i + 1) & mask;
    }
    slots[i].0 = Some(entry);
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_and_rebuilds() {
        let mut t = Table::new();
        for k in 0..100u64 {
            if t.is_full() {
                t.rebuild(0, 1);
            }
            // Colliding hashes exercise probing.
            t.insert(k % 7, k, k + 1);
        }
        assert_eq!(t.len(), 100);
        for k in 0..100u64 {
            assert_eq!(t.find(k % 7, &k).map(|s| s.load(Ordering::Relaxed)), Some(k + 1));
        }
        assert!(t.find(3, &1000).is_none());
        assert_eq!(t.min_tat(), Some(1));
        // Drop states <= 50: keys 0..50.
        assert_eq!(t.rebuild(50, 0), 50);
        assert_eq!(t.len(), 50);
        assert!(t.find(49 % 7, &49).is_none());
        assert!(t.find(50 % 7, &50).is_some());
        assert_eq!(t.tats().len(), 50);
        assert_eq!(t.rebuild(u64::MAX, 0), 50);
        assert_eq!(t.footprint(), MIN_CAPACITY * std::mem::size_of::<Slot<u64>>());
        assert_eq!(std::mem::size_of::<Slot<u64>>(), 32);
    }
}
