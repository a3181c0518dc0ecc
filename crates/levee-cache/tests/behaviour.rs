//! What the cache does, one feature at a time, on a manual clock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_cache::{Cache, CacheEvent, RemovalCause};
use levee_core::ManualClock;

const SEC: Duration = Duration::from_secs(1);

fn timed(ttl: Duration) -> (Cache<u32, u32, ManualClock>, ManualClock) {
    let clock = ManualClock::new();
    let cache =
        Cache::builder().max_capacity(1000).time_to_live(ttl).clock(clock.clone()).build().unwrap();
    (cache, clock)
}

#[test]
fn insert_get_invalidate() {
    let cache: Cache<String, u32> = Cache::new(100);
    assert!(cache.is_empty());
    cache.insert("a".into(), 1);
    cache.insert("b".into(), 2);
    assert_eq!(cache.get("a"), Some(1));
    assert!(cache.contains_key("b"));
    cache.insert("a".into(), 3);
    assert_eq!(cache.get("a"), Some(3));
    assert_eq!(cache.len(), 2);
    cache.invalidate("a");
    assert_eq!(cache.get("a"), None);
    cache.invalidate_all();
    assert_eq!(cache.get("b"), None);
    assert!(cache.is_empty());
    let s = cache.stats();
    assert_eq!((s.hits, s.misses, s.invalidations), (2, 2, 2));
}

#[test]
fn capacity_is_respected_and_evictions_counted() {
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(100).shards(1).build().unwrap();
    for i in 0..1000 {
        cache.insert(i, i);
        assert!(cache.len() <= 100);
    }
    assert_eq!(cache.len(), 100);
    assert_eq!(cache.stats().evictions, 900);
}

#[test]
fn zero_capacity_stores_nothing_but_still_loads() {
    let cache: Cache<u32, u32> = Cache::new(0);
    cache.insert(1, 1);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get_with(1, || 5), 5);
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().rejected, 2);
}

#[test]
fn frequently_used_keys_survive_a_scan() {
    let cache: Cache<u32, u32> = Cache::builder().max_capacity(100).shards(1).build().unwrap();
    for round in 0..5 {
        for k in 0..50 {
            if cache.get(&k).is_none() {
                assert!(round < 2, "hot key {k} lost in round {round}");
                cache.insert(k, k);
            }
        }
    }
    // A scan of 10x the capacity in one-time keys.
    for k in 1000..2000 {
        cache.insert(k, k);
    }
    let kept = (0..50).filter(|k| cache.get(k).is_some()).count();
    assert!(kept >= 45, "only {kept} of 50 hot keys survived the scan");
}

#[test]
fn time_to_live_expires_entries() {
    let (cache, clock) = timed(10 * SEC);
    cache.insert(1, 1);
    clock.advance(9 * SEC);
    assert_eq!(cache.get(&1), Some(1));
    clock.advance(SEC);
    assert_eq!(cache.get(&1), None);
    assert!(!cache.contains_key(&1));
    assert_eq!(cache.len(), 1, "expired entries are removed lazily");
    cache.cleanup();
    assert_eq!(cache.len(), 0);
    assert_eq!(cache.stats().expirations, 1);
}

#[test]
fn per_entry_ttl_from_the_value() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(100)
        .time_to_live(100 * SEC)
        // Odd values live one second, 0 is never stored, 1000 never expires.
        .expire_after(|_, v: &u32| match v {
            0 => Some(Duration::ZERO),
            1000 => Some(Duration::MAX),
            v if v % 2 == 1 => Some(SEC),
            _ => None,
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    cache.insert(2, 2);
    cache.insert(3, 0);
    cache.insert(4, 1000);
    cache.insert_with_ttl(5, 2, 5 * SEC);
    assert_eq!(cache.get(&3), None);
    clock.advance(SEC);
    assert_eq!(cache.get(&1), None);
    assert_eq!(cache.get(&2), Some(2));
    assert_eq!(cache.get(&5), Some(2));
    clock.advance(10 * SEC);
    assert_eq!(cache.get(&5), None);
    clock.advance(1000 * SEC);
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.get(&4), Some(1000));
}

#[test]
fn insert_with_ttl_expires_even_without_a_cache_ttl() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> =
        Cache::builder().max_capacity(100).clock(clock.clone()).build().unwrap();
    cache.insert(1, 1);
    cache.insert_with_ttl(2, 2, SEC);
    clock.advance(SEC);
    assert_eq!(cache.get(&1), Some(1));
    assert_eq!(cache.get(&2), None);
}

#[test]
fn time_to_idle_expires_unread_entries() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(100)
        .time_to_idle(10 * SEC)
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    cache.insert(2, 2);
    for _ in 0..5 {
        clock.advance(6 * SEC);
        assert_eq!(cache.get(&1), Some(1), "read every 6 s, so never idle for 10 s");
    }
    assert_eq!(cache.get(&2), None, "never read for 30 s");
}

#[test]
fn jitter_spreads_expiry() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(10_000)
        .time_to_live(100 * SEC)
        .ttl_jitter(0.2)
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..1000 {
        cache.insert(k, k);
    }
    clock.advance(79 * SEC);
    assert_eq!((0..1000).filter(|k| cache.get(k).is_some()).count(), 1000);
    clock.advance(21 * SEC); // at 100 s: roughly half expired
    let alive = (0..1000).filter(|k| cache.get(k).is_some()).count();
    assert!((300..700).contains(&alive), "{alive} of 1000 alive at the mean TTL");
    clock.advance(21 * SEC);
    assert_eq!((0..1000).filter(|k| cache.get(k).is_some()).count(), 0);
}

#[test]
fn get_with_loads_once_then_hits() {
    let cache: Cache<u32, String> = Cache::new(100);
    let loads = AtomicUsize::new(0);
    for _ in 0..3 {
        let v = cache.get_with(1, || {
            loads.fetch_add(1, Ordering::SeqCst);
            "one".to_string()
        });
        assert_eq!(v, "one");
    }
    assert_eq!(loads.load(Ordering::SeqCst), 1);
    let s = cache.stats();
    assert_eq!((s.loads, s.hits, s.misses), (1, 2, 1));
    assert_eq!(s.load_latency.count, 1);
}

#[test]
fn errors_reach_the_caller_and_are_not_cached_by_default() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let r = cache.try_get_with(1, || Err::<u32, _>("db down"));
    assert_eq!(*r.unwrap_err(), "db down");
    assert_eq!(cache.try_get_with(1, || Ok::<_, &str>(7)), Ok(7));
    assert_eq!(cache.stats().load_errors, 1);
}

#[derive(Debug, PartialEq)]
enum DbError {
    NotFound,
    Timeout,
}

#[test]
fn negative_caching_of_misses_and_chosen_errors() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(100)
        .negative_ttl(5 * SEC)
        .cache_errors_if(|e: &DbError| *e == DbError::NotFound)
        .clock(clock.clone())
        .build()
        .unwrap();
    let loads = AtomicUsize::new(0);
    let missing = || {
        loads.fetch_add(1, Ordering::SeqCst);
        None
    };
    assert_eq!(cache.get_optional_with(1, missing), None);
    assert_eq!(cache.get_optional_with(1, missing), None);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "the miss is remembered");
    assert_eq!(cache.get(&1), None, "a remembered miss is not a value");
    clock.advance(5 * SEC);
    assert_eq!(cache.get_optional_with(1, || Some(9)), Some(9), "forgotten after its TTL");

    let fail = |e| {
        loads.fetch_add(1, Ordering::SeqCst);
        Err::<u32, _>(e)
    };
    loads.store(0, Ordering::SeqCst);
    assert_eq!(*cache.try_get_with(2, || fail(DbError::NotFound)).unwrap_err(), DbError::NotFound);
    assert_eq!(*cache.try_get_with(2, || fail(DbError::NotFound)).unwrap_err(), DbError::NotFound);
    assert_eq!(loads.load(Ordering::SeqCst), 1, "NotFound is remembered");
    assert!(cache.try_get_with(3, || fail(DbError::Timeout)).is_err());
    assert!(cache.try_get_with(3, || fail(DbError::Timeout)).is_err());
    assert_eq!(loads.load(Ordering::SeqCst), 3, "Timeout is not");
    // A caller that wants a plain value ignores the remembered error and loads.
    assert_eq!(cache.get_with(2, || 4), 4);
}

#[test]
fn stale_while_revalidate_serves_old_value_during_one_refresh() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(100)
        .time_to_live(10 * SEC)
        .stale_while_revalidate(5 * SEC)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert_eq!(cache.get_with(1, || 1), 1);
    clock.advance(11 * SEC);
    assert_eq!(cache.get(&1), None, "plain get does not serve stale values");
    // The first loading caller refreshes (sync: on its own thread) ...
    assert_eq!(cache.get_with(1, || 2), 2);
    assert_eq!(cache.stats().stale_serves, 1);
    clock.advance(11 * SEC);
    // ... and while a refresh runs, others get the stale value without loading.
    let c2 = cache.clone();
    let served = cache.get_with(1, move || {
        assert_eq!(c2.get_with(1, || unreachable!("second refresh")), 2, "stale value served");
        3
    });
    assert_eq!(served, 3);
    assert_eq!(cache.get(&1), Some(3));
    // Past the staleness limit it is a plain miss.
    clock.advance(16 * SEC);
    assert_eq!(cache.get_with(1, || 4), 4);
    assert_eq!(cache.stats().loads, 4);
}

#[test]
fn a_failed_refresh_keeps_the_stale_value() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(100)
        .time_to_live(10 * SEC)
        .stale_while_revalidate(5 * SEC)
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    clock.advance(11 * SEC);
    assert_eq!(cache.try_get_with(1, || Err::<u32, _>("down")), Ok(1));
    // The refresh flag was released, so the next caller tries again.
    assert_eq!(cache.try_get_with(1, || Ok::<_, &str>(2)), Ok(2));
}

#[test]
fn xfetch_refreshes_early_in_proportion_to_load_time() {
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(100)
        .time_to_live(60 * SEC)
        .early_refresh(1.0)
        .clock(clock.clone())
        .build()
        .unwrap();
    // The load takes 1 s of (manual) time: XFetch's delta.
    let c = clock.clone();
    cache.get_with(1, move || {
        c.advance(SEC);
        1
    });
    // Far from expiry (gap / delta = 59 > 37): never early.
    for _ in 0..1000 {
        assert_eq!(cache.get_with(1, || unreachable!("too early")), 1);
    }
    assert_eq!(cache.stats().early_refreshes, 0);
    // 0.1 s before expiry: P(refresh) = exp(-0.1) per call, so one of a few calls refreshes.
    clock.advance(Duration::from_millis(59_900 - 1000));
    let refreshed = (0..100).any(|_| cache.get_with(1, || 2) == 2);
    assert!(refreshed);
    assert_eq!(cache.stats().early_refreshes, 1);
    assert_eq!(cache.get(&1), Some(2));
}

#[test]
fn heavy_entries_are_rejected_and_counted() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let cache: Cache<u32, String> = Cache::builder()
        .max_capacity(100)
        .shards(2)
        .weigher(|_, v: &String| v.len() as u32)
        .listener(move |e: &CacheEvent<u32, String>| seen.lock().unwrap().push(e.clone()))
        .build()
        .unwrap();
    assert_eq!(cache.max_entry_weight(), 50);
    cache.insert(1, "x".repeat(40));
    cache.insert(2, "x".repeat(51));
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.get_with(3, || "y".repeat(60)), "y".repeat(60), "still returned");
    assert_eq!(cache.get(&3), None);
    assert_eq!(cache.weighted_size(), 40);
    assert_eq!(cache.stats().rejected, 2);
    let events = events.lock().unwrap();
    assert!(events.contains(&CacheEvent::Rejected { key: 2, weight: 51 }));
}

#[test]
fn the_listener_hears_removals_with_their_cause() {
    let events = Arc::new(Mutex::new(Vec::new()));
    let seen = events.clone();
    let clock = ManualClock::new();
    let cache: Cache<u32, u32, _> = Cache::builder()
        .max_capacity(2)
        .shards(1)
        .time_to_live(10 * SEC)
        .listener(move |e: &CacheEvent<u32, u32>| {
            if let CacheEvent::Removed { key, cause, .. } = e {
                seen.lock().unwrap().push((*key, *cause));
            }
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    cache.insert(1, 1);
    cache.insert(1, 2);
    cache.invalidate(&1);
    cache.insert(2, 2);
    cache.insert(3, 3);
    cache.insert(4, 4);
    clock.advance(11 * SEC);
    cache.cleanup();
    let events = events.lock().unwrap();
    assert_eq!(events[0], (1, RemovalCause::Replaced));
    assert_eq!(events[1], (1, RemovalCause::Invalidated));
    assert_eq!(events[2], (2, RemovalCause::Size));
    assert!(events[3..].iter().all(|&(_, c)| c == RemovalCause::Expired));
    assert_eq!(events.len(), 5);
}

#[test]
fn bulk_loads_only_missing_keys_once() {
    let cache: Cache<u32, u32> = Cache::new(100);
    cache.insert(1, 10);
    let calls = AtomicUsize::new(0);
    let got = cache.get_all_with([1, 2, 3, 2, 4], |keys| {
        calls.fetch_add(1, Ordering::SeqCst);
        let mut keys = keys.to_vec();
        keys.sort_unstable();
        assert_eq!(keys, [2, 3, 4]);
        // 4 does not exist.
        keys.into_iter().filter(|&k| k != 4).map(|k| (k, k * 10)).collect::<Vec<_>>()
    });
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(got.len(), 3);
    assert_eq!((got[&1], got[&2], got[&3]), (10, 20, 30));
    assert_eq!(cache.get(&3), Some(30));
    assert_eq!(cache.stats().loads, 1);
}

#[test]
fn bulk_coalesces_with_a_load_in_flight() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    std::thread::scope(|s| {
        let c = &cache;
        s.spawn(move || {
            c.get_with(7, || {
                started_tx.send(()).unwrap();
                go_rx.recv().unwrap();
                70
            })
        });
        started_rx.recv().unwrap();
        let bulk = s.spawn(move || {
            c.get_all_with([6, 7, 8], |keys| {
                assert!(!keys.contains(&7), "7 is in flight and must not load again");
                keys.iter().map(|&k| (k, k * 10)).collect::<Vec<_>>()
            })
        });
        // Let the bulk call reach its wait for key 7, then finish that load.
        while cache.stats().coalesced == 0 {
            std::thread::yield_now();
        }
        go_tx.send(()).unwrap();
        let got = bulk.join().unwrap();
        assert_eq!((got[&6], got[&7], got[&8]), (60, 70, 80));
    });
}

#[test]
fn bulk_async_loads_missing_keys_once() {
    let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
    rt.block_on(async {
        let cache: Cache<u32, u32> = Cache::new(100);
        cache.insert(1, 10);
        let got = cache
            .get_all_with_async(vec![1, 2, 3], |keys| async move {
                assert_eq!(keys.len(), 2);
                keys.into_iter().map(|k| (k, k * 10)).collect::<Vec<_>>()
            })
            .await;
        assert_eq!(got.len(), 3);
        assert_eq!(cache.get(&2), Some(20));
    });
}

#[test]
fn insert_during_a_load_wins() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let c = cache.clone();
    let loaded = cache.get_with(1, move || {
        c.insert(1, 99); // e.g. a write-through of a newer price
        1
    });
    assert_eq!(loaded, 1, "the caller still gets its load");
    assert_eq!(cache.get(&1), Some(99), "but the newer insert stays");
    assert_eq!(cache.stats().stale_discards, 1);
}

#[test]
fn invalidation_during_a_load_wins() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let c = cache.clone();
    assert_eq!(
        cache.get_with(1, move || {
            c.invalidate(&1);
            1
        }),
        1
    );
    assert_eq!(cache.get(&1), None);
    let c = cache.clone();
    cache.get_with(2, move || {
        c.invalidate_all();
        2
    });
    assert_eq!(cache.get(&2), None);
    assert_eq!(cache.loads_in_flight(), 0);
}

#[test]
fn a_panicking_sync_loader_panics_in_its_caller_only() {
    let cache: Cache<u32, u32> = Cache::new(100);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        cache.get_with(1, || panic!("loader bug"));
    }));
    assert!(r.is_err());
    assert_eq!(cache.loads_in_flight(), 0);
    assert_eq!(cache.get_with(1, || 5), 5);
    assert_eq!(cache.stats().load_panics, 1);
}
