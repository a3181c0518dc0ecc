//! Generations never alias: the state word counts transitions modulo 2^25, and however many
//! pass without a call recorded in the closed state (a dependency down for weeks, every trial
//! failing), a window holds only the results of the current closed episode, and the breaker
//! still opens at its threshold.
//!
//! Each test drives more than 2^25 transitions, so they run in release builds only (about a
//! second each there; `.ci/run` runs them in its release-only step):
//! `cargo test --release -p levee-breaker --test generations`.
#![cfg(not(loom))]

use std::time::Duration;

use levee_breaker::{CircuitBreaker, CircuitBreakerBuilder, State};
use levee_core::ManualClock;

/// Transitions the state word tells apart.
const GENERATIONS: u64 = 1 << 25;
const WAIT: Duration = Duration::from_millis(1);

/// Opens when 5 of the last 10 calls failed (at least 10 calls), after a 1 ms wait, one trial.
fn builder(clock: &ManualClock) -> CircuitBreakerBuilder<ManualClock> {
    CircuitBreaker::builder()
        .minimum_calls(10)
        .failure_rate_threshold(50.0)
        .open_wait(WAIT)
        .half_open_calls(1)
        .clock(clock.clone())
}

/// Moves an open (or closed) breaker through exactly `transitions` transitions, recording no
/// call in the closed state, and ends closed.
///
/// `outage`: open and half-open in turn, every trial failing, until an operator resets it (a
/// dependency down for weeks). Otherwise: tripped and reset in turn, closed episodes without a
/// call, the clock standing still.
fn transitions(
    b: &CircuitBreaker<ManualClock>,
    clock: &ManualClock,
    transitions: u64,
    outage: bool,
) {
    let mut left = transitions;
    if b.state() == State::Closed {
        b.trip();
        left -= 1;
    }
    assert_eq!(b.state(), State::Open);
    assert!(left % 2 == 1, "an odd number of steps leads from open to closed");
    for _ in 0..left / 2 {
        if outage {
            clock.advance(WAIT);
            b.try_acquire().expect("the wait has passed").failure();
        } else {
            b.reset();
            b.trip();
        }
    }
    b.reset();
    assert_eq!(b.state(), State::Closed);
}

/// A new closed episode: an empty window, and the breaker opens at its threshold, not before.
fn opens_at_its_threshold(b: &CircuitBreaker<ManualClock>, context: &str) {
    let m = b.metrics();
    assert_eq!((m.state, m.calls, m.failed_calls), (State::Closed, 0, 0), "{context}: empty");
    for _ in 0..5 {
        b.try_acquire().unwrap().success();
    }
    for _ in 0..4 {
        b.try_acquire().unwrap().failure();
    }
    let m = b.metrics();
    assert_eq!((m.state, m.calls, m.failed_calls), (State::Closed, 9, 4), "{context}: counted");
    b.try_acquire().unwrap().failure();
    assert_eq!(b.state(), State::Open, "{context}: 5 failures in 10 calls open the circuit");
}

fn never_alias(b: &CircuitBreaker<ManualClock>, clock: &ManualClock, outage: bool) {
    // Four failures in generation 0, below the minimum number of calls.
    for _ in 0..4 {
        b.try_acquire().unwrap().failure();
    }
    assert_eq!(b.metrics().failed_calls, 4);
    // Exactly 2^25 transitions later the generation number is 0 again: the old failures must
    // not come back (`reset` promises an empty window).
    transitions(b, clock, GENERATIONS, outage);
    opens_at_its_threshold(b, "2^25 transitions after the last call");
    // Between 2^24 and 2^25 transitions after the last recorded call, the last one's tags look
    // newer than the current generation to a modular comparison: records must not be refused.
    // (The opening just now was the first of them.)
    transitions(b, clock, GENERATIONS / 2 + GENERATIONS / 4 - 1, outage);
    opens_at_its_threshold(b, "1.5 x 2^24 transitions after the last call");
}

#[test]
#[cfg_attr(debug_assertions, ignore = "2^25 transitions: run in release")]
fn a_count_window_never_aliases_an_old_generation() {
    let clock = ManualClock::new();
    let b = builder(&clock).count_window(10).build().unwrap();
    never_alias(&b, &clock, true);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "2^25 transitions: run in release")]
fn a_time_window_never_aliases_an_old_generation() {
    // The clock stands still (operators trip and reset), so every call stays inside the
    // window by time: only generations can tell old calls from new ones.
    let clock = ManualClock::new();
    let b = builder(&clock).time_window(Duration::from_secs(10)).build().unwrap();
    never_alias(&b, &clock, false);
}

#[test]
#[cfg_attr(debug_assertions, ignore = "2^25 transitions: run in release")]
fn a_time_window_never_aliases_through_an_outage() {
    let clock = ManualClock::new();
    let b = builder(&clock).time_window(Duration::from_secs(10)).build().unwrap();
    never_alias(&b, &clock, true);
}
