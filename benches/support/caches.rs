//! The three caches the cache benches compare, built the same way everywhere (shared by
//! `benches/cache.rs` and `benches/cache_memory.rs`), and the calls the cases make on them.
//!
//! All three hash with foldhash: levee's own hasher, quick_cache's default, and moka's through
//! `build_with_hasher` (its default is SipHash), so the hash function is not what is measured.

use std::time::Duration;

/// The hasher moka is handed: levee's (and quick_cache's) foldhash.
pub(crate) type Hasher = foldhash::fast::RandomState;

pub(crate) type Levee = levee_cache::Cache<u64, u64>;
pub(crate) type Moka = moka::sync::Cache<u64, u64, Hasher>;
pub(crate) type Quick = quick_cache::sync::Cache<u64, u64>;

/// A levee cache of `capacity` entries, with a time to live when `ttl` is given.
pub(crate) fn levee(capacity: u64, ttl: Option<Duration>) -> Levee {
    let builder = levee_cache::Cache::builder().max_capacity(capacity);
    let builder = match ttl {
        Some(ttl) => builder.time_to_live(ttl),
        None => builder,
    };
    builder.build().expect("valid settings")
}

/// A moka cache of `capacity` entries on foldhash, with `time_to_live` when `ttl` is given.
pub(crate) fn moka(capacity: u64, ttl: Option<Duration>) -> Moka {
    let builder = moka::sync::Cache::builder().max_capacity(capacity);
    let builder = match ttl {
        Some(ttl) => builder.time_to_live(ttl),
        None => builder,
    };
    builder.build_with_hasher(Hasher::default())
}

/// A quick_cache cache of `capacity` entries (its defaults: foldhash, unit weights, items
/// estimated at the capacity).
pub(crate) fn quick(capacity: u64) -> Quick {
    quick_cache::sync::Cache::new(capacity as usize)
}

/// The calls the cases make, the same on every cache.
pub(crate) trait Map: Sync {
    fn get(&self, key: u64) -> Option<u64>;
    fn insert(&self, key: u64, value: u64);
    /// Runs what the cache defers (moka's pending maintenance), so its size is settled.
    fn settle(&self) {}
}

impl Map for Levee {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        levee_cache::Cache::get(self, &key)
    }

    #[inline]
    fn insert(&self, key: u64, value: u64) {
        levee_cache::Cache::insert(self, key, value);
    }
}

impl Map for Moka {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        moka::sync::Cache::get(self, &key)
    }

    #[inline]
    fn insert(&self, key: u64, value: u64) {
        moka::sync::Cache::insert(self, key, value);
    }

    fn settle(&self) {
        self.run_pending_tasks();
    }
}

impl Map for Quick {
    #[inline]
    fn get(&self, key: u64) -> Option<u64> {
        quick_cache::sync::Cache::get(self, &key)
    }

    #[inline]
    fn insert(&self, key: u64, value: u64) {
        quick_cache::sync::Cache::insert(self, key, value);
    }
}

/// `cache` after inserting keys `0..n` (value = key), reading one, and settling. The read
/// makes it a cache in use even for the insert-only cases: a levee writer checks the reader
/// rows of the threads that have read the cache, and a cache never read would spare it that.
pub(crate) fn fill<M: Map>(cache: M, n: u64) -> M {
    for k in 0..n {
        cache.insert(k, k);
    }
    cache.get(0);
    cache.settle();
    cache
}
