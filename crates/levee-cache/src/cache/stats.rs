//! Sizes and counters: entry count, weight, capacity, shards, loads in flight, and the
//! [`CacheStats`] snapshot. Apart because none of it is on a caller's path: it reads every
//! shard and the shared counters.

use std::hash::Hash;

use std::sync::atomic::{AtomicU64, Ordering};

use levee_core::Clock;

use super::Cache;
use crate::CacheStats;
use crate::lock::Tally;
use crate::store::Shard;

impl<K, V, C> Cache<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Number of entries stored (values and remembered misses or errors, including expired
    /// ones not yet removed).
    #[must_use]
    pub fn len(&self) -> u64 {
        self.inner.shards.iter().map(|s| s.read(|s| (s.len() as u64, Tally::Nothing))).sum()
    }

    /// True when nothing is stored.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Total weight stored (equal to [`len`](Self::len) without a weigher).
    #[must_use]
    pub fn weighted_size(&self) -> u64 {
        self.inner.shards.iter().map(|s| s.read(|s| (s.weight(), Tally::Nothing))).sum()
    }

    /// The capacity (entries, or weight with a weigher).
    #[must_use]
    pub fn max_capacity(&self) -> u64 {
        total(&self.inner.shard_capacity)
    }

    /// The heaviest value the cache stores: one shard's capacity.
    #[must_use]
    pub fn max_entry_weight(&self) -> u64 {
        // Relaxed: a snapshot of a setting.
        self.inner.shard_capacity.iter().map(|c| c.load(Ordering::Relaxed)).min().unwrap_or(0)
    }

    /// Number of shards.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.inner.shards.len()
    }

    /// Number of loads in flight right now.
    #[must_use]
    pub fn loads_in_flight(&self) -> usize {
        self.inner.shards.iter().map(|s| s.read(|s| (s.flights.len(), Tally::Nothing))).sum()
    }

    fn sum(&self, f: impl Fn(&Shard<K, V>) -> u64) -> u64 {
        self.inner.shards.iter().map(|s| s.read(|s| (f(s), Tally::Nothing))).sum()
    }

    /// What the cache did so far.
    #[must_use]
    pub fn stats(&self) -> CacheStats {
        let inner = &*self.inner;
        let c = &inner.counters;
        let (hits, misses) = inner.shards.tallies();
        CacheStats {
            hits,
            misses,
            loads: c.loads.get(),
            coalesced: c.coalesced.get(),
            load_errors: c.load_errors.get(),
            load_panics: c.load_panics.get(),
            abandoned_loads: c.abandoned_loads.get(),
            stale_serves: c.stale_serves.get(),
            early_refreshes: c.early_refreshes.get(),
            stale_discards: c.stale_discards.get(),
            evictions: self.sum(|s| s.evicted),
            expirations: self.sum(|s| s.expired),
            invalidations: c.invalidations.get(),
            rejected: c.rejected.get(),
            entries: self.len(),
            weight: self.weighted_size(),
            load_latency: c.latency.snapshot(),
        }
    }
}

/// The sum of the shards' capacities (Relaxed: a snapshot of a setting).
pub(super) fn total(shard_capacity: &[AtomicU64]) -> u64 {
    shard_capacity.iter().map(|c| c.load(Ordering::Relaxed)).sum()
}
