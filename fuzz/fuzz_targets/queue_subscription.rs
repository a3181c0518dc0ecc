//! Drives one subscription of the in-process broker with an arbitrary sequence of publishes
//! (keys, delays, dedup ids), receives by two consumers, acks, nacks, terms, lease
//! extensions, drops, clock moves, ticks, replays and purges, comparing it with the
//! reference model after every step; then drains it: every message acked exactly once or
//! dead-lettered, none lost. Two input bytes make one operation (`Op::decode`).

#![no_main]

use levee_queue::broker::conformance::model::{Op, run};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Bounded so one input runs in milliseconds; longer inputs only repeat the same ground.
    let ops = Op::decode(&data[..data.len().min(2048)]);
    if let Err(divergence) = run(&ops) {
        panic!("{divergence}");
    }
});
