//! The product cache, on levee-cache: reads of one product coalesce into one store read
//! (single flight, even when the first reader gives up), and a change of stock or price
//! invalidates the entry, beating any load already under way.

use std::sync::Arc;
use std::time::Duration;

use levee::cache::Cache;
use serde::Serialize;

use crate::clock::ShopClock;
use crate::domain::Product;
use crate::store::{Store, StoreError};

/// Counters of the cache.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct CacheStats {
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that found nothing usable in memory.
    pub misses: u64,
    /// Store reads started (one per burst of misses of a product).
    pub loads: u64,
    /// Reads that joined a store read already under way instead of starting one.
    pub coalesced: u64,
    /// Entries dropped because their product changed.
    pub invalidations: u64,
    /// Load results thrown away because an invalidation overtook them.
    pub stale_discards: u64,
    /// Entries evicted for capacity.
    pub evictions: u64,
    /// Entries held.
    pub entries: u64,
}

/// Cache of products by id (`None`: no such product, remembered too).
pub struct ProductCache {
    store: Arc<Store>,
    cache: Cache<i64, Option<Product>, ShopClock>,
}

impl std::fmt::Debug for ProductCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProductCache").field("stats", &self.stats()).finish()
    }
}

impl ProductCache {
    /// A cache over `store` holding up to `capacity` products for at most `ttl`.
    ///
    /// # Errors
    /// A zero `ttl` or `capacity`, named.
    pub fn new(
        store: Arc<Store>,
        clock: ShopClock,
        capacity: u64,
        ttl: Duration,
    ) -> Result<Self, levee::core::ConfigError> {
        let cache = Cache::builder()
            .max_capacity(levee::core::ConfigError::require_nonzero("cache.capacity", capacity)?)
            .time_to_live(levee::core::ConfigError::require_positive("cache.ttl_secs", ttl)?)
            .clock(clock)
            .build()?;
        Ok(Self { store, cache })
    }

    /// The product, from memory or from one store read shared by every concurrent caller.
    ///
    /// # Errors
    /// The store read failed (every caller that joined it sees the same error; errors are
    /// not cached).
    pub async fn get(&self, id: i64) -> Result<Option<Product>, Arc<StoreError>> {
        let store = Arc::clone(&self.store);
        self.cache.try_get_with_async(id, async move { store.product(id).await }).await
    }

    /// Drops the entry (and any load under way) after the product changed.
    pub fn invalidate(&self, id: i64) {
        self.cache.invalidate(&id);
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let s = self.cache.stats();
        CacheStats {
            hits: s.hits,
            misses: s.misses,
            loads: s.loads,
            coalesced: s.coalesced,
            invalidations: s.invalidations,
            stale_discards: s.stale_discards,
            evictions: s.evictions,
            entries: self.cache.len(),
        }
    }
}
