//! The keyed limiter: per-key decisions equal an independent GCRA per key even while keys
//! are being reclaimed, memory returns after a burst over a million keys, and the key limit
//! policies do what they say.

use std::collections::HashMap;
use std::time::Duration;

use foldhash::fast::FixedState;
use levee_core::{Clock, ManualClock};
use levee_limit::{KeyLimitPolicy, KeyedRateLimiter, Quota, RateLimiter};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Check(u8),
    CheckN(u8, u32),
    /// Switch to `QUOTAS[i]` (issue 22.1).
    Reconfigure(usize),
}

/// The quotas the model test switches between: faster and slower, larger and smaller bursts.
const QUOTAS: [Quota; 3] = [
    Quota::per_second(50).with_burst(3),
    Quota::per_second(20).with_burst(1),
    Quota::per_second(120).with_burst(5),
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Reclamation must be invisible: a reclaimed key behaves exactly as the key it was. And
    /// a quota change applies `RateLimiter::reconfigure`'s rule to every key, reclaimed or
    /// not: the keyed limiter decides exactly as one reconfigured limiter per key.
    #[test]
    fn keyed_decisions_equal_one_limiter_per_key(
        shards in prop::sample::select(vec![1usize, 2, 8]),
        sweep_ms in 1u64..50,
        ops in prop::collection::vec(prop_oneof![
            2 => (0u64..40_000_000).prop_map(Op::Advance),
            5 => (0u8..12).prop_map(Op::Check),
            2 => (0u8..12, 0u32..5).prop_map(|(k, n)| Op::CheckN(k, n)),
            1 => (0..QUOTAS.len()).prop_map(Op::Reconfigure),
        ], 1..300),
    ) {
        let mut quota = QUOTAS[0];
        let clock = ManualClock::new();
        let keyed = KeyedRateLimiter::<u8>::builder(quota)
            .shards(shards)
            .sweep_interval(Duration::from_millis(sweep_ms))
            .clock(clock.clone())
            .hasher(FixedState::with_seed(7))
            .build()
            .unwrap();
        let mut model: HashMap<u8, RateLimiter<ManualClock>> = HashMap::new();
        for op in ops {
            match op {
                Op::Advance(by) => { clock.advance_nanos(by); }
                Op::Check(k) => {
                    let expected = model
                        .entry(k)
                        .or_insert_with(|| RateLimiter::with_clock(quota, clock.clone()).unwrap())
                        .check();
                    prop_assert_eq!(keyed.check(&k), expected);
                }
                Op::CheckN(k, n) => {
                    let expected = model
                        .entry(k)
                        .or_insert_with(|| RateLimiter::with_clock(quota, clock.clone()).unwrap())
                        .check_n(n);
                    prop_assert_eq!(keyed.check_n(&k, n), expected);
                }
                Op::Reconfigure(i) => {
                    prop_assert_eq!(keyed.reconfigure(QUOTAS[i]).unwrap(), quota);
                    quota = QUOTAS[i];
                    for limiter in model.values() {
                        limiter.reconfigure(quota).unwrap();
                    }
                    prop_assert_eq!(keyed.quota(), quota);
                }
            }
        }
    }
}

#[derive(Debug, Clone)]
enum StaleOp {
    Advance(u64),
    /// A check at the clock's reading minus this much (0: the clock's own reading).
    CheckAt(u8, u64),
    Reclaim,
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// With readings older than the clock and reclamation at any time, the keyed limiter
    /// never admits more than one GCRA per key: replaying a key's admitted calls alone (a
    /// refusal changes no state) into a plain limiter admits every one of them. And readings
    /// at the clock are exact whenever no stale reading came first (previous property).
    #[test]
    fn stale_readings_never_admit_more_than_one_limiter_per_key(
        sweep_ms in 1u64..50,
        ops in prop::collection::vec(prop_oneof![
            2 => (0u64..40_000_000).prop_map(StaleOp::Advance),
            6 => (0u8..6, prop_oneof![Just(0u64), 0u64..60_000_000])
                .prop_map(|(k, back)| StaleOp::CheckAt(k, back)),
            1 => Just(StaleOp::Reclaim),
        ], 1..300),
    ) {
        let quota = Quota::per_second(50).with_burst(3);
        let clock = ManualClock::new();
        clock.advance(Duration::from_secs(1));
        let keyed = KeyedRateLimiter::<u8>::builder(quota)
            .shards(2)
            .sweep_interval(Duration::from_millis(sweep_ms))
            .clock(clock.clone())
            .hasher(FixedState::with_seed(7))
            .build()
            .unwrap();
        let mut admitted: HashMap<u8, Vec<u64>> = HashMap::new();
        for op in ops {
            match op {
                StaleOp::Advance(by) => { clock.advance_nanos(by); }
                StaleOp::Reclaim => { keyed.reclaim(); }
                StaleOp::CheckAt(k, back) => {
                    let at = clock.now().saturating_sub(back);
                    if keyed.check_at(&k, at).is_ok() {
                        admitted.entry(k).or_default().push(at);
                    }
                }
            }
        }
        for (key, readings) in admitted {
            let replay = RateLimiter::with_clock(quota, ManualClock::new()).unwrap();
            for at in readings {
                prop_assert!(replay.check_at(at).is_ok(), "key {key}: admitted past its quota at {at}");
            }
        }
    }
}

#[test]
fn a_million_keys_are_reclaimed_without_any_cleanup_call() {
    let clock = ManualClock::new();
    let quota = Quota::per_second(10);
    let keyed = KeyedRateLimiter::<u64>::builder(quota)
        .clock(clock.clone())
        .hasher(FixedState::with_seed(42))
        .build()
        .unwrap();
    let empty = keyed.stats().table_bytes;

    // A burst over a million distinct keys (a scan, a botnet, a crawler).
    for key in 0..1_000_000u64 {
        assert!(keyed.check(&key).is_ok());
    }
    let full = keyed.stats();
    assert_eq!(full.keys, 1_000_000);
    assert!(full.table_bytes > 30_000_000, "{} bytes", full.table_bytes);

    // Every key refills (the quota's refill time is 1 s; the sweep interval too) ...
    clock.advance(quota.gcra().unwrap().refill_time() + Duration::from_secs(1));
    // ... and ordinary traffic from a few clients goes on: no retain/cleanup call anywhere.
    for round in 0..3u64 {
        for client in 0..2_000u64 {
            let _ = keyed.check(&(10_000_000 + client + round));
        }
    }

    let after = keyed.stats();
    assert!(after.keys <= 2_002, "live keys after refill: {}", after.keys);
    assert!(after.reclaimed >= 1_000_000, "reclaimed {}", after.reclaimed);
    // The tables shrank back near their empty size (a few slots per live key).
    assert!(
        after.table_bytes < empty + 2_002 * 4 * 32 * 2,
        "{} bytes vs {} empty",
        after.table_bytes,
        empty
    );
}

#[test]
fn idle_keys_are_dropped_while_new_ones_keep_arriving() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<u32>::builder(Quota::per_second(1000))
        .shards(1)
        .sweep_interval(Duration::from_millis(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    for round in 0..100u32 {
        for k in 0..1000 {
            keyed.check(&(round * 1000 + k)).unwrap();
        }
        // Each key refills after 1 ms and is never checked again; new ones keep arriving.
        clock.advance(Duration::from_millis(2));
    }
    // Without reclamation this would be 100,000 keys; passes at growth and sweeps keep it
    // near the keys refilled for less than a sweep interval (10 ms: 5 rounds, plus the rounds
    // since the last pass).
    let stats = keyed.stats();
    assert!(stats.keys <= 7_000, "{}", stats.keys);
    assert!(stats.table_bytes <= 16_384 * 16, "{}", stats.table_bytes);
}

#[test]
fn keys_that_refill_between_checks_stay_in_the_table() {
    // Per-client limits: each key comes back less often than its emission interval (every
    // 20 ms at 100 per second), so it has refilled every time, but well within the sweep
    // interval (1 s). Reclaiming such keys would send every check down the insertion path.
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<u32>::builder(Quota::per_second(100))
        .shards(4)
        .clock(clock.clone())
        .build()
        .unwrap();
    let mut after_first_rounds = 0;
    for round in 0..500 {
        for k in 0..1000 {
            assert!(keyed.check(&k).is_ok());
            clock.advance_nanos(20_000); // 20 ms per round of 1,000 keys: 10 s in all
        }
        if round == 1 {
            // While the tables grow in the first round, passes may drop a key or two that
            // comes back in the second; from then on none goes.
            after_first_rounds = keyed.stats().reclaimed;
        }
    }
    let stats = keyed.stats();
    assert_eq!(stats.keys, 1000);
    assert_eq!(stats.reclaimed, after_first_rounds, "a key was reclaimed and re-added");
    // Once they stop coming, they go: a check sweeps the shard it lands on, and `reclaim`
    // the rest.
    clock.advance(Duration::from_secs(3));
    keyed.check(&5_000).unwrap();
    let left = keyed.len();
    let swept = keyed.stats().reclaimed - stats.reclaimed;
    assert!(left < 1000 && swept == 1001 - left as u64, "{left} left, {swept} swept");
    assert_eq!(keyed.reclaim(), left - 1);
    assert_eq!(keyed.len(), 1);
}

#[test]
fn keys_in_use_survive_passes_that_new_keys_bring_on() {
    // 500 keys, each checked every 0.5 ms with a 10 us emission interval (so refilled at
    // every check), while a new key arrives with every check: the tables keep growing, and
    // their passes come far more often than a key's period. Keys in use must not be dropped
    // by them (a pass relative to the previous one, a CLOCK-like second chance, dropped them
    // on nearly every check). Nothing has been refilled for a sweep interval (1 s) here.
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<u64>::builder(Quota::per_second(100_000))
        .shards(4)
        .clock(clock.clone())
        .build()
        .unwrap();
    for round in 0..200u64 {
        for k in 0..500 {
            assert!(keyed.check(&k).is_ok());
            assert!(keyed.check(&(1_000_000 + round * 500 + k)).is_ok());
            clock.advance_nanos(1_000);
        }
    }
    let stats = keyed.stats();
    assert_eq!((stats.reclaimed, stats.keys), (0, 500 + 200 * 500));
}

#[test]
fn a_reading_older_than_a_reclamation_is_never_admitted_as_a_new_key() {
    // Issue 12.3: key 1 is used up at 0 (one per second, burst 1: its state is 1 s), then
    // reclaimed at 3 s. A check judged at 0.5 s, a reading taken before the reclamation,
    // must be refused as the plain limiter refuses it, with the same retry time.
    let clock = ManualClock::new();
    let quota = Quota::per_second(1);
    let keyed = KeyedRateLimiter::<u32>::builder(quota).shards(1).clock(clock.clone()).build();
    let keyed = keyed.unwrap();
    let plain = RateLimiter::with_clock(quota, clock.clone()).unwrap();
    assert_eq!(keyed.check_at(&1, 0), plain.check_at(0));
    clock.advance(Duration::from_secs(3));
    assert_eq!(keyed.reclaim(), 1);
    let stale = 500_000_000;
    let refusal = keyed.check_at(&1, stale).unwrap_err();
    assert_eq!(Err(refusal), plain.check_at(stale));
    assert_eq!(refusal.earliest(), 1_000_000_000);
    assert_eq!(keyed.available(&1), 1, "at the clock's own reading the key is fresh");
    // A key never seen, at the same stale reading, is judged as strictly (the limiter cannot
    // tell it from a reclaimed one): stricter than keeping every key, never looser.
    assert!(keyed.check_at(&2, stale).is_err());
    // Readings at or after the reclaimed states are exact again.
    assert_eq!(keyed.check_at(&1, 1_000_000_000), Ok(()));
    assert!(keyed.check_at(&2, 1_000_000_000).is_ok());
}

#[test]
fn evict_policy_bounds_memory_and_admits_new_keys() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<u32>::builder(Quota::per_hour(1))
        .shards(4)
        .max_keys(400, KeyLimitPolicy::EvictNearestRefilled)
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..10_000u32 {
        assert!(keyed.check(&k).is_ok(), "new keys are admitted");
        clock.advance_nanos(1);
    }
    let stats = keyed.stats();
    assert!(stats.keys <= 400, "{}", stats.keys);
    assert!(stats.evicted >= 9_600 - 400);
    // The most recent keys are kept: the last one is still limited.
    assert!(keyed.check(&9_999).is_err());
}

#[test]
fn refuse_policy_refuses_new_keys_until_one_refills() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<u32>::builder(Quota::per_second(1))
        .shards(1)
        .max_keys(2, KeyLimitPolicy::RefuseNewKeys)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(keyed.check(&1).is_ok());
    clock.advance(Duration::from_millis(100));
    assert!(keyed.check(&2).is_ok());
    let refusal = keyed.check(&3).unwrap_err();
    assert_eq!(refusal.retry_after(), Duration::from_millis(900), "when key 1 refills");
    assert!(keyed.check(&2).is_err(), "tracked keys stay limited");
    clock.advance(refusal.retry_after());
    assert!(keyed.check(&3).is_ok(), "key 1 refilled and made room");
    assert_eq!(keyed.len(), 2);
}

#[test]
fn keyed_settings_are_validated_and_strings_borrow() {
    let q = Quota::per_second(5);
    assert_eq!(KeyedRateLimiter::<u8>::builder(q).shards(3).build().unwrap_err().setting, "shards");
    assert_eq!(
        KeyedRateLimiter::<u8>::builder(q)
            .max_keys(10, KeyLimitPolicy::default())
            .build()
            .unwrap_err()
            .setting,
        "max_keys"
    );
    assert_eq!(
        KeyedRateLimiter::<u8>::builder(q)
            .sweep_interval(Duration::ZERO)
            .build()
            .unwrap_err()
            .setting,
        "sweep_interval"
    );
    let keyed = KeyedRateLimiter::<String>::new(q.with_burst(2)).unwrap();
    assert!(keyed.check("a").is_ok(), "&str looks up String keys");
    assert_eq!(keyed.available("a"), 1);
    assert_eq!(keyed.available("never seen"), 2);
    assert!(keyed.check_n("b", 3).is_err());
    assert!(keyed.check_n("b", 0).is_ok());
    assert_eq!(keyed.len(), 1, "refusals and empty checks add no key");
    assert!(!keyed.is_empty());
}

#[test]
fn reclaim_drops_every_refilled_key() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<u32>::builder(Quota::per_second(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    for k in 0..1000 {
        keyed.check(&k).unwrap();
    }
    assert_eq!(keyed.reclaim(), 0, "nothing has refilled yet");
    clock.advance(Duration::from_secs(1));
    assert_eq!(keyed.reclaim(), 1000);
    assert!(keyed.is_empty());
}

#[test]
fn threads_checking_and_inserting_at_once_admit_exactly_the_burst() {
    // Real threads on shared keys: reads, inserts racing on one key (with shared access), and
    // sweeps (every write that finds the shard due) all at once.
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<u32>::builder(Quota::per_hour(1).with_burst(3))
        .shards(4)
        .sweep_interval(Duration::from_nanos(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let admitted: Vec<usize> = std::thread::scope(|s| {
        // Moves the clock by microseconds: every shard's sweep keeps falling due, so tables
        // are rebuilt under the readers' feet (nothing refills: a cell costs 1.2 s).
        s.spawn(|| {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                clock.advance(Duration::from_micros(1));
                std::thread::yield_now();
            }
        });
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let keyed = &keyed;
                s.spawn(move || {
                    let mut admitted = 0;
                    for round in 0..5 {
                        for k in 0..2_000u32 {
                            let key = if (k + t + round) % 3 == 0 { k } else { 2_000 - 1 - k };
                            admitted += usize::from(keyed.check(&key).is_ok());
                        }
                    }
                    admitted
                })
            })
            .collect();
        let admitted = handles.into_iter().map(|h| h.join().unwrap()).collect();
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        admitted
    });
    assert!(keyed.stats().reclaimed == 0, "nothing had refilled");
    // 2,000 keys, each admitted exactly its burst of three, whatever the interleaving.
    assert_eq!(admitted.iter().sum::<usize>(), 6_000);
    assert_eq!(keyed.len(), 2_000);
}

/// A quota change (issue 22.1): an invalid quota is refused and changes nothing; a key's
/// debt is kept in cells; the change is reported by `quota` and counted by `quotas_kept`.
#[test]
fn reconfigure_keeps_each_keys_debt_and_refuses_an_invalid_quota() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<String>::builder(Quota::per_second(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    keyed.check_n("a", 4).unwrap(); // owes 4 cells at 100 ms
    assert!(keyed.reconfigure(Quota::per_second(0)).is_err());
    assert_eq!(keyed.quota(), Quota::per_second(10));
    assert_eq!(keyed.quotas_kept(), 1);

    // Ten times slower: the 4 cells owed now take 4 s to pay back.
    assert_eq!(
        keyed.reconfigure(Quota::per_second(1).with_burst(10)).unwrap(),
        Quota::per_second(10)
    );
    assert_eq!(keyed.quota(), Quota::per_second(1).with_burst(10));
    assert_eq!(keyed.quotas_kept(), 2);
    assert_eq!(keyed.state("a").remaining, 6);
    assert_eq!(keyed.state("a").reset, Duration::from_secs(4));
    assert_eq!(keyed.available("b"), 10);
    // A burst smaller than the debt caps it.
    keyed.reconfigure(Quota::per_second(1).with_burst(2)).unwrap();
    assert_eq!(keyed.state("a").reset, Duration::from_secs(2));
    assert!(keyed.check("a").is_err());
    assert_eq!(
        keyed.check_n("a", 3).unwrap_err().to_string(),
        keyed.check_n("b", 3).unwrap_err().to_string()
    );
    clock.advance(Duration::from_secs(1));
    assert!(keyed.check("a").is_ok());
}

/// A waiter for more cells than a shrunk burst holds ends with the capacity error instead of
/// waiting forever.
#[tokio::test]
async fn a_waiter_that_no_longer_fits_the_burst_ends() {
    let clock = ManualClock::new();
    let keyed = std::sync::Arc::new(
        KeyedRateLimiter::<u32>::builder(Quota::per_second(1).with_burst(4))
            .clock(clock.clone())
            .build()
            .unwrap(),
    );
    keyed.check_n(&1, 4).unwrap();
    let waiter = {
        let keyed = keyed.clone();
        tokio::spawn(async move { keyed.key(&1).until_n_ready(3).await })
    };
    tokio::task::yield_now().await;
    keyed.reconfigure(Quota::per_second(1).with_burst(2)).unwrap();
    clock.advance(Duration::from_secs(10)); // the waiter wakes and looks again
    let error = waiter.await.unwrap().unwrap_err();
    assert_eq!((error.requested, error.burst), (3, 2));
}
