//! Concurrency checks of levee-core. Plain `cargo test` runs each body once; under
//! `RUSTFLAGS="--cfg loom" cargo test --release` loom explores every interleaving.

use std::time::Duration;

use levee_core::sync::{Arc, model, thread};
use levee_core::{Clock, LatencyRecorder, ManualClock};

/// Two threads record while a third takes a snapshot-and-reset: every sample ends up in
/// exactly one of the two reports.
#[test]
fn concurrent_record_and_snapshot_lose_no_sample() {
    model(|| {
        let recorder = Arc::new(LatencyRecorder::with_stripes(2));
        let writers: Vec<_> = (0..2)
            .map(|i| {
                let r = recorder.clone();
                thread::spawn(move || r.record(Duration::from_micros(10 + i)))
            })
            .collect();
        let first = recorder.snapshot_and_reset();
        for w in writers {
            w.join().unwrap();
        }
        let second = recorder.snapshot();
        assert_eq!(first.count + second.count, 2, "a sample was lost or counted twice");
    });
}

/// Concurrent advances all land: the clock ends at the sum and never reads backwards.
#[test]
fn manual_clock_advances_are_not_lost() {
    model(|| {
        let clock = ManualClock::new();
        let other = clock.clone();
        let t = thread::spawn(move || {
            other.advance_nanos(3);
        });
        let seen = clock.now();
        clock.advance_nanos(5);
        assert!(clock.now() >= seen);
        t.join().unwrap();
        assert_eq!(clock.now(), 8);
    });
}

/// Runs a future to completion: loom's executor under loom (which reports a lost wake-up as
/// a deadlock), levee's `block_on` otherwise (where a lost wake-up would hang the test).
fn run<F: std::future::Future>(future: F) -> F::Output {
    #[cfg(loom)]
    return loom::future::block_on(future);
    #[cfg(not(loom))]
    levee_core::block_on(future)
}

/// A sleep registering while another thread moves the clock to its deadline is woken: the
/// registration either sees the new time or is seen by the move (never neither).
#[test]
fn a_sleep_racing_a_move_of_the_clock_is_never_lost() {
    model(|| {
        let clock = ManualClock::new();
        let mover = clock.clone();
        let t = thread::spawn(move || {
            mover.advance_nanos(10);
        });
        run(clock.sleep_until(10));
        assert!(clock.now() >= 10);
        t.join().unwrap();
        assert_eq!(clock.pending_sleeps(), 0);
    });
}

/// Two sleeps with different deadlines and two moves racing them: each sleep completes once
/// its deadline is reached, and nothing stays registered.
#[test]
fn sleeps_and_moves_from_two_threads() {
    model(|| {
        let clock = ManualClock::new();
        let other = clock.clone();
        let t = thread::spawn(move || {
            other.set(5);
            run(other.sleep_until(8));
        });
        run(clock.sleep_until(3));
        clock.advance_nanos(8);
        t.join().unwrap();
        assert!(clock.now() >= 8);
        assert_eq!(clock.pending_sleeps(), 0);
    });
}
