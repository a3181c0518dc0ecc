//! One shard's table: open addressing with linear probing over [`OnceSlots`], each slot a
//! key and its GCRA state side by side (16 bytes for a `u64` key), so a lookup of a present
//! key usually touches one cache line.
//!
//! **Inserting without an exclusive lock.** A slot's state is 0 while it is empty and is set
//! (with release) after its key is written, so readers probe while a key is being added:
//! they stop at the first empty slot, and a slot they see filled holds a whole key. Inserts
//! are serialised by the slots' publisher mutex and re-probe under it, so a key is never added
//! twice. Only reclamation and growth take the shard exclusively: they rebuild the table from
//! the entries worth keeping, so probing needs no tombstones. The load stays at or below 7/8,
//! so every probe sequence ends at an empty slot.
//!
//! **The horizon.** Reclamation drops keys whose state is at or behind a threshold (a
//! refilled key). The horizon is the largest state any reclamation of this table dropped; it
//! stands for the state of every key not in the table. For a check at `now >= horizon` that
//! is exact (a state at or behind `now` behaves as a fresh one); for an older reading it is
//! the strictest state a dropped key could have had, so reclamation never admits a cell that
//! keeping the key would have refused.

use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash};
use std::num::NonZeroU64;

use levee_core::sync::{Entry, OnceSlots, Ordering, SlotState};

/// Smallest table (slots); 16 x 16 bytes for `u64` keys.
const MIN_CAPACITY: usize = 16;

/// What an insertion with shared access came to.
pub(super) enum Shared<'a, E> {
    /// The key was added meanwhile by another thread: here is its state.
    Present(&'a SlotState),
    /// The key was added with the state `make` returned.
    Added,
    /// `make` declined (a refusal): nothing was added.
    Declined(E),
    /// No room: the caller must rebuild the table with exclusive access.
    Full,
}

pub(super) struct Table<K> {
    slots: OnceSlots<K>,
    /// See the module docs.
    horizon: u64,
}

impl<K> Table<K> {
    pub(super) fn new() -> Self {
        Self { slots: OnceSlots::new(MIN_CAPACITY), horizon: 0 }
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// The state standing for every key not in the table (module docs).
    #[inline]
    pub(super) fn horizon(&self) -> u64 {
        self.horizon
    }

    /// True when one more entry keeps the load at or below 7/8.
    #[inline]
    fn has_room(&self) -> bool {
        (self.slots.len() + 1) * 8 <= self.slots.capacity() * 7
    }

    #[inline]
    fn mask(&self) -> usize {
        self.slots.capacity() - 1
    }

    /// The state of `key`, or the empty slot that ends its probe sequence (to start an
    /// insertion's probe from: [`insert_shared`](Self::insert_shared)).
    #[inline]
    pub(super) fn find<Q>(&self, hash: u64, key: &Q) -> Result<&SlotState, usize>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.probe(|i| self.slots.get(i), hash as usize & self.mask(), key)
    }

    /// Probes for `key` through `get`, from slot `start`: its state, or the empty slot that
    /// ends its sequence.
    #[inline]
    fn probe<'a, Q>(
        &self,
        get: impl Fn(usize) -> Entry<'a, K>,
        start: usize,
        key: &Q,
    ) -> Result<&'a SlotState, usize>
    where
        K: Borrow<Q> + 'a,
        Q: Eq + ?Sized,
    {
        let mask = self.mask();
        let mut i = start;
        loop {
            match get(i) {
                Entry::Empty => return Err(i),
                Entry::Full(k, state) if k.borrow() == key => return Ok(state),
                Entry::Full(..) => i = (i + 1) & mask,
            }
        }
    }

    /// Adds `key` with shared access, if the table has room and holds fewer than `limit`
    /// keys. `empty` is the slot where [`find`](Self::find) ended its probe for `key`: the
    /// slots before it were full and stay full, and none held `key`, so under the publisher
    /// lock the probe resumes there (another thread may have added the key, or filled the
    /// slot). Then it publishes `key.to_owned()` with the state `make(horizon)` returns (an
    /// error: a refusal, nothing added).
    pub(super) fn insert_shared<Q, E>(
        &self,
        empty: usize,
        key: &Q,
        limit: usize,
        make: impl FnOnce(u64) -> Result<u64, E>,
    ) -> Shared<'_, E>
    where
        K: Borrow<Q>,
        Q: Eq + ToOwned<Owned = K> + ?Sized,
    {
        let publisher = self.slots.publisher();
        let slot = match self.probe(|i| publisher.get(i), empty, key) {
            Ok(state) => return Shared::Present(state),
            Err(slot) => slot,
        };
        if !self.has_room() || self.slots.len() >= limit {
            return Shared::Full;
        }
        let tat = match make(self.horizon) {
            Ok(tat) => tat,
            Err(refusal) => return Shared::Declined(refusal),
        };
        match publisher.publish(slot, key.to_owned(), nonzero(tat)) {
            Ok(()) => Shared::Added,
            Err(_) => unreachable!("the probe found slot {slot} empty under the publisher lock"),
        }
    }

    /// Adds `key`, known to be absent, with exclusive access, at the first empty slot of its
    /// sequence (no key is compared). The caller made room ([`rebuild`](Self::rebuild) with
    /// room for one).
    pub(super) fn insert_mut(&mut self, hash: u64, key: K, tat: u64) {
        debug_assert!(self.has_room());
        let mask = self.mask();
        let mut slot = hash as usize & mask;
        while let Entry::Full(..) = self.slots.get(slot) {
            slot = (slot + 1) & mask;
        }
        if self.slots.publish_mut(slot, key, nonzero(tat)).is_err() {
            unreachable!("slot {slot} was found empty under exclusive access");
        }
    }

    /// True when an insertion needs exclusive access first (no room, or `limit` keys).
    pub(super) fn needs_rebuild(&self, limit: usize) -> bool {
        !self.has_room() || self.slots.len() >= limit
    }

    /// The smallest state in the table (the entry that refills first).
    pub(super) fn min_tat(&self) -> Option<u64> {
        self.tats().min()
    }

    /// States of all entries.
    pub(super) fn tats(&self) -> impl Iterator<Item = u64> + '_ {
        self.slots.iter().map(|(_, state)| state.load(Ordering::Relaxed))
    }

    /// Rebuilds the table keeping only the entries whose state is above `drop_at_or_below`,
    /// sized for the survivors plus `room` more (and at least a quarter more than the
    /// survivors, so that rebuilds stay amortised O(1) per insertion). When `reclaim`, the
    /// dropped keys had refilled and the horizon rises to the largest dropped state; an
    /// eviction (`reclaim == false`) drops keys that had not, and leaves it (they return
    /// fresh). Returns how many keys were dropped.
    ///
    /// Called with exclusive access, so `Relaxed` loads see every state.
    pub(super) fn rebuild(
        &mut self,
        hasher: &impl BuildHasher,
        drop_at_or_below: u64,
        room: usize,
        reclaim: bool,
    ) -> usize
    where
        K: Hash,
    {
        let live = self.tats().filter(|&tat| tat > drop_at_or_below).count();
        let dropped = self.slots.len() - live;
        let needed = live + room.max(live / 4).max(1);
        // Smallest power of two that holds `needed` at a load of at most 7/8.
        let capacity = (needed * 8).div_ceil(7).next_power_of_two().max(MIN_CAPACITY);
        if dropped == 0 && capacity == self.slots.capacity() {
            return 0;
        }
        let mut old = std::mem::replace(&mut self.slots, OnceSlots::new(capacity));
        for (key, tat) in old.take_all() {
            if tat > drop_at_or_below {
                let hash = hasher.hash_one(&key);
                self.insert_mut(hash, key, tat);
            } else if reclaim {
                self.horizon = self.horizon.max(tat);
            }
        }
        dropped
    }

    /// Moves every state, and the horizon, through `f` (a quota change's translation; `f`
    /// keeps states behind the clock as they are or returns 0 for them). With exclusive
    /// access, so `Relaxed` accesses see and publish every state.
    pub(super) fn translate(&mut self, f: impl Fn(u64) -> u64) {
        for (_, state) in self.slots.iter() {
            let tat = state.load(Ordering::Relaxed);
            let moved = f(tat);
            // 0 stands for "nothing owed": the state stays, which is as full (and a slot's
            // state is never 0, which marks an empty slot).
            if moved != 0 {
                state.store(nonzero(moved), Ordering::Relaxed);
            }
        }
        let horizon = f(self.horizon);
        if horizon != 0 {
            self.horizon = horizon;
        }
    }

    /// Bytes held by the slot array.
    pub(super) fn footprint(&self) -> usize {
        self.slots.footprint()
    }
}

/// A GCRA state as a slot state: every state GCRA moves to is at least `t >= 1` (`gcra.rs`).
fn nonzero(tat: u64) -> NonZeroU64 {
    NonZeroU64::new(tat).unwrap_or(NonZeroU64::MIN)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A hasher that makes colliding hashes on purpose: the hash of `k` is `k % 7`.
    #[derive(Clone, Copy)]
    struct Mod7;

    impl BuildHasher for Mod7 {
        type Hasher = Mod7Hasher;
        fn build_hasher(&self) -> Mod7Hasher {
            Mod7Hasher(0)
        }
    }

    struct Mod7Hasher(u64);

    impl std::hash::Hasher for Mod7Hasher {
        fn finish(&self) -> u64 {
            self.0 % 7
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.wrapping_mul(256).wrapping_add(u64::from(b));
            }
        }
        fn write_u64(&mut self, v: u64) {
            self.0 = v;
        }
    }

    fn add(t: &mut Table<u64>, k: u64, tat: u64) {
        if t.needs_rebuild(usize::MAX) {
            t.rebuild(&Mod7, 0, 1, true);
        }
        let empty = t.find(Mod7.hash_one(k), &k).expect_err("a new key");
        match t.insert_shared(empty, &k, usize::MAX, |_| Ok::<_, ()>(tat)) {
            Shared::Added => {}
            _ => panic!("{k} not added"),
        }
    }

    #[test]
    fn finds_inserts_and_rebuilds() {
        let mut t = Table::new();
        for k in 0..100u64 {
            add(&mut t, k, k + 1); // colliding hashes exercise probing
        }
        assert_eq!(t.len(), 100);
        for k in 0..100u64 {
            let state = t.find(Mod7.hash_one(k), &k).map(|s| s.load(Ordering::Relaxed));
            assert_eq!(state, Ok(k + 1));
        }
        assert!(t.find(Mod7.hash_one(1000u64), &1000).is_err());
        assert_eq!(t.min_tat(), Some(1));
        // A second insert of a present key finds it.
        // An insertion that resumes a probe from before the key (as after a race in which
        // another thread added it) finds it.
        let present = t.insert_shared(3, &3, usize::MAX, |_| Ok::<_, ()>(9));
        assert!(matches!(present, Shared::Present(s) if s.load(Ordering::Relaxed) == 4));
        let empty = t.find(3, &500).unwrap_err();
        let declined = t.insert_shared(empty, &500, usize::MAX, Err);
        assert!(matches!(declined, Shared::Declined(0)));
        let full = t.insert_shared(empty, &500, 100, |_| Ok::<_, ()>(1));
        assert!(matches!(full, Shared::Full), "at the limit");
        // Drop states <= 50: keys 0..50; the horizon is the largest dropped state.
        assert_eq!(t.rebuild(&Mod7, 50, 0, true), 50);
        assert_eq!((t.len(), t.horizon()), (50, 50));
        assert!(t.find(Mod7.hash_one(49u64), &49).is_err());
        assert!(t.find(Mod7.hash_one(50u64), &50).is_ok());
        assert_eq!(t.tats().count(), 50);
        // An eviction leaves the horizon alone.
        assert_eq!(t.rebuild(&Mod7, 60, 0, false), 10);
        assert_eq!(t.horizon(), 50);
        assert_eq!(t.rebuild(&Mod7, u64::MAX, 0, true), 40);
        assert_eq!(t.horizon(), 100);
        assert_eq!(t.footprint(), MIN_CAPACITY * 16);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u64, u64),
        Rebuild { threshold: u64, room: usize, reclaim: bool },
    }

    proptest! {
        /// The table against a `BTreeMap` and the obvious horizon: after every step the same
        /// keys with the same states, the same length, and a load of at most 7/8.
        #[test]
        fn behaves_like_a_map(ops in prop::collection::vec(prop_oneof![
            4 => (0u64..200, 1u64..100).prop_map(|(k, tat)| Op::Insert(k, tat)),
            1 => (0u64..100, 0usize..40, any::<bool>())
                .prop_map(|(threshold, room, reclaim)| Op::Rebuild { threshold, room, reclaim }),
        ], 1..400)) {
            let mut table = Table::new();
            let mut model = std::collections::BTreeMap::new();
            let mut horizon = 0;
            for op in ops {
                match op {
                    Op::Insert(k, tat) => {
                        if table.needs_rebuild(usize::MAX) {
                            table.rebuild(&Mod7, 0, 1, true);
                        }
                        match table.find(Mod7.hash_one(k), &k) {
                            Ok(state) => prop_assert_eq!(Some(&state.load(Ordering::Relaxed)), model.get(&k)),
                            Err(empty) => {
                                prop_assert!(!model.contains_key(&k));
                                let added = table.insert_shared(empty, &k, usize::MAX, |_| Ok::<_, ()>(tat));
                                prop_assert!(matches!(added, Shared::Added));
                                model.insert(k, tat);
                            }
                        }
                    }
                    Op::Rebuild { threshold, room, reclaim } => {
                        let dropped: Vec<u64> = model.values().copied().filter(|&t| t <= threshold).collect();
                        model.retain(|_, t| *t > threshold);
                        if reclaim {
                            horizon = dropped.iter().copied().fold(horizon, u64::max);
                        }
                        prop_assert_eq!(table.rebuild(&Mod7, threshold, room, reclaim), dropped.len());
                    }
                }
                prop_assert_eq!(table.len(), model.len());
                prop_assert_eq!(table.horizon(), horizon);
                prop_assert!(table.len() * 8 <= table.slots.capacity() * 7);
                for (&k, &tat) in &model {
                    let state = table.find(Mod7.hash_one(k), &k).map(|s| s.load(Ordering::Relaxed));
                    prop_assert_eq!(state, Ok(tat));
                }
            }
        }
    }

    #[test]
    fn grows_by_doubling_at_seven_eighths_and_shrinks_after_reclamation() {
        let mut t = Table::new();
        let mut capacities = vec![];
        for k in 0..10_000u64 {
            add(&mut t, k, 10);
            if capacities.last() != Some(&t.slots.capacity()) {
                capacities.push(t.slots.capacity());
            }
        }
        assert_eq!(capacities, [16, 32, 64, 128, 256, 512, 1024, 2048, 4096, 8192, 16384]);
        // A rebuild that drops nothing and keeps the size is skipped.
        assert_eq!(t.rebuild(&Mod7, 0, 0, true), 0);
        assert_eq!(t.slots.capacity(), 16384);
        assert_eq!(t.rebuild(&Mod7, 10, 0, true), 10_000);
        assert_eq!(t.slots.capacity(), MIN_CAPACITY);
    }
}
