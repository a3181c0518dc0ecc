//! levee keeps services up under load and faults: rate limiters, bulkheads, circuit breakers,
//! retry, timeouts, hedging and fallbacks that compose into one pipeline, plus timing wheels,
//! all on an injected clock, cheap on the hot path, and observable.
//!
//! This crate re-exports every levee crate behind a feature of the same name: [`limit`]
//! (`limit`), [`breaker`] (`breaker`), [`policy`] (`policy`), [`timer`] (`timer`), [`cache`]
//! (`cache`), [`queue`] (`queue`), all on by default, and `redis` (levee-redis, cluster-wide
//! rate limits on Redis), `nats` (levee-nats, the `Broker` trait on NATS JetStream) and
//! `client` (levee-client, the HTTP service client with mutual TLS), off by default as they
//! bring in a Redis, NATS or HTTP client. The `tower` and
//! `serde` features switch on the tower layers and serde settings of the crates that have
//! them; `http` adds the IETF `RateLimit` header fields to levee-limit's rate-limit layers.
//! [`core`] is always there; [`prelude`] brings the everyday names into scope.
//! [`shared_breaker`] (with `breaker` and `queue`) lets the breakers of a service's replicas
//! share what they learn through any broker.
//!
//! # Guarding an HTTP call
//!
//! A pipeline around a (fake) async HTTP client: an overall deadline that the client sees,
//! retries with jittered backoff that a retry budget keeps in check, a circuit breaker that
//! stops calling a failing backend (and whose retry-after the retries wait out), a rate
//! limit and a bulkhead that protect the backend, a per-attempt timeout, and a cached answer
//! when the circuit is open.
//!
//! ```
//! use std::sync::Arc;
//! use std::sync::atomic::{AtomicU32, Ordering};
//! use std::time::Duration;
//! use levee::prelude::*;
//!
//! /// A stand-in for reqwest or hyper: the first two calls get a 503.
//! struct HttpClient {
//!     calls: AtomicU32,
//! }
//!
//! #[derive(Debug, PartialEq)]
//! enum HttpError {
//!     Status(u16),
//! }
//!
//! impl HttpClient {
//!     async fn get(&self, url: &str, timeout: Option<Duration>) -> Result<String, HttpError> {
//!         assert!(timeout.is_some(), "the deadline is passed down");
//!         tokio::time::sleep(Duration::from_millis(20)).await; // the network
//!         match self.calls.fetch_add(1, Ordering::Relaxed) {
//!             0 | 1 => Err(HttpError::Status(503)),
//!             _ => Ok(format!("200 OK from {url}")),
//!         }
//!     }
//! }
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)]
//! # async fn main() -> Result<(), ConfigError> {
//! let client = Arc::new(HttpClient { calls: AtomicU32::new(0) });
//! let breaker = Arc::new(
//!     CircuitBreaker::builder().failure_rate_threshold(50.0).minimum_calls(20).build()?,
//! );
//! let pipeline = Pipeline::builder()
//!     .fallback(Fallback::value("cached page".to_string()).on_kinds([ErrorKind::CircuitOpen]))
//!     .timeout(Duration::from_secs(2))
//!     .retry(
//!         Retry::builder()
//!             .max_attempts(4)
//!             .backoff(Backoff::exponential(Duration::from_millis(50), Duration::from_secs(1)).with_jitter(0.2))
//!             .budget(RetryBudget::builder().ratio(0.2).min_per_sec(10).build_shared()?)
//!             // A 404 will not get better by asking again.
//!             .retry_on_error(|e: &PolicyError<HttpError>| !matches!(e, PolicyError::Operation(HttpError::Status(404))))
//!             .build()?,
//!     )
//!     .breaker(breaker.clone())
//!     .limiter(Arc::new(RateLimiter::new(Quota::per_second(100))?))
//!     .bulkhead(Arc::new(Bulkhead::new(32)?))
//!     .timeout(Duration::from_millis(300))
//!     .build()?;
//!
//! let page = pipeline
//!     .execute(|ctx| {
//!         let client = client.clone();
//!         async move { client.get("https://shop.example/products/17", ctx.remaining()).await }
//!     })
//!     .await;
//! assert_eq!(page.unwrap(), "200 OK from https://shop.example/products/17");
//! assert_eq!(client.calls.load(Ordering::Relaxed), 3, "two retries");
//!
//! // An operator opens the circuit: callers get the cached page at once.
//! breaker.force_open();
//! let page = pipeline.execute(|_ctx| async { Ok::<_, HttpError>("fresh".to_string()) }).await;
//! assert_eq!(page.unwrap(), "cached page");
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

/// The shared foundation: clocks, the sync shim, event hooks, the latency recorder.
pub use levee_core as core;

/// Rate limiters, keyed limiters, bulkheads, adaptive concurrency.
#[cfg(feature = "limit")]
pub use levee_limit as limit;

/// Circuit breakers and their registry.
#[cfg(feature = "breaker")]
pub use levee_breaker as breaker;

/// Retry, timeout, fallback, hedging and the resilience pipeline.
#[cfg(feature = "policy")]
pub use levee_policy as policy;

/// Hierarchical timing wheels.
#[cfg(feature = "timer")]
pub use levee_timer as timer;

/// A concurrent cache with single-flight loading.
#[cfg(feature = "cache")]
pub use levee_cache as cache;

/// In-process channels (and the topics and work queues built on them).
#[cfg(feature = "queue")]
pub use levee_queue as queue;

// Breakers that share what they learn through a `Broker` (features `breaker` and `queue`);
// documented by the module itself (an outer doc here would resolve its links out of scope).
#[cfg(all(feature = "breaker", feature = "queue"))]
pub mod shared_breaker;

/// The HTTP service client: P2C + peak-EWMA, a breaker per endpoint, priority failover,
/// budgeted retries, hedged reads, deadline propagation, mutual TLS (feature `client`).
#[cfg(feature = "client")]
pub use levee_client as client;
/// The `Broker` trait on NATS JetStream (levee-nats).
#[cfg(feature = "nats")]
pub use levee_nats as nats;
/// Cluster-wide rate limits on Redis that fail safe (feature `redis`).
#[cfg(feature = "redis")]
pub use levee_redis as redis;

/// The everyday names, for `use levee::prelude::*`.
pub mod prelude {
    pub use levee_core::{
        Clock, CoarseClock, ConfigError, EventHook, FastClock, LatencyRecorder, Listener,
        ManualClock, SystemClock,
    };

    #[cfg(feature = "limit")]
    pub use levee_limit::{Bulkhead, KeyedRateLimiter, Quota, RateLimit, RateLimiter};

    #[cfg(feature = "breaker")]
    pub use levee_breaker::{BreakerRegistry, CircuitBreaker};

    #[cfg(feature = "policy")]
    pub use levee_policy::{
        Backoff, Context as PolicyContext, Error as PolicyError, ErrorKind, Event as PolicyEvent,
        Fallback, Hedge, HedgeDelay, Pipeline, PipelineSettings, Retry, RetryAfter, RetryBudget,
        Timeout,
    };

    #[cfg(feature = "timer")]
    pub use levee_timer::{ShardedWheel, TimerKey, TimerService, TimingWheel};

    #[cfg(feature = "cache")]
    pub use levee_cache::Cache;

    #[cfg(feature = "queue")]
    pub use levee_queue::channel;
}
