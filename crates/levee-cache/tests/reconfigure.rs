//! Capacity and time to live changed while the cache holds entries (issue 22): each rule
//! of `set_max_capacity` and `set_time_to_live`, and a model test that no change ever loses
//! or corrupts what the cache returns.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_cache::{Cache, CacheEvent, RemovalCause};
use levee_core::ManualClock;
use proptest::prelude::*;

#[test]
fn a_smaller_capacity_evicts_down_to_it_and_tells_listeners() {
    let evicted = Arc::new(Mutex::new(0));
    let sink = evicted.clone();
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(64)
        .shards(1)
        .listener(move |e: &CacheEvent<u32, u32>| {
            if let CacheEvent::Removed { cause: RemovalCause::Size, .. } = e {
                *sink.lock().unwrap() += 1;
            }
        })
        .build()
        .unwrap();
    for k in 0..64 {
        cache.insert(k, k * 10);
    }
    assert_eq!(cache.len(), 64);
    cache.set_max_capacity(16);
    assert_eq!(cache.max_capacity(), 16);
    assert_eq!(cache.len(), 16);
    assert_eq!(*evicted.lock().unwrap(), 48);
    assert_eq!(cache.stats().evictions, 48);
    // What is left is intact, and inserts now stay within the new capacity.
    let kept: Vec<u32> = (0..64).filter(|k| cache.get(k).is_some()).collect();
    assert_eq!(kept.len(), 16);
    assert!(kept.iter().all(|k| cache.get(k) == Some(k * 10)));
    for k in 100..200 {
        cache.insert(k, k);
    }
    assert_eq!(cache.len(), 16);
}

#[test]
fn a_larger_capacity_lets_the_cache_grow() {
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(8).shards(1).build().unwrap();
    for k in 0..20 {
        cache.insert(k, k);
    }
    assert_eq!(cache.len(), 8);
    cache.set_max_capacity(32);
    for k in 20..44 {
        cache.insert(k, k);
    }
    assert_eq!((cache.len(), cache.max_capacity()), (32, 32));
}

#[test]
fn a_shorter_ttl_brings_stored_deadlines_forward() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(100)
        .time_to_live(Duration::from_secs(60))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    cache.insert_with_ttl(2, 2, Duration::from_secs(3600));
    cache.insert_with_ttl(3, 3, Duration::from_secs(2));
    clock.advance(Duration::from_secs(1));
    cache.set_time_to_live(Some(Duration::from_secs(10))).unwrap();
    assert_eq!(cache.time_to_live(), Some(Duration::from_secs(10)));
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get(&3), None, "an earlier deadline is kept");
    clock.advance(Duration::from_millis(8_999));
    assert_eq!((cache.get(&1), cache.get(&2)), (Some(1), Some(2)));
    clock.advance(Duration::from_millis(1));
    assert_eq!((cache.get(&1), cache.get(&2)), (None, None), "nothing outlives now + 10 s");
    // New entries get the new TTL.
    cache.insert(4, 4);
    clock.advance(Duration::from_secs(10));
    assert_eq!(cache.get(&4), None);
}

#[test]
fn a_longer_ttl_applies_to_new_entries_only() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(100)
        .time_to_live(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    cache.set_time_to_live(Some(Duration::from_secs(100))).unwrap();
    cache.insert(2, 2);
    clock.advance(Duration::from_secs(10));
    assert_eq!((cache.get(&1), cache.get(&2)), (None, Some(2)));
    cache.set_time_to_live(None).unwrap();
    cache.insert(3, 3);
    clock.advance(Duration::from_secs(1_000));
    assert_eq!((cache.get(&2), cache.get(&3)), (None, Some(3)));
}

#[test]
fn a_ttl_on_a_cache_without_one_caps_what_it_holds() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> =
        Cache::builder().max_capacity(100).clock(clock.clone()).build().unwrap();
    cache.insert(1, 1);
    cache.set_time_to_live(Some(Duration::from_secs(5))).unwrap();
    clock.advance(Duration::from_secs(4));
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(Duration::from_secs(1));
    assert_eq!(cache.get(&1), None);
}

#[test]
fn bad_ttls_are_refused_and_change_nothing() {
    let cache: Cache<u32, u32> = Cache::builder()
        .max_capacity(10)
        .time_to_live(Duration::from_secs(10))
        .stale_while_revalidate(Duration::from_secs(5))
        .build()
        .unwrap();
    assert_eq!(cache.set_time_to_live(Some(Duration::ZERO)).unwrap_err().setting, "time_to_live");
    assert_eq!(cache.set_time_to_live(None).unwrap_err().setting, "time_to_live");
    assert_eq!(cache.time_to_live(), Some(Duration::from_secs(10)));
}

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u32),
    Get(u8),
    Capacity(u64),
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Against a map of everything written: a change of capacity never lets the cache
    /// exceed it, and whatever the cache returns is the value last written for that key.
    #[test]
    fn capacity_changes_never_overfill_or_corrupt(
        ops in prop::collection::vec(prop_oneof![
            4 => (any::<u8>(), any::<u32>()).prop_map(|(k, v)| Op::Insert(k, v)),
            3 => any::<u8>().prop_map(Op::Get),
            1 => (0u64..80).prop_map(Op::Capacity),
        ], 1..300),
        shards in prop::sample::select(vec![1usize, 2, 4]),
    ) {
        let cache: Cache<u8, u32> =
            Cache::builder().max_capacity(40).shards(shards).build().unwrap();
        let mut written = HashMap::new();
        for op in ops {
            match op {
                Op::Insert(k, v) => {
                    cache.insert(k, v);
                    written.insert(k, v);
                }
                Op::Get(k) => {
                    if let Some(v) = cache.get(&k) {
                        prop_assert_eq!(Some(&v), written.get(&k));
                    }
                }
                Op::Capacity(c) => {
                    cache.set_max_capacity(c);
                    prop_assert_eq!(cache.max_capacity(), c);
                }
            }
            prop_assert!(cache.weighted_size() <= cache.max_capacity());
        }
    }
}
