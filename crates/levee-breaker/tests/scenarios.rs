//! Deterministic scenarios, one per threshold and behaviour, on a `ManualClock`.
#![cfg(not(loom))]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_breaker::{
    BreakerEvent, CallError, CircuitBreaker, CircuitBreakerBuilder, OpenWait, Outcome, Reason,
    State, classify_errors,
};
use levee_core::{Clock, ManualClock};

const SEC: Duration = Duration::from_secs(1);

fn builder(clock: &ManualClock) -> CircuitBreakerBuilder<ManualClock> {
    CircuitBreaker::builder().clock(clock.clone()).open_wait(10 * SEC)
}

/// Runs one call per outcome, each taking `took`.
fn calls(
    breaker: &CircuitBreaker<ManualClock>,
    clock: &ManualClock,
    outcomes: &str,
    took: Duration,
) {
    for c in outcomes.chars() {
        let permit = breaker.try_acquire().expect("permitted");
        clock.advance(took);
        match c {
            's' => permit.success(),
            'f' => permit.failure(),
            'i' => permit.ignore(),
            _ => unreachable!(),
        }
    }
}

type Seen = Arc<Mutex<Vec<(State, State, Reason, Option<u64>)>>>;

fn recorder() -> (Seen, impl Fn(&BreakerEvent) + Send + Sync + 'static) {
    let seen: Seen = Arc::default();
    let sink = seen.clone();
    (seen, move |e: &BreakerEvent| {
        sink.lock().unwrap().push((e.from, e.to, e.reason, e.open_until))
    })
}

#[test]
fn failure_rate_opens_at_the_threshold_not_below() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .count_window(10)
        .minimum_calls(5)
        .failure_rate_threshold(40.0)
        .build()
        .unwrap();
    calls(&b, &clock, "sssf", Duration::ZERO);
    calls(&b, &clock, "s", Duration::ZERO); // 1 of 5 = 20 %
    assert_eq!(b.state(), State::Closed);
    calls(&b, &clock, "f", Duration::ZERO); // 2 of 6 = 33 %
    assert_eq!(b.state(), State::Closed);
    calls(&b, &clock, "ss", Duration::ZERO); // 2 of 8 = 25 %
    calls(&b, &clock, "ff", Duration::ZERO); // 4 of 10 = 40 %
    assert_eq!(b.state(), State::Open);
    let m = b.metrics();
    assert_eq!((m.consecutive_openings, m.calls), (1, 0), "the window is not judged while open");
}

#[test]
fn minimum_calls_gate_the_rate() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .count_window(20)
        .minimum_calls(4)
        .failure_rate_threshold(50.0)
        .build()
        .unwrap();
    calls(&b, &clock, "fff", Duration::ZERO);
    assert_eq!(b.state(), State::Closed, "100 % of 3 calls, below the minimum");
    assert_eq!(b.metrics().failure_rate, None);
    calls(&b, &clock, "s", Duration::ZERO);
    assert_eq!(b.state(), State::Open, "the fourth call, a success, reaches the minimum at 75 %");
}

#[test]
fn minimum_calls_are_capped_at_the_count_window() {
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(3).minimum_calls(100).build().unwrap();
    calls(&b, &clock, "ssf", Duration::ZERO);
    assert_eq!(b.state(), State::Closed, "33 %");
    calls(&b, &clock, "f", Duration::ZERO);
    assert_eq!(b.state(), State::Open, "2 of the last 3");
}

#[test]
fn the_window_forgets_old_failures() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .count_window(4)
        .minimum_calls(4)
        .failure_rate_threshold(75.0)
        .build()
        .unwrap();
    calls(&b, &clock, "ffss", Duration::ZERO);
    calls(&b, &clock, "ss", Duration::ZERO); // both failures evicted
    assert_eq!(b.metrics().failed_calls, 0);
    calls(&b, &clock, "ff", Duration::ZERO);
    assert_eq!(b.state(), State::Closed, "2 of 4");
    calls(&b, &clock, "f", Duration::ZERO);
    assert_eq!(b.state(), State::Open, "3 of 4");
}

#[test]
fn slow_call_rate_opens_on_measured_durations() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .count_window(4)
        .minimum_calls(4)
        .slow_calls(Duration::from_millis(500), 50.0)
        .build()
        .unwrap();
    calls(&b, &clock, "ss", Duration::from_millis(500)); // exactly the limit: not slow
    calls(&b, &clock, "s", Duration::from_millis(501));
    assert_eq!(b.metrics().slow_calls, 1);
    calls(&b, &clock, "s", Duration::from_millis(100));
    assert_eq!(b.state(), State::Closed, "1 slow of 4");
    calls(&b, &clock, "f", Duration::from_secs(3));
    assert_eq!(b.state(), State::Open, "2 slow of 4 (a slow failure is slow too)");
}

#[test]
fn explicit_durations_are_judged_too() {
    let clock = ManualClock::new();
    let (seen, listener) = recorder();
    let b = builder(&clock)
        .count_window(2)
        .minimum_calls(2)
        .slow_calls(SEC, 100.0)
        .listener(listener)
        .build()
        .unwrap();
    b.try_acquire().unwrap().record(Outcome::Success, 2 * SEC);
    b.try_acquire().unwrap().record(Outcome::Success, 2 * SEC);
    assert_eq!(seen.lock().unwrap()[0].2, Reason::SlowCallRate);
}

#[test]
fn a_slow_success_can_count_as_a_failure() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .count_window(2)
        .minimum_calls(2)
        .failure_rate_threshold(100.0)
        .slow_calls(SEC, 100.0)
        .slow_success_is_failure(true)
        .build()
        .unwrap();
    calls(&b, &clock, "s", 2 * SEC);
    assert_eq!(b.metrics().failed_calls, 1);
    calls(&b, &clock, "f", Duration::ZERO);
    assert_eq!(b.state(), State::Open, "100 % failures");
}

#[test]
fn an_absolute_failure_count_ignores_rates_and_minimums() {
    let clock = ManualClock::new();
    let (seen, listener) = recorder();
    let b = builder(&clock)
        .time_window(Duration::from_secs(60))
        .minimum_calls(1000)
        .failure_rate_threshold(100.0)
        .failure_count_threshold(3)
        .listener(listener)
        .build()
        .unwrap();
    calls(&b, &clock, &"s".repeat(50), Duration::ZERO);
    calls(&b, &clock, "ff", SEC);
    assert_eq!(b.state(), State::Closed);
    calls(&b, &clock, "f", SEC);
    assert_eq!(b.state(), State::Open);
    assert_eq!(seen.lock().unwrap()[0].2, Reason::FailureCount);
}

#[test]
fn a_time_window_forgets_by_time() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .time_window_buckets(Duration::from_secs(10), 10)
        .minimum_calls(2)
        .failure_rate_threshold(100.0)
        .build()
        .unwrap();
    calls(&b, &clock, "f", Duration::ZERO);
    clock.advance(Duration::from_secs(10));
    calls(&b, &clock, "f", Duration::ZERO);
    assert_eq!(b.state(), State::Closed, "the first failure left the window");
    assert_eq!(b.metrics().calls, 1);
    clock.advance(Duration::from_secs(9));
    calls(&b, &clock, "f", Duration::ZERO);
    assert_eq!(b.state(), State::Open, "two failures 9 s apart");
}

#[test]
fn a_time_window_success_can_trip_once_old_successes_expire() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .time_window_buckets(Duration::from_secs(10), 10)
        .minimum_calls(3)
        .failure_rate_threshold(60.0)
        .build()
        .unwrap();
    calls(&b, &clock, "ss", Duration::ZERO);
    clock.advance(Duration::from_secs(5));
    calls(&b, &clock, "ff", Duration::ZERO);
    assert_eq!(b.state(), State::Closed, "2 of 4");
    clock.advance(Duration::from_secs(5));
    calls(&b, &clock, "s", Duration::ZERO);
    assert_eq!(b.state(), State::Open, "the early successes left: 2 failures of 3 calls");
}

#[test]
fn exponential_backoff_grows_to_its_cap_and_resets_on_close() {
    let clock = ManualClock::new();
    let (seen, listener) = recorder();
    let b = builder(&clock)
        .count_window(1)
        .minimum_calls(1)
        .half_open_calls(1)
        .backoff(OpenWait::exponential(SEC, 8 * SEC))
        .listener(listener)
        .build()
        .unwrap();
    calls(&b, &clock, "f", Duration::ZERO);
    let mut waits = Vec::new();
    for _ in 0..5 {
        let refused = b.try_acquire().unwrap_err();
        let wait = refused.retry_after().unwrap();
        waits.push(wait.as_secs());
        assert_eq!(refused.until(), Some(clock.now() + wait.as_nanos() as u64));
        clock.advance(wait - Duration::from_nanos(1));
        assert!(b.try_acquire().is_err(), "one nanosecond early");
        clock.advance(Duration::from_nanos(1));
        b.try_acquire().unwrap().failure(); // the trial fails: reopen, longer
    }
    assert_eq!(waits, [1, 2, 4, 8, 8]);
    assert_eq!(b.metrics().consecutive_openings, 6);
    clock.advance(8 * SEC);
    b.try_acquire().unwrap().success();
    assert_eq!(b.state(), State::Closed);
    calls(&b, &clock, "f", Duration::ZERO);
    assert_eq!(
        b.try_acquire().unwrap_err().retry_after(),
        Some(SEC),
        "backoff starts over after a close"
    );
    let reasons: Vec<_> = seen.lock().unwrap().iter().map(|e| e.2).collect();
    assert_eq!(reasons[..3], [Reason::FailureRate, Reason::WaitElapsed, Reason::TrialsFailed]);
    assert_eq!(
        reasons[reasons.len() - 3..],
        [Reason::WaitElapsed, Reason::TrialsPassed, Reason::FailureRate]
    );
}

#[test]
fn jittered_backoff_stays_within_its_spread_and_cap() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .count_window(1)
        .minimum_calls(1)
        .half_open_calls(1)
        .backoff(OpenWait::exponential(SEC, 10 * SEC).jitter(0.5))
        .build()
        .unwrap();
    calls(&b, &clock, "f", Duration::ZERO);
    for reopening in 0..8u32 {
        let wait = b.try_acquire().unwrap_err().retry_after().unwrap();
        let base = (SEC * 2u32.pow(reopening)).min(10 * SEC);
        assert!(
            wait >= base.mul_f64(0.5) && wait <= (base.mul_f64(1.5)).min(10 * SEC),
            "{reopening}: {wait:?}"
        );
        clock.advance(wait);
        b.try_acquire().unwrap().failure();
    }
}

#[test]
fn half_open_lets_exactly_n_trials_through_and_closes_on_success() {
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(1).minimum_calls(1).half_open_calls(3).build().unwrap();
    calls(&b, &clock, "f", Duration::ZERO);
    clock.advance(10 * SEC);
    let trials: Vec<_> = (0..3).map(|_| b.try_acquire().unwrap()).collect();
    assert!(trials.iter().all(|p| p.is_trial()));
    let refused = b.try_acquire().unwrap_err();
    assert_eq!(
        (refused.state(), refused.until(), refused.retry_after()),
        (State::HalfOpen, None, None)
    );
    assert!(b.check().is_err(), "check agrees");
    assert_eq!(b.metrics().trials_in_flight, 3);
    let mut trials = trials.into_iter();
    trials.next().unwrap().success();
    trials.next().unwrap().success();
    assert_eq!(b.state(), State::HalfOpen, "waits for all trials");
    trials.next().unwrap().failure(); // 1 of 3 < 50 %
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn half_open_reopens_when_trials_fail() {
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(1).minimum_calls(1).half_open_calls(2).build().unwrap();
    calls(&b, &clock, "f", Duration::ZERO);
    clock.advance(10 * SEC);
    let (a, c) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
    a.success();
    c.failure(); // 50 %
    assert_eq!(b.state(), State::Open);
}

#[test]
fn dropped_and_ignored_trials_are_handed_back() {
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(1).minimum_calls(1).half_open_calls(1).build().unwrap();
    calls(&b, &clock, "f", Duration::ZERO);
    clock.advance(10 * SEC);
    drop(b.try_acquire().unwrap());
    b.try_acquire().expect("the dropped trial was handed back").ignore();
    let trial = b.try_acquire().expect("the ignored trial was handed back");
    assert!(b.try_acquire().is_err());
    trial.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn a_half_open_state_that_outlives_its_limit_reopens() {
    let clock = ManualClock::new();
    let (seen, listener) = recorder();
    let b = builder(&clock)
        .count_window(1)
        .minimum_calls(1)
        .half_open_calls(2)
        .half_open_max_wait(5 * SEC)
        .backoff(OpenWait::exponential(10 * SEC, 80 * SEC))
        .listener(listener)
        .build()
        .unwrap();
    calls(&b, &clock, "f", Duration::ZERO);
    clock.advance(10 * SEC);
    // Both trials hang; everyone else is refused while they do.
    let hung = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
    clock.advance(5 * SEC - Duration::from_nanos(1));
    assert_eq!(b.try_acquire().unwrap_err().state(), State::HalfOpen, "not early");
    clock.advance(Duration::from_nanos(1));
    let expected_until = clock.now() + 20_000_000_000; // second opening: twice the wait
    assert_eq!(b.check().unwrap_err().until(), Some(expected_until), "check agrees");
    let refused = b.try_acquire().unwrap_err();
    assert_eq!((refused.state(), refused.until()), (State::Open, Some(expected_until)));
    assert_eq!(b.state(), State::Open);
    let last = *seen.lock().unwrap().last().unwrap();
    assert_eq!(last, (State::HalfOpen, State::Open, Reason::HalfOpenTimeout, Some(expected_until)));
    // The hung trials' late results belong to a finished generation.
    hung.0.success();
    hung.1.success();
    assert_eq!(b.state(), State::Open);
}

#[test]
fn a_late_trial_result_after_the_limit_reopens_without_another_call() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .count_window(1)
        .minimum_calls(1)
        .half_open_calls(1)
        .half_open_max_wait(5 * SEC)
        .build()
        .unwrap();
    calls(&b, &clock, "f", Duration::ZERO);
    clock.advance(10 * SEC);
    let trial = b.try_acquire().unwrap();
    clock.advance(6 * SEC);
    trial.success(); // too late to close the circuit
    assert_eq!(b.state(), State::Open);
    // Within the limit a trial still decides as usual.
    clock.advance(20 * SEC);
    let trial = b.try_acquire().unwrap();
    clock.advance(4 * SEC);
    trial.success();
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn results_of_an_old_generation_are_ignored() {
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(2).minimum_calls(1).half_open_calls(1).build().unwrap();
    let late_closed = b.try_acquire().unwrap();
    b.trip();
    clock.advance(10 * SEC);
    let late_trial = b.try_acquire().unwrap();
    b.reset();
    late_closed.failure();
    late_trial.failure();
    assert_eq!(b.state(), State::Closed);
    assert_eq!(b.metrics().calls, 0, "neither result reached the new window");
    let m = b.metrics();
    assert_eq!((m.failed_calls, m.consecutive_openings), (0, 0));
}

#[test]
fn operators_force_open_disable_reset_and_trip() {
    let clock = ManualClock::new();
    let (seen, listener) = recorder();
    let b = builder(&clock)
        .count_window(1)
        .minimum_calls(1)
        .listener(listener)
        .name("db")
        .build()
        .unwrap();
    b.force_open();
    let refused = b.try_acquire().unwrap_err();
    assert_eq!((refused.state(), refused.until()), (State::ForcedOpen, None));
    assert_eq!(refused.to_string(), "circuit breaker is forced open");
    clock.advance(Duration::from_secs(3600));
    assert!(b.try_acquire().is_err(), "forced open does not time out");

    b.disable();
    calls(&b, &clock, "ffff", Duration::ZERO);
    assert_eq!(b.state(), State::Disabled, "disabled records nothing");

    b.reset();
    calls(&b, &clock, "s", Duration::ZERO);
    assert_eq!(b.metrics().calls, 1);
    b.trip();
    assert_eq!(b.try_acquire().unwrap_err().retry_after(), Some(10 * SEC));
    let events = seen.lock().unwrap().clone();
    let path: Vec<_> = events.iter().map(|e| (e.1, e.2)).collect();
    assert_eq!(
        path,
        [
            (State::ForcedOpen, Reason::Manual),
            (State::Disabled, Reason::Manual),
            (State::Closed, Reason::Manual),
            (State::Open, Reason::Manual),
        ]
    );
    assert_eq!(events[3].3, Some(clock.now() + 10_000_000_000));
    assert_eq!(b.metrics().not_permitted, 3);
}

#[test]
fn check_takes_nothing() {
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(1).minimum_calls(1).half_open_calls(1).build().unwrap();
    assert!(b.check().is_ok());
    b.trip();
    assert_eq!(b.check().unwrap_err().retry_after(), Some(10 * SEC));
    clock.advance(10 * SEC);
    assert!(b.check().is_ok());
    assert_eq!(b.state(), State::Open, "check does not transition");
    assert!(b.check().is_ok(), "nor take the trial permit");
    assert_eq!(b.metrics().not_permitted, 0, "nor count refusals");
}

#[test]
fn metrics_report_rates_and_time_in_state() {
    let clock = ManualClock::new();
    let b = builder(&clock)
        .count_window(10)
        .minimum_calls(4)
        .failure_rate_threshold(100.0)
        .slow_calls(SEC, 100.0)
        .build()
        .unwrap();
    calls(&b, &clock, "sfs", Duration::ZERO);
    calls(&b, &clock, "s", 2 * SEC);
    let m = b.metrics();
    assert_eq!((m.calls, m.failed_calls, m.slow_calls), (4, 1, 1));
    assert_eq!((m.failure_rate, m.slow_call_rate), (Some(25.0), Some(25.0)));
    assert_eq!(m.time_in_state, 2 * SEC, "closed since the start");
    b.trip();
    clock.advance(3 * SEC);
    let m = b.metrics();
    assert_eq!(
        (m.state, m.time_in_state, m.open_until),
        (State::Open, 3 * SEC, Some(12_000_000_000))
    );
}

#[test]
fn calls_classify_their_results() {
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(4).minimum_calls(4).build().unwrap();
    assert_eq!(b.call(|| Ok::<_, &str>(7)), Ok(7));
    assert_eq!(b.call(|| Err::<u8, _>("boom")), Err(CallError::Inner("boom")));
    // 404 is ignored, 503 a failure.
    let classifier =
        classify_errors(
            |code: &u16| if *code >= 500 { Outcome::Failure } else { Outcome::Ignored },
        );
    for code in [404, 404, 404] {
        assert_eq!(b.call_with(&classifier, || Err::<(), u16>(code)), Err(CallError::Inner(code)));
    }
    assert_eq!(b.metrics().calls, 2, "ignored results are not recorded");
    b.call_with(&classifier, || Err::<(), u16>(503)).unwrap_err();
    b.call_with(&classifier, || Err::<(), u16>(503)).unwrap_err();
    assert_eq!(b.state(), State::Open, "3 failures of 4");
    let mut ran = false;
    let refused = b.call(|| {
        ran = true;
        Ok::<_, ()>(())
    });
    assert!(!ran && matches!(refused, Err(CallError::Open(o)) if o.state() == State::Open));
}

#[test]
fn async_calls_record_and_cancelled_ones_hand_trials_back() {
    use futures::FutureExt;
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(1).minimum_calls(1).half_open_calls(1).build().unwrap();
    let got = futures::executor::block_on(b.call_async(async { Err::<(), _>("down") }));
    assert_eq!(got, Err(CallError::Inner("down")));
    assert_eq!(b.state(), State::Open);
    clock.advance(10 * SEC);

    // A trial call that never finishes, then is cancelled.
    let mut pending = Box::pin(b.call_async(futures::future::pending::<Result<(), ()>>()));
    assert!((&mut pending).now_or_never().is_none());
    assert!(b.try_acquire().is_err(), "the trial is taken");
    drop(pending);
    let got = futures::executor::block_on(b.call_async(async { Ok::<_, ()>(1) }));
    assert_eq!(got, Ok(1), "the cancelled trial was handed back");
    assert_eq!(b.state(), State::Closed);
}

#[test]
fn owned_permits_work_like_borrowed_ones() {
    let clock = ManualClock::new();
    let b = Arc::new(
        builder(&clock).count_window(1).minimum_calls(1).half_open_calls(1).build().unwrap(),
    );
    b.try_acquire_owned().unwrap().failure();
    clock.advance(10 * SEC);
    let trial = b.try_acquire_owned().unwrap();
    assert!(trial.is_trial() && Arc::ptr_eq(trial.breaker(), &b));
    drop(trial);
    b.try_acquire_owned().unwrap().record(Outcome::Success, Duration::ZERO);
    assert_eq!(b.state(), State::Closed);
}

/// The state word keeps an open deadline modulo this many milliseconds (49.7 days).
const WRAP_MS: u64 = 1 << 32;
const MS_NS: u64 = 1_000_000;

/// A breaker that opens on one failure, waits 10 s and lets one trial through.
fn one_call_breaker(clock: &ManualClock) -> CircuitBreaker<ManualClock> {
    builder(clock).count_window(1).minimum_calls(1).half_open_calls(1).build().unwrap()
}

#[test]
fn an_open_circuit_lets_a_trial_through_once_its_wait_has_passed_however_long_ago() {
    let wait = 10 * SEC;
    let silences = [
        wait,
        Duration::from_millis(WRAP_MS),
        Duration::from_millis(WRAP_MS) + 5 * SEC, // inside the wait, modulo 2^32 ms
        Duration::from_millis(WRAP_MS - 1),
        Duration::from_millis(2 * WRAP_MS) + 5 * SEC,
        Duration::from_millis(7 * WRAP_MS) + 9 * SEC,
        Duration::from_millis(1_000 * WRAP_MS) + SEC,
        Duration::from_nanos(u64::MAX / 3),
    ];
    for origin in [0, 123_456_789, u64::MAX / 2] {
        for silence in silences {
            let clock = ManualClock::starting_at(origin);
            let b = one_call_breaker(&clock);
            calls(&b, &clock, "f", Duration::ZERO);
            assert_eq!(b.state(), State::Open);
            clock.advance(silence);
            let context = format!("origin {origin} ns, {silence:?} after opening");
            assert_eq!(b.check(), Ok(()), "{context}");
            assert_eq!(b.metrics().open_until, None, "{context}");
            let trial = b.try_acquire().unwrap_or_else(|e| panic!("{context}: {e}"));
            assert!(trial.is_trial(), "{context}");
            trial.success();
            assert_eq!(b.state(), State::Closed, "{context}");
        }
    }
}

#[test]
fn an_open_circuit_refuses_until_its_deadline_at_every_clock_reading() {
    // Opened just before, at, and just after multiples of 2^32 ms, and far beyond: refused
    // with the exact deadline until it, a trial exactly at it.
    let wait = 10 * SEC;
    let mut readings = vec![u64::MAX - 20 * SEC.as_nanos() as u64];
    // 4_000 eras of 2^32 ms are 545 years, most of a u64 of nanoseconds.
    for k in [1u64, 2, 3, 1_000, 4_000] {
        let era = k * WRAP_MS * MS_NS;
        readings.extend([era - 3 * SEC.as_nanos() as u64, era - 1, era, era + 1]);
    }
    for at in readings {
        let clock = ManualClock::new();
        let b = one_call_breaker(&clock);
        clock.set(at);
        b.trip();
        let deadline = at.div_ceil(MS_NS) * MS_NS + wait.as_nanos() as u64;
        let refused = b.try_acquire().unwrap_err();
        assert_eq!(refused.until(), Some(deadline), "opened at {at}");
        assert_eq!(refused.retry_after(), Some(Duration::from_nanos(deadline - at)));
        clock.set(deadline - 1);
        let refused = b.try_acquire().unwrap_err();
        assert_eq!(refused.retry_after(), Some(Duration::from_nanos(1)), "opened at {at}");
        assert_eq!(b.metrics().open_until, Some(deadline));
        clock.set(deadline);
        assert!(b.try_acquire().unwrap().is_trial(), "opened at {at}");
    }
}

#[test]
fn a_half_open_time_limit_holds_at_any_clock_reading() {
    // Half-open entry times are milliseconds since the breaker's origin, kept in full: a
    // breaker that turns half-open decades after it was built times out exactly as a new one.
    let limit = 5 * SEC;
    for at in
        [0, (1u64 << 39) * MS_NS + 7, (1u64 << 42) * MS_NS, u64::MAX - 60 * SEC.as_nanos() as u64]
    {
        let clock = ManualClock::new();
        let b = builder(&clock).half_open_calls(3).half_open_max_wait(limit).build().unwrap();
        clock.set(at);
        b.trip();
        clock.set(b.try_acquire().unwrap_err().until().unwrap());
        assert!(b.try_acquire().unwrap().is_trial(), "turned half-open at {at}");
        let first = b.try_acquire().expect("no timeout at entry");
        clock.advance(limit - Duration::from_millis(1));
        let second = b.try_acquire().expect("no timeout before the limit");
        assert!(first.is_trial() && second.is_trial());
        clock.advance(Duration::from_millis(1));
        let refused = b.try_acquire().unwrap_err();
        assert_eq!(
            refused.state(),
            State::Open,
            "timed out at the limit, turned half-open at {at}"
        );
        drop((first, second));
    }
}

#[test]
fn bad_settings_are_build_errors_naming_the_setting() {
    let clock = ManualClock::new();
    let cases: Vec<(CircuitBreakerBuilder<ManualClock>, &str)> = vec![
        (builder(&clock).failure_rate_threshold(-0.1), "failure_rate_threshold"),
        (builder(&clock).failure_rate_threshold(100.1), "failure_rate_threshold"),
        (builder(&clock).slow_calls(SEC, 250.0), "slow_call_rate_threshold"),
        (builder(&clock).slow_calls(Duration::ZERO, 50.0), "slow_call_duration"),
        (builder(&clock).count_window(0), "count_window"),
        (builder(&clock).time_window(Duration::ZERO), "time_window"),
        (builder(&clock).time_window_buckets(SEC, 0), "time_window_buckets"),
        (builder(&clock).half_open_calls(0), "half_open_calls"),
        (builder(&clock).half_open_max_wait(Duration::ZERO), "half_open_max_wait"),
        (builder(&clock).minimum_calls(0), "minimum_calls"),
        (builder(&clock).failure_count_threshold(0), "failure_count_threshold"),
        (builder(&clock).open_wait(Duration::ZERO), "open_wait"),
        (builder(&clock).backoff(OpenWait::exponential(SEC, SEC).jitter(-1.0)), "open_wait.jitter"),
    ];
    for (b, setting) in cases {
        let err = b.build().unwrap_err();
        assert_eq!(err.setting, setting, "{err}");
        assert!(err.to_string().starts_with(&format!("invalid setting `{setting}`")));
    }
}

#[test]
fn extreme_clock_readings_do_not_panic() {
    for start in [u64::MAX - 1_000, u64::MAX / 2] {
        let clock = ManualClock::starting_at(start);
        let b =
            builder(&clock).count_window(1).minimum_calls(1).half_open_calls(1).build().unwrap();
        calls(&b, &clock, "f", Duration::ZERO);
        let refused = b.try_acquire().unwrap_err();
        assert!(refused.until().is_some() && refused.retry_after().is_some());
        clock.advance(Duration::MAX);
        let _ = b.try_acquire().map(|p| p.failure());
        let _ = b.metrics();
    }
}

#[test]
fn breakers_permits_and_call_futures_cross_threads() {
    fn send_sync<T: Send + Sync>(_: &T) {}
    fn send<T: Send>(_: &T) {}
    let b = Arc::new(CircuitBreaker::builder().build().unwrap());
    send_sync(&*b);
    let permit = b.try_acquire().unwrap();
    send(&permit);
    permit.success();
    let owned = b.try_acquire_owned().unwrap();
    send_sync(&owned);
    owned.success();
    let call = b.call_async(async { Ok::<_, ()>(()) });
    send(&call);
    drop(call);
    std::thread::scope(|s| {
        s.spawn(|| b.call(|| Ok::<_, ()>(())).unwrap());
    });
}
