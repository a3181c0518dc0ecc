//! The cache: shards, lookups, inserts, invalidation, and the bookkeeping that loads share.

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use levee_core::sync::{Arc, Ordering};
use levee_core::{Clock, EventHook, FastClock, nanos, random};

use crate::builder::Config;
use crate::flight::Flight;
use crate::lock::{ShardRef, Shards, Tally};
use crate::store::{FlightSlot, Inserted, NewEntry, Removed, Shard};
use crate::{CacheBuilder, CacheEvent, CacheStats, Counters, ErasedError, RemovalCause};

pub(crate) use crate::store::Slot as Loaded;
use crate::store::Slot;

/// How one kind of call reads a stored slot, and stores its own loader's result.
pub(crate) trait Want<V>: 'static {
    /// What the call returns.
    type Out: Send + 'static;
    /// The call's answer from this slot, or `None` if the slot is no answer for it (a
    /// remembered miss for a call that wants a value): then it loads.
    fn accept(slot: &Slot<V>) -> Option<Self::Out>;
    /// How the call's own loader result is stored and shared.
    fn to_slot(out: &Self::Out) -> Slot<V>;
}

/// `get_with`: a value.
pub(crate) struct WantValue;

impl<V: Clone + Send + 'static> Want<V> for WantValue {
    type Out = V;
    #[inline]
    fn accept(slot: &Slot<V>) -> Option<V> {
        match slot {
            Slot::Value(v) => Some(v.clone()),
            _ => None,
        }
    }
    fn to_slot(out: &V) -> Slot<V> {
        Slot::Value(out.clone())
    }
}

/// `get_optional_with`: a value or a (remembered) absence.
pub(crate) struct WantOption;

impl<V: Clone + Send + 'static> Want<V> for WantOption {
    type Out = Option<V>;
    fn accept(slot: &Slot<V>) -> Option<Option<V>> {
        match slot {
            Slot::Value(v) => Some(Some(v.clone())),
            Slot::Missing => Some(None),
            Slot::Failed(_) => None,
        }
    }
    fn to_slot(out: &Option<V>) -> Slot<V> {
        out.as_ref().map_or(Slot::Missing, |v| Slot::Value(v.clone()))
    }
}

/// `try_get_with`: a value or an error of type `E`.
pub(crate) struct WantResult<E>(std::marker::PhantomData<fn() -> E>);

impl<V: Clone + Send + 'static, E: Send + Sync + 'static> Want<V> for WantResult<E> {
    type Out = Result<V, std::sync::Arc<E>>;
    fn accept(slot: &Slot<V>) -> Option<Self::Out> {
        match slot {
            Slot::Value(v) => Some(Ok(v.clone())),
            Slot::Failed(e) => e.clone().downcast::<E>().ok().map(Err),
            Slot::Missing => None,
        }
    }
    fn to_slot(out: &Self::Out) -> Slot<V> {
        match out {
            Ok(v) => Slot::Value(v.clone()),
            Err(e) => Slot::Failed(e.clone() as ErasedError),
        }
    }
}

/// What a lookup under the read lock found.
pub(crate) enum Probe<O> {
    /// A fresh answer.
    Fresh(O),
    /// A stale answer to serve while somebody else refreshes it.
    Stale(O),
    /// An answer to serve, and this caller won the right to refresh entry `id`
    /// (`early`: by the XFetch rule, before expiry).
    Refresh { out: O, id: u64, early: bool },
    /// Nothing usable.
    Miss,
}

/// What a miss decided under the write lock.
pub(crate) enum Claim<O, V, X> {
    /// Someone stored an answer meanwhile.
    Hit(O),
    /// A load of this key is running: wait for it.
    Join(Arc<Flight<Slot<V>>>),
    /// This caller leads the load `id`; `X` is what the flight maker returned.
    Lead(u64, Arc<Flight<Slot<V>>>, X),
    /// A refresh was asked for but a load is already running.
    Busy,
}

pub(crate) struct Inner<K, V, C> {
    shards: Shards<Shard<K, V>>,
    shard_mask: usize,
    shard_capacity: Box<[u64]>,
    hasher: foldhash::fast::RandomState,
    pub(crate) clock: C,
    pub(crate) config: Config<K, V>,
    pub(crate) counters: Counters,
    hook: EventHook<CacheEvent<K, V>>,
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
            .field("capacity", &self.inner.shard_capacity.iter().sum::<u64>())
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
        let n = shards as u64;
        let shard_capacity: Box<[u64]> =
            (0..n).map(|i| capacity / n + u64::from(i < capacity % n)).collect();
        Self {
            inner: Arc::new(Inner {
                shards: Shards::new(shards, |i| {
                    let cap = shard_capacity[i];
                    // Counted entries: allocate the table once (up to a sane size) instead of
                    // growing it while the cache fills. Weighted: no estimate.
                    let reserve = if config.weigher.is_none() { cap.min(1 << 16) } else { 0 };
                    Shard::new(cap, reserve as usize)
                }),
                shard_mask: shards - 1,
                shard_capacity,
                hasher: foldhash::fast::RandomState::default(),
                clock,
                config,
                counters: Counters::default(),
                hook,
            }),
        }
    }

    /// The value for `key`, if it is cached and fresh.
    ///
    /// A stale value (past its time to live, within the stale-while-revalidate window) is not
    /// returned here: only loading calls serve stale values, because only they can refresh.
    #[inline]
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let hash = inner.hash(key);
        match inner.probe::<WantValue, Q>(hash, key, inner.now(), false) {
            Probe::Fresh(v) => Some(v),
            _ => None,
        }
    }

    /// True if `key` has a fresh value (without counting a hit or a miss).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let inner = &*self.inner;
        let hash = inner.hash(key);
        let now = inner.now();
        inner.shard(hash).read(|shard| {
            let found = shard.find(hash, key).is_some_and(|e| {
                matches!(e.slot, Slot::Value(_))
                    && now < e.expires_at
                    && !e.is_dead(now, inner.config.tti)
            });
            (found, Tally::Nothing)
        })
    }

    /// Stores `value` for `key` with the cache's time to live. A load of `key` in flight is
    /// not stored when it finishes: this insert wins.
    pub fn insert(&self, key: K, value: V) {
        let hash = self.inner.hash(&key);
        let slot = Slot::Value(value);
        let deadlines = self.inner.deadlines(&key, &slot, None);
        self.inner.store(hash, key, slot, deadlines, self.inner.now(), 0, None);
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
            let flights = shard.write(|s| {
                let flights = s.clear(&mut removed);
                s.count(&removed);
                flights
            });
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
            shard.write(|s| {
                s.purge_dead(now, inner.config.tti, &mut removed);
                s.count(&removed);
            });
            inner.report(removed);
        }
    }

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
        self.inner.shard_capacity.iter().sum()
    }

    /// The heaviest value the cache stores: one shard's capacity.
    #[must_use]
    pub fn max_entry_weight(&self) -> u64 {
        self.inner.shard_capacity.iter().copied().min().unwrap_or(0)
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
        if self.timed() { self.clock.now() } else { 0 }
    }

    fn removed(&self) -> Removed<K, V> {
        Removed::new(!self.hook.is_empty())
    }

    /// Looks `key` up under the read lock. `loading`: the caller can refresh (serve stale
    /// values, run XFetch).
    #[inline]
    pub(crate) fn probe<W: Want<V>, Q>(
        &self,
        hash: u64,
        key: &Q,
        now: u64,
        loading: bool,
    ) -> Probe<W::Out>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let config = &self.config;
        let timed = self.timed();
        self.shard(hash).read(|shard| {
            let Some(e) = shard.find(hash, key) else {
                return (Probe::Miss, Tally::Miss);
            };
            if timed {
                if e.is_dead(now, config.tti) {
                    return (Probe::Miss, Tally::Miss);
                }
                if now >= e.expires_at && !loading {
                    return (Probe::Miss, Tally::Miss);
                }
            }
            let Some(out) = W::accept(&e.slot) else {
                return (Probe::Miss, Tally::Miss);
            };
            e.touch();
            if timed {
                if config.tti != 0 {
                    let last = e.last_access.load(Ordering::Relaxed);
                    if now > last.saturating_add(config.tti >> 8) {
                        e.last_access.store(now, Ordering::Relaxed);
                    }
                }
                if now >= e.expires_at {
                    // Within the stale-while-revalidate window (else it would be dead).
                    let probe = if Self::win_refresh(e) {
                        Probe::Refresh { out, id: e.id(), early: false }
                    } else {
                        Probe::Stale(out)
                    };
                    return (probe, Tally::Hit);
                }
                if loading && self.xfetch(now, e.expires_at, e.load_nanos) && Self::win_refresh(e) {
                    return (Probe::Refresh { out, id: e.id(), early: true }, Tally::Hit);
                }
            }
            (Probe::Fresh(out), Tally::Hit)
        })
    }

    fn win_refresh(e: &crate::store::Entry<K, V>) -> bool {
        !e.refreshing.load(Ordering::Relaxed)
            && e.refreshing
                .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
    }

    /// XFetch: refresh early with probability rising as expiry nears, scaled by how long the
    /// value took to load (`delta`) and `beta`: refresh when `now - delta * beta * ln(u)` has
    /// passed the expiry, for `u` uniform in (0, 1].
    #[inline]
    fn xfetch(&self, now: u64, expires_at: u64, load_nanos: u64) -> bool {
        let beta = self.config.beta;
        if beta == 0.0 || expires_at == u64::MAX {
            return false;
        }
        let reach = load_nanos as f64 * beta;
        let gap = expires_at.saturating_sub(now) as f64;
        // -ln(u) never exceeds 37 for the 53-bit u we draw: most hits skip the logarithm.
        if gap > reach * 37.0 {
            return false;
        }
        let u = 1.0 - random::next_f64();
        reach * -u.ln() >= gap
    }

    /// Decides a miss under the write lock: answer, join, or lead (then `lead(id)` makes the
    /// flight). With `refresh_of`, the caller refreshes that entry and only leads.
    pub(crate) fn claim<W: Want<V>, X>(
        &self,
        hash: u64,
        key: &K,
        now: u64,
        refresh_of: Option<u64>,
        lead: impl FnOnce(u64) -> (Arc<Flight<Slot<V>>>, X),
    ) -> Claim<W::Out, V, X> {
        let config = &self.config;
        if refresh_of.is_none() {
            // Most callers of a burst find the load already running: joining it needs only the
            // read side; the write side is for the one that leads.
            let running = self.shard(hash).read(|shard| {
                let flight = shard
                    .find_flight(hash, key)
                    .filter(|slot| slot.flight.is_running())
                    .map(|slot| slot.flight.clone());
                (flight, Tally::Nothing)
            });
            if let Some(flight) = running {
                return Claim::Join(flight);
            }
        }
        let (claim, stale) = self.shard(hash).write(|shard| {
            let usable = match refresh_of {
                None => shard
                    .find(hash, key)
                    .filter(|e| !e.is_dead(now, config.tti) && now < e.expires_at),
                Some(_) => None,
            };
            if let Some(e) = usable {
                if let Some(out) = W::accept(&e.slot) {
                    e.touch();
                    return (Claim::Hit(out), None);
                }
            }
            let mut stale = None;
            if let Some(slot) = shard.find_flight(hash, key) {
                if slot.flight.is_running() {
                    let claim = if refresh_of.is_some() {
                        Claim::Busy
                    } else {
                        Claim::Join(slot.flight.clone())
                    };
                    return (claim, None);
                }
                // A finished flight whose slot was not yet removed: replace it (and drop it
                // outside the lock).
                stale = shard.detach_flight(hash, key);
            }
            let id = shard.next_id();
            let (flight, x) = lead(id);
            shard.flights.insert_unique(
                hash,
                FlightSlot { key: key.clone(), hash, id, refresh_of, flight: flight.clone() },
                |s| s.hash,
            );
            (Claim::Lead(id, flight, x), stale)
        });
        drop(stale);
        claim
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
                    None => (config.ttl != 0).then_some(config.ttl),
                }
            }
            Slot::Missing => Some(config.negative_ttl),
            Slot::Failed(e) => {
                let cached = config.error_filters.iter().any(|f| f(&**e));
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
                            e.refreshing.store(false, Ordering::Release);
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
            shard.count(&removed);
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

    /// Finishes load `id`: records it and stores the result unless it went stale.
    pub(crate) fn complete(&self, hash: u64, key: K, id: u64, slot: Slot<V>, started: u64) {
        self.record_load(matches!(slot, Slot::Failed(_)), started);
        self.finish_load(hash, key, id, slot, started);
    }

    /// Stores the result of load `id` unless it went stale.
    pub(crate) fn finish_load(&self, hash: u64, key: K, id: u64, slot: Slot<V>, started: u64) {
        let now = self.clock.now();
        let deadlines = self.deadlines(&key, &slot, None);
        self.store(hash, key, slot, deadlines, now, now.saturating_sub(started), Some(id));
    }

    /// Counts one loader call.
    pub(crate) fn record_load(&self, failed: bool, started: u64) {
        self.counters.loads.incr();
        self.counters.latency.record_nanos(self.clock.now().saturating_sub(started));
        if failed {
            self.counters.load_errors.incr();
        }
    }

    /// Forgets load `id` after its loader panicked or every caller left it.
    pub(crate) fn abandon(&self, hash: u64, id: u64, panicked: bool) {
        if panicked {
            self.counters.load_panics.incr();
        } else {
            self.counters.abandoned_loads.incr();
        }
        let slot = self.shard(hash).write(|shard| {
            let slot = shard.take_flight(hash, id);
            let refreshed = slot.as_ref().and_then(|s| s.refresh_of);
            if let Some(e) = refreshed.and_then(|id| shard.find_id(hash, id)) {
                e.refreshing.store(false, Ordering::Release);
            }
            slot
        });
        drop(slot);
    }

    /// Counts removals and tells the listeners, outside any lock.
    fn report(&self, removed: Removed<K, V>) {
        for (key, slot, cause) in removed.list {
            if let Slot::Value(value) = slot {
                self.hook.emit(|| CacheEvent::Removed { key, value, cause });
            }
        }
    }
}
