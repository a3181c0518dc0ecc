//! Writes: inserts, invalidation and cleanup, when a stored slot expires, and storing a
//! slot (an insert or a load's result) with the rule that an insert or invalidation racing
//! with a load wins. Apart from reads: everything here takes a shard's write lock and
//! reports removals to the listeners after releasing it.

use std::borrow::Borrow;
use std::hash::Hash;
use std::time::Duration;

use levee_core::{Clock, nanos, random};

use super::{Cache, Inner};
use crate::store::{Inserted, NewEntry, Removed, Slot};
use crate::{CacheEvent, RemovalCause};

impl<K, V, C> Cache<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Stores `value` for `key` with the cache's time to live. A load of `key` in flight is
    /// not stored when it finishes: this insert wins.
    pub fn insert(&self, key: K, value: V) {
        let hash = self.inner.hash(&key);
        if self.inner.plain && !self.inner.timed() {
            self.inner.store_plain(hash, key, value);
            return;
        }
        self.inner.insert_general(hash, key, value);
    }

    /// Stores `value` for `key` with its own time to live (`Duration::MAX`: never expires;
    /// zero: not stored, and an older value is removed).
    pub fn insert_with_ttl(&self, key: K, value: V, ttl: Duration) {
        // From now on lookups read the clock (a cache built without expiry skips it).
        self.inner.config.timed.store(true, std::sync::atomic::Ordering::Relaxed);
        let hash = self.inner.hash(&key);
        let slot = Slot::Value(value);
        let deadlines = self.inner.deadlines(&key, &slot, Some(ttl));
        self.inner.store(hash, key, slot, deadlines, self.inner.clock.now(), 0, None);
    }

    /// Removes `key`. A load of it in flight finishes for its waiters but is not stored.
    pub fn invalidate<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let hash = inner.hash(key);
        let mut removed = inner.removed();
        inner.shard(hash).write(|shard| {
            if let Some(e) = shard.remove(hash, key) {
                removed.push(e.key, e.slot, RemovalCause::Invalidated);
            }
            shard.detach_flight(hash, key)
        });
        inner.counters.invalidations.add(removed.total);
        inner.report(removed);
    }

    /// Removes every entry. Loads in flight finish for their waiters but are not stored.
    pub fn invalidate_all(&self) {
        let inner = &*self.inner;
        for shard in inner.shards.iter() {
            let mut removed = inner.removed();
            // The forgotten flights are dropped outside the lock.
            let flights = shard.write(|s| s.clear(&mut removed));
            drop(flights);
            inner.counters.invalidations.add(removed.total);
            inner.report(removed);
        }
    }

    /// Removes the entries that have expired. Expired entries are otherwise removed lazily:
    /// a lookup ignores them and eviction or an overwrite drops them.
    pub fn cleanup(&self) {
        let inner = &*self.inner;
        let now = inner.clock.now();
        for shard in inner.shards.iter() {
            let mut removed = inner.removed();
            shard.write(|s| s.purge_dead(now, inner.config.tti, &mut removed));
            inner.report(removed);
        }
    }
}

impl<K, V, C> Inner<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// [`Cache::insert`] when the cache is not [plain](Inner::plain) or something is timed:
    /// out of line, so that the plain insert does not pay for this path's larger stack
    /// frame and register saves.
    #[inline(never)]
    fn insert_general(&self, hash: u64, key: K, value: V) {
        let slot = Slot::Value(value);
        let deadlines = self.deadlines(&key, &slot, None);
        self.store(hash, key, slot, deadlines, self.now(), 0, None);
    }

    pub(crate) fn removed(&self) -> Removed<K, V> {
        Removed::new(!self.hook.is_empty())
    }

    /// When a slot stored now expires and dies, or `None` if it is not to be stored at all.
    pub(crate) fn deadlines(
        &self,
        key: &K,
        slot: &Slot<V>,
        ttl_override: Option<Duration>,
    ) -> Option<(u64, u64)> {
        let config = &self.config;
        // `None`: never expires; `Some(0)`: not stored.
        let ttl = match slot {
            Slot::Value(v) => {
                match ttl_override.or_else(|| config.expire_after.as_ref().and_then(|f| f(key, v)))
                {
                    Some(d) => Some(nanos(d)),
                    None => {
                        // Relaxed: a setting; an insert racing a change uses either value.
                        let ttl = config.ttl.load(std::sync::atomic::Ordering::Relaxed);
                        (ttl != 0).then_some(ttl)
                    }
                }
            }
            Slot::Missing => Some(config.negative_ttl),
            Slot::Failed(e) => {
                let cached = config.error_filters.iter().any(|f| f(&***e));
                Some(if cached { config.negative_ttl } else { 0 })
            }
        };
        let ttl = match ttl {
            None | Some(u64::MAX) => return Some((u64::MAX, u64::MAX)),
            Some(0) => return None,
            Some(ttl) => ttl,
        };
        let ttl = if config.jitter > 0.0 {
            nanos(random::jitter(Duration::from_nanos(ttl), config.jitter)).max(1)
        } else {
            ttl
        };
        let expires = self.clock.now().saturating_add(ttl);
        let dead = if matches!(slot, Slot::Value(_)) {
            expires.saturating_add(config.max_stale)
        } else {
            expires
        };
        Some((expires, dead))
    }

    /// Stores a slot (an explicit insert when `flight` is `None`, else the result of load
    /// `flight`, stored only if that load is still the registered one). Returns false if the
    /// load's result was discarded as stale.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn store(
        &self,
        hash: u64,
        key: K,
        slot: Slot<V>,
        deadlines: Option<(u64, u64)>,
        now: u64,
        load_nanos: u64,
        flight: Option<u64>,
    ) -> bool {
        let weight = match (&slot, &self.config.weigher) {
            (Slot::Value(v), Some(w)) => w(&key, v),
            _ => 1,
        };
        let tti = self.config.tti;
        let mut removed = self.removed();
        let mut rejected = None;
        let (fresh, detached) = self.shard(hash).write(|shard| {
            let detached = match flight {
                Some(id) => match shard.take_flight(hash, id) {
                    Some(f) => Some(f),
                    None => return (false, None), // invalidated or overwritten meanwhile
                },
                None => shard.detach_flight(hash, &key),
            };
            // A refresh that failed keeps the old value (it stays servable while stale).
            let refresh_failed = detached.as_ref().is_some_and(|f| f.refresh_of.is_some())
                && !matches!(slot, Slot::Value(_));
            let deadlines = if refresh_failed { None } else { deadlines };
            let Some((expires_at, dead_at)) = deadlines else {
                // Not to be stored; a refresh that produced nothing lets the next caller retry.
                match detached.as_ref().and_then(|f| f.refresh_of) {
                    Some(id) => {
                        if let Some(e) = shard.find_id(hash, id) {
                            e.end_refresh();
                        }
                    }
                    None if flight.is_none() => {
                        // An explicit insert that is not to be stored still replaces.
                        if let Some(e) = shard.remove(hash, &key) {
                            removed.push(e.key, e.slot, RemovalCause::Replaced);
                        }
                    }
                    None => {}
                }
                return (true, detached);
            };
            let new = NewEntry { key, hash, slot, weight, load_nanos, expires_at, dead_at, now };
            if let Inserted::TooHeavy(key) = shard.insert(new, tti, &mut removed) {
                rejected = Some(key);
            }
            (true, detached)
        });
        drop(detached);
        if !fresh {
            self.counters.stale_discards.incr();
        }
        if let Some(key) = rejected {
            self.counters.rejected.incr();
            self.hook.emit(|| CacheEvent::Rejected { key, weight });
        }
        self.report(removed);
        fresh
    }

    /// [`store`](Self::store) for an explicit insert into a [plain](Inner::plain) cache with
    /// nothing timed: the same outcome with every setting that cannot apply folded away (no
    /// deadlines, weight 1, nothing kept for a listener). The general path's bookkeeping cost
    /// a churning insert a third of its time (`cargo bench --bench cache -- cache/churn`).
    fn store_plain(&self, hash: u64, key: K, value: V) {
        // `move`: `hash` goes into the closure as a copy, not behind a pointer to the stack.
        let detached = self.shard(hash).write(move |shard| {
            // Only the detached flight's handle leaves the lock, to be dropped outside it (the
            // last handle drops the flight's result and wakers): one word to hand back, where
            // the whole slot cost an insert 10 instructions (`examples/cache_cost.rs churn`).
            // Its key is dropped here, as this path drops a replaced entry's.
            let detached = shard.detach_flight(hash, &key).map(|f| f.flight);
            // Only counted (nobody listens): it stays empty, and lives in the closure so
            // that nothing of it passes through memory around the lock.
            let mut removed = Removed::new(false);
            let new = NewEntry {
                key,
                hash,
                slot: Slot::Value(value),
                weight: 1,
                load_nanos: 0,
                expires_at: u64::MAX,
                dead_at: u64::MAX,
                now: 0,
            };
            if let Inserted::TooHeavy(_) = shard.insert(new, 0, &mut removed) {
                // Counted here, under the lock (a counter's add, nothing that waits): the
                // closure then hands back only the flight, with no flag to copy out.
                self.counters.rejected.incr();
            }
            detached
        });
        drop(detached);
    }

    /// Tells the listeners of the entries `removed` kept, outside any lock (the shard counted
    /// its evictions and expirations as they left; callers count invalidations).
    pub(crate) fn report(&self, removed: Removed<K, V>) {
        for (key, slot, cause) in removed.into_kept() {
            if let Slot::Value(value) = slot {
                self.hook.emit(|| CacheEvent::Removed { key, value, cause });
            }
        }
    }
}
