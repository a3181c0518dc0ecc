//! Property test: random operation sequences on one subscription (publish, receive, ack,
//! nack, term, in_progress, drop, advance the manual clock, tick, replay, purge) agree with a
//! naive model after every step, and draining at the end leaves every message acked exactly
//! once or dead-lettered, none lost.

use levee_queue::broker::conformance::model::{Op, run};
use proptest::prelude::*;

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (prop::option::weighted(0.4, 0u8..3), prop_oneof![3 => Just(0u8), 1 => 1u8..16], prop::option::weighted(0.3, 0u8..6))
            .prop_map(|(key, delay_ms, id)| Op::Publish { key, delay_ms, id }),
        4 => (any::<u8>(), 1u8..=4).prop_map(|(consumer, max)| Op::Receive { consumer, max }),
        3 => any::<u8>().prop_map(|handle| Op::Ack { handle }),
        2 => (any::<u8>(), prop::option::of(0u8..8)).prop_map(|(handle, delay_ms)| Op::Nack { handle, delay_ms }),
        1 => any::<u8>().prop_map(|handle| Op::Term { handle }),
        1 => any::<u8>().prop_map(|handle| Op::InProgress { handle }),
        1 => any::<u8>().prop_map(|handle| Op::Drop { handle }),
        3 => (1u8..12).prop_map(|ms| Op::Advance { ms }),
        1 => Just(Op::Tick),
        1 => Just(Op::ReplayAll),
        1 => Just(Op::PurgeOldest),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn subscription_matches_the_model(ops in prop::collection::vec(op(), 1..120)) {
        if let Err(e) = run(&ops) {
            prop_assert!(false, "{}", e);
        }
    }
}

/// Each verb and bad input at least once, in a fixed order.
#[test]
fn scripted_sequence_matches_the_model() {
    let ops = [
        Op::Publish { key: Some(0), delay_ms: 0, id: Some(1) },
        Op::Publish { key: Some(0), delay_ms: 0, id: Some(1) }, // duplicate
        Op::Publish { key: Some(0), delay_ms: 3, id: None },
        Op::Publish { key: None, delay_ms: 0, id: None },
        Op::Receive { consumer: 0, max: 4 },
        Op::InProgress { handle: 0 },
        Op::Nack { handle: 0, delay_ms: None },
        Op::Ack { handle: 0 }, // twice
        Op::Advance { ms: 11 },
        Op::Receive { consumer: 1, max: 4 },
        Op::Term { handle: 2 },
        Op::Drop { handle: 1 },
        Op::Advance { ms: 20 },
        Op::Tick,
        Op::ReplayAll,
        Op::PurgeOldest,
        Op::Receive { consumer: 0, max: 1 },
    ];
    run(&ops).unwrap();
}

/// Byte strings decode into operations (the fuzz target's input format) and run.
#[test]
fn decoded_bytes_run() {
    let bytes: Vec<u8> = (0..=255u8).flat_map(|b| [b, b.wrapping_mul(37)]).collect();
    run(&Op::decode(&bytes)).unwrap();
}
