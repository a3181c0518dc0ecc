//! Drives a `RateLimiter` with arbitrary quotas and sequences of clock moves, `check`,
//! `check_n`, `check_at` / `check_n_at` (with readings behind or ahead of the clock),
//! `available` and `reset`, against GCRA written out in exact integer arithmetic: after every
//! step the decision, the refusal's earliest time and decision time, the cells available and
//! the counters must be equal.
//!
//! The model (`levee_fuzz::gcra`) keeps the theoretical arrival time in `u128`, so nothing
//! saturates, and admits `n` cells at once only if each would conform in turn.
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use levee_core::{Clock, ManualClock};
use levee_fuzz::gcra::{Counters, Gcra, assert_same, reading};
use levee_limit::{Quota, RateLimiter};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
struct Case {
    count: u16,
    /// Period in microseconds.
    period_us: u32,
    /// Burst; `None`: the count.
    burst: Option<u8>,
    start: u32,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// Nanoseconds.
    Advance(u32),
    /// Whole periods.
    AdvancePeriods(u8),
    Check,
    CheckN(u8),
    /// A reading `behind` ns behind (or ahead of, when negative) the clock.
    CheckAt(i32),
    CheckNAt(u8, i32),
    Available,
    Reset,
}

fuzz_target!(|case: Case| {
    let count = u32::from(case.count);
    let period = u64::from(case.period_us) * 1_000;
    let burst = case.burst.map_or(count, u32::from);
    let mut quota = Quota::new(count, Duration::from_nanos(period));
    if let Some(b) = case.burst {
        quota = quota.with_burst(u32::from(b));
    }
    let start = u64::from(case.start) << 16;
    let clock = ManualClock::starting_at(start);
    let built = RateLimiter::builder(quota).clock(clock.clone()).count_admitted(true).build();
    let Some(model) = Gcra::new(count, period, burst) else {
        assert!(built.is_err(), "{quota:?} is invalid");
        return;
    };
    let limiter = built.expect("a valid quota");
    let gcra = limiter.gcra();
    assert_eq!(gcra.emission_interval().as_nanos(), model.t);
    assert_eq!((gcra.tolerance().as_nanos(), gcra.burst()), (model.tau, burst));
    let (mut tat, mut counters) = (0u128, Counters::default());

    for op in case.ops.iter().take(2_000) {
        let now = clock.now();
        match *op {
            Op::Advance(ns) => {
                clock.advance_nanos(u64::from(ns));
            }
            Op::AdvancePeriods(k) => {
                clock.advance_nanos(u64::from(k) * period);
            }
            Op::Check => {
                let want = model.decide(&mut tat, 1, now, &mut counters);
                assert_same(limiter.check().map_err(Into::into), want, 1, now, &"check");
            }
            Op::CheckN(n) => {
                let n = u32::from(n);
                let want = model.decide(&mut tat, n, now, &mut counters);
                assert_same(limiter.check_n(n), want, n, now, &"check_n");
            }
            Op::CheckAt(behind) => {
                let at = reading(now, behind, 1);
                let want = model.decide(&mut tat, 1, at, &mut counters);
                assert_same(limiter.check_at(at).map_err(Into::into), want, 1, at, &"check_at");
            }
            Op::CheckNAt(n, behind) => {
                let (n, at) = (u32::from(n), reading(now, behind, 1));
                let want = model.decide(&mut tat, n, at, &mut counters);
                assert_same(limiter.check_n_at(n, at), want, n, at, &"check_n_at");
            }
            Op::Available => {
                assert_eq!(limiter.available(), model.available(tat, u128::from(now)));
            }
            Op::Reset => {
                limiter.reset();
                tat = 0;
            }
        }
        let stats = limiter.stats();
        assert_eq!((stats.admitted, stats.rejected), (Some(counters.admitted), counters.rejected));
    }
});
