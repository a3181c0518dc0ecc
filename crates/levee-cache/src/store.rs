//! One shard's entries and its S3-FIFO eviction policy.
//!
//! S3-FIFO: Juncheng Yang, Yazhuo Zhang, Ziyue Qiu, Yao Yue, Rashmi Vinayak, "FIFO queues are
//! all you need for cache eviction", SOSP 2023.
//!
//! How it works. Three FIFO queues: a *small* queue (5 % of the capacity) where new keys land,
//! a *main* queue (the rest), and a *ghost* queue that remembers only the hashes of keys
//! recently evicted from the small queue. A hit sets a 2-bit frequency (no list is touched, so
//! hits need only the shard's read lock). Eviction looks at the oldest entry of the small queue
//! while it holds its share: if it was hit since it arrived it moves to the main queue,
//! otherwise it leaves and its hash goes to the ghost queue. The main queue is a CLOCK: an entry
//! that was hit goes round again with its frequency lowered by one. A key found in the ghost
//! queue when it comes back goes straight to the main queue. One-hit wonders (scans) thus pass
//! through the small queue without disturbing the main one.
//!
//! Layout. Entries live in a slab ([`slab`]) addressed by `u32` indices; the hash table holds
//! only indices, and the queues are linked through the entries, so eviction reaches its victim
//! without a hash probe. Deadlines live in a side array only a shard with expiring entries
//! allocates ([`entry::Times`]).

mod entry;
mod ghost;
mod slab;
#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, Hash};

use hashbrown::HashTable;
use levee_core::sync::{Arc, Ordering};

pub(crate) use self::entry::Found;
use self::entry::{Entry, Times};
use self::ghost::Ghost;
use self::slab::{Queue, Slab};
use crate::flight::Flight;
/// Share of a shard's capacity for the small (probation) queue, in percent. The paper uses
/// 10 %; on the Zipf(0.9) and scan-mixed traces of `examples/cache_hit_ratio.rs`, 5 % (with
/// the smaller ghost below) gains 0.2 to 0.7 points and stays scan-resistant.
const SMALL_PERCENT: u64 = 5;
/// Ghost slots, as a fraction of the resident entries (rounded up to a power of two). The
/// paper keeps as many ghosts as the main queue holds; with the direct-mapped ghost below, a
/// quarter measured best on the same traces (a half lost 0.3 point at capacity 10k, a whole
/// 0.9 point).
const GHOST_NUM: usize = 1;
const GHOST_DEN: usize = 4;

/// What an entry holds: a value, or a remembered miss or error (negative caching).
#[derive(Clone)]
pub(crate) enum Slot<V> {
    Value(V),
    Missing,
    /// Behind one more (thin) pointer: a slot of a word-sized value then takes two words, not
    /// three, in every entry; a remembered error is rare and costs one allocation.
    Failed(std::sync::Arc<crate::ErasedError>),
}

/// Why an entry left the cache.
///
/// ```
/// use std::time::Duration;
/// use levee_cache::{Cache, CacheEvent, RemovalCause};
/// use levee_core::ManualClock;
///
/// let clock = ManualClock::new();
/// let expired = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
/// let count = expired.clone();
/// let cache: Cache<u8, u8, _> = Cache::builder()
///     .max_capacity(10)
///     .time_to_live(Duration::from_secs(60))
///     .clock(clock.clone())
///     .listener(move |e: &CacheEvent<u8, u8>| {
///         if matches!(e, CacheEvent::Removed { cause: RemovalCause::Expired, .. }) {
///             count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
///         }
///     })
///     .build()?;
/// cache.insert(1, 1);
/// clock.advance(Duration::from_secs(61));
/// assert_eq!(cache.get(&1), None);
/// cache.cleanup();
/// assert_eq!(expired.load(std::sync::atomic::Ordering::Relaxed), 1);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum RemovalCause {
    /// Evicted to make room (the capacity was reached).
    Size,
    /// Its time to live, or time to idle, ran out.
    Expired,
    /// Removed by `invalidate` or `invalidate_all`.
    Invalidated,
    /// Overwritten by a newer value for the same key.
    Replaced,
}

/// What the cache wants stored.
pub(crate) struct NewEntry<K, V> {
    pub(crate) key: K,
    pub(crate) hash: u64,
    pub(crate) slot: Slot<V>,
    pub(crate) weight: u32,
    pub(crate) load_nanos: u64,
    pub(crate) expires_at: u64,
    pub(crate) dead_at: u64,
    pub(crate) now: u64,
}

/// A registered in-flight load of one key.
pub(crate) struct FlightSlot<K, V> {
    pub(crate) key: K,
    pub(crate) hash: u64,
    pub(crate) id: u64,
    /// The entry this load refreshes (its `refreshing` flag is cleared if the load fails).
    pub(crate) refresh_of: Option<u64>,
    pub(crate) flight: Arc<Flight<crate::cache::Loaded<V>>>,
}

/// Entries that left the shard, handed back so they are dropped (and reported) outside the lock.
pub(crate) struct Removed<K, V> {
    /// The entries, kept for a listener; `None` when nobody listens and they are only
    /// counted (one word to set up: a flag beside an empty `Vec` took a plain insert four
    /// stores, `examples/cache_cost.rs churn`).
    list: Option<Vec<(K, Slot<V>, RemovalCause)>>,
    /// Entries handed to [`push`](Self::push), kept or not (an invalidation's count).
    /// Evictions and expirations are counted by the shard itself, as they happen.
    pub(crate) total: u64,
}

impl<K, V> Removed<K, V> {
    pub(crate) fn new(keep: bool) -> Self {
        Self { list: keep.then(Vec::new), total: 0 }
    }

    /// True when the entries are kept (else they are dropped where they lie).
    #[inline]
    pub(crate) fn keep(&self) -> bool {
        self.list.is_some()
    }

    pub(crate) fn push(&mut self, key: K, slot: Slot<V>, cause: RemovalCause) {
        self.total += 1;
        if let Some(list) = &mut self.list {
            list.push((key, slot, cause));
        }
    }

    /// The entries kept, in the order they left (for the tests' checks).
    #[cfg(test)]
    pub(crate) fn kept(&self) -> &[(K, Slot<V>, RemovalCause)] {
        self.list.as_deref().unwrap_or_default()
    }

    /// The entries kept, to report.
    pub(crate) fn into_kept(self) -> Vec<(K, Slot<V>, RemovalCause)> {
        self.list.unwrap_or_default()
    }
}

/// What `insert` did.
pub(crate) enum Inserted<K> {
    Stored,
    /// Heavier than the shard's whole capacity: not stored (the key is handed back).
    TooHeavy(K),
}

/// One shard: the entries, the hash table that finds them, the S3-FIFO queues, and the
/// in-flight loads.
pub(crate) struct Shard<K, V> {
    /// Slab indices, hashed by their entry's key.
    table: HashTable<u32>,
    /// The cache's hasher (the same seed): hashes a key again where its hash is not at hand.
    hasher: foldhash::fast::RandomState,
    slab: Slab<K, V>,
    pub(crate) flights: HashTable<FlightSlot<K, V>>,
    small: Queue,
    main: Queue,
    capacity: u64,
    small_target: u64,
    ghost: Ghost,
    next_id: u64,
    /// Entries evicted for room / removed as expired, counted here under the write lock as
    /// they leave (a shared counter would cost an atomic add per insert; counting them in
    /// [`Removed`] and adding that here after each write cost a plain insert 11
    /// instructions, `examples/cache_cost.rs churn`).
    pub(crate) evicted: u64,
    pub(crate) expired: u64,
}

impl<K: Hash + Eq, V> Shard<K, V> {
    /// A shard holding up to `capacity` weight. Its table and slab grow with its entries
    /// rather than being allocated for the capacity up front: a table sized for a large
    /// capacity spreads a few keys over more memory, and a hit's probe then misses the CPU's
    /// caches and TLB (`cargo bench --bench cache -- cache/hit_1t`, 10k keys: a hit took
    /// 1.7-1.9x as long at capacity 100k as at 20k with the table allocated for the capacity,
    /// about the same with it grown). Growth happens under the shard's write lock while the
    /// cache fills, amortised over the inserts. Counted (`examples/cache_cost.rs`), sizing
    /// both for the capacity saved the cold Zipf replay 9.6 of its 298.6 instructions a
    /// request, but raised a hit's L1 read misses from 3.01 to 3.26 even at capacity 20k;
    /// the slab alone saved 2 to 5, for a shard's whole slab as soon as it holds one entry.
    pub(crate) fn new(capacity: u64, hasher: foldhash::fast::RandomState) -> Self {
        Self {
            table: HashTable::new(),
            hasher,
            slab: Slab::new(),
            flights: HashTable::new(),
            small: Queue::new(),
            main: Queue::new(),
            capacity,
            small_target: (capacity.saturating_mul(SMALL_PERCENT) / 100).max(1),
            ghost: Ghost::new(),
            next_id: 0,
            evicted: 0,
            expired: 0,
        }
    }

    /// The hash of `key`, as the cache computes it.
    #[inline]
    pub(crate) fn hash<Q: Hash + ?Sized>(&self, key: &Q) -> u64 {
        self.hasher.hash_one(key)
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.small.weight + self.main.weight
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    /// The slab index of the key's entry.
    #[inline]
    fn index_of<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slab = &self.slab;
        let eq = |&i: &u32| slab.get(i).is_some_and(|e| e.key.borrow() == key);
        self.table.find(hash, eq).copied()
    }

    #[inline]
    fn found(&self, i: u32) -> Option<Found<'_, K, V>> {
        Some(Found { entry: self.slab.get(i)?, times: self.slab.times(i) })
    }

    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<Found<'_, K, V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.found(self.index_of(hash, key)?)
    }

    /// The entry with this id, if it is still there.
    pub(crate) fn find_id(&self, hash: u64, id: u64) -> Option<Found<'_, K, V>> {
        let slab = &self.slab;
        let i = *self.table.find(hash, |&i| slab.times(i).is_some_and(|t| t.id == id))?;
        self.found(i)
    }

    /// From now on keeps every entry's deadlines.
    fn keep_times(&mut self, now: u64) {
        let next_id = &mut self.next_id;
        self.slab.keep_times(now, || {
            *next_id += 1;
            *next_id
        });
    }

    pub(crate) fn find_flight<Q>(&self, hash: u64, key: &Q) -> Option<&FlightSlot<K, V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.flights.find(hash, |s| s.key.borrow() == key)
    }

    /// Unregisters the flight for this key whatever its id (an insert or invalidation makes
    /// the in-flight load stale: its result will not be stored).
    pub(crate) fn detach_flight<Q>(&mut self, hash: u64, key: &Q) -> Option<FlightSlot<K, V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        if self.flights.is_empty() {
            return None; // the common case: no load in flight in this shard
        }
        self.flights.find_entry(hash, |s| s.key.borrow() == key).ok().map(|e| e.remove().0)
    }

    /// Unregisters flight `id` if it is still the registered one.
    pub(crate) fn take_flight(&mut self, hash: u64, id: u64) -> Option<FlightSlot<K, V>> {
        self.flights.find_entry(hash, |s| s.id == id).ok().map(|e| e.remove().0)
    }

    /// Stores an entry, replacing the key's old one, and evicts down to the capacity.
    /// Inlined into the write lock's closure, so `new`'s fields stay in registers: passed by
    /// value, they went through the stack and the copy stalled on store forwarding.
    #[inline(always)]
    pub(crate) fn insert(
        &mut self,
        new: NewEntry<K, V>,
        tti: u64,
        removed: &mut Removed<K, V>,
    ) -> Inserted<K> {
        let NewEntry { key, hash, slot, weight, load_nanos, expires_at, dead_at, now } = new;
        if u64::from(weight) > self.capacity {
            if let Some(old) = self.remove(hash, &key) {
                removed.push(old.key, old.slot, RemovalCause::Replaced);
            }
            return Inserted::TooHeavy(key);
        }
        if expires_at != u64::MAX || dead_at != u64::MAX || tti != 0 {
            self.keep_times(now);
        }
        if self.slab.is_full() {
            // Every index taken (4 billion entries in one shard): make room first.
            self.evict_one(now, tti, removed);
        }
        // One probe finds the key or the bucket a new key goes to.
        let (slab, hasher) = (&self.slab, &self.hasher);
        let found = self.table.entry(
            hash,
            |&i| slab.get(i).is_some_and(|e| e.key == key),
            |&j| slab.get(j).map_or(0, |e| hasher.hash_one(&e.key)),
        );
        match found {
            hashbrown::hash_table::Entry::Occupied(at) => {
                // Replace in place: the entry keeps its queue position and its frequency.
                let i = *at.get();
                let Some(e) = self.slab.get_mut(i) else { return Inserted::TooHeavy(key) };
                let old_slot = std::mem::replace(&mut e.slot, slot);
                let old_weight = std::mem::replace(&mut e.weight, weight);
                let queue = if e.in_main { &mut self.main } else { &mut self.small };
                queue.weight = queue.weight - u64::from(old_weight) + u64::from(weight);
                if let Some(t) = self.slab.times_mut(i) {
                    *t = Times::new(t.id, expires_at, dead_at, load_nanos, now);
                }
                removed.push(key, old_slot, RemovalCause::Replaced);
            }
            hashbrown::hash_table::Entry::Vacant(bucket) => {
                let in_main = self.ghost.contains(hash);
                let hint = usize::try_from(self.capacity.saturating_add(1)).unwrap_or(usize::MAX);
                let Some(i) = self.slab.vacant(hint) else { return Inserted::TooHeavy(key) };
                bucket.insert(i);
                let queue = if in_main { &mut self.main } else { &mut self.small };
                // An id only for an entry whose times are kept (the only ones a refresh
                // names): a plain insert writes no counter.
                let next_id = &mut self.next_id;
                let times = || {
                    *next_id += 1;
                    Times::new(*next_id, expires_at, dead_at, load_nanos, now)
                };
                self.slab.fill_back(queue, i, || Entry::new(key, slot, weight, in_main), times);
            }
        }
        while self.weight() > self.capacity {
            if !self.evict_one(now, tti, removed) {
                break;
            }
        }
        Inserted::Stored
    }

    /// Changes the capacity and evicts down to it (`Cache::set_max_capacity`).
    pub(crate) fn set_capacity(
        &mut self,
        capacity: u64,
        now: u64,
        tti: u64,
        removed: &mut Removed<K, V>,
    ) {
        self.capacity = capacity;
        self.small_target = (capacity.saturating_mul(SMALL_PERCENT) / 100).max(1);
        while self.weight() > self.capacity {
            if !self.evict_one(now, tti, removed) {
                break;
            }
        }
    }

    /// Brings every deadline forward to at most `expires_at` (and its staleness limit to
    /// `expires_at + max_stale`): `Cache::set_time_to_live` when the time to live shrinks.
    pub(crate) fn cap_deadlines(&mut self, expires_at: u64, max_stale: u64) {
        let dead_at = expires_at.saturating_add(max_stale);
        // Entries stored before had no deadline: idle time does not apply to them (a cache
        // with a time to idle kept times from its first entry), so their last read is moot.
        self.keep_times(0);
        let held: Vec<u32> = self.slab.indices().collect();
        for i in held {
            if let Some(t) = self.slab.times_mut(i) {
                t.expires_at = t.expires_at.min(expires_at);
                t.dead_at = t.dead_at.min(dead_at);
            }
        }
    }

    /// Removes the key's entry (invalidation).
    pub(crate) fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<Entry<K, V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let i = self.index_of(hash, key)?;
        self.take(i, hash)
    }

    /// Takes entry `i`, whose key hashes to `hash`, out of the table, its queue and the slab.
    fn take(&mut self, i: u32, hash: u64) -> Option<Entry<K, V>> {
        self.unindex(i, hash)?;
        self.slab.remove(i)
    }

    /// Takes entry `i`, whose key hashes to `hash`, out of the table and its queue (the slab
    /// still holds it); `None` when there is no entry `i`.
    fn unindex(&mut self, i: u32, hash: u64) -> Option<()> {
        let in_main = self.slab.get(i)?.in_main;
        self.unindex_at(i, hash, in_main);
        Some(())
    }

    /// [`unindex`](Self::unindex) for a caller that has read entry `i` and found it in the
    /// main queue if `in_main`, else in the small one: nothing to look up again. Always
    /// inlined, as [`remove_for`](Self::remove_for) is: left to the compiler, it went out of
    /// line in `evict_one` at small changes nearby, a call per eviction.
    #[inline(always)]
    fn unindex_at(&mut self, i: u32, hash: u64, in_main: bool) {
        if let Ok(found) = self.table.find_entry(hash, |&j| j == i) {
            found.remove();
        }
        let queue = if in_main { &mut self.main } else { &mut self.small };
        self.slab.unlink(queue, i);
    }

    /// Removes entry `i` (which the caller read: in the main queue if `in_main`, its key
    /// hashing to `hash`) for `cause`: handed to `removed` when it keeps entries, else
    /// dropped where it lies (moving an entry out costs more than the rest of an eviction
    /// when nothing needs it: `cargo bench --bench cache -- cache/churn`). Always inlined:
    /// an insert into a full shard runs it once, and as a call its register saves and
    /// reloads cost a tenth of that insert.
    #[inline(always)]
    fn remove_for(
        &mut self,
        i: u32,
        hash: u64,
        in_main: bool,
        cause: RemovalCause,
        removed: &mut Removed<K, V>,
    ) {
        self.unindex_at(i, hash, in_main);
        match cause {
            RemovalCause::Size => self.evicted += 1,
            RemovalCause::Expired => self.expired += 1,
            _ => {}
        }
        if removed.keep() {
            if let Some(e) = self.slab.remove(i) {
                removed.push(e.key, e.slot, cause);
            }
        } else {
            self.slab.discard(i);
        }
    }

    /// Removes every entry and forgets every in-flight load (handed back, to be dropped
    /// outside the lock).
    pub(crate) fn clear(&mut self, removed: &mut Removed<K, V>) -> HashTable<FlightSlot<K, V>> {
        self.table.clear();
        self.slab.clear(|e| removed.push(e.key, e.slot, RemovalCause::Invalidated));
        self.small = Queue::new();
        self.main = Queue::new();
        self.ghost.clear();
        std::mem::take(&mut self.flights)
    }

    /// Removes every entry that is past its deadline.
    pub(crate) fn purge_dead(&mut self, now: u64, tti: u64, removed: &mut Removed<K, V>) {
        let slab = &self.slab;
        let dead: Vec<u32> =
            slab.indices().filter(|&i| entry::is_dead(slab.times(i), now, tti)).collect();
        for i in dead {
            let Some((hash, in_main)) = self.slab.get(i).map(|e| (self.hash(&e.key), e.in_main))
            else {
                continue;
            };
            self.remove_for(i, hash, in_main, RemovalCause::Expired, removed);
        }
    }

    /// Evicts (or moves) one entry. Returns false when there was nothing to evict. Always
    /// inlined: an insert into a full shard runs it once, and as a call (its prologue,
    /// register saves and epilogue) it cost about 12 of that insert's instructions
    /// (`examples/cache_cost.rs churn`).
    #[inline(always)]
    fn evict_one(&mut self, now: u64, tti: u64, removed: &mut Removed<K, V>) -> bool {
        loop {
            let from_small = self.small.weight >= self.small_target || self.main.is_empty();
            let i =
                if from_small && !self.small.is_empty() { self.small.head } else { self.main.head };
            let Some(e) = self.slab.get(i) else {
                return false; // both queues empty
            };
            let freq = e.freq.load(Ordering::Relaxed);
            let in_main = e.in_main;
            let cause = if entry::is_dead(self.slab.times(i), now, tti) {
                RemovalCause::Expired
            } else if freq > 0 {
                // Hit since it was queued: on probation, promote it to the main queue; in the
                // main queue (a CLOCK), go round again with the frequency lowered by one.
                let from = if in_main { &mut self.main } else { &mut self.small };
                self.slab.unlink(from, i);
                self.slab.push_back(&mut self.main, i, |e| {
                    e.in_main = true;
                    e.freq.store(if in_main { freq - 1 } else { 0 }, Ordering::Relaxed);
                });
                continue;
            } else {
                RemovalCause::Size
            };
            // One call for both causes, so `remove_for` is inlined here once.
            let hash = self.hash(&e.key);
            self.remove_for(i, hash, in_main, cause, removed);
            if cause == RemovalCause::Size && !in_main {
                let ghost_capacity = (self.table.len() * GHOST_NUM / GHOST_DEN).max(16);
                self.ghost.add(hash, ghost_capacity);
            }
            return true;
        }
    }
}
