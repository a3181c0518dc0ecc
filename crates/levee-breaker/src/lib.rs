//! A lock-free circuit breaker with real sliding windows.
//!
//! A [`CircuitBreaker`] watches the calls made to one downstream and stops calling it while it
//! is failing, so the caller fails fast instead of piling up timeouts, and the downstream gets
//! room to recover. It has Resilience4j's semantics with a hot path of a few nanoseconds:
//!
//! - **States** [`State::Closed`], [`State::Open`], [`State::HalfOpen`], plus
//!   [`State::ForcedOpen`] and [`State::Disabled`] for operators
//!   ([`force_open`](CircuitBreaker::force_open), [`disable`](CircuitBreaker::disable),
//!   [`reset`](CircuitBreaker::reset), [`trip`](CircuitBreaker::trip)), and
//!   [`probe`](CircuitBreaker::probe) (half-open now) for callers that know more than the
//!   breaker has seen, such as peers' reports (the `levee` facade's `shared_breaker`).
//! - **Windows**: the last N calls or the last N seconds in buckets ([`SlidingWindow`]),
//!   lock-free, with aggregates kept up to date on every record.
//! - **Thresholds**: failure rate, slow-call rate (with a slow-call duration), a minimum
//!   number of calls, and optionally an absolute number of failures.
//! - **Open wait**: fixed, or exponential backoff with a cap and jitter across consecutive
//!   reopenings ([`OpenWait`]); a refusal ([`Open`]) says until when.
//! - **Half-open**: exactly `half_open_calls` trial permits under any concurrency; a trial
//!   permit dropped without a result is handed back; with `half_open_max_wait`, trials that
//!   hang past the limit reopen the circuit instead of holding it half-open.
//! - **Classification**: a [`Classify`] decides which results are failures and which are
//!   ignored; a slow success may count as a failure.
//! - **Observability**: [`BreakerMetrics`] snapshots, and [`BreakerEvent`]s for every
//!   transition through levee-core's [`Listener`](levee_core::Listener)s.
//! - **Registry**: [`BreakerRegistry`] holds one breaker per downstream name, with shared
//!   defaults and per-name overrides.
//! - **tower** (feature `tower`): `CircuitBreakerLayer`.
//! - **serde** (feature `serde`): settings read from config files.
//!
//! ```
//! use std::time::Duration;
//! use levee_breaker::{CallError, CircuitBreaker, State};
//! use levee_core::ManualClock;
//!
//! let clock = ManualClock::new();
//! let breaker = CircuitBreaker::builder()
//!     .count_window(10)
//!     .minimum_calls(4)
//!     .failure_rate_threshold(50.0)
//!     .open_wait(Duration::from_secs(5))
//!     .half_open_calls(2)
//!     .clock(clock.clone())
//!     .build()
//!     .unwrap();
//!
//! // Two successes, two failures: 50 % of 4 calls, the circuit opens.
//! for ok in [true, true, false, false] {
//!     let permit = breaker.try_acquire().unwrap();
//!     if ok { permit.success() } else { permit.failure() }
//! }
//! assert_eq!(breaker.state(), State::Open);
//!
//! // Refused, with the time to come back.
//! let refused = breaker.call(|| Ok::<_, ()>("not called")).unwrap_err();
//! assert!(matches!(refused, CallError::Open(open) if open.retry_after() == Some(Duration::from_secs(5))));
//!
//! // After the wait, two trial calls decide.
//! clock.advance(Duration::from_secs(5));
//! let first = breaker.try_acquire().unwrap();
//! let second = breaker.try_acquire().unwrap();
//! assert!(breaker.try_acquire().is_err(), "only two trials");
//! first.success();
//! second.success();
//! assert_eq!(breaker.state(), State::Closed);
//! ```
//!
//! # How it works
//!
//! State, generation and the state's data share one `AtomicU64` (layout in `state.rs`): the
//! closed path asks "may I call?" with a single load, and every transition is one
//! compare-and-swap that also bumps the generation. A permit carries its generation; its
//! result only counts while the word still carries it, so a result arriving after a
//! transition is ignored, and a decision to open is taken by exactly one thread (the CAS
//! winner). Half-open trial counters live in the word too, so there can never be more than
//! `half_open_calls` trials, and the last trial's CAS moves the breaker to closed or open.
//! The open deadline is in the word as well (milliseconds since the breaker's origin, modulo
//! 2^32); beside the word, the winner of each transition notes when it entered, which gives
//! the deadline's high bits however long the circuit stays open (`entered.rs`).
//!
//! The windows tag every counter with the generation that wrote it, so a new closed generation
//! starts with an empty window without anyone clearing it, and a late writer of an old
//! generation cannot touch it (see `window/`). Generations are counted modulo 2^25, so every
//! transition also brings a few of the window's tags up to date: no tag is ever old enough to
//! be mistaken for a current one, however many transitions pass without a call.
//!
//! In the common case, a healthy backend, a success recorded in a full count window without
//! failures changes nothing observable and is skipped after two loads: the closed path then
//! writes no shared memory at all, so threads calling through one breaker do not contend. A
//! time window must count every success, but one that cannot change the verdict (no failure
//! or slow call in the window; or the minimum number of calls reached and the window judged
//! since its last bucket turned over) is counted in the recording thread's own stripe of the
//! current bucket, with a plain store, and the stripes are folded into the shared totals when
//! the bucket turns over or a record is judged. On [`FastClock`](levee_core::FastClock), the
//! default, such a success is bucketed by levee-core's
//! [`CoarseClock`](levee_core::CoarseClock) (a load instead of a clock read; it lags by about
//! a millisecond, so a success made in a bucket's first millisecond may count in the bucket
//! before); every judged record reads the exact clock.
#![forbid(unsafe_code)]

mod breaker;
mod builder;
mod classify;
mod entered;
mod error;
mod events;
mod permit;
mod registry;
mod settings;
mod state;
#[cfg(feature = "tower")]
mod tower;
mod window;

pub use breaker::CircuitBreaker;
#[allow(deprecated)]
pub use builder::Builder;
pub use builder::CircuitBreakerBuilder;
pub use classify::{Classify, DefaultClassifier, ErrorClassifier, Outcome, classify_errors};
pub use error::{CallError, Open};
pub use events::{BreakerEvent, BreakerMetrics, Reason};
/// How a refusal says when to come back: levee-core's trait, implemented by [`Open`] and
/// [`CallError`].
pub use levee_core::RetryAfter;
pub use permit::{OwnedPermit, Permit};
pub use registry::{BreakerOverrides, BreakerRegistry, RegistrySettings};
pub use settings::{
    BreakerSettings, MAX_COUNT_WINDOW, MAX_HALF_OPEN_CALLS, MAX_OPEN_WAIT, MAX_TIME_BUCKETS,
    OpenWait, SlidingWindow,
};
pub use state::{State, generation_is_newer};
#[cfg(feature = "tower")]
pub use tower::{CircuitBreakerLayer, CircuitBreakerService, ResponseFuture};

/// The sliding windows, reachable from the loom tests only (`--cfg loom`).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_internals {
    use crate::window::{self, Sample};

    /// A count window.
    #[derive(Debug)]
    pub struct CountWindow(window::CountWindow);

    impl CountWindow {
        /// A window of `size` calls.
        pub fn new(size: u32) -> Self {
            Self(window::CountWindow::new(size))
        }

        /// Records a call of `generation`.
        pub fn record(&self, generation: u32, failed: bool, slow: bool) {
            let sample = Sample { failed, slow };
            if !self.0.unchanged_by(generation, sample) {
                self.0.record(generation, sample, u64::MAX);
            }
        }

        /// (calls, failed, slow) of `generation`.
        pub fn tally(&self, generation: u32) -> (u64, u64, u64) {
            let t = self.0.tally(generation);
            (t.calls, t.failed, t.slow)
        }

        /// What a transition to `generation` does to the window.
        pub fn refresh(&self, generation: u32) {
            self.0.refresh(generation);
        }
    }

    /// A time window.
    #[derive(Debug)]
    pub struct TimeWindow(window::TimeWindow);

    impl TimeWindow {
        /// A window of `length` nanoseconds in `buckets` buckets.
        pub fn new(length: u64, buckets: u32) -> Self {
            Self(window::TimeWindow::new(length, buckets, 0))
        }

        /// Records a call of `generation` at `now` on the shared path; the tally to judge.
        pub fn record(&self, generation: u32, failed: bool, now: u64) -> Option<(u64, u64, u64)> {
            let t = self.0.record(generation, Sample { failed, slow: false }, now)?;
            Some((t.calls, t.failed, t.slow))
        }

        /// Records a success of `generation` at `now` as the breaker does: in this thread's
        /// stripe when that changes no verdict, else on the shared path.
        pub fn success(&self, generation: u32, now: u64, min_calls: u64) {
            let clean = self.0.is_clean(generation);
            if !self.0.add_success(generation, now, min_calls, clean) {
                self.record(generation, false, now);
            }
        }

        /// (calls, failed, slow) of `generation` at `now`.
        pub fn tally(&self, generation: u32, now: u64) -> (u64, u64, u64) {
            let t = self.0.tally(generation, now);
            (t.calls, t.failed, t.slow)
        }

        /// What a transition to `generation` does to the window, with every stripe refreshed
        /// (a transition refreshes one; which one a model's threads use is not fixed).
        pub fn refresh(&self, generation: u32) {
            self.0.refresh_all_stripes(generation);
        }
    }
}
