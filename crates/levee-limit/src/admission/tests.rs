//! Unit tests of the rule, the gate and the settings; the overload simulation is in
//! `tests/admission.rs`, the window's model test in `window.rs`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_core::ManualClock;

use super::*;

const MS: Duration = Duration::from_millis(1);

/// A controller with 100 ms buckets over 1 s, no headroom (the estimate as it is).
fn controller(
    clock: &ManualClock,
    settings: AdmissionSettings,
) -> AdmissionController<ManualClock> {
    AdmissionController::builder()
        .settings(settings.window(Duration::from_secs(1), 10).headroom(1.0))
        .clock(clock.clone())
        .build()
        .unwrap()
}

/// `n` requests at once, each taking `latency`, then on to the start of the next 100 ms
/// bucket (so one bucket holds `n` completions of `latency`, if it is shorter than 100 ms).
fn fill_bucket(
    c: &AdmissionController<ManualClock>,
    clock: &ManualClock,
    n: u32,
    latency: Duration,
) {
    let start = clock.now();
    let permits: Vec<_> = (0..n).map(|_| c.try_acquire().unwrap()).collect();
    clock.advance(latency);
    drop(permits);
    clock.set((start / 100_000_000 + 1) * 100_000_000);
}

#[test]
fn nothing_is_shed_without_an_estimate() {
    let clock = ManualClock::new();
    let c = controller(&clock, AdmissionSettings::new());
    let permits: Vec<_> = (0..1000).map(|_| c.try_acquire().unwrap()).collect();
    assert_eq!(c.stats().capacity, None);
    assert_eq!(c.in_flight(), 1000);
    drop(permits);
    assert_eq!(c.in_flight(), 0);
}

#[test]
fn capacity_is_max_throughput_times_min_latency() {
    let clock = ManualClock::new();
    let c = controller(&clock, AdmissionSettings::new());
    fill_bucket(&c, &clock, 50, 40 * MS); // 500/s at 40 ms
    fill_bucket(&c, &clock, 20, 10 * MS); // 200/s at 10 ms
    // max 500/s x min 10 ms = 5.
    let s = c.stats();
    assert_eq!(s.capacity, Some(5));
    assert_eq!(s.min_latency, Some(10 * MS));
    assert_eq!(s.max_throughput, Some(500.0));
    assert_eq!(s.admitted, 70);
    let held: Vec<_> = (0..5).map(|_| c.try_acquire().unwrap()).collect();
    assert_eq!(c.try_acquire().unwrap_err(), Shed { in_flight: 6, capacity: 5 });
    assert_eq!(c.in_flight(), 5, "a shed request leaves no trace in flight");
    held.into_iter().for_each(AdmissionPermit::ignore);
    // Once the window has passed, the old figures are gone: no estimate, nothing shed.
    clock.advance(Duration::from_secs(1));
    assert_eq!(c.capacity(), None);
}

#[test]
fn a_headroom_lets_a_controller_at_one_in_flight_grow() {
    let clock = ManualClock::new();
    let c = AdmissionController::builder()
        .settings(AdmissionSettings::new().window(Duration::from_secs(1), 10).headroom(1.25))
        .clock(clock.clone())
        .build()
        .unwrap();
    // One request at a time, 10 ms each, for a whole bucket: 100/s x 10 ms = 1 in flight.
    for _ in 0..10 {
        let permit = c.try_acquire().unwrap();
        clock.advance(10 * MS);
        drop(permit);
    }
    // 1 x 1.25 rounds to 1; the headroom still allows one more, so the estimate can grow.
    assert_eq!(c.capacity(), Some(2));
    let held: Vec<_> = (0..2).map(|_| c.try_acquire().unwrap()).collect();
    assert_eq!(c.try_acquire().unwrap_err(), Shed { in_flight: 3, capacity: 2 });
    held.into_iter().for_each(AdmissionPermit::ignore);
}

#[test]
fn the_drain_bucket_comes_once_a_window_counted_from_the_start() {
    // Clocks starting on a window boundary and inside a window (a wall-clock reading, as
    // the shop's clock gives): the drain must not depend on where the clock began.
    for origin in [0, 1_796_610_152_000_000_000, 1_796_610_151_826_000_000] {
        let clock = ManualClock::starting_at(origin);
        let c = controller(&clock, AdmissionSettings::new());
        let built = clock.now() / 100_000_000;
        fill_bucket(&c, &clock, 4, 50 * MS); // 40/s at 50 ms: 2, in the bucket it was built in
        for bucket in built + 1..built + 11 {
            clock.set(bucket * 100_000_000);
            let halved = bucket == built + 10; // the window (10 buckets) later
            assert_eq!(c.capacity(), Some(if halved { 1 } else { 2 }), "{origin}: {bucket}");
        }
    }
}

#[test]
fn min_in_flight_is_a_floor_under_the_estimate() {
    let clock = ManualClock::new();
    let c = controller(&clock, AdmissionSettings::new().min_in_flight(3));
    fill_bucket(&c, &clock, 10, MS); // 100/s x 1 ms = 0.1: rounds to 0
    assert_eq!(c.capacity(), Some(0));
    let held: Vec<_> = (0..3).map(|_| c.try_acquire().unwrap()).collect();
    assert!(c.try_acquire().is_err());
    drop(held);
}

#[test]
fn ignored_permits_leave_no_sample() {
    let clock = ManualClock::new();
    let c = controller(&clock, AdmissionSettings::new());
    let p = c.try_acquire().unwrap();
    clock.advance(MS);
    p.ignore();
    clock.advance(Duration::from_millis(200));
    assert_eq!((c.in_flight(), c.capacity()), (0, None));
}

#[test]
fn the_cpu_gate_sheds_only_when_hot_and_cools_down_after_the_last_shed() {
    let clock = ManualClock::new();
    let cpu = CpuGauge::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&events);
    let c = AdmissionController::builder()
        .settings(
            AdmissionSettings::new()
                .window(Duration::from_secs(1), 10)
                .headroom(1.0)
                .cpu_threshold(0.8)
                .cool_down(Duration::from_millis(500)),
        )
        .cpu(cpu.clone())
        .listener(move |e: &AdmissionEvent| log.lock().unwrap().push(*e))
        .clock(clock.clone())
        .build()
        .unwrap();
    fill_bucket(&c, &clock, 20, 10 * MS); // capacity 2
    let held = [c.try_acquire().unwrap(), c.try_acquire().unwrap()];
    // Over capacity but CPU is cool: admitted.
    cpu.set(0.5);
    drop(c.try_acquire().unwrap());
    assert!(!c.stats().gate_open);
    // Hot: shed.
    cpu.set(0.9);
    assert!(c.try_acquire().is_err());
    // Cool again, but within the cool-down of that shed: still shed.
    cpu.set(0.1);
    clock.advance(Duration::from_millis(499));
    assert!(c.stats().gate_open);
    assert!(c.try_acquire().is_err());
    // The second shed restarted the cool-down; 500 ms after it, admitted again.
    clock.advance(Duration::from_millis(500));
    assert!(!c.stats().gate_open);
    drop(c.try_acquire().unwrap());
    drop(held);
    assert_eq!(c.stats().shed, 2);
    assert_eq!(events.lock().unwrap().len(), 2);
}

#[test]
fn a_closure_is_a_cpu_source() {
    let clock = ManualClock::new();
    let c = AdmissionSettings::new()
        .window(Duration::from_secs(1), 10)
        .cpu_threshold(0.5)
        .builder()
        .cpu(|| 1.0)
        .clock(clock.clone())
        .build()
        .unwrap();
    assert!(c.stats().gate_open);
}

#[test]
fn bad_settings_are_named() {
    let bad = |s: AdmissionSettings| s.build().unwrap_err().setting;
    assert_eq!(bad(AdmissionSettings::new().window(Duration::ZERO, 10)), "window");
    assert_eq!(bad(AdmissionSettings::new().window(Duration::from_secs(1), 0)), "buckets");
    assert_eq!(bad(AdmissionSettings::new().window(Duration::from_secs(100), 5000)), "buckets");
    assert_eq!(bad(AdmissionSettings::new().window(Duration::from_millis(5), 10)), "buckets");
    assert_eq!(bad(AdmissionSettings::new().min_in_flight(0)), "min_in_flight");
    assert_eq!(bad(AdmissionSettings::new().headroom(0.9)), "headroom");
    assert_eq!(bad(AdmissionSettings::new().headroom(f64::NAN)), "headroom");
    assert_eq!(bad(AdmissionSettings::new().cool_down(Duration::MAX)), "cool_down");
    assert_eq!(bad(AdmissionSettings::new().cpu_threshold(0.0)), "cpu_threshold");
    assert_eq!(bad(AdmissionSettings::new().cpu_threshold(f64::NAN)), "cpu_threshold");
    // A threshold with nothing to read CPU from.
    assert_eq!(bad(AdmissionSettings::new().cpu_threshold(0.8)), "cpu_threshold");
    assert!(AdmissionSettings::new().cool_down(Duration::ZERO).build().is_ok());
}

#[test]
fn settings_and_stats_in_settings_files() {
    let s: AdmissionSettings =
        serde_json::from_str(r#"{"window": "2s", "buckets": 20, "cpu_threshold": 0.75}"#).unwrap();
    assert_eq!(s, AdmissionSettings::new().window(Duration::from_secs(2), 20).cpu_threshold(0.75));
    let empty: AdmissionSettings = serde_json::from_str("{}").unwrap();
    assert_eq!(empty, AdmissionSettings::new());
    assert!(serde_json::from_str::<AdmissionSettings>(r#"{"windows": "2s"}"#).is_err());
    let back: AdmissionSettings =
        serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);

    let clock = ManualClock::new();
    let c = controller(&clock, AdmissionSettings::new());
    fill_bucket(&c, &clock, 20, 10 * MS);
    let stats = serde_json::to_value(c.stats()).unwrap();
    assert_eq!(stats["capacity"], 2);
    assert_eq!(stats["min_latency"], "10ms");
}

#[test]
fn the_estimate_is_cached_per_bucket() {
    let clock = ManualClock::new();
    let c = controller(&clock, AdmissionSettings::new());
    fill_bucket(&c, &clock, 20, 10 * MS);
    assert_eq!(c.capacity(), Some(2));
    // Completions in the current bucket do not move this bucket's estimate...
    fill_bucket_in_place(&c, &clock, 50, MS);
    assert_eq!(c.capacity(), Some(2));
    // ...the next bucket's does: 500/s x 1 ms = 0.5, rounded to 1.
    clock.advance(Duration::from_millis(100));
    assert_eq!(c.capacity(), Some(1));
}

/// `n` requests one after the other, each taking `latency`, staying in the bucket.
fn fill_bucket_in_place(
    c: &AdmissionController<ManualClock>,
    clock: &ManualClock,
    n: u32,
    latency: Duration,
) {
    for _ in 0..n {
        let permit = c.try_acquire().unwrap();
        clock.advance(latency);
        drop(permit);
    }
}
