//! Rate limiters, keyed limits, bulkheads and adaptive concurrency for
//! [levee](https://docs.rs/levee): what keeps a service from being overrun, and from
//! overrunning what it calls.
//!
//! | need | type | hot path |
//! |---|---|---|
//! | N per period, bursts of B | [`RateLimiter`] (GCRA) | one clock read, one CAS |
//! | the same, per client / key | [`KeyedRateLimiter`] | one exchange on a per-thread line + one CAS; memory reclaims itself |
//! | "N per minute" as operators say it | [`FixedWindowLimiter`], [`SlidingWindowLimiter`] | one or a few CAS |
//! | ramp up after idleness | [`WarmUpLimiter`] | one CAS + one add |
//! | even spacing, bounded queueing | [`Pacer`] | one CAS, then the caller sleeps |
//! | at most N in flight | [`Bulkhead`] | one CAS to take, one add to release |
//! | N that follows latency | [`AdaptiveBulkhead`] with [`Aimd`], [`Gradient2`], [`Vegas`] | as `Bulkhead`, plus sample counters |
//! | shed before latency collapses, from measured capacity | [`AdmissionController`] | a clock read + one add to admit; a clock read + two CAS + one add to complete |
//!
//! Everything is lock-free on the hot path (the keyed limiter reads a shard under levee-core's
//! `ShardLocks`: one exchange on the calling thread's own reader counter, no shared lock word),
//! allocates nothing per call, takes its time from an injected [`Clock`](levee_core::Clock)
//! ([`FastClock`](levee_core::FastClock), the TSC, by default; a
//! [`ManualClock`](levee_core::ManualClock) in tests), and refuses bad configuration at build
//! time with a [`ConfigError`](levee_core::ConfigError) naming the setting.
//!
//! **Refusals are values.** A rate limit refuses with [`Throttled`], which says when to come
//! back ([`Throttled::retry_after`], [`Throttled::earliest`]); every refusal implements
//! [`RetryAfter`] so retry policies and `Retry-After` headers can honour it. Asking for more
//! cells than the burst is a distinct [`InsufficientCapacity`]: waiting would never help.
//!
//! **One family.** Every rate limiter implements [`RateLimit`] (`check`, `check_n`,
//! `until_ready`, `until_n_ready`, `stats`, and `state`: the cells admissible now and the
//! time until full, see [`LimitState`]), one key of a keyed limiter too
//! ([`KeyedRateLimiter::key`]); all share one [`LimiterBuilder`] (clock, listeners, admission
//! counting) and one piece of instrumentation. [`AsyncRateLimit`] is the same for limiters
//! that decide over the network (a Redis GCRA); every [`RateLimit`] is one, with futures
//! that are ready at once. [`KeyedRateLimit`] is a limit per key, local or remote, each
//! key's limit an [`AsyncRateLimit`]. Code that takes these traits swaps GCRA for a sliding
//! window, or a local keyed limiter for a cluster-wide one, by changing the line that
//! builds it.
//!
//! **Async.** `until_ready().await` waits for capacity and is cancellation-safe (a dropped
//! future consumes nothing); a bulkhead's `acquire().await` queues FIFO with a maximum wait,
//! and permits are released on drop, also when the future is cancelled. Waits sleep on the
//! limiter's own clock ([`Clock::sleep_until`](levee_core::Clock::sleep_until)), so a test
//! with a `ManualClock` wakes them by moving the clock, or under `tokio::time::pause()` sees
//! the manual clock follow tokio's.
//!
//! **Observability.** Each limiter counts refusals and waits (admissions too when asked:
//! counting them costs an atomic add per call) and reports [`RateEvent`]s or
//! [`BulkheadEvent`]s to [`Listener`](levee_core::Listener)s.
//!
//! **tower** (feature `tower`, module `tower`): `RateLimitLayer`, `KeyedRateLimitLayer`
//! (key from the request by a closure), `BulkheadLayer` and `AdmissionLayer`, whose services are `Clone` and
//! share one limit across clones, and fail with a typed `LimitError` carrying the
//! retry-after. With the feature `http`, the rate-limit layers answer HTTP requests with
//! the IETF rate-limit header fields (`RateLimit-Policy`, `RateLimit`) and refuse with
//! `429` and `Retry-After` (`RateLimitHeaders`).
//!
//! ```
//! use std::time::Duration;
//! use levee_core::ManualClock;
//! use levee_limit::{Bulkhead, KeyedRateLimiter, Quota, RateLimiter, RetryAfter};
//!
//! let clock = ManualClock::new();
//!
//! // A global limit: 100 per second, bursts of 10.
//! let global = RateLimiter::with_clock(Quota::per_second(100).with_burst(10), clock.clone())?;
//! for _ in 0..10 {
//!     global.check()?;
//! }
//! let refusal = global.check().unwrap_err();
//! assert_eq!(refusal.retry_after(), Duration::from_millis(10));
//!
//! // Per client: 2 per second each.
//! let per_client = KeyedRateLimiter::<u32>::builder(Quota::per_second(2))
//!     .clock(clock.clone())
//!     .build()?;
//! assert!(per_client.check(&7).is_ok());
//! assert!(per_client.check(&7).is_ok());
//! assert_eq!(per_client.check(&7).unwrap_err().retry_after(), Duration::from_millis(500));
//!
//! // At most 4 calls in flight.
//! let bulkhead = Bulkhead::new(4)?;
//! let permit = bulkhead.try_acquire()?;
//! assert_eq!(bulkhead.in_flight(), 1);
//! drop(permit);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![forbid(unsafe_code)]

mod adaptive;
mod admission;
mod bulkhead;
mod error;
mod gcra;
mod keyed;
mod live;
mod meter;
mod pacer;
mod quota;
mod rate;
mod rate_limit;
mod state;
mod stats;
mod wait;
mod warmup;
mod window;

pub use adaptive::{
    AdaptiveBuilder, AdaptiveBulkhead, AdaptiveOwnedPermit, AdaptivePermit, Aimd, Gradient2,
    LimitAlgorithm, SampleWindow, Vegas,
};
pub use admission::{
    AdmissionBuilder, AdmissionController, AdmissionEvent, AdmissionPermit, AdmissionSettings,
    AdmissionStats, CpuGauge, CpuSource, MAX_ADMISSION_BUCKETS, OwnedAdmissionPermit, Shed,
};
pub use bulkhead::{
    Acquire, AcquireOwned, Bulkhead, BulkheadBuilder, BulkheadError, BulkheadEvent,
    BulkheadSettings, BulkheadStats, MAX_QUEUE, OwnedPermit, Permit,
};
pub use error::{CheckNError, InsufficientCapacity, RetryAfter, Throttled};
pub use keyed::{
    DefaultHasher, KeyLimit, KeyLimitPolicy, KeyedBuilder, KeyedRateLimiter, KeyedStats,
};
pub use meter::LimiterBuilder;
pub use pacer::{Pacer, PacerBuilder, PacerSettings, Reservation};
pub use quota::{Gcra, MAX_SPAN, Quota};
pub use rate::{RateLimiter, RateLimiterBuilder};
pub use rate_limit::{AsyncRateLimit, KeyedRateLimit, RateLimit};
pub use state::{LimitPolicy, LimitState};
pub use stats::{RateEvent, RateStats};
pub use wait::Jitter;
pub use warmup::{WarmUpBuilder, WarmUpLimiter, WarmUpSettings};
pub use window::{
    FixedWindowBuilder, FixedWindowLimiter, MAX_BUCKETS, MAX_WINDOW_LIMIT, SlidingWindowBuilder,
    SlidingWindowLimiter, SlidingWindowSettings, WindowQuota,
};

#[cfg(feature = "tower")]
#[cfg_attr(docsrs, doc(cfg(feature = "tower")))]
pub mod tower;

/// The fixed-quota check path, for the `reconfig` benchmark only (not part of the API).
#[doc(hidden)]
pub mod baseline;

/// The rate-limit header fields' rendering, for the fuzz target (`--cfg fuzzing`).
#[cfg(all(fuzzing, feature = "http"))]
#[doc(hidden)]
pub mod fuzz {
    pub use crate::tower::render_fields;
}
