//! Cluster-wide rate limits on Redis that fail safe.
//!
//! A per-process limiter lets N replicas admit N times the limit. [`RedisRateLimiter`] keeps
//! one limit per key across every process that shares a Redis and a key prefix:
//!
//! - **GCRA in one round trip.** A server-side Lua script (`EVALSHA`, with `EVAL` when the
//!   server has not cached it yet) reads the server's clock (`TIME`: client clocks do not
//!   matter), decides, and stores the key's theoretical arrival time with an expiry, so a
//!   key's memory returns by itself once it has refilled. The arithmetic, the [`Quota`] and
//!   the refusals ([`Throttled`], [`CheckNError`]) are levee-limit's.
//! - **Fails safe.** A levee [`CircuitBreaker`](levee_breaker::CircuitBreaker) watches
//!   Redis and a timeout bounds every check. When Redis is slow or down, checks are decided
//!   by the [`FailMode`]: a local limit per key at a share of the quota (fail open, with
//!   bounds) or a refusal (fail closed). Trial calls after the breaker's open wait bring
//!   Redis back without anyone's help. No check ever hangs.
//! - **Leases for hot keys** ([`LeaseSettings`]): a process takes a small batch of cells in
//!   one round trip and spends them locally, with a documented precision bound.
//! - **One family with levee-limit's limiters.** One key's limit ([`RedisRateLimiter::key`],
//!   [`RedisKey`]) is an [`AsyncRateLimit`](levee_limit::AsyncRateLimit), so it goes into
//!   levee-policy's limiter stage and levee-limit's `RateLimitLayer`; the limiter itself is a
//!   [`KeyedRateLimit`](levee_limit::KeyedRateLimit), so it goes into the
//!   `KeyedRateLimitLayer` keyed per request. Refusals are the same [`Throttled`] values, and
//!   admissions report the key's state from the script's reply (no extra round trip), so
//!   the layers' rate-limit headers work on Redis too.
//!
//! Redis 5 or later (scripts replicate their effects, so reading `TIME` in a script is
//! allowed); Redis Cluster works too, each limiter key being one Redis key.
//!
//! ```
//! use std::time::Duration;
//! use levee_core::ManualClock;
//! use levee_limit::Quota;
//! use levee_redis::{FailMode, RedisRateLimiter};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), levee_redis::BuildError> {
//! // 100 per second per client across the cluster; bursts of 20.
//! // (Nothing listens on port 1 here: the example shows the fail-open path.)
//! let limiter = RedisRateLimiter::builder(Quota::per_second(100).with_burst(20))
//!     .prefix("api:per-client:")
//!     .timeout(Duration::from_millis(20))
//!     // While Redis is away, each process admits a quarter of the quota on its own.
//!     .fail_mode(FailMode::open(0.25))
//!     .clock(ManualClock::new()) // so that the retry-after below is exact
//!     .connect("redis://127.0.0.1:1/")?;
//!
//! // Redis cannot be reached: the local share decides (a burst of 5 of the 20).
//! for _ in 0..5 {
//!     limiter.check("client-7").await.expect("within the local share");
//! }
//! let refused = limiter.check("client-7").await.unwrap_err();
//! assert_eq!(refused.retry_after(), Duration::from_millis(40));
//! assert_eq!(limiter.stats().degraded, 6);
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]
// Under loom only the lease pool is exercised; the rest of the crate is not built or used.
#![cfg_attr(loom, allow(dead_code))]

// Under `--cfg loom` only the lease pool is built (the Redis client does not build there).
#[cfg(not(loom))]
mod error;
#[cfg(not(loom))]
mod key;
mod lease;
#[cfg(not(loom))]
mod limiter;
#[cfg(all(test, not(loom)))]
mod model_tests;
#[cfg(not(loom))]
mod script;
mod settings;
#[cfg(not(loom))]
mod stats;

#[cfg(not(loom))]
pub use error::BuildError;
#[cfg(not(loom))]
pub use key::RedisKey;
pub use levee_limit::{CheckNError, InsufficientCapacity, Quota, RetryAfter, Throttled};
#[cfg(not(loom))]
pub use limiter::{RedisLimiterBuilder, RedisRateLimiter, default_breaker};
pub use settings::{FailMode, LeaseSettings, MAX_BATCH, MAX_SPAN};
#[cfg(not(loom))]
pub use stats::RedisStats;

/// The reply decoder, for the fuzz target (`--cfg fuzzing`).
#[cfg(all(fuzzing, not(loom)))]
#[doc(hidden)]
pub mod fuzz {
    /// Parses `bytes` as a RESP reply and decodes it as the script's reply; returns the
    /// decoded fields, or `None` for a parse or decode error.
    pub fn decode(bytes: &[u8]) -> Option<(u32, u64, u64)> {
        let value = redis::parse_redis_value(bytes).ok()?;
        let reply = crate::script::Reply::decode(&value).ok()?;
        Some((reply.granted, reply.value, reply.server_now))
    }
}

/// Lease mode's cell pool, for the loom tests (`--cfg loom`).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_internals {
    use crate::lease::{self, Take};

    /// A pool of leased cells.
    #[derive(Debug, Default)]
    pub struct Pool(lease::Pool);

    impl Pool {
        /// Takes `n` cells at `now`: `Ok`, or `Err((left, expired))`.
        pub fn take(&self, n: u32, now: u64) -> Result<(), (u32, u32)> {
            match self.0.take(n, now) {
                Take::Taken => Ok(()),
                Take::Short { left, expired } => Err((left, expired)),
            }
        }

        /// Replaces the pool with `cells` cells usable until `expires`.
        pub fn fill(&self, cells: u32, expires: u64) {
            self.0.fill(cells, expires);
        }
    }
}
