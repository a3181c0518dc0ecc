//! Adaptive concurrency: the limit follows latency and drops within its bounds.

use std::sync::Arc;
use std::time::Duration;

use levee_core::ManualClock;
use levee_limit::{
    AdaptiveBulkhead, Aimd, BulkheadEvent, Gradient2, LimitAlgorithm, SampleWindow, Vegas,
};

/// Runs `windows` windows of `per_window` calls taking `rtt` each, `concurrency` at a time.
fn drive(
    b: &AdaptiveBulkhead<ManualClock>,
    clock: &ManualClock,
    windows: usize,
    concurrency: usize,
    rtt: Duration,
    drop_every: Option<usize>,
) {
    for w in 0..windows {
        let permits: Vec<_> =
            (0..concurrency.min(b.limit())).map(|_| b.try_acquire().unwrap()).collect();
        clock.advance(rtt);
        for (i, p) in permits.into_iter().enumerate() {
            if drop_every.is_some_and(|n| (w * concurrency + i) % n == 0) {
                p.dropped();
            } else {
                p.success();
            }
        }
        clock.advance(Duration::from_millis(100));
    }
}

fn adaptive(
    algorithm: impl LimitAlgorithm,
    initial: usize,
) -> (ManualClock, AdaptiveBulkhead<ManualClock>) {
    let clock = ManualClock::new();
    let b = AdaptiveBulkhead::builder(algorithm)
        .initial_limit(initial)
        .limits(5, 200)
        .window(Duration::from_millis(100), 1)
        .clock(clock.clone())
        .build()
        .unwrap();
    (clock, b)
}

#[test]
fn aimd_grows_under_use_and_backs_off_on_drops() {
    let (clock, b) = adaptive(Aimd::new(), 20);
    drive(&b, &clock, 30, 1000, Duration::from_millis(10), None);
    // One step per window while saturated; the first window closes with the second round.
    assert_eq!(b.limit(), 49);
    drive(&b, &clock, 50, 1000, Duration::from_millis(10), Some(1));
    assert_eq!(b.limit(), 5, "drops back off to the minimum, no lower");
}

#[test]
fn gradient2_follows_latency() {
    let (clock, b) = adaptive(Gradient2::new(), 20);
    drive(&b, &clock, 40, 1000, Duration::from_millis(10), None);
    let grown = b.limit();
    assert!(grown > 40, "steady latency grows the limit: {grown}");
    drive(&b, &clock, 40, 1000, Duration::from_millis(80), None);
    assert!(b.limit() < grown / 2, "latency x8 shrinks it: {grown} -> {}", b.limit());
    assert!(b.limit() >= 5);
}

#[test]
fn vegas_backs_off_when_a_queue_builds() {
    let (clock, b) = adaptive(Vegas::new(), 50);
    drive(&b, &clock, 5, 1000, Duration::from_millis(10), None);
    let grown = b.limit();
    assert!(grown > 50, "{grown}");
    drive(&b, &clock, 30, 1000, Duration::from_millis(60), None);
    assert!(b.limit() < grown, "{grown} -> {}", b.limit());
}

#[test]
fn app_limited_windows_do_not_grow_the_limit() {
    let (clock, b) = adaptive(Aimd::new(), 20);
    drive(&b, &clock, 20, 3, Duration::from_millis(10), None);
    assert_eq!(b.limit(), 20);
}

#[test]
fn ignored_calls_are_not_samples_and_limit_changes_are_reported() {
    let changes = Arc::new(std::sync::Mutex::new(Vec::new()));
    let sink = changes.clone();
    let clock = ManualClock::new();
    let b = AdaptiveBulkhead::builder(Aimd::new())
        .initial_limit(10)
        .limits(1, 100)
        .window(Duration::from_millis(10), 1)
        .bulkhead(|bh| {
            bh.listener(move |e: &BulkheadEvent| {
                if let BulkheadEvent::LimitChanged { from, to } = e {
                    sink.lock().unwrap().push((*from, *to));
                }
            })
        })
        .clock(clock.clone())
        .build()
        .unwrap();
    let p = b.try_acquire().unwrap();
    clock.advance(Duration::from_secs(1));
    p.ignore();
    assert_eq!(b.limit(), 10, "an ignored call is no sample");
    let p = b.try_acquire().unwrap();
    clock.advance(Duration::from_secs(1));
    p.dropped();
    assert_eq!(b.limit(), 9);
    assert_eq!(*changes.lock().unwrap(), vec![(20, 10), (10, 9)]);
    let owned = Arc::new(b);
    let p = owned.try_acquire_owned().unwrap();
    assert_eq!(owned.bulkhead().in_flight(), 1);
    drop(p);
    assert_eq!(owned.bulkhead().in_flight(), 0);
}

#[test]
fn adaptive_settings_are_validated() {
    let err =
        |b: levee_limit::AdaptiveBuilder<levee_core::FastClock>| b.build().unwrap_err().setting;
    assert_eq!(err(AdaptiveBulkhead::builder(Aimd::new()).limits(0, 10)), "min_limit");
    assert_eq!(err(AdaptiveBulkhead::builder(Aimd::new()).limits(10, 5)), "max_limit");
    assert_eq!(err(AdaptiveBulkhead::builder(Aimd::new()).initial_limit(5000)), "initial_limit");
    assert_eq!(err(AdaptiveBulkhead::builder(Aimd::new()).window(Duration::ZERO, 1)), "window");
    let w = SampleWindow::default();
    assert_eq!(Vegas::new().update(10, &w), 10, "no samples, no change");
}
