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
//! Queues hold `(hash, id)` tickets rather than pointers: an entry that was invalidated or
//! replaced leaves a dead ticket behind, skipped when it reaches the front (and swept when dead
//! tickets outnumber live entries).

use std::collections::VecDeque;

use hashbrown::HashTable;
use levee_core::sync::{Arc, AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::flight::Flight;

/// Highest value of an entry's hit counter.
const MAX_FREQ: u8 = 3;
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
    Failed(crate::ErasedError),
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

pub(crate) struct Entry<K, V> {
    pub(crate) key: K,
    pub(crate) hash: u64,
    id: u64,
    pub(crate) slot: Slot<V>,
    weight: u32,
    in_main: bool,
    freq: AtomicU8,
    /// Set by the one caller that starts a background refresh of this entry.
    pub(crate) refreshing: AtomicBool,
    /// Nanoseconds the load that produced this entry took (XFetch's delta).
    pub(crate) load_nanos: u64,
    /// Stale (may still be served while refreshing) from here on; `u64::MAX`: never.
    pub(crate) expires_at: u64,
    /// Gone for good from here on (`expires_at` plus the allowed staleness).
    pub(crate) dead_at: u64,
    /// Last read, for time-to-idle (only maintained when idle expiry is on).
    pub(crate) last_access: AtomicU64,
}

impl<K, V> Entry<K, V> {
    /// This entry's identity (a key stored again gets a new one).
    pub(crate) fn id(&self) -> u64 {
        self.id
    }

    /// Records a hit: the frequency only ever grows to `MAX_FREQ`, and once there a hit writes
    /// nothing, so hot entries stay shared in every reader's cache.
    #[inline]
    pub(crate) fn touch(&self) {
        let f = self.freq.load(Ordering::Relaxed);
        if f < MAX_FREQ {
            // A lost update between two readers only undercounts a hit: harmless.
            self.freq.store(f + 1, Ordering::Relaxed);
        }
    }

    /// True when the entry is past its hard deadline or idle too long.
    #[inline]
    pub(crate) fn is_dead(&self, now: u64, tti: u64) -> bool {
        now >= self.dead_at
            || (tti != 0 && now.saturating_sub(self.last_access.load(Ordering::Relaxed)) >= tti)
    }
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
    /// Keep them for a listener; otherwise only count.
    pub(crate) keep: bool,
    pub(crate) list: Vec<(K, Slot<V>, RemovalCause)>,
    pub(crate) evicted: u64,
    pub(crate) expired: u64,
    pub(crate) total: u64,
}

impl<K, V> Removed<K, V> {
    pub(crate) fn new(keep: bool) -> Self {
        Self { keep, list: Vec::new(), evicted: 0, expired: 0, total: 0 }
    }

    pub(crate) fn push(&mut self, key: K, slot: Slot<V>, cause: RemovalCause) {
        self.total += 1;
        match cause {
            RemovalCause::Size => self.evicted += 1,
            RemovalCause::Expired => self.expired += 1,
            _ => {}
        }
        if self.keep {
            self.list.push((key, slot, cause));
        }
    }
}

#[derive(Clone, Copy)]
struct Ticket {
    hash: u64,
    id: u64,
}

/// What `insert` did.
pub(crate) enum Inserted<K> {
    Stored,
    /// Heavier than the shard's whole capacity: not stored (the key is handed back).
    TooHeavy(K),
}

/// Hashes of keys recently evicted from the small queue: a direct-mapped table (one slot per
/// hash, a newer hash overwrites an older one in its slot). That approximates the paper's
/// FIFO ghost queue with one memory access per lookup and no allocation per eviction.
struct Ghost {
    slots: Vec<u64>,
}

impl Ghost {
    fn new() -> Self {
        Self { slots: vec![0; 16] }
    }

    #[inline]
    fn slot(&self, hash: u64) -> usize {
        // The low bits index hashbrown's buckets too, but this table is separate; the shard
        // index comes from bits 32.. and is constant here.
        hash as usize & (self.slots.len() - 1)
    }

    fn contains(&self, hash: u64) -> bool {
        hash != 0 && self.slots[self.slot(hash)] == hash
    }

    /// Remembers `hash`, first growing the table to hold about `capacity` hashes.
    fn add(&mut self, hash: u64, capacity: usize) {
        let want = capacity.next_power_of_two().max(16);
        if want > self.slots.len() {
            let old = std::mem::replace(&mut self.slots, vec![0; want]);
            for h in old.into_iter().filter(|&h| h != 0) {
                let i = self.slot(h);
                self.slots[i] = h;
            }
        }
        let i = self.slot(hash);
        self.slots[i] = hash;
    }

    fn clear(&mut self) {
        self.slots.fill(0);
    }
}

/// One shard: a hash table of entries, the S3-FIFO queues, and the in-flight loads.
pub(crate) struct Shard<K, V> {
    table: HashTable<Entry<K, V>>,
    pub(crate) flights: HashTable<FlightSlot<K, V>>,
    small: VecDeque<Ticket>,
    main: VecDeque<Ticket>,
    small_weight: u64,
    main_weight: u64,
    capacity: u64,
    small_target: u64,
    dead_tickets: usize,
    ghost: Ghost,
    next_id: u64,
    /// Entries evicted for room / removed as expired, counted here under the write lock (a
    /// shared counter would cost an atomic add per insert).
    pub(crate) evicted: u64,
    pub(crate) expired: u64,
}

impl<K: Eq, V> Shard<K, V> {
    /// Adds what `removed` evicted and expired to this shard's counts.
    pub(crate) fn count(&mut self, removed: &Removed<K, V>) {
        self.evicted += removed.evicted;
        self.expired += removed.expired;
    }

    /// A shard holding up to `capacity` weight. Its table grows with its entries rather than
    /// being allocated for the capacity up front: entries live in the table, so a table sized
    /// for a large capacity spreads a few keys over megabytes, and a hit's probe then misses
    /// the CPU's caches and TLB (`cargo bench --bench cache -- cache/hit_1t`, 10k keys: a hit
    /// took 1.7-1.9x as long at capacity 100k as at 20k with the table allocated for the
    /// capacity, about the same with it grown). Growth rehashes under the shard's write lock
    /// while the cache fills, amortised over the inserts.
    pub(crate) fn new(capacity: u64) -> Self {
        Self {
            table: HashTable::new(),
            flights: HashTable::new(),
            small: VecDeque::new(),
            main: VecDeque::new(),
            small_weight: 0,
            main_weight: 0,
            capacity,
            small_target: (capacity.saturating_mul(SMALL_PERCENT) / 100).max(1),
            dead_tickets: 0,
            ghost: Ghost::new(),
            next_id: 0,
            evicted: 0,
            expired: 0,
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.small_weight + self.main_weight
    }

    pub(crate) fn next_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    #[inline]
    pub(crate) fn find<Q>(&self, hash: u64, key: &Q) -> Option<&Entry<K, V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.table.find(hash, |e| e.key.borrow() == key)
    }

    /// The entry with this id, if it is still there.
    pub(crate) fn find_id(&self, hash: u64, id: u64) -> Option<&Entry<K, V>> {
        self.table.find(hash, |e| e.id == id)
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
        self.flights.find_entry(hash, |s| s.key.borrow() == key).ok().map(|e| e.remove().0)
    }

    /// Unregisters flight `id` if it is still the registered one.
    pub(crate) fn take_flight(&mut self, hash: u64, id: u64) -> Option<FlightSlot<K, V>> {
        self.flights.find_entry(hash, |s| s.id == id).ok().map(|e| e.remove().0)
    }

    /// Stores an entry, replacing the key's old one, and evicts down to the capacity.
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
        let id = self.next_id();
        match self.table.entry(hash, |e| e.key == key, |e| e.hash) {
            hashbrown::hash_table::Entry::Occupied(mut found) => {
                // Replace in place: the entry keeps its queue position and its frequency.
                let e = found.get_mut();
                let old_slot = std::mem::replace(&mut e.slot, slot);
                let old_weight = std::mem::replace(&mut e.weight, weight);
                let queue = if e.in_main { &mut self.main_weight } else { &mut self.small_weight };
                *queue = *queue - u64::from(old_weight) + u64::from(weight);
                e.load_nanos = load_nanos;
                e.expires_at = expires_at;
                e.dead_at = dead_at;
                e.refreshing = AtomicBool::new(false);
                e.last_access = AtomicU64::new(now);
                removed.push(key, old_slot, RemovalCause::Replaced);
            }
            hashbrown::hash_table::Entry::Vacant(vacant) => {
                let in_main = self.ghost.contains(hash);
                vacant.insert(Entry {
                    key,
                    hash,
                    id,
                    slot,
                    weight,
                    in_main,
                    freq: AtomicU8::new(0),
                    refreshing: AtomicBool::new(false),
                    load_nanos,
                    expires_at,
                    dead_at,
                    last_access: AtomicU64::new(now),
                });
                let ticket = Ticket { hash, id };
                if in_main {
                    self.main.push_back(ticket);
                    self.main_weight += u64::from(weight);
                } else {
                    self.small.push_back(ticket);
                    self.small_weight += u64::from(weight);
                }
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
        for entry in self.table.iter_mut() {
            entry.expires_at = entry.expires_at.min(expires_at);
            entry.dead_at = entry.dead_at.min(dead_at);
        }
    }

    /// Removes the key's entry (invalidation).
    pub(crate) fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<Entry<K, V>>
    where
        K: std::borrow::Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let entry = self.table.find_entry(hash, |e| e.key.borrow() == key).ok()?.remove().0;
        self.forget(&entry);
        Some(entry)
    }

    /// Accounts for an entry that left the table while its ticket stays queued.
    fn forget(&mut self, entry: &Entry<K, V>) {
        self.unqueue(entry);
        self.dead_tickets += 1;
        self.sweep_if_needed();
    }

    /// Removes every entry and forgets every in-flight load (handed back, to be dropped
    /// outside the lock).
    pub(crate) fn clear(&mut self, removed: &mut Removed<K, V>) -> HashTable<FlightSlot<K, V>> {
        for entry in self.table.drain() {
            removed.push(entry.key, entry.slot, RemovalCause::Invalidated);
        }
        let flights = std::mem::take(&mut self.flights);
        self.small.clear();
        self.main.clear();
        self.ghost.clear();
        self.small_weight = 0;
        self.main_weight = 0;
        self.dead_tickets = 0;
        flights
    }

    /// Removes every entry that is past its deadline.
    pub(crate) fn purge_dead(&mut self, now: u64, tti: u64, removed: &mut Removed<K, V>) {
        let dead: Vec<Entry<K, V>> = self.table.extract_if(|e| e.is_dead(now, tti)).collect();
        for entry in dead {
            self.unqueue(&entry);
            self.dead_tickets += 1;
            removed.push(entry.key, entry.slot, RemovalCause::Expired);
        }
        self.sweep_if_needed();
    }

    /// Drops dead tickets once they outnumber the live entries.
    fn sweep_if_needed(&mut self) {
        if self.dead_tickets > 64 && self.dead_tickets > self.table.len() {
            let table = &self.table;
            let live = |t: &Ticket| table.find(t.hash, |e| e.id == t.id).is_some();
            self.small.retain(live);
            self.main.retain(live);
            self.dead_tickets = 0;
        }
    }

    /// Evicts (or moves) one entry. Returns false when there was nothing to evict.
    fn evict_one(&mut self, now: u64, tti: u64, removed: &mut Removed<K, V>) -> bool {
        loop {
            let from_small = self.small_weight >= self.small_target || self.main.is_empty();
            let ticket = if from_small { self.small.pop_front() } else { self.main.pop_front() };
            let Some(t) = ticket.or_else(|| self.main.pop_front()) else {
                return false;
            };
            let Ok(found) = self.table.find_entry(t.hash, |e| e.id == t.id) else {
                self.dead_tickets = self.dead_tickets.saturating_sub(1);
                continue; // a dead ticket
            };
            let e = found.get();
            let freq = e.freq.load(Ordering::Relaxed);
            let dead = e.is_dead(now, tti);
            let w = u64::from(e.weight);
            if dead {
                let entry = found.remove().0;
                self.unqueue(&entry);
                removed.push(entry.key, entry.slot, RemovalCause::Expired);
                return true;
            }
            if !e.in_main {
                if freq > 0 {
                    // Hit while on probation: promote to the main queue.
                    let mut occupied = found;
                    let e = occupied.get_mut();
                    e.in_main = true;
                    e.freq = AtomicU8::new(0);
                    self.small_weight -= w;
                    self.main_weight += w;
                    self.main.push_back(t);
                    continue;
                }
                let entry = found.remove().0;
                self.small_weight -= w;
                let ghost_capacity = (self.table.len() * GHOST_NUM / GHOST_DEN).max(16);
                self.ghost.add(entry.hash, ghost_capacity);
                removed.push(entry.key, entry.slot, RemovalCause::Size);
                return true;
            }
            if freq > 0 {
                e.freq.store(freq - 1, Ordering::Relaxed);
                self.main.push_back(t);
                continue;
            }
            let entry = found.remove().0;
            self.main_weight -= w;
            removed.push(entry.key, entry.slot, RemovalCause::Size);
            return true;
        }
    }

    fn unqueue(&mut self, entry: &Entry<K, V>) {
        let w = u64::from(entry.weight);
        if entry.in_main {
            self.main_weight -= w;
        } else {
            self.small_weight -= w;
        }
    }
}
