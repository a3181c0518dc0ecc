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
