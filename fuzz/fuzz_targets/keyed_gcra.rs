//! Drives a `KeyedRateLimiter` (1 to 8 shards, short sweep intervals, explicit `reclaim`)
//! with arbitrary sequences of clock moves and `check` / `check_n` / `check_at` (readings
//! behind the clock) / `available` over a few dozen keys, against one exact GCRA
//! per key: the keyed limiter promises that reclamation never changes a decision, so every
//! key must decide exactly as a limiter that never forgot it, however often its shard was
//! swept or rebuilt in between.
//!
//! With a key limit (`max_keys`) decisions may differ by design (eviction restarts a key,
//! refusing new keys refuses them); then the target checks the memory bound and that every
//! refusal says a time after the decision.
#![no_main]

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::time::Duration;

use arbitrary::Arbitrary;
use levee_core::{Clock, ManualClock};
use levee_fuzz::gcra::{Counters, Gcra, assert_same, reading};
use levee_limit::{CheckNError, KeyLimitPolicy, KeyedRateLimiter, Quota, Throttled};
use libfuzzer_sys::fuzz_target;

/// Deterministic hashing, so a crash replays (the default hasher is seeded per limiter).
type Hasher = BuildHasherDefault<std::collections::hash_map::DefaultHasher>;

#[derive(Debug, Arbitrary)]
struct Case {
    count: u8,
    /// Period in microseconds.
    period_us: u16,
    burst: u8,
    /// log2 of the shard count.
    shards: u8,
    /// Sweep interval in microseconds.
    sweep_us: Option<u16>,
    limit: Option<(u8, bool)>,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Microseconds.
    Advance(u16),
    Check(u8),
    CheckN(u8, u8),
    /// A reading `behind` µs behind the clock, but not older than the last reclamation pass
    /// (see `pass_bound`). The sign is ignored: a caller's reading comes from the limiter's
    /// clock, so it is never ahead of a later reading of it (a reading from the future would
    /// let a sweep judge the present on states it dropped in that future).
    CheckAt(u8, i16),
    Available(u8),
    Reclaim,
}

fn key(k: u8) -> u32 {
    u32::from(k % 48)
}

fn refusal_is_sane(r: &Throttled, now: u64) {
    assert_eq!(r.decided_at(), now);
    assert!(r.earliest() > now, "a refusal must name a later time: {r:?} at {now}");
}

fuzz_target!(|case: Case| {
    let count = u32::from(case.count % 16) + 1;
    let burst = u32::from(case.burst % 8) + 1;
    let period = Duration::from_micros(u64::from(case.period_us) + 1);
    let quota = Quota::new(count, period).with_burst(burst);
    let g = Gcra::new(count, levee_core::nanos(period), burst).expect("a valid quota");
    let shards = 1usize << (case.shards % 4);
    let clock = ManualClock::starting_at(1_000_000_000);
    let mut builder = KeyedRateLimiter::<u32>::builder(quota)
        .hasher(Hasher::default())
        .shards(shards)
        .clock(clock.clone())
        .count_admitted(true);
    // Automatic passes drop only keys refilled a sweep interval before them (the default
    // interval, the refill time but at least a second, is longer than any refill here).
    let sweep_interval = case.sweep_us.map_or(1_000_000_000, |us| (u64::from(us) + 1) * 1_000);
    if let Some(us) = case.sweep_us {
        builder = builder.sweep_interval(Duration::from_micros(u64::from(us) + 1));
    }
    let max_keys = case.limit.map(|(n, refuse)| (shards + usize::from(n % 32), refuse));
    if let Some((n, refuse)) = max_keys {
        let policy = if refuse {
            KeyLimitPolicy::RefuseNewKeys
        } else {
            KeyLimitPolicy::EvictNearestRefilled
        };
        builder = builder.max_keys(n, policy);
    }
    let limiter = builder.build().expect("valid settings");
    let exact = max_keys.is_none();
    let mut tats: HashMap<u32, u128> = HashMap::new();
    let mut counters = Counters::default();
    let mut last_reclaim = 0;

    for op in case.ops.iter().take(2_000) {
        let now = clock.now();
        // Every key a reclamation pass may have dropped had refilled by this reading: the
        // keyed limiter is exact at readings from here on, and judges older readings of the
        // caller's own (`check_at`) more strictly than a limiter that kept the key, by design
        // (its module docs; levee-limit's tests/keyed.rs checks that side).
        let pass_bound = last_reclaim.max(now.saturating_sub(sweep_interval));
        match *op {
            Op::Advance(us) => {
                clock.advance_nanos(u64::from(us) * 1_000);
            }
            Op::Check(k) | Op::CheckN(k, _) | Op::CheckAt(k, _) => {
                let (n, at) = match *op {
                    Op::CheckN(_, n) => (u32::from(n % 10), now),
                    Op::CheckAt(_, behind) => {
                        (1, reading(now, i32::from(behind.unsigned_abs()), 1_000).max(pass_bound))
                    }
                    _ => (1, now),
                };
                let k = key(k);
                let got = match *op {
                    Op::CheckN(..) => limiter.check_n(&k, n),
                    Op::CheckAt(..) => limiter.check_at(&k, at).map_err(CheckNError::from),
                    _ => limiter.check(&k).map_err(CheckNError::from),
                };
                if !exact {
                    match got {
                        Err(CheckNError::Throttled(r)) => refusal_is_sane(&r, at),
                        Err(CheckNError::InsufficientCapacity(e)) => assert!(e.requested > burst),
                        Ok(()) => {}
                    }
                    continue;
                }
                let want = g.decide(tats.entry(k).or_insert(0), n, at, &mut counters);
                assert_same(got, want, n, at, &format_args!("key {k} (clock {now})"));
            }
            Op::Available(k) => {
                let k = key(k);
                if exact {
                    let tat = tats.get(&k).copied().unwrap_or(0);
                    let want = g.available(tat, u128::from(now));
                    assert_eq!(limiter.available(&k), want, "available({k})");
                } else {
                    assert!(limiter.available(&k) <= burst);
                }
            }
            Op::Reclaim => {
                limiter.reclaim();
                last_reclaim = now;
                // Every key that has refilled by now is gone.
                let live = tats.values().filter(|&&tat| tat > u128::from(now)).count();
                if exact {
                    let kept = limiter.len();
                    assert!(kept <= live, "{kept} keys kept, {live} not refilled");
                }
            }
        }
        let stats = limiter.stats();
        assert_eq!(stats.keys, limiter.len());
        match max_keys {
            Some((n, _)) => assert!(stats.keys <= n, "{} keys tracked, limit {n}", stats.keys),
            None => {
                assert_eq!(
                    (stats.admitted, stats.rejected),
                    (Some(counters.admitted), counters.rejected)
                );
                assert!(stats.keys <= tats.len());
            }
        }
    }
});
