//! Hierarchical timing wheels for millions of timers.
//!
//! [`TimingWheel<T>`] is a plain single-owner data structure (`&mut self`, no clock, no
//! threads): timers are a `u64` deadline in nanoseconds on the owner's
//! [`levee_core::Clock`] and a value `T`; the owner passes `now` and gets the due values
//! back. Insert, cancel and reset are O(1); the next occupied slot is found with bitmaps,
//! so idle time costs nothing to skip; storage is a chunked slab with generational keys, so
//! a stale key never touches someone else's timer. See the `wheel` module source for the
//! design (Varghese & Lauck 1987; Linux's 2016 non-cascading wheel for slack mode).
//!
//! Two layers build on it:
//!
//! - [`ShardedWheel<T>`]: thread-safe (`&self`), several wheels each behind its own lock;
//!   inserts go to the calling thread's shard, handles ([`TimerHandle`]) name their shard.
//!   One poller drains it and learns, without a lost wake-up, when to come back.
//! - [`TimerService<T, C>`](TimerService): a cloneable handle over a `ShardedWheel` on an
//!   injected [`levee_core::Clock`] `C` ([`FastClock`](levee_core::FastClock) by default),
//!   with a driver task (on tokio) that sleeps on the clock until the next deadline.
//!   `schedule(at, item)` from any thread (`at` a clock reading), due items on an
//!   [`Expirations`] stream or a callback, [`sleep`](TimerService::sleep) and
//!   [`timeout`](TimerService::timeout) futures on the same clock that cancel their timer
//!   when dropped, `max_pending` bounds, [`TimerStats`] (pending, fired, cancelled, lateness
//!   histogram) and [`TimerEvent`]s for [`levee_core::Listener`]s. On a
//!   [`ManualClock`](levee_core::ManualClock) a test fires half an hour of timers by moving
//!   the clock.
//!
//! # `TimingWheel` API
//!
//! | | |
//! |---|---|
//! | [`TimingWheel::new()`] | exact, 1 ms tick, start 0, unbounded |
//! | [`TimingWheel::builder()`] | [`TimingWheelBuilder`]: `tick`, `mode(`[`Precision`]`::{Exact, Slack})`, `max_pending`, `start`; `build()` -> `Result<_, ConfigError>` |
//! | [`insert(deadline, value)`](TimingWheel::insert) | -> `Result<`[`TimerKey`]`, `[`TimerError<T>`](TimerError)`>`; the only error is [`TimerError::Full`], which hands the value back |
//! | [`cancel(key)`](TimingWheel::cancel) | -> `Option<T>`; `None` for a stale or foreign key |
//! | [`reset(key, deadline)`](TimingWheel::reset) | -> `Result<(), TimerError>`: [`StaleKey`](TimerError::StaleKey) / [`ForeignKey`](TimerError::ForeignKey) |
//! | [`get`](TimingWheel::get), [`get_mut`](TimingWheel::get_mut), [`deadline`](TimingWheel::deadline), [`contains`](TimingWheel::contains) | look at a pending timer |
//! | [`next_deadline()`](TimingWheel::next_deadline) | -> `Option<u64>`: when to come back |
//! | [`poll_expired(now)`](TimingWheel::poll_expired) | -> `Option<(TimerKey, T)>`, one due timer per call ([`poll_expired_entry`](TimingWheel::poll_expired_entry) adds the deadline) |
//! | [`advance(now)`](TimingWheel::advance) | -> [`Drain`] iterator of every due `(TimerKey, T)` |
//! | [`len`](TimingWheel::len), [`is_empty`](TimingWheel::is_empty), [`compact()`](TimingWheel::compact), [`time()`](TimingWheel::time) | size, memory, the wheel's own time |
//!
//! # Guarantees
//!
//! - **Never early.** A timer is handed out only once a `now` at or after its deadline has
//!   been passed. Time never goes backwards for a wheel: a `now` earlier than the latest one
//!   (a stale clock reading) is treated as the latest. Ticks count from the builder's
//!   `start`, the wheel's first tick boundary: while every `now` is before it, nothing is
//!   handed out, and deadlines before it fire at `start`.
//! - **Bounded lateness.** [`Precision::Exact`]: less than one tick late (it fires at the
//!   first tick boundary at or after its deadline). [`Precision::Slack`]: less than one tick
//!   plus 8/63 (12.7 %) of the time that remained when it was inserted or reset.
//! - **Exactly once.** Each timer is handed out once, unless cancelled first; a cancelled
//!   timer is never handed out, a handed-out one can no longer be cancelled.
//! - **Any deadline.** Every `u64` is accepted: past deadlines are due at once, far ones
//!   (up to `u64::MAX`) sit on coarse levels. Nothing is clamped or dropped.
//! - **Bad keys are refused**, never undefined: fired, cancelled and foreign keys give
//!   `None` or a [`TimerError`].
//!
//! # Memory
//!
//! One timer costs `24 + size_of::<Option<T>>()` bytes (rounded to 8), in chunks of 1024:
//! 32 bytes for `T = ()`, 40 for `T = u64`, so 32 bytes of overhead beyond `T` (the target
//! was 64). `benches/timer.rs` measures it with a counting allocator: 40.0 live bytes per
//! `u64` timer at 1M and 10M timers (tokio-util's `DelayQueue::with_capacity`: 56.0; grown
//! from `DelayQueue::new()`, whose slab doubles: 58.7 and 94.0). A [`TimerService`] timer
//! also holds room for a waker: 48-49 bytes per `u64` item. Beyond the entries a wheel holds
//! its levels (a 128-slot near ring and 7 levels of 64 slots, 4.6 KiB, for exact 1 ms
//! wheels; 17 levels of 64 slots for slack). [`compact`](TimingWheel::compact) hands empty
//! chunks back.
//!
//! # Example
//!
//! ```
//! use std::time::Duration;
//! use levee_core::{Clock, ManualClock};
//! use levee_timer::TimingWheel;
//!
//! let clock = ManualClock::new();
//! let mut wheel = TimingWheel::new(); // 1 ms ticks, exact
//!
//! let now = clock.now();
//! let pay = wheel.insert(now + 30 * 60 * 1_000_000_000, "cancel unpaid order 17").unwrap();
//! let cart = wheel.insert(now + 15 * 60 * 1_000_000_000, "release cart 4").unwrap();
//!
//! // The order gets paid: its timer is cancelled and never fires.
//! assert_eq!(wheel.cancel(pay), Some("cancel unpaid order 17"));
//!
//! clock.advance(Duration::from_secs(15 * 60));
//! let due: Vec<_> = wheel.advance(clock.now()).map(|(_, what)| what).collect();
//! assert_eq!(due, ["release cart 4"]);
//! assert!(wheel.is_empty());
//! assert_eq!(wheel.cancel(cart), None, "a fired timer's key is stale");
//! ```
#![forbid(unsafe_code)]

mod error;
mod key;
#[cfg(not(loom))]
mod service;
mod sharded;
mod wheel;

/// Hooks for the fuzz targets in `fuzz/` (built only with `--cfg fuzzing`).
#[cfg(fuzzing)]
#[doc(hidden)]
pub mod fuzz {
    /// Walks every list of the wheel and checks its invariants (links, bitmaps, slot
    /// placement, the cached next event, no lost entries); panics on a violation.
    pub fn check_invariants<T>(wheel: &crate::TimingWheel<T>) {
        wheel.check_invariants();
    }
}

pub use error::TimerError;
pub use key::TimerKey;
#[cfg(not(loom))]
#[allow(deprecated)]
pub use service::ServiceBuilder;
#[cfg(not(loom))]
pub use service::{
    Elapsed, Expirations, Sleep, Timeout, TimerEvent, TimerService, TimerServiceBuilder, TimerStats,
};
pub use sharded::{Polled, ShardedWheel, TimerHandle};
#[allow(deprecated)]
pub use wheel::Builder;
pub use wheel::{Drain, Expired, MIN_TICK, Precision, TimingWheel, TimingWheelBuilder};
