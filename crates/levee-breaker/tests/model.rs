//! levee's breaker against a plain single-threaded reference state machine.
//!
//! Random settings and random sequences of (advance the clock, acquire, record a permit's
//! outcome and duration, drop a permit, check, reset / trip / force open / disable) run on
//! both. After every step the decisions (permit or refusal, until when), the state, the
//! window's counts, the metrics and the transition events must be equal.
//!
//! The reference and the step-by-step comparison live in `reference/mod.rs`, which the
//! `breaker` fuzz target shares; this file only generates the settings and sequences.
#![cfg(not(loom))]

mod reference;

use std::time::Duration;

use levee_breaker::{BreakerSettings, OpenWait, Outcome, SlidingWindow};
use proptest::prelude::*;
use reference::{MS, Op, run};

// ---------------------------------------------------------------------------------------------
// Operations and settings.

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![4 => Just(Outcome::Success), 4 => Just(Outcome::Failure), 1 => Just(Outcome::Ignored)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2_500u64).prop_map(|ms| Op::Advance(ms * MS)),
        2 => (0..3 * MS).prop_map(Op::Advance),
        1 => prop::sample::select(vec![1, MS - 1, MS, MS + 1]).prop_map(Op::Advance),
        12 => Just(Op::Acquire),
        8 => (any::<usize>(), outcome(), 0..300u64).prop_map(|(i, o, d)| Op::Record(i, o, d)),
        4 => (any::<usize>(), outcome()).prop_map(|(i, o)| Op::RecordMeasured(i, o)),
        2 => any::<usize>().prop_map(Op::Drop),
        2 => Just(Op::Check),
        1 => Just(Op::Reset),
        1 => Just(Op::Trip),
        1 => Just(Op::ForceOpen),
        1 => Just(Op::Disable),
    ]
}

fn settings() -> impl Strategy<Value = BreakerSettings> {
    let window = prop_oneof![
        (1..7u32).prop_map(SlidingWindow::count),
        prop::sample::select(vec![1u32, 2, 5, 10])
            .prop_map(|buckets| SlidingWindow::Time { length: Duration::from_secs(10), buckets }),
    ];
    let open_wait = prop_oneof![
        (1..5u64).prop_map(|s| OpenWait::fixed(Duration::from_millis(s * 700))),
        Just(OpenWait::exponential(Duration::from_millis(500), Duration::from_secs(4))),
    ];
    (
        window,
        prop::sample::select(vec![0.0, 25.0, 50.0, 100.0]),
        prop::sample::select(vec![50.0, 100.0]),
        prop::option::of(Just(Duration::from_millis(100))),
        any::<bool>(),
        1..6u32,
        prop::option::weighted(0.3, 1..4u32),
        open_wait,
        1..4u32,
        prop::option::weighted(0.4, (1..4_000u64).prop_map(Duration::from_millis)),
    )
        .prop_map(|(window, fr, sr, slow, slow_fails, min, count, open_wait, trials, max)| {
            BreakerSettings {
                window,
                failure_rate_threshold: fr,
                slow_call_rate_threshold: sr,
                slow_call_duration: slow,
                slow_success_is_failure: slow_fails,
                minimum_calls: min,
                failure_count_threshold: count,
                open_wait,
                half_open_calls: trials,
                half_open_max_wait: max,
            }
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn breaker_matches_the_reference(settings in settings(), ops in prop::collection::vec(op(), 1..120)) {
        run(settings, &ops).map_err(TestCaseError::fail)?;
    }
}

/// A long run of one configuration with many calls, to reach deep backoff and window wrap.
#[test]
fn long_sequences_match_the_reference() {
    let mut runner = proptest::test_runner::TestRunner::new(ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    });
    runner
        .run(&(settings(), prop::collection::vec(op(), 500..1500)), |(s, ops)| {
            run(s, &ops).map_err(TestCaseError::fail)
        })
        .unwrap();
}
