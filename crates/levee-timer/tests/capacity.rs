//! Millions of pending timers fit, and all of them fire exactly once (memory per timer is
//! measured in `benches/timer.rs`).
//!
//! The 10-million case takes well over 20 s in an unoptimised build, so debug `cargo test`
//! skips it (`cargo test --release` runs it); the 1-million case always runs.

use levee_timer::{Precision, TimingWheel};

const HOUR: u64 = 3_600_000_000_000;

/// Deterministic pseudo-random deadlines within the next hour (xorshift64*).
fn deadlines(n: usize) -> impl Iterator<Item = u64> {
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n).map(move |_| {
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D) % HOUR
    })
}

fn pending_timers_fit(n: usize, mode: Precision) {
    let mut wheel = TimingWheel::builder().mode(mode).build().unwrap();
    let mut keys = Vec::with_capacity(n / 10 + 1);
    for (i, deadline) in deadlines(n).enumerate() {
        let key = wheel.insert(deadline, i as u32).unwrap();
        if i % 10 == 0 {
            keys.push(key);
        }
    }
    assert_eq!(wheel.len(), n);
    for key in &keys {
        assert!(wheel.cancel(*key).is_some());
    }
    let left = n - keys.len();
    assert_eq!(wheel.len(), left);
    // Half an hour in, the earlier timers have fired, none of them early.
    let half = HOUR / 2;
    let mut fired = 0;
    for (_, i) in wheel.advance(half) {
        assert_ne!(i % 10, 0, "a cancelled timer fired");
        fired += 1;
    }
    fired += wheel.advance(u64::MAX).count();
    assert_eq!(fired, left);
    assert!(wheel.is_empty());
}

#[test]
fn one_million_pending_timers_fit() {
    pending_timers_fit(1_000_000, Precision::Exact);
    pending_timers_fit(1_000_000, Precision::Slack);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "over 20 s unoptimised; run with --release")]
fn ten_million_pending_timers_fit() {
    pending_timers_fit(10_000_000, Precision::Exact);
}
