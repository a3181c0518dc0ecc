//! Changing the capacity and the time to live while the cache serves (issue 22).
//!
//! Neither setting is on the hit path: a lookup reads neither, so changing them costs
//! readers nothing. Each change takes one shard's write lock at a time (as an insert does),
//! never all of them at once, so lookups in the other shards go on meanwhile.

use std::hash::Hash;
use std::sync::atomic::Ordering;
use std::time::Duration;

use levee_core::{Clock, ConfigError, nanos};

use super::{Cache, split_capacity};

impl<K, V, C> Cache<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Changes the capacity (entries, or weight with a weigher) now.
    ///
    /// **Rule.** A smaller capacity evicts down to it at once, shard by shard, by the same
    /// S3-FIFO policy as an insert (expired entries first, then the coldest); the evicted
    /// values reach listeners as [`RemovalCause::Size`](crate::RemovalCause::Size). A
    /// larger one simply lets the cache grow. Nothing else is forgotten: the entries kept
    /// keep their frequency and queue, loads in flight go on.
    ///
    /// **Limits.** The number of shards was chosen for the capacity at build time and stays:
    /// the capacity is split over them as before, so a capacity below the shard count leaves
    /// some shards storing nothing, and the heaviest value storable is one shard's share
    /// ([`max_entry_weight`](Self::max_entry_weight)).
    ///
    /// ```
    /// use levee_cache::Cache;
    ///
    /// let cache: Cache<u32, u32> = Cache::builder().max_capacity(100).shards(1).build()?;
    /// for k in 0..100 {
    ///     cache.insert(k, k);
    /// }
    /// cache.set_max_capacity(10);
    /// assert_eq!((cache.len(), cache.max_capacity()), (10, 10));
    /// # Ok::<(), levee_core::ConfigError>(())
    /// ```
    pub fn set_max_capacity(&self, capacity: u64) {
        let inner = &*self.inner;
        let now = inner.clock.now();
        let shares = split_capacity(capacity, inner.shards.len());
        for ((shard, published), share) in
            inner.shards.iter().zip(inner.shard_capacity.iter()).zip(shares)
        {
            let mut removed = inner.removed();
            shard.write(|s| s.set_capacity(share, now, inner.config.tti, &mut removed));
            // Relaxed: a copy of the setting for lock-free reads (`max_capacity`).
            published.store(share, Ordering::Relaxed);
            inner.report(removed);
        }
    }

    /// Changes the default time to live now (`None`: entries stored from now on do not
    /// expire by age).
    ///
    /// **Rule.** Entries stored from now on expire after the new time to live. Entries
    /// already stored keep their deadline when it grows, and are brought forward when it
    /// shrinks: no entry then lives past *now + new TTL* (entries with a TTL of their own,
    /// from [`insert_with_ttl`](Self::insert_with_ttl) or
    /// [`expire_after`](crate::CacheBuilder::expire_after), included, and the staleness
    /// window of `stale_while_revalidate` counted from the new deadline). So an operator who
    /// shortens the TTL during an incident is sure nothing older survives it.
    ///
    /// **Limits.** Shrinking visits every stored entry once, one shard's write lock at a time;
    /// growing touches nothing stored. An insert racing the change may store its entry with
    /// either TTL. Jitter and per-entry TTLs apply to new entries as configured.
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_cache::Cache;
    /// use levee_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let cache: Cache<u32, u32, _> = Cache::builder()
    ///     .max_capacity(100)
    ///     .time_to_live(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// cache.insert(1, 1);
    /// cache.set_time_to_live(Some(Duration::from_secs(5)))?;
    /// clock.advance(Duration::from_secs(5));
    /// assert_eq!(cache.get(&1), None, "brought forward to now + 5 s");
    /// # Ok::<(), levee_core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// A [`ConfigError`] naming `time_to_live` for a zero TTL, or for `None` while
    /// `stale_while_revalidate` or `early_refresh` (which need a TTL) are configured; the
    /// cache keeps its setting.
    pub fn set_time_to_live(&self, ttl: Option<Duration>) -> Result<(), ConfigError> {
        let inner = &*self.inner;
        let config = &inner.config;
        let ttl = match ttl {
            Some(ttl) => nanos(ConfigError::require_positive("time_to_live", ttl)?),
            None if config.max_stale != 0 || config.beta != 0.0 => {
                return Err(ConfigError::new(
                    "time_to_live",
                    "stale_while_revalidate and early_refresh need a time to live",
                ));
            }
            None => 0,
        };
        if ttl != 0 {
            // Relaxed: lookups read the clock from now on (see `Inner::timed`).
            config.timed.store(true, Ordering::Relaxed);
        }
        // Relaxed: a setting read when an entry is stored (`Inner::deadlines`).
        let old = config.ttl.swap(ttl, Ordering::Relaxed);
        let shrank = ttl != 0 && (old == 0 || ttl < old);
        if shrank {
            let cap = inner.clock.now().saturating_add(ttl);
            for shard in inner.shards.iter() {
                shard.write(|s| s.cap_deadlines(cap, config.max_stale));
            }
        }
        Ok(())
    }

    /// The default time to live now (`None`: entries do not expire by age unless given a
    /// TTL of their own).
    #[must_use]
    pub fn time_to_live(&self) -> Option<Duration> {
        // Relaxed: a snapshot of a setting.
        let ttl = self.inner.config.ttl.load(Ordering::Relaxed);
        (ttl != 0).then(|| Duration::from_nanos(ttl))
    }
}
