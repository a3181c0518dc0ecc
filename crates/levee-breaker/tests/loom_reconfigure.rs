//! `CircuitBreaker::reconfigure` racing calls. Plain `cargo test` runs each body once; under
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_reconfigure` loom explores every
//! interleaving (bounded by `LOOM_MAX_PREEMPTIONS`).
//!
//! What is checked: a call never waits for a change and never sees half of one (a decision
//! runs on the old settings or the new ones, whole); the window and the state survive a
//! change whatever it races with.

use std::sync::Arc;
use std::time::Duration;

use levee_breaker::{BreakerSettings, CircuitBreaker, OpenWait, SlidingWindow, State};
use levee_core::sync::{model, thread};
use levee_core::{Clock, ManualClock};

const SEC: Duration = Duration::from_secs(1);

fn settings(threshold: f64, wait: Duration, trials: u32) -> BreakerSettings {
    BreakerSettings {
        window: SlidingWindow::count(4),
        minimum_calls: 4,
        failure_rate_threshold: threshold,
        open_wait: OpenWait::fixed(wait),
        half_open_calls: trials,
        ..Default::default()
    }
}

fn breaker(clock: &ManualClock, settings: BreakerSettings) -> Arc<CircuitBreaker<ManualClock>> {
    Arc::new(CircuitBreaker::builder().settings(settings).clock(clock.clone()).build().unwrap())
}

/// A change of threshold racing a recorded call: the call lands in the window either way (the
/// window is kept), a success opens nothing under either setting, and the next failure is
/// judged on the new threshold alone (even one that leaves the window's tally as it was).
#[test]
fn the_window_survives_a_change_racing_a_call() {
    model(|| {
        let clock = ManualClock::new();
        let b = breaker(&clock, settings(100.0, 10 * SEC, 1));
        for _ in 0..3 {
            b.try_acquire().unwrap().failure();
        }
        b.try_acquire().unwrap().success(); // F F F S: 75 %, judged, under 100 %
        let caller = {
            let b = b.clone();
            thread::spawn(move || b.try_acquire().map(|p| p.success()).is_ok())
        };
        b.reconfigure(settings(50.0, 10 * SEC, 1)).unwrap();
        assert!(caller.join().unwrap(), "a closed breaker lets the call through");
        let m = b.metrics();
        // S F F S: 50 %, at the new threshold, but a success never opens the circuit.
        assert_eq!((m.state, m.calls, m.failed_calls), (State::Closed, 4, 2), "{m:?}");
        // S F F S -> S F F S with a failure evicting a failure: 50 % again, now judged.
        b.try_acquire().unwrap().failure();
        assert_eq!(b.state(), State::Open, "judged on the new threshold");
    });
}

/// A shorter open wait racing a caller of an open breaker: the caller is refused until the
/// old deadline or the new one (never another), or finds the new wait passed and gets the
/// trial; afterwards the period ends at the new deadline.
#[test]
fn a_shorter_wait_racing_an_acquire_gives_one_deadline_or_the_other() {
    model(|| {
        let clock = ManualClock::new();
        let b = breaker(&clock, settings(50.0, 10 * SEC, 1));
        b.trip();
        let start = clock.now();
        clock.advance(5 * SEC);
        let caller = {
            let b = b.clone();
            thread::spawn(move || {
                b.try_acquire_owned().map(|p| p.is_trial()).map_err(|e| e.until())
            })
        };
        b.reconfigure(settings(50.0, 5 * SEC, 1)).unwrap();
        let seen = caller.join().unwrap();
        let old = start + 10 * SEC.as_nanos() as u64;
        assert!(seen == Ok(true) || seen == Err(Some(old)), "{seen:?}");
        // Either the trial permit was dropped unused (the trial is free again) or the caller
        // was refused on the old deadline (the new one has passed now).
        assert!(b.try_acquire().unwrap().is_trial());
        assert_eq!(b.state(), State::HalfOpen);
    });
}

/// A change of `half_open_calls` racing the completion of a trial: the verdict is taken on
/// one count, whole. One trial is out and succeeds; with the old count (1) it closes the
/// circuit, with the new (2) it waits for a second trial; it never reopens or loses the
/// trial.
#[test]
fn a_trial_count_change_racing_a_trial_is_judged_on_one_count() {
    model(|| {
        let clock = ManualClock::new();
        let b = breaker(&clock, settings(50.0, 10 * SEC, 1));
        b.trip();
        clock.advance(10 * SEC);
        let trial = b.try_acquire_owned().unwrap();
        assert!(trial.is_trial());
        let t = thread::spawn(move || trial.success());
        b.reconfigure(settings(50.0, 10 * SEC, 2)).unwrap();
        t.join().unwrap();
        let m = b.metrics();
        match m.state {
            State::Closed => {}
            State::HalfOpen => {
                assert_eq!((m.calls, m.trials_in_flight), (1, 0), "the trial counted: {m:?}");
                b.try_acquire().unwrap().success();
                assert_eq!(b.state(), State::Closed, "two trials under the new count");
            }
            other => panic!("a successful trial left the breaker {other}: {m:?}"),
        }
        assert_eq!(b.settings().half_open_calls, 2);
    });
}
