//! What the cache counts, and the snapshot it reports.

use levee_core::{Counter, LatencyRecorder, LatencySnapshot};

/// Counters shared by every shard. Hits and lookup misses are not here: they are counted in the
/// shard locks' per-thread rows (`lock.rs`), so the hit path writes no shared word.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) loads: Counter,
    pub(crate) coalesced: Counter,
    pub(crate) load_errors: Counter,
    pub(crate) load_panics: Counter,
    pub(crate) abandoned_loads: Counter,
    pub(crate) stale_serves: Counter,
    pub(crate) early_refreshes: Counter,
    pub(crate) stale_discards: Counter,
    pub(crate) invalidations: Counter,
    pub(crate) rejected: Counter,
    pub(crate) latency: LatencyRecorder,
}

/// A point-in-time view of what a [`Cache`](crate::Cache) did since it was built.
///
/// Counts are read one by one while the cache keeps working, so two of them may be off by the
/// operations that ran during the read.
///
/// ```
/// use levee_cache::Cache;
///
/// let cache: Cache<&str, u32> = Cache::new(1_000);
/// cache.insert("a", 1);
/// assert_eq!(cache.get("a"), Some(1));
/// assert_eq!(cache.get("b"), None);
/// let stats = cache.stats();
/// assert_eq!((stats.hits, stats.misses), (1, 1));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct CacheStats {
    /// Lookups answered from the cache (including stale values served while refreshing).
    pub hits: u64,
    /// Lookups that found nothing usable.
    pub misses: u64,
    /// Loads run: loader calls of `get_with*` (a bulk loader call counts once), whether they
    /// succeeded or not.
    pub loads: u64,
    /// Callers that missed, found a load of the same key in flight, and waited for it instead of
    /// loading.
    pub coalesced: u64,
    /// Loads that returned an error.
    pub load_errors: u64,
    /// Loads whose loader panicked (another waiter took over).
    pub load_panics: u64,
    /// Async loads dropped because every caller waiting for them was cancelled.
    pub abandoned_loads: u64,
    /// Callers served a value past its time to live while a refresh runs
    /// (stale-while-revalidate).
    pub stale_serves: u64,
    /// Refreshes started early by the probabilistic (XFetch) rule.
    pub early_refreshes: u64,
    /// Load results not stored because the key was invalidated or overwritten while they loaded.
    pub stale_discards: u64,
    /// Entries evicted to respect the capacity.
    pub evictions: u64,
    /// Entries removed because they expired (found on eviction, overwrite or cleanup).
    pub expirations: u64,
    /// Entries removed by `invalidate` / `invalidate_all`.
    pub invalidations: u64,
    /// Values not stored because they alone weigh more than a shard's capacity.
    pub rejected: u64,
    /// Entries stored now (values and remembered misses or errors).
    pub entries: u64,
    /// Their total weight (equal to `entries` without a weigher).
    pub weight: u64,
    /// How long loads took.
    pub load_latency: LatencySnapshot,
}

impl CacheStats {
    /// `hits / (hits + misses)`, or 0 before the first lookup.
    #[must_use]
    pub fn hit_ratio(&self) -> f64 {
        let lookups = self.hits + self.misses;
        if lookups == 0 { 0.0 } else { self.hits as f64 / lookups as f64 }
    }
}
