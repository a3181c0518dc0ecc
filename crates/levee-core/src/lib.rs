//! The shared foundation of [levee](https://docs.rs/levee): what every primitive is built on.
//!
//! - [`Clock`]: monotonic nanoseconds, injected as an instance, that async code can also
//!   sleep on ([`Clock::sleep_until`] returns a [`Sleep`]). [`FastClock`] (the calibrated
//!   TSC) or [`SystemClock`] (the OS clock) in production, [`CoarseClock`] (a recent reading
//!   kept by a background thread: one load) where a hot path can live with millisecond
//!   steps, [`ManualClock`] in tests, so timing behaviour is deterministic and no test sleeps
//!   (its sleeps complete when it is moved, or follow paused tokio time).
//! - [`block_on`]: runs a future on the calling thread, parking it while it sleeps: how
//!   levee's blocking calls wait on the same clocks as its async ones.
//! - [`sync`]: atomics, cells, locks and threads that become [loom](https://docs.rs/loom)'s
//!   under `--cfg loom`, plus [`sync::model`] so one test body runs both ways.
//! - [`LatencyRecorder`]: striped [hdrhistogram](https://docs.rs/hdrhistogram) recording with
//!   percentile snapshots.
//! - [`Listener`] / [`EventHook`]: how primitives report notable events.
//! - [`ConfigError`]: the one error every builder returns for a bad setting.
//! - [`Counter`]: a padded statistics counter.
//! - [`RetryAfter`]: how every refusal says when to come back.
//! - [`parse_duration`] / [`format_duration`]: durations in settings files (`"250ms"`), and
//!   `serde_duration` (feature `serde`) for `#[serde(with = ..)]` on `Duration` fields.
//! - [`random`]: cheap thread-local randomness for jitter.
//! - [`testing`]: how tests find the real servers they need (skipped locally, required in CI).
//!
//! ```
//! use std::time::Duration;
//! use levee_core::{Clock, EventHook, LatencyRecorder, ManualClock};
//!
//! // A primitive takes its time from a clock; a test moves it by hand.
//! let clock = ManualClock::new();
//! let started = clock.now();
//! clock.advance(Duration::from_millis(3));
//!
//! let latency = LatencyRecorder::new();
//! latency.record_nanos(clock.now() - started);
//! assert_eq!(latency.snapshot().p50.as_millis(), 3); // within 0.1 %
//!
//! // Sleeps are on the clock too: they complete when it is moved.
//! let wake_at = clock.now() + 1_000;
//! let mover = clock.clone();
//! let t = std::thread::spawn(move || {
//!     while mover.pending_sleeps() == 0 {
//!         std::thread::yield_now();
//!     }
//!     mover.set(wake_at);
//! });
//! levee_core::block_on(clock.sleep_until(wake_at));
//! t.join().unwrap();
//!
//! // Events are built only when someone listens.
//! let hook: EventHook<&str> = EventHook::none();
//! hook.emit(|| "never built");
//! ```
#![deny(unsafe_code)]

mod block_on;
mod clock;
mod coarse_clock;
mod config;
mod counter;
mod duration;
mod listener;
mod manual_clock;
pub mod random;
mod recorder;
mod retry_after;
#[cfg(feature = "serde")]
pub mod serde_duration;
mod sleep;
pub mod sync;
pub mod testing;
mod timer_thread;

pub use block_on::block_on;
pub use clock::{Clock, FastClock, SystemClock, nanos};
pub use coarse_clock::CoarseClock;
pub use config::ConfigError;
pub use counter::Counter;
pub use duration::{format_duration, parse_duration};
pub use listener::{EventHook, Listener, NoopListener};
pub use manual_clock::ManualClock;
pub use recorder::{LatencyRecorder, LatencySnapshot, MAX_TRACKABLE_NANOS};
pub use retry_after::RetryAfter;
pub use sleep::Sleep;
