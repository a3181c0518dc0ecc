//! Both window counters against maps of counts written the obvious way, and the limit they
//! promise: never more than `limit` cells in any aligned window (fixed) or in any run of
//! `buckets` consecutive buckets (sliding). Their states (what rate-limit headers report)
//! follow the maps too.

use std::collections::BTreeMap;
use std::time::Duration;

use levee_core::{Clock, ManualClock};
use levee_limit::{CheckNError, FixedWindowLimiter, SlidingWindowLimiter, WindowQuota};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    CheckN(u32),
}

fn ops(step: u64, limit: u32) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        2 => (0..step).prop_map(Op::Advance),
        1 => (0..step * 20).prop_map(Op::Advance),
        4 => (0..=limit + 1).prop_map(Op::CheckN),
    ];
    prop::collection::vec(op, 1..300)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn fixed_window_matches_a_count_per_window(
        (limit, window, start, ops) in (1u32..10, 1u64..10_000).prop_flat_map(|(limit, window)| {
            (Just(limit), Just(window), 0u64..100_000, ops(window / 4 + 1, limit))
        })
    ) {
        let clock = ManualClock::starting_at(start);
        let limiter = FixedWindowLimiter::builder(WindowQuota::new(limit, Duration::from_nanos(window)))
            .clock(clock.clone())
            .build()
            .unwrap();
        let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
        for op in ops {
            match op {
                Op::Advance(by) => { clock.advance_nanos(by); }
                Op::CheckN(n) => {
                    let now = clock.now();
                    let w = now / window;
                    let count = counts.entry(w).or_default();
                    match limiter.check_n(n) {
                        Ok(()) => {
                            prop_assert!(*count + n <= limit, "admitted {n} over {count}/{limit}");
                            *count += n;
                        }
                        Err(CheckNError::Throttled(r)) => {
                            prop_assert!(n <= limit && *count + n > limit, "refused {n} at {count}/{limit}");
                            prop_assert_eq!(r.earliest(), (w + 1) * window);
                        }
                        Err(CheckNError::InsufficientCapacity(_)) => prop_assert!(n > limit),
                    }
                    prop_assert_eq!(limiter.count(), *count);
                }
            }
            // Remaining in this window; until its end, or zero when it counts nothing.
            let now = clock.now();
            let count = counts.get(&(now / window)).copied().unwrap_or(0);
            let state = limiter.state();
            prop_assert_eq!(state.remaining, limit - count);
            let reset = if count == 0 { 0 } else { (now / window + 1) * window - now };
            prop_assert_eq!(state.reset, Duration::from_nanos(reset));
        }
        prop_assert!(counts.values().all(|&c| c <= limit));
    }

    #[test]
    fn sliding_window_matches_a_map_of_buckets(
        (limit, buckets, bucket, start, ops) in (1u32..12, 1u32..8, 1u64..2_000).prop_flat_map(|(limit, buckets, bucket)| {
            (Just(limit), Just(buckets), Just(bucket), 0u64..100_000, ops(bucket, limit))
        })
    ) {
        let clock = ManualClock::starting_at(start);
        let window = bucket * u64::from(buckets);
        let limiter = SlidingWindowLimiter::builder(WindowQuota::new(limit, Duration::from_nanos(window)))
            .buckets(buckets)
            .clock(clock.clone())
            .build()
            .unwrap();
        prop_assert_eq!(limiter.window(), Duration::from_nanos(window));
        let n_buckets = u64::from(buckets);
        let mut counts: BTreeMap<u64, u32> = BTreeMap::new();
        let in_window = |counts: &BTreeMap<u64, u32>, b: u64| -> u32 {
            counts.range(b.saturating_sub(n_buckets - 1)..=b).map(|(_, &c)| c).sum()
        };
        for op in ops {
            match op {
                Op::Advance(by) => { clock.advance_nanos(by); }
                Op::CheckN(n) => {
                    let now = clock.now();
                    let b = now / bucket;
                    let current = in_window(&counts, b);
                    match limiter.check_n(n) {
                        Ok(()) => {
                            prop_assert!(n == 0 || current + n <= limit, "admitted {n} over {current}/{limit}");
                            *counts.entry(b).or_default() += n;
                        }
                        Err(CheckNError::Throttled(r)) => {
                            prop_assert!(n <= limit && current + n > limit, "refused {n} at {current}/{limit}");
                            // The model's answer: the first bucket start at which enough old
                            // buckets have left.
                            let earliest = (1..=n_buckets)
                                .find(|k| {
                                    let oldest = (b + k).saturating_sub(n_buckets - 1);
                                    let left: u32 = if oldest > b { 0 } else {
                                        counts.range(oldest..=b).map(|(_, &c)| c).sum()
                                    };
                                    left + n <= limit
                                })
                                .map(|k| (b + k) * bucket)
                                .unwrap();
                            prop_assert_eq!(r.earliest(), earliest);
                        }
                        Err(CheckNError::InsufficientCapacity(_)) => prop_assert!(n > limit),
                    }
                    prop_assert_eq!(limiter.count(), u64::from(in_window(&counts, b)));
                }
            }
            // Remaining in the window; until its newest counted bucket leaves it.
            let now = clock.now();
            let b = now / bucket;
            let state = limiter.state();
            prop_assert_eq!(state.remaining, limit - in_window(&counts, b));
            let newest = counts
                .range(b.saturating_sub(n_buckets - 1)..=b)
                .rev()
                .find(|&(_, &c)| c > 0)
                .map(|(&k, _)| k);
            let reset = newest.map_or(0, |k| (k + n_buckets) * bucket - now);
            prop_assert_eq!(state.reset, Duration::from_nanos(reset));
        }
        // The promise: no run of `buckets` consecutive buckets holds more than the limit.
        let first = counts.keys().next().copied().unwrap_or(0);
        let last = counts.keys().last().copied().unwrap_or(0);
        for b in first..=last + n_buckets {
            prop_assert!(in_window(&counts, b) <= limit);
        }
    }
}

#[test]
fn sliding_window_forgets_buckets_after_a_full_lap() {
    let clock = ManualClock::new();
    let limiter = SlidingWindowLimiter::builder(WindowQuota::per_second(5))
        .buckets(5)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(limiter.check_n(5).is_ok());
    assert!(limiter.check().is_err());
    // Exactly one lap later, the slot is reused: the old count must not come back.
    clock.advance(Duration::from_secs(1));
    assert_eq!(limiter.count(), 0);
    assert!(limiter.check_n(5).is_ok());
    // Long idle (many laps): still clean.
    clock.advance(Duration::from_secs(3600));
    assert_eq!(limiter.count(), 0);
    limiter.record(3);
    assert_eq!(limiter.count(), 3);
    assert!((limiter.rate() - 3.0).abs() < 1e-9);
    assert_eq!(limiter.remaining(), 2);
}

#[test]
fn window_settings_are_validated() {
    let err =
        SlidingWindowLimiter::builder(WindowQuota::per_second(5)).buckets(0).build().unwrap_err();
    assert_eq!(err.setting, "buckets");
    let err = SlidingWindowLimiter::builder(WindowQuota::per_second(5))
        .buckets(5000)
        .build()
        .unwrap_err();
    assert_eq!(err.setting, "buckets");
    let err = FixedWindowLimiter::new(WindowQuota::per_second(0)).unwrap_err();
    assert_eq!(err.setting, "limit");
    let limiter = FixedWindowLimiter::new(WindowQuota::per_minute(60)).unwrap();
    assert!(limiter.check().is_ok());
    assert_eq!(limiter.remaining(), 59);
    assert!((limiter.rate() - 1.0 / 60.0).abs() < 1e-9);
}
