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

    /// A new rate and burst at `now`, keeping the cells owed (`RateLimiter::reconfigure`'s
    /// rule in token-bucket terms): the missing credit is scaled by `t' / t`, rounded up,
    /// and at most a whole new bucket.
    fn reconfigure(&mut self, now: u128, t: u64, burst: u32) {
        self.refill(now);
        let owed = self.t * self.burst - self.credit;
        let (t, burst) = (u128::from(t), u128::from(burst));
        let owed = (owed * t).div_ceil(self.t).min(t * burst);
        *self = Self { t, burst, credit: t * burst - owed, last: now };
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

#[derive(Debug, Clone)]
enum Step {
    Advance(u64),
    CheckN(u32),
    Reconfigure(Quota),
}

fn steps() -> impl Strategy<Value = Vec<Step>> {
    let step = prop_oneof![
        3 => (0u64..3_000_000).prop_map(Step::Advance),
        4 => (0u32..5).prop_map(Step::CheckN),
        1 => quota().prop_map(Step::Reconfigure),
    ];
    prop::collection::vec(step, 1..150)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Quota changes in the middle of traffic keep exactly the cells owed (the documented
    /// rule, written as a token bucket): every decision, retry time and state matches.
    #[test]
    fn reconfiguring_keeps_the_debt_like_a_token_bucket(first in quota(), steps in steps()) {
        let clock = ManualClock::new();
        let limiter = RateLimiter::with_clock(first, clock.clone()).unwrap();
        let g = first.gcra().unwrap();
        let mut model = TokenBucket::new(g.emission_interval().as_nanos() as u64, g.burst());
        for step in steps {
            let now = clock.now();
            match step {
                Step::Advance(by) => {
                    clock.advance_nanos(by);
                }
                Step::Reconfigure(quota) => {
                    let g = quota.gcra().unwrap();
                    prop_assert_eq!(limiter.reconfigure(quota).unwrap().burst(), model.burst as u32);
                    model.reconfigure(u128::from(now), g.emission_interval().as_nanos() as u64, g.burst());
                    prop_assert_eq!(limiter.quota(), quota);
                }
                Step::CheckN(n) => {
                    let expected = if n == 0 { Some(Ok(())) } else { model.take(u128::from(now), u128::from(n)) };
                    match (limiter.check_n(n), expected) {
                        (Ok(()), Some(Ok(()))) => {}
                        (Err(CheckNError::Throttled(r)), Some(Err(at))) => {
                            prop_assert_eq!(u128::from(r.earliest()), at);
                        }
                        (Err(CheckNError::InsufficientCapacity(e)), None) => {
                            prop_assert_eq!(u128::from(e.burst), model.burst);
                        }
                        (got, expected) => prop_assert!(false, "at {now}: {got:?} vs model {expected:?}"),
                    }
                }
            }
            model.refill(u128::from(clock.now()));
            let state = limiter.state();
            prop_assert_eq!(u128::from(state.remaining), (model.credit / model.t).min(model.burst));
            prop_assert_eq!(state.reset.as_nanos(), model.t * model.burst - model.credit);
        }
    }

    /// A limiter reconfigured while full (nothing owed) is a fresh limiter with the new quota.
    #[test]
    fn a_full_limiter_reconfigured_is_a_fresh_one(
        (first, second) in (quota(), quota()),
        ops in ops(2_000_000, 8),
        idle in 0u64..4_000_000_000,
    ) {
        let clock = ManualClock::new();
        let limiter = RateLimiter::with_clock(first, clock.clone()).unwrap();
        let _ = limiter.check_n(first.burst());
        // Long enough to refill any quota() (at most 2 ms * 8 cells).
        clock.advance_nanos(idle.max(16_000_000));
        limiter.reconfigure(second).unwrap();
        let fresh = RateLimiter::with_clock(second, clock.clone()).unwrap();
        for op in ops {
            match op {
                Op::Advance(by) => {
                    clock.advance_nanos(by);
                }
                Op::Check => prop_assert_eq!(limiter.check(), fresh.check()),
                Op::CheckN(n) => prop_assert_eq!(limiter.check_n(n), fresh.check_n(n)),
            }
            prop_assert_eq!(limiter.state(), fresh.state());
        }
    }
}

#[test]
fn reconfigure_rejects_a_bad_quota_and_keeps_the_old_one() {
    let limiter = RateLimiter::with_clock(Quota::per_second(5), ManualClock::new()).unwrap();
    let err = limiter.reconfigure(Quota::per_second(0)).unwrap_err();
    assert_eq!(err.setting, "quota.count");
    assert_eq!(limiter.quota(), Quota::per_second(5));
    assert_eq!(limiter.quotas_kept(), 1, "nothing was published");
    assert_eq!(limiter.reconfigure(Quota::per_second(7)).unwrap(), Quota::per_second(5));
    assert_eq!(limiter.quotas_kept(), 2);
}

#[tokio::test(start_paused = true)]
async fn a_waiter_whose_cells_no_longer_fit_gets_the_capacity_error() {
    let limiter = std::sync::Arc::new(
        RateLimiter::with_clock(Quota::per_second(10).with_burst(4), ManualClock::new()).unwrap(),
    );
    limiter.check_n(4).unwrap();
    let waiter = tokio::spawn({
        let limiter = limiter.clone();
        async move { limiter.until_n_ready(4).await }
    });
    tokio::task::yield_now().await;
    limiter.reconfigure(Quota::per_second(10).with_burst(2)).unwrap();
    let err = waiter.await.unwrap().unwrap_err();
    assert_eq!((err.requested, err.burst), (4, 2));
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
    // A fresh limiter admits its burst whatever the reading; after that every answer is
    // either an admission or a refusal that names a time at or after the decision (the
    // arithmetic saturates instead of wrapping round to the past).
    assert!(limiter.check_n(5).is_ok(), "a fresh limiter admits its burst");
    let sane = |r: levee_limit::Throttled| {
        assert!(r.earliest() >= r.decided_at(), "{r:?} names a time before the decision");
    };
    for _ in 0..10 {
        if let Err(r) = limiter.check() {
            sane(r);
        }
        match limiter.check_n(3) {
            Ok(()) => {}
            Err(CheckNError::Throttled(r)) => sane(r),
            Err(e) => panic!("3 cells fit a burst of 5: {e:?}"),
        }
    }
    clock.advance(Duration::MAX);
    assert_eq!(clock.now(), u64::MAX);
    if let Err(r) = limiter.check() {
        sane(r);
    }
    assert!(limiter.available() <= 5);
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
