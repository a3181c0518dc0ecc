//! The GCRA limiter against a token bucket written the obvious way.
//!
//! GCRA and a token bucket are the same algorithm in two notations; the model keeps "credit"
//! (nanoseconds' worth of cells available, at most `burst * t`) and is easy to check by eye.
//! Random sequences of clock advances and checks must get identical decisions, identical
//! retry times and identical states (cells available now, time until full: what rate-limit
//! headers report), and no sequence may admit more than `burst + L / t` cells in any span of
//! length `L`.

use std::time::Duration;

use levee_core::{Clock, ManualClock};
use levee_limit::{CheckNError, Quota, RateLimiter};
use proptest::prelude::*;

/// A token bucket holding `credit` nanoseconds of cells, refilled one nanosecond per
/// nanosecond up to `burst * t`; a cell costs `t`.
struct TokenBucket {
    t: u128,
    burst: u128,
    credit: u128,
    last: u128,
}

impl TokenBucket {
    fn new(t: u64, burst: u32) -> Self {
        let (t, burst) = (u128::from(t), u128::from(burst));
        Self { t, burst, credit: t * burst, last: 0 }
    }

    fn refill(&mut self, now: u128) {
        self.credit = (self.credit + (now - self.last)).min(self.t * self.burst);
        self.last = now;
    }

    /// `Ok` or the earliest time the cells fit; `None` for more than the burst.
    fn take(&mut self, now: u128, n: u128) -> Option<Result<(), u128>> {
        if n > self.burst {
            return None;
        }
        self.refill(now);
        let cost = n * self.t;
        if self.credit >= cost {
            self.credit -= cost;
            Some(Ok(()))
        } else {
            Some(Err(now + (cost - self.credit)))
        }
    }
}

#[derive(Debug, Clone)]
enum Op {
    Advance(u64),
    Check,
    CheckN(u32),
}

fn ops(t: u64, burst: u32) -> impl Strategy<Value = Vec<Op>> {
    let op = prop_oneof![
        3 => (0..=t.saturating_mul(2)).prop_map(Op::Advance),
        1 => (0..t / 3 + 1).prop_map(Op::Advance),
        4 => Just(Op::Check),
        2 => (0..=burst + 2).prop_map(Op::CheckN),
    ];
    prop::collection::vec(op, 1..200)
}

fn quota() -> impl Strategy<Value = Quota> {
    (1u32..20, 1u64..2_000, 1u32..8).prop_map(|(count, period_us, burst)| {
        Quota::new(count, Duration::from_micros(period_us)).with_burst(burst)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn gcra_matches_a_token_bucket(
        (quota, ops, start) in quota().prop_flat_map(|q| {
            let g = q.gcra().unwrap();
            (Just(q), ops(g.emission_interval().as_nanos() as u64, g.burst()), 0u64..1_000_000)
        })
    ) {
        let gcra = quota.gcra().unwrap();
        let t = gcra.emission_interval().as_nanos() as u64;
        let clock = ManualClock::starting_at(start);
        let limiter = RateLimiter::with_clock(quota, clock.clone()).unwrap();
        let mut model = TokenBucket::new(t, gcra.burst());
        model.last = u128::from(start);
        let mut admitted: Vec<(u64, u32)> = Vec::new();

        for op in ops {
            let now = clock.now();
            match op {
                Op::Advance(by) => {
                    clock.advance_nanos(by);
                }
                Op::Check => {
                    let expected = model.take(u128::from(now), 1).unwrap();
                    let got = limiter.check();
                    match (got, expected) {
                        (Ok(()), Ok(())) => admitted.push((now, 1)),
                        (Err(refusal), Err(at)) => {
                            prop_assert_eq!(u128::from(refusal.earliest()), at);
                            prop_assert_eq!(refusal.decided_at(), now);
                        }
                        (got, expected) => prop_assert!(false, "at {now}: {got:?} vs model {expected:?}"),
                    }
                }
                Op::CheckN(n) => {
                    let expected = if n == 0 { Some(Ok(())) } else { model.take(u128::from(now), u128::from(n)) };
                    match (limiter.check_n(n), expected) {
                        (Ok(()), Some(Ok(()))) => admitted.push((now, n)),
                        (Err(CheckNError::Throttled(r)), Some(Err(at))) => {
                            prop_assert_eq!(u128::from(r.earliest()), at);
                        }
                        (Err(CheckNError::InsufficientCapacity(e)), None) => {
                            prop_assert_eq!((e.requested, e.burst), (n, gcra.burst()));
                        }
                        (got, expected) => prop_assert!(false, "at {now}: {got:?} vs model {expected:?}"),
                    }
                }
            }
            // The state: whole cells of credit, and the credit missing until full.
            model.refill(u128::from(clock.now()));
            let state = limiter.state();
            prop_assert_eq!(u128::from(state.remaining), (model.credit / model.t).min(model.burst));
            prop_assert_eq!(state.reset.as_nanos(), model.t * model.burst - model.credit);
        }

        // Never more than `burst + L / t` cells in any closed span of length L.
        for (i, &(from, _)) in admitted.iter().enumerate() {
            let mut cells = 0u64;
            for &(at, n) in &admitted[i..] {
                cells += u64::from(n);
                let allowed = u64::from(gcra.burst()) + (at - from) / t;
                prop_assert!(cells <= allowed, "{cells} cells in [{from}, {at}], allowed {allowed}");
            }
        }
    }
}

#[test]
fn a_refusal_is_exact_and_consumes_nothing() {
    let clock = ManualClock::new();
    let limiter =
        RateLimiter::with_clock(Quota::per_second(4).with_burst(2), clock.clone()).unwrap();
    assert!(limiter.check().is_ok());
    assert!(limiter.check().is_ok());
    for _ in 0..10 {
        assert_eq!(limiter.check().unwrap_err().retry_after(), Duration::from_millis(250));
    }
    clock.advance(Duration::from_millis(249));
    assert_eq!(limiter.check().unwrap_err().retry_after(), Duration::from_millis(1));
    clock.advance(Duration::from_millis(1));
    assert!(limiter.check().is_ok());
    assert_eq!(limiter.available(), 0);
    clock.advance(Duration::from_secs(10));
    assert_eq!(limiter.available(), 2);
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.rejected), (None, 11));
}

#[test]
fn check_n_beyond_the_burst_is_a_distinct_error() {
    let limiter =
        RateLimiter::with_clock(Quota::per_second(10).with_burst(3), ManualClock::new()).unwrap();
    let err = limiter.check_n(4).unwrap_err();
    assert!(
        matches!(err, CheckNError::InsufficientCapacity(e) if e.requested == 4 && e.burst == 3)
    );
    assert!(limiter.check_n(3).is_ok());
    assert!(matches!(limiter.check_n(1), Err(CheckNError::Throttled(_))));
    assert!(limiter.check_n(0).is_ok(), "zero cells always fit");
}

#[test]
fn admission_counting_is_opt_in_and_listeners_see_refusals() {
    use std::sync::{Arc, Mutex};
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    let limiter = RateLimiter::builder(Quota::per_second(1))
        .clock(ManualClock::new())
        .count_admitted(true)
        .listener(move |e: &levee_limit::RateEvent| sink.lock().unwrap().push(*e))
        .build()
        .unwrap();
    assert!(limiter.check().is_ok());
    assert!(limiter.check().is_err());
    assert_eq!(limiter.stats().admitted, Some(1));
    assert_eq!(
        *seen.lock().unwrap(),
        vec![levee_limit::RateEvent::Throttled { cells: 1, retry_after: Duration::from_secs(1) }]
    );
    limiter.reset();
    assert!(limiter.check().is_ok(), "reset refills");
}

#[test]
fn saturating_clocks_never_panic() {
    let clock = ManualClock::starting_at(u64::MAX - 10);
    let limiter =
        RateLimiter::with_clock(Quota::per_second(1).with_burst(5), clock.clone()).unwrap();
    for _ in 0..10 {
        let _ = limiter.check();
        let _ = limiter.check_n(3);
    }
    clock.advance(Duration::MAX);
    let _ = limiter.check();
}

#[test]
fn check_at_judges_at_the_given_reading() {
    let clock = ManualClock::new();
    let limiter =
        RateLimiter::with_clock(Quota::per_second(10).with_burst(1), clock.clone()).unwrap();
    assert!(limiter.check_at(1_000).is_ok());
    assert_eq!(limiter.check_at(1_000).unwrap_err().earliest(), 100_001_000);
    assert!(limiter.check_at(100_001_000).is_ok());
    assert!(limiter.check_n_at(2, 500_000_000).is_err(), "more than the burst");
    assert_eq!(clock.now(), 0, "the limiter's own clock was not read");
}
