//! Drives a `CircuitBreaker` (count and time windows, rate and count thresholds, slow calls,
//! fixed and exponential open waits, half-open trials with and without a time limit, manual
//! reset / trip / force open / disable) with arbitrary settings and operation sequences on a
//! `ManualClock`, against the reference state machine of the proptest model test. After every
//! step the decisions, refusal deadlines, state, window counts, metrics and transition events
//! must be equal.
//!
//! The reference is `crates/levee-breaker/tests/reference/mod.rs`, included here by path so
//! that the fuzzer and the model test check one and the same reference. Clock moves reach
//! months (past 2^32 ms, where a deadline kept modulo 2^32 ms would wrap).
#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use levee_breaker::{BreakerSettings, CircuitBreaker, OpenWait, Outcome, SlidingWindow};
use libfuzzer_sys::fuzz_target;

#[path = "../../crates/levee-breaker/tests/reference/mod.rs"]
mod reference;

use reference::{MS, Op};

#[derive(Debug, Arbitrary)]
enum Window {
    Count(u8),
    /// Length in ms, buckets.
    Time(u16, u8),
}

#[derive(Debug, Arbitrary)]
enum Wait {
    /// Milliseconds, up to `MAX_OPEN_WAIT` (24 days).
    Fixed(u32),
    /// An initial wait of 2^k / 8 s (exact in binary, as the reference's integer doubling
    /// needs) and a cap in seconds.
    Exponential(u8, u16),
}

#[derive(Debug, Arbitrary)]
struct Settings {
    window: Window,
    /// Hundredths of a percent.
    failure_rate: u16,
    slow_rate: u16,
    slow_ms: Option<u16>,
    slow_success_is_failure: bool,
    minimum_calls: u8,
    failure_count: Option<u8>,
    wait: Wait,
    half_open_calls: u8,
    half_open_max_ms: Option<u16>,
}

#[derive(Debug, Arbitrary)]
enum Step {
    AdvanceNs(u32),
    AdvanceMs(u16),
    /// Whole hours: up to ten days a step, so a run reaches months.
    AdvanceHours(u8),
    Acquire,
    Record(u8, u8, u16),
    RecordMeasured(u8, u8),
    Drop(u8),
    Check,
    Reset,
    Trip,
    ForceOpen,
    Disable,
}

fn outcome(o: u8) -> Outcome {
    match o % 9 {
        0..=3 => Outcome::Success,
        4..=7 => Outcome::Failure,
        _ => Outcome::Ignored,
    }
}

fn settings(s: &Settings) -> BreakerSettings {
    let window = match s.window {
        Window::Count(size) => SlidingWindow::count(u32::from(size % 32) + 1),
        Window::Time(ms, buckets) => SlidingWindow::Time {
            length: Duration::from_millis(u64::from(ms)),
            buckets: u32::from(buckets % 16) + 1,
        },
    };
    let open_wait = match s.wait {
        Wait::Fixed(ms) => {
            OpenWait::fixed(Duration::from_millis(u64::from(ms % (24 * 24 * 3_600_000)) + 1))
        }
        Wait::Exponential(k, cap) => OpenWait::exponential(
            Duration::from_millis(125 << (k % 8)),
            Duration::from_secs(u64::from(cap % 3_600) + 1),
        ),
    };
    BreakerSettings {
        window,
        failure_rate_threshold: f64::from(s.failure_rate % 10_001) / 100.0,
        slow_call_rate_threshold: f64::from(s.slow_rate % 10_001) / 100.0,
        slow_call_duration: s.slow_ms.map(|ms| Duration::from_millis(u64::from(ms % 500) + 1)),
        slow_success_is_failure: s.slow_success_is_failure,
        minimum_calls: u32::from(s.minimum_calls % 12) + 1,
        failure_count_threshold: s.failure_count.map(|n| u32::from(n % 8) + 1),
        open_wait,
        half_open_calls: u32::from(s.half_open_calls % 6) + 1,
        half_open_max_wait: s
            .half_open_max_ms
            .map(|ms| Duration::from_millis(u64::from(ms % 10_000) + 1)),
    }
}

fn op(step: &Step) -> Op {
    let index = |i: u8| usize::from(i);
    match *step {
        Step::AdvanceNs(ns) => Op::Advance(u64::from(ns)),
        Step::AdvanceMs(ms) => Op::Advance(u64::from(ms) * MS),
        Step::AdvanceHours(h) => Op::Advance(u64::from(h) * 3_600_000 * MS),
        Step::Acquire => Op::Acquire,
        Step::Record(i, o, ms) => Op::Record(index(i), outcome(o), u64::from(ms % 1_000)),
        Step::RecordMeasured(i, o) => Op::RecordMeasured(index(i), outcome(o)),
        Step::Drop(i) => Op::Drop(index(i)),
        Step::Check => Op::Check,
        Step::Reset => Op::Reset,
        Step::Trip => Op::Trip,
        Step::ForceOpen => Op::ForceOpen,
        Step::Disable => Op::Disable,
    }
}

#[derive(Debug, Arbitrary)]
struct Case {
    settings: Settings,
    steps: Vec<Step>,
}

fuzz_target!(|case: Case| {
    let Case { settings: s, steps } = case;
    let settings = settings(&s);
    if let Err(invalid) = settings.validate() {
        // Only a time window with buckets under 1 ms is out of range here: the builder must
        // refuse it the same way.
        let built = CircuitBreaker::builder().settings(settings).build();
        assert_eq!(built.err().map(|e| e.setting), Some(invalid.setting));
        return;
    }
    let ops: Vec<Op> = steps.iter().take(1_500).map(op).collect();
    if let Err(divergence) = reference::run(settings, &ops) {
        panic!("{divergence}");
    }
});
