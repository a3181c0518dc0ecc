//! Loom: concurrent samples into one peak-EWMA estimate are each applied exactly once, in
//! some order, and the in-flight count balances.
//!
//! `RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release -p levee-client --test loom_ewma`
#![cfg(loom)]

use std::time::Duration;

use levee_client::loom_internals::Estimator;
use levee_core::sync::{Arc, model, thread};

const MS: u64 = 1_000_000;

fn estimator() -> Estimator {
    Estimator::new(Duration::from_millis(30), Duration::from_secs(10))
}

/// The estimate after applying `samples` one after the other.
fn sequential(samples: &[(u64, u64)], read_at: u64) -> f64 {
    let e = estimator();
    for &(rtt, at) in samples {
        e.observe(rtt, at);
    }
    e.estimate(read_at)
}

#[test]
fn racing_samples_land_once_each_in_some_order() {
    model(|| {
        let e = Arc::new(estimator());
        let other = e.clone();
        let a = (10 * MS, MS); // below the estimate: averaged in
        let b = (100 * MS, 2 * MS); // above: a new peak
        let t = thread::spawn(move || {
            other.start();
            other.observe(b.0, b.1);
            other.finish();
        });
        e.start();
        e.observe(a.0, a.1);
        e.finish();
        t.join().unwrap();
        let seen = e.estimate(3 * MS);
        let orders = [sequential(&[a, b], 3 * MS), sequential(&[b, a], 3 * MS)];
        assert!(orders.iter().any(|o| (o - seen).abs() < 1.0), "{seen} not in {orders:?}");
        assert_eq!(e.in_flight(), 0);
    });
}
