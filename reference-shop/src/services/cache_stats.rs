//! A levee cache's counters, as `/admin/status` and `/metrics` show them.

use std::hash::Hash;

use levee::cache::Cache;
use levee::core::Clock;
use serde::Serialize;

/// Counters of a cache.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct CacheStats {
    /// Reads answered from memory.
    pub hits: u64,
    /// Reads that found nothing usable in memory.
    pub misses: u64,
    /// Store reads started (one per burst of misses of a key).
    pub loads: u64,
    /// Reads that joined a store read already under way instead of starting one.
    pub coalesced: u64,
    /// Entries dropped because what they hold changed.
    pub invalidations: u64,
    /// Load results thrown away because an invalidation overtook them.
    pub stale_discards: u64,
    /// Entries evicted for capacity.
    pub evictions: u64,
    /// Entries held.
    pub entries: u64,
}

impl CacheStats {
    /// `cache`'s counters now.
    pub(crate) fn of<K, V, C>(cache: &Cache<K, V, C>) -> Self
    where
        K: Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        C: Clock,
    {
        let s = cache.stats();
        Self {
            hits: s.hits,
            misses: s.misses,
            loads: s.loads,
            coalesced: s.coalesced,
            invalidations: s.invalidations,
            stale_discards: s.stale_discards,
            evictions: s.evictions,
            entries: cache.len(),
        }
    }
}
