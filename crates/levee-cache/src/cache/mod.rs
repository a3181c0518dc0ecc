//! The cache: the [`Cache`] type, its shards and constructors, and the helpers every
//! operation shares (hashing, shard choice, the clock reading).
//!
//! The operations live in submodules, one concern each: [`want`] (how a kind of call reads
//! a slot), [`read`] (lookups, XFetch), [`write`](mod@write) (inserts, invalidation, storing a slot),
//! [`flights`] (the single-flight bookkeeping loads share), [`stats`] (sizes and counters).

mod flights;
mod read;
mod reconfig;
mod stats;
mod want;
mod write;

use std::fmt;
use std::hash::{BuildHasher, Hash};

use levee_core::sync::Arc;
use levee_core::{Clock, EventHook, FastClock};

use crate::builder::Config;
use crate::lock::{ShardRef, Shards};
use crate::store::Shard;
use crate::{CacheBuilder, CacheEvent, Counters};

pub(crate) use crate::store::Slot as Loaded;
pub(crate) use flights::Claim;
pub(crate) use read::Probe;
pub(crate) use want::{Want, WantOption, WantResult, WantValue};

pub(crate) struct Inner<K, V, C> {
    shards: Shards<Shard<K, V>>,
    shard_mask: usize,
    /// Each shard's capacity; the shard keeps its own copy under its lock, this one is for
    /// reading without locks (std atomics even under loom: sizes, not synchronisation).
    pub(crate) shard_capacity: Box<[std::sync::atomic::AtomicU64]>,
    hasher: foldhash::fast::RandomState,
    pub(crate) clock: C,
    pub(crate) config: Config<K, V>,
    pub(crate) counters: Counters,
    hook: EventHook<CacheEvent<K, V>>,
    /// No weigher, no per-entry expiry and no listener: an `insert` stores weight 1, never
    /// anything to report, and needs no deadlines while nothing is [`timed`](Self::timed).
    plain: bool,
}

/// A concurrent, bounded cache with single-flight loading.
///
/// - **Bounded** by an entry count or a [weigher](CacheBuilder::weigher); evicts by S3-FIFO,
///   which keeps frequently used keys through scans of one-time keys.
/// - **Hits are cheap and scale**: a lookup takes a shard's read side, which writes only a
///   counter private to the calling thread, and marks the entry's hit bits; no list is touched.
/// - **Single-flight loading**: however many callers miss the same key at once, one loader runs
///   ([`get_with`](Self::get_with), [`get_with_async`](Self::get_with_async) and their
///   `try_`/`optional` forms) and all get its result. An async load is owned by the cache, not
///   by the caller that started it: cancelling that caller does not cancel or stall the others.
///   A panicking loader panics in its own caller; the waiters take over with theirs.
/// - **Expiry**: [time to live](CacheBuilder::time_to_live) (also per entry), [time to
///   idle](CacheBuilder::time_to_idle), [jitter](CacheBuilder::ttl_jitter).
/// - **Stampede protection**: [stale-while-revalidate](CacheBuilder::stale_while_revalidate),
///   [XFetch early refresh](CacheBuilder::early_refresh), [negative
///   caching](CacheBuilder::negative_ttl).
/// - **Consistency**: an [`invalidate`](Self::invalidate) or [`insert`](Self::insert) that races
///   with a load wins; the load's result is handed to its waiters but not stored.
///
/// Cloning is cheap and shares the cache.
///
/// ```
/// use levee_cache::Cache;
///
/// let cache: Cache<u32, String> = Cache::new(1_000);
/// let v = cache.get_with(7, || "seven".to_string());
/// assert_eq!(v, "seven");
/// assert_eq!(cache.get(&7).as_deref(), Some("seven"));
/// cache.invalidate(&7);
/// assert_eq!(cache.get(&7), None);
/// ```
pub struct Cache<K, V, C = FastClock> {
    pub(crate) inner: Arc<Inner<K, V, C>>,
}

impl<K, V, C> Clone for Cache<K, V, C> {
    fn clone(&self) -> Self {
        Self { inner: self.inner.clone() }
    }
}

impl<K, V, C> fmt::Debug for Cache<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache")
            .field("shards", &self.inner.shards.len())
            .field("capacity", &stats::total(&self.inner.shard_capacity))
            .finish_non_exhaustive()
    }
}

impl<K, V> Cache<K, V, FastClock>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    /// A cache of up to `max_capacity` entries with no expiry. Zero means the cache stores
    /// nothing (loads still coalesce).
    #[must_use]
    pub fn new(max_capacity: u64) -> Self {
        Self::builder().max_capacity(max_capacity).build().expect("default settings are valid")
    }
}

impl<K, V> Cache<K, V, FastClock> {
    /// Starts a [`CacheBuilder`].
    pub fn builder() -> CacheBuilder<K, V, FastClock> {
        CacheBuilder::new()
    }
}

impl<K, V, C> Cache<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    pub(crate) fn from_parts(
        capacity: u64,
        shards: usize,
        config: Config<K, V>,
        clock: C,
        hook: EventHook<CacheEvent<K, V>>,
    ) -> Self {
        let plain = config.weigher.is_none() && config.expire_after.is_none() && hook.is_empty();
        let shard_capacity: Box<[std::sync::atomic::AtomicU64]> =
            split_capacity(capacity, shards).map(std::sync::atomic::AtomicU64::new).collect();
        let hasher = foldhash::fast::RandomState::default();
        Self {
            inner: Arc::new(Inner {
                shards: Shards::new(shards, |i| {
                    let capacity = shard_capacity[i].load(std::sync::atomic::Ordering::Relaxed);
                    Shard::new(capacity, hasher.clone())
                }),
                shard_mask: shards - 1,
                shard_capacity,
                hasher,
                clock,
                config,
                counters: Counters::default(),
                hook,
                plain,
            }),
        }
    }
}

/// `capacity` split over `shards` as evenly as whole units allow.
pub(crate) fn split_capacity(capacity: u64, shards: usize) -> impl Iterator<Item = u64> {
    let n = shards as u64;
    (0..n).map(move |i| capacity / n + u64::from(i < capacity % n))
}

impl<K, V, C> Inner<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    #[inline]
    pub(crate) fn shard(&self, hash: u64) -> ShardRef<'_, Shard<K, V>> {
        // Bits 32.. pick the shard: hashbrown uses the low bits for the bucket and the top 7
        // for its control bytes, so the table inside a shard keeps all its entropy.
        self.shards.get((hash >> 32) as usize & self.shard_mask)
    }

    /// True once any entry can expire. (A plain std atomic even under loom: it only turns on,
    /// and a read racing with that sees an entry stored at that very moment as fresh.)
    #[inline]
    pub(crate) fn timed(&self) -> bool {
        self.config.timed.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The time lookups compare against: zero (never read) when nothing expires.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.lookup_time().unwrap_or(0)
    }

    /// The time a lookup compares entries against, or `None` (the clock not read) while
    /// nothing can expire: one read of the flag serves the whole lookup ([`Inner::probe`]).
    #[inline]
    pub(crate) fn lookup_time(&self) -> Option<u64> {
        self.timed().then(|| self.clock.now())
    }
}
