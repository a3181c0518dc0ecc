//! Concurrency checks of the breaker. Plain `cargo test` runs each body once; under
//! `RUSTFLAGS="--cfg loom" cargo test --release --test loom_breaker` loom explores every
//! interleaving (bounded by `LOOM_MAX_PREEMPTIONS`).
//!
//! The breaker is shared in a `std::sync::Arc` (its owned-permit API takes one); what loom
//! checks is the breaker's own atomics, which come from levee-core's shim.

use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use levee_breaker::{BreakerEvent, CircuitBreaker, State};
use std::sync::Arc;

use levee_core::ManualClock;
use levee_core::sync::{model, thread};

const WAIT: Duration = Duration::from_secs(10);

/// A breaker that opens on any failure and lets `trials` trial calls through.
fn breaker(clock: &ManualClock, trials: u32) -> CircuitBreaker<ManualClock> {
    CircuitBreaker::builder()
        .count_window(2)
        .minimum_calls(1)
        .failure_rate_threshold(50.0)
        .open_wait(WAIT)
        .half_open_calls(trials)
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// However the acquisitions interleave, a half-open breaker hands out at most N trial
/// permits at once, and dropped ones all come back.
#[test]
fn half_open_never_exceeds_its_trial_permits() {
    model(|| {
        let clock = ManualClock::new();
        let b = Arc::new(breaker(&clock, 2));
        b.trip();
        clock.advance(WAIT);
        let others: Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                thread::spawn(move || b.try_acquire_owned().ok())
            })
            .collect();
        let mut held = vec![b.try_acquire_owned().ok()];
        held.extend(others.into_iter().map(|t| t.join().unwrap()));
        let granted = held.iter().flatten().count();
        assert_eq!(granted, 2, "exactly two trial permits for three callers");
        assert_eq!(b.metrics().trials_in_flight, 2);
        drop(held);
        assert_eq!(b.state(), State::HalfOpen);
        assert_eq!(b.metrics().trials_in_flight, 0, "the dropped trials came back");
        b.try_acquire().expect("a trial is free again").success();
        b.try_acquire().expect("and another").success();
        assert_eq!(b.state(), State::Closed);
    });
}

/// Two concurrent trials of a breaker allowing two: both get a permit, the last result
/// decides, and there is never a third.
#[test]
fn concurrent_trials_decide_once() {
    model(|| {
        let clock = ManualClock::new();
        let b = Arc::new(breaker(&clock, 2));
        b.trip();
        clock.advance(WAIT);
        let other = {
            let b = b.clone();
            thread::spawn(move || b.try_acquire().map(|p| p.success()).is_ok())
        };
        let mine = b.try_acquire().map(|p| p.success()).is_ok();
        let theirs = other.join().unwrap();
        assert!(mine && theirs, "two trials allowed, two callers");
        assert_eq!(b.state(), State::Closed, "two successful trials close the circuit");
    });
}

/// A result recorded for an old generation never changes the state of the new one: the
/// failure of a permit issued in the first closed period races with a reset; afterwards the
/// breaker is closed with an empty window, whichever came first.
#[test]
fn old_generation_results_never_change_the_new_state() {
    model(|| {
        let clock = ManualClock::new();
        let b = Arc::new(breaker(&clock, 1));
        let permit = b.try_acquire_owned().unwrap();
        let late = thread::spawn(move || permit.failure());
        b.reset();
        late.join().unwrap();
        let m = b.metrics();
        assert_eq!(m.state, State::Closed, "{m:?}");
        assert_eq!((m.calls, m.failed_calls), (0, 0), "the new window holds no old result");
    });
}

/// A trial permit of an old half-open generation whose failure races with a reset cannot
/// reopen the circuit.
#[test]
fn old_trials_never_reopen_a_reset_circuit() {
    model(|| {
        let clock = ManualClock::new();
        let b = Arc::new(breaker(&clock, 1));
        b.trip();
        clock.advance(WAIT);
        let trial = b.try_acquire_owned().unwrap();
        assert!(trial.is_trial());
        let late = thread::spawn(move || trial.failure());
        b.reset();
        late.join().unwrap();
        assert_eq!(b.state(), State::Closed);
    });
}

/// Concurrent failures that each cross the threshold open the circuit exactly once.
#[test]
fn closed_to_open_happens_once() {
    model(|| {
        let clock = ManualClock::new();
        let opened = Arc::new(AtomicUsize::new(0));
        let count = opened.clone();
        let b = Arc::new(
            CircuitBreaker::builder()
                .count_window(4)
                .minimum_calls(1)
                .open_wait(WAIT)
                .clock(clock.clone())
                .listener(move |e: &BreakerEvent| {
                    if e.to == State::Open {
                        count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                })
                .build()
                .unwrap(),
        );
        // Both permits are taken while closed, so both failures belong to generation 0.
        let p1 = b.try_acquire().unwrap();
        let p2 = b.try_acquire_owned().unwrap();
        let t = thread::spawn(move || p2.failure());
        p1.failure();
        t.join().unwrap();
        assert_eq!(b.state(), State::Open);
        assert_eq!(opened.load(std::sync::atomic::Ordering::Relaxed), 1, "one transition");
    });
}

#[cfg(loom)]
mod windows {
    use levee_breaker::loom_internals::{CountWindow, TimeWindow};
    use levee_core::sync::{Arc, model, thread};

    const SEC: u64 = 1_000_000_000;

    /// Two writers lapping each other on the only slot of a window leave totals that agree
    /// with the slot: once a success evicts whatever is there, no failure remains.
    #[test]
    fn lapping_writers_keep_totals_consistent() {
        model(|| {
            let w = Arc::new(CountWindow::new(1));
            let t = {
                let w = w.clone();
                thread::spawn(move || w.record(0, true, false))
            };
            w.record(0, false, true);
            t.join().unwrap();
            let (calls, failed, slow) = w.tally(0);
            assert_eq!(calls, 1);
            assert!(
                failed + slow == 1,
                "exactly one outcome is held: {failed} failed, {slow} slow"
            );
            w.record(0, false, false);
            assert_eq!(w.tally(0), (1, 0, 0));
        });
    }

    /// A late writer of an old generation cannot add to the new generation's window.
    #[test]
    fn late_writers_cannot_touch_a_new_generation() {
        model(|| {
            let w = Arc::new(CountWindow::new(2));
            let t = {
                let w = w.clone();
                thread::spawn(move || w.record(0, true, false))
            };
            w.record(1, false, false);
            t.join().unwrap();
            let (_, failed, _) = w.tally(1);
            assert_eq!(failed, 0);
            w.record(1, false, false);
            w.record(1, false, false);
            assert_eq!(w.tally(1), (2, 0, 0));
        });
    }

    /// A transition's refresh racing a late writer of the generation before it: whichever
    /// comes first, the new generation starts empty and counts its own calls exactly.
    #[test]
    fn a_refresh_racing_a_late_writer_leaves_the_new_generation_empty() {
        model(|| {
            let w = Arc::new(CountWindow::new(1));
            w.record(0, false, false);
            let t = {
                let w = w.clone();
                thread::spawn(move || w.record(0, true, true))
            };
            w.refresh(1);
            t.join().unwrap();
            assert_eq!(w.tally(1), (0, 0, 0), "the late failure is not in generation 1");
            w.record(1, true, false);
            assert_eq!(w.tally(1), (1, 1, 0));
            w.record(1, false, false);
            assert_eq!(w.tally(1), (1, 0, 0), "the failure left, nothing else stayed");
        });
    }

    /// The same race on a time window's totals and buckets.
    #[test]
    fn a_refresh_racing_a_late_time_window_writer_leaves_the_new_generation_empty() {
        model(|| {
            let w = Arc::new(TimeWindow::new(2 * SEC, 1));
            w.record(0, false, 0);
            let t = {
                let w = w.clone();
                thread::spawn(move || w.record(0, true, 0))
            };
            w.refresh(1);
            t.join().unwrap();
            assert_eq!(w.tally(1, 0), (0, 0, 0));
            w.record(1, true, SEC);
            assert_eq!(w.tally(1, SEC), (1, 1, 0));
            assert_eq!(w.tally(1, 3 * SEC), (0, 0, 0), "its bucket left with its failure");
        });
    }

    /// A judgement never misses a success counted before it, even while a thread hands that
    /// success's stripe over to the shared totals (a stripe's owner folds it when it counts in
    /// a new period; here the next thread to hold the same slot number does); and every
    /// success is counted once in the end.
    #[test]
    fn a_judgement_counts_every_stripe_success_before_it() {
        // The race (the judge reads the totals, then the folder folds and restarts, then the
        // judge reads the stripe) takes three preemptions in this shape: explore up to three
        // whatever LOOM_MAX_PREEMPTIONS says (a reader that reads the totals first is caught).
        let mut builder = loom::model::Builder::new();
        builder.preemption_bound = Some(3);
        builder.check(|| {
            let w = Arc::new(TimeWindow::new(10 * SEC, 10));
            let first = {
                let w = w.clone();
                thread::spawn(move || {
                    w.success(0, 0, 1);
                    w.success(0, 0, 1);
                })
            };
            first.join().unwrap(); // two successes in its stripe, in period 0
            w.record(0, false, SEC); // moves the head to period 1
            let next = {
                let w = w.clone();
                // Takes the slot the first thread gave back, counts in period 1: folds.
                thread::spawn(move || w.success(0, SEC, 1))
            };
            let (calls, _, _) = w.record(0, false, SEC).unwrap();
            assert!(calls >= 4, "the first thread's successes are seen: {calls}");
            next.join().unwrap();
            assert_eq!(w.tally(0, SEC), (5, 0, 0), "each success counted once");
        });
    }

    /// A success counted in a stripe while the head moves counts in the old period or the new
    /// one, never both, never lost.
    #[test]
    fn stripe_successes_racing_a_new_period_land_in_one_of_them() {
        model(|| {
            let w = Arc::new(TimeWindow::new(10 * SEC, 10));
            let owner = {
                let w = w.clone();
                thread::spawn(move || w.success(0, 0, 1))
            };
            w.record(0, false, SEC);
            owner.join().unwrap();
            assert_eq!(w.tally(0, SEC).0, 2, "both counted at period 1");
            let at_10 = w.tally(0, 10 * SEC).0;
            assert!(at_10 == 1 || at_10 == 2, "period 0 left: {at_10}");
            assert_eq!(w.tally(0, 11 * SEC), (0, 0, 0), "period 1 left too");
        });
    }

    /// A transition's refresh racing a stripe's owner: the new generation's window starts
    /// empty, and the owner's success of it is counted.
    #[test]
    fn a_refresh_racing_a_stripe_owner_leaves_the_new_generation_empty() {
        model(|| {
            let w = Arc::new(TimeWindow::new(10 * SEC, 1));
            let owner = {
                let w = w.clone();
                thread::spawn(move || {
                    w.success(0, 0, 1);
                    w.success(1, 0, 1);
                })
            };
            w.refresh(1);
            owner.join().unwrap();
            assert_eq!(w.tally(1, 0), (1, 0, 0), "generation 0's success is not counted");
        });
    }

    /// A call recorded while its bucket is evicted is counted at most once and never drives a
    /// total negative: once every period has left, the window is empty.
    #[test]
    fn eviction_racing_a_record_keeps_totals_consistent() {
        model(|| {
            let w = Arc::new(TimeWindow::new(4 * SEC, 2));
            let t = {
                let w = w.clone();
                thread::spawn(move || w.record(0, true, 0))
            };
            w.record(0, false, 4 * SEC); // same bucket, two periods later: evicts period 0
            t.join().unwrap();
            // The failure was evicted with its period, dropped as too late, landed in the new
            // period, or (its counters being separate words) partly both; never twice.
            let (calls, failed, slow) = w.tally(0, 4 * SEC);
            assert!(
                (1..=2).contains(&calls) && failed <= 1 && slow == 0,
                "{calls} {failed} {slow}"
            );
            assert_eq!(w.tally(0, 100 * SEC), (0, 0, 0), "all periods left");
        });
    }
}

/// Two transitions race (an operator resets while another trips); whichever wins last, its
/// entry time is the one noted, so an open circuit found 2^32 ms later (where the state word's
/// deadline wraps) lets a trial through.
#[test]
fn the_last_transition_notes_its_entry_time() {
    model(|| {
        let clock = ManualClock::new();
        let b = Arc::new(breaker(&clock, 1));
        b.trip();
        let other = {
            let b = b.clone();
            thread::spawn(move || b.reset())
        };
        b.trip();
        other.join().unwrap();
        clock.advance(Duration::from_millis(1 << 32) + WAIT / 2);
        match b.state() {
            State::Open => assert!(b.try_acquire().unwrap().is_trial(), "the wait passed long ago"),
            state => assert_eq!(state, State::Closed),
        }
    });
}

/// A caller that finds the circuit just opened, before the opener noted its entry time, is
/// refused until the exact deadline.
#[test]
fn a_caller_racing_an_opening_gets_the_exact_deadline() {
    model(|| {
        let clock = ManualClock::new();
        clock.advance(Duration::from_millis(5 * (1 << 32)));
        let b = Arc::new(breaker(&clock, 1));
        let opener = {
            let b = b.clone();
            thread::spawn(move || b.trip())
        };
        let seen = b.try_acquire().map(|p| p.success()).map_err(|open| open.until());
        opener.join().unwrap();
        let deadline = levee_core::Clock::now(&clock) + WAIT.as_nanos() as u64;
        assert!(seen == Ok(()) || seen == Err(Some(deadline)), "{seen:?}");
        assert_eq!(b.try_acquire().unwrap_err().until(), Some(deadline));
    });
}

/// With a half-open time limit, a caller that sees the half-open state before its entry
/// time is stored must not mistake the previous half-open episode's time for it.
#[test]
fn a_new_half_open_state_is_never_timed_out_by_an_old_one() {
    model(|| {
        let clock = ManualClock::new();
        let b = Arc::new(
            CircuitBreaker::builder()
                .count_window(2)
                .minimum_calls(1)
                .open_wait(WAIT)
                .half_open_calls(2)
                .half_open_max_wait(WAIT / 2)
                .clock(clock.clone())
                .build()
                .unwrap(),
        );
        // A first half-open episode at t = WAIT, failed at once: open again until 2 * WAIT.
        b.trip();
        clock.advance(WAIT);
        let (x, y) = (b.try_acquire().unwrap(), b.try_acquire().unwrap());
        x.failure();
        y.failure();
        assert_eq!(b.state(), State::Open);
        clock.advance(WAIT);
        // Two callers race into the second episode; neither may see a timeout.
        let other = {
            let b = b.clone();
            thread::spawn(move || b.try_acquire_owned().map(|p| p.is_trial()))
        };
        let mine = b.try_acquire_owned().map(|p| p.is_trial());
        let theirs = other.join().unwrap();
        assert_eq!((mine, theirs), (Ok(true), Ok(true)), "two trials, no timeout");
        assert_eq!(b.state(), State::HalfOpen);
    });
}
