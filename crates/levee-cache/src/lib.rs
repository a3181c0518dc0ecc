//! A concurrent cache with single-flight loading and stampede protection.
//!
//! [`Cache`] is a sharded, bounded map whose hit path writes no shared memory, evicting by
//! S3-FIFO (scan-resistant). Its loading calls ([`Cache::get_with`],
//! [`Cache::get_with_async`], [`Cache::get_all_with`]) run **one** load per missing key however
//! many callers ask, keep working when the caller that started a load is cancelled or its
//! loader panics, serve stale values while one caller refreshes them, refresh hot values early
//! (XFetch), remember misses and chosen errors for a short time, and never store a load result
//! that an invalidation overtook. [`SingleFlight`] is the coalescing without the cache.
//!
//! Time comes from a [`levee_core::Clock`] ([`FastClock`](levee_core::FastClock) by default;
//! tests use [`ManualClock`](levee_core::ManualClock)). Expiry is checked on read, and expired
//! entries are dropped by eviction, overwrite or [`Cache::cleanup`].
//!
//! [`CacheSettings`] holds what a settings file can say about a cache (serde with the `serde`
//! feature, durations such as `"30s"`).
//!
//! ```
//! use std::time::Duration;
//! use levee_cache::Cache;
//!
//! # tokio::runtime::Builder::new_current_thread().build().unwrap().block_on(async {
//! let products: Cache<u64, String> = Cache::builder()
//!     .max_capacity(10_000)
//!     .time_to_live(Duration::from_secs(30))
//!     .stale_while_revalidate(Duration::from_secs(10))
//!     .build()
//!     .unwrap();
//!
//! // A burst of reads of one product: one store read.
//! let reads = (0..100).map(|_| products.get_with_async(42, async { "lamp".to_string() }));
//! let names = futures::future::join_all(reads).await;
//! assert!(names.iter().all(|n| n == "lamp"));
//! assert_eq!(products.stats().loads, 1);
//!
//! // The price changed: the next read loads again.
//! products.invalidate(&42);
//! assert_eq!(products.get(&42), None);
//! # });
//! ```
#![forbid(unsafe_code)]

mod builder;
mod bulk;
mod cache;
mod event;
mod flight;
mod load;
mod lock;
mod settings;
mod single_flight;
mod stats;
mod store;

pub use builder::CacheBuilder;
pub use cache::Cache;
pub use event::{CacheEvent, RemovalCause};
pub use settings::CacheSettings;
pub use single_flight::SingleFlight;
pub use stats::CacheStats;

pub(crate) use stats::Counters;

/// A load error as stored and shared: downcast back to the caller's type.
pub(crate) type ErasedError = std::sync::Arc<dyn std::any::Any + Send + Sync>;
