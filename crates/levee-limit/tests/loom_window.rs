//! Loom: the sliding window's bucket reset loses no count, and concurrent checks never
//! admit more than the limit.

use std::time::Duration;

use levee_core::ManualClock;
use levee_core::sync::{Arc, model, thread};
use levee_limit::{FixedWindowLimiter, SlidingWindowLimiter, WindowQuota};

fn sliding(limit: u32, clock: &ManualClock) -> SlidingWindowLimiter<ManualClock> {
    SlidingWindowLimiter::builder(WindowQuota::new(limit, Duration::from_millis(20)))
        .buckets(2)
        .clock(clock.clone())
        .build()
        .unwrap()
}

#[test]
fn stale_bucket_reset_loses_no_count() {
    model(|| {
        let clock = ManualClock::new();
        let window = Arc::new(sliding(100, &clock));
        window.record(5); // bucket 0
        // Two laps later bucket 0's slot is stale; both threads count in the new bucket,
        // racing to reset it.
        clock.advance(Duration::from_millis(40));
        let other = window.clone();
        let t = thread::spawn(move || other.record(1));
        window.record(1);
        t.join().unwrap();
        assert_eq!(window.count(), 2);
    });
}

#[test]
fn concurrent_sliding_checks_respect_the_limit() {
    model(|| {
        let clock = ManualClock::new();
        let window = Arc::new(sliding(1, &clock));
        let other = window.clone();
        let t = thread::spawn(move || other.check().is_ok());
        let mine = window.check().is_ok();
        let theirs = t.join().unwrap();
        assert!(!(mine && theirs), "both admitted over a limit of one");
        assert!(window.count() <= 1);
    });
}

#[test]
fn concurrent_fixed_window_checks_admit_exactly_the_limit() {
    model(|| {
        let clock = ManualClock::new();
        let window = Arc::new(
            FixedWindowLimiter::builder(WindowQuota::new(1, Duration::from_millis(10)))
                .clock(clock.clone())
                .build()
                .unwrap(),
        );
        let other = window.clone();
        let t = thread::spawn(move || other.check().is_ok());
        let mine = window.check().is_ok();
        let theirs = t.join().unwrap();
        assert!(mine ^ theirs, "exactly one admitted");
    });
}
