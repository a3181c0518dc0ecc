//! The shard against a `HashMap` model, with its layout checked after every step: what the new
//! layout could get wrong (an index reused after removal, the free list, the queue links, the
//! weight each queue holds across evictions, replacements, invalidations and expiry).

use std::collections::{HashMap, HashSet};

use proptest::prelude::*;

use super::slab::NIL;
use super::{Inserted, NewEntry, RemovalCause, Removed, Shard, Slot};

#[derive(Debug, Clone)]
enum Op {
    /// Key, weight, time to live (ticks; none: never expires).
    Insert(u8, u32, Option<u8>),
    /// A read (raises the entry's frequency: promotion and CLOCK turns).
    Hit(u8),
    Remove(u8),
    SetCapacity(u64),
    /// Time passes, then the dead entries are purged.
    Purge(u8),
    Clear,
}

fn op() -> impl Strategy<Value = Op> {
    let key = 0u8..40;
    prop_oneof![
        6 => (key.clone(), 0u32..5, prop::option::weighted(0.3, 1u8..20))
            .prop_map(|(k, w, t)| Op::Insert(k, w, t)),
        4 => key.clone().prop_map(Op::Hit),
        2 => key.prop_map(Op::Remove),
        1 => (0u64..40).prop_map(Op::SetCapacity),
        1 => (0u8..10).prop_map(Op::Purge),
        1 => Just(Op::Clear),
    ]
}

/// The shard's entries as `key -> (value, weight)`, after checking its layout: every indexed
/// entry is found by its key and id, sits in the queue its flag names exactly once, and each
/// queue's weight is the sum of its entries'.
fn check(shard: &Shard<u8, u32>) -> Result<HashMap<u8, (u32, u32)>, TestCaseError> {
    let mut seen = HashSet::new();
    let mut ids = HashSet::new();
    let mut out = HashMap::new();
    for (queue, in_main) in [(&shard.small, false), (&shard.main, true)] {
        let (mut i, mut prev, mut weight) = (queue.head, NIL, 0u64);
        while i != NIL {
            prop_assert!(seen.insert(i), "index {} queued twice", i);
            let e = shard.slab.get(i);
            prop_assert!(e.is_some(), "queued index {} is free", i);
            let e = e.unwrap();
            prop_assert_eq!(e.in_main, in_main, "entry {} in the wrong queue", i);
            prop_assert_eq!(e.prev, prev, "entry {}'s back link", i);
            let found = shard.find(shard.hash(&e.key), &e.key).map(|f| f.slot() as *const _);
            prop_assert_eq!(found, Some(&e.slot as *const _), "entry {} not found by its key", i);
            if let Some(t) = shard.slab.times(i) {
                prop_assert!(ids.insert(t.id), "id {} twice", t.id);
                let by_id = shard.find_id(shard.hash(&e.key), t.id).map(|f| f.slot() as *const _);
                prop_assert_eq!(by_id, Some(&e.slot as *const _), "entry {} not found by id", i);
            }
            let Slot::Value(v) = e.slot else { return Err(TestCaseError::fail("not a value")) };
            prop_assert!(out.insert(e.key, (v, e.weight)).is_none(), "key {} twice", e.key);
            weight += u64::from(e.weight);
            (prev, i) = (i, e.next);
        }
        prop_assert_eq!(queue.tail, prev, "queue tail (main: {})", in_main);
        prop_assert_eq!(queue.weight, weight, "queue weight (main: {})", in_main);
    }
    prop_assert_eq!(shard.table.len(), seen.len(), "table and queues disagree");
    prop_assert_eq!(shard.slab.indices().count(), seen.len(), "slab and queues disagree");
    let mut free = HashSet::new();
    for &i in shard.slab.free() {
        prop_assert!(free.insert(i), "index {} freed twice", i);
        prop_assert!(shard.slab.get(i).is_none(), "free index {} holds an entry", i);
    }
    Ok(out)
}

/// Applies the removals `removed` reports to the model; returns how many left.
fn apply(model: &mut HashMap<u8, (u32, u32)>, removed: Removed<u8, u32>) -> usize {
    let mut left = 0;
    for (key, _, cause) in removed.into_kept() {
        if cause != RemovalCause::Replaced {
            assert!(model.remove(&key).is_some(), "{key} reported gone but was not held");
            left += 1;
        }
    }
    left
}

fn run(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut shard: Shard<u8, u32> = Shard::new(16, foldhash::fast::RandomState::default());
    let mut model: HashMap<u8, (u32, u32)> = HashMap::new();
    let (mut now, mut value) = (1u64, 0u32);
    for op in ops {
        let mut removed = Removed::new(true);
        match *op {
            Op::Insert(key, weight, ttl) => {
                value += 1;
                let expires_at = ttl.map_or(u64::MAX, |t| now + u64::from(t));
                let new = NewEntry {
                    key,
                    hash: shard.hash(&key),
                    slot: Slot::Value(value),
                    weight,
                    load_nanos: 0,
                    expires_at,
                    dead_at: expires_at,
                    now,
                };
                let inserted = shard.insert(new, 0, &mut removed);
                if let Inserted::TooHeavy(k) = inserted {
                    prop_assert_eq!(k, key);
                    prop_assert!(u64::from(weight) > shard.capacity);
                    let replaced = removed.kept().iter().filter(|r| r.2 == RemovalCause::Replaced);
                    if replaced.count() == 1 {
                        model.remove(&key);
                    }
                } else {
                    model.insert(key, (value, weight));
                }
                apply(&mut model, removed);
                prop_assert!(shard.weight() <= shard.capacity, "over capacity");
            }
            Op::Hit(key) => {
                if let Some(f) = shard.find(shard.hash(&key), &key) {
                    f.touch();
                }
            }
            Op::Remove(key) => {
                let hash = shard.hash(&key);
                let gone = shard.remove(hash, &key).map(|e| e.key);
                prop_assert_eq!(gone.is_some(), model.remove(&key).is_some(), "remove({})", key);
            }
            Op::SetCapacity(capacity) => {
                shard.set_capacity(capacity, now, 0, &mut removed);
                apply(&mut model, removed);
                prop_assert!(shard.weight() <= capacity, "over the new capacity");
            }
            Op::Purge(ticks) => {
                now += u64::from(ticks);
                shard.purge_dead(now, 0, &mut removed);
                prop_assert!(removed.kept().iter().all(|r| r.2 == RemovalCause::Expired));
                apply(&mut model, removed);
            }
            Op::Clear => {
                drop(shard.clear(&mut removed));
                let held = model.len();
                prop_assert_eq!(apply(&mut model, removed), held, "clear reports every entry");
            }
        }
        let held = check(&shard)?;
        prop_assert_eq!(&held, &model, "after {:?}", op);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1024))]

    #[test]
    fn the_shard_holds_what_the_model_holds(ops in prop::collection::vec(op(), 1..300)) {
        run(&ops)?;
    }
}

/// The layout's point: an entry of a word-sized key and value, without deadlines, fits in
/// 40 bytes (its slot in the slab included; no stored hash).
#[test]
fn a_word_sized_entry_takes_40_bytes() {
    assert_eq!(std::mem::size_of::<Option<super::entry::Entry<u64, u64>>>(), 40);
}
