//! levee-core in a few lines: take time from a clock, record latencies, report percentiles.
//!
//! `cargo run --release --example clock_and_latency`

use std::time::Duration;

use levee_core::{Clock, LatencyRecorder, SystemClock};

fn main() {
    let clock = SystemClock;
    let recorder = LatencyRecorder::new();

    std::thread::scope(|s| {
        for worker in 0..2u64 {
            let recorder = &recorder;
            s.spawn(move || {
                for i in 0..50_000u64 {
                    let start = clock.now();
                    // Some work whose cost varies with the input.
                    let mut x = i ^ worker;
                    for _ in 0..(i % 64) {
                        x = x.wrapping_mul(6364136223846793005).wrapping_add(1);
                    }
                    std::hint::black_box(x);
                    recorder.record_nanos(clock.now() - start);
                }
            });
        }
    });

    let snap = recorder.snapshot();
    println!("samples {}", snap.count);
    for (name, value) in [
        ("min", snap.min),
        ("p50", snap.p50),
        ("p90", snap.p90),
        ("p99", snap.p99),
        ("p99.9", snap.p999),
        ("max", snap.max),
    ] {
        println!("{name:>6} {value:?}");
    }
    assert!(snap.max >= snap.p50 && snap.p50 >= Duration::ZERO);
}
