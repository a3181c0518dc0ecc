//! The keyed rate limiter: one GCRA state per key in a sharded table, with memory that
//! returns by itself.
//!
//! **Lookups.** The key's hash picks a shard (its bits 48 and up) and a slot (its low bits).
//! A key already present is checked with shared access to the shard: the state is an
//! `AtomicU64`, so many threads check keys of one shard at once and none waits for another
//! (exclusive access is taken only to add keys and to reclaim them). Shared access goes
//! through a reader-biased lock (`lock.rs`): one CAS on a per-thread reader slot instead of
//! the two atomic read-modify-writes of a reader-writer lock word.
//!
//! **Reclamation (governor issue 171).** A key whose state is at or behind the clock
//! (`tat <= now`) has refilled completely: it behaves exactly like a key never seen, so it can
//! be dropped without changing any decision. Nothing has to call a `retain_recent`:
//!
//! - when a shard's table would grow past 3/4 load, it first drops such keys and is rebuilt
//!   for the survivors (it grows only if they need the room, and shrinks when most are gone);
//!   the work is proportional to the table and happens at most once per doubling, so it is
//!   amortised O(1) per insertion;
//! - every `sweep_interval` (by default the quota's refill time, at least one second) the
//!   next check that lands on a shard claims the sweep (one CAS, so one thread does it) and
//!   sweeps it under the write lock, so after a burst over many keys, memory returns to the
//!   working set as traffic goes on, even if no new key arrives.
//!
//! [`KeyedRateLimiter::reclaim`] sweeps every shard at once for those who want to.
//!
//! **Key limit.** With [`max_keys`](KeyedBuilder::max_keys), each shard holds at most
//! `max_keys / shards` keys. A new key arriving at a full shard first reclaims refilled keys;
//! if none are, [`KeyLimitPolicy`] decides: evict the keys closest to refilled (the default)
//! or refuse the new key until one refills.

mod lock;
mod table;
mod view;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use levee_core::sync::{AtomicU64, CachePadded, Ordering};
use levee_core::{Clock, ConfigError, Counter, EventHook, FastClock, Listener, nanos};

use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::quota::{Gcra, Quota};
use crate::state::LimitState;
use crate::stats::{RateCounters, RateEvent};
use crate::wait::{Jitter, retry_until};
use lock::{ReaderSlots, ShardLock};
use table::Table;
pub use view::KeyLimit;

/// The default hasher: foldhash, seeded per limiter (fast, and not predictable by clients
/// choosing keys).
pub type DefaultHasher = foldhash::fast::RandomState;

/// What a keyed limiter does when a new key arrives at a shard that already holds its share
/// of [`max_keys`](KeyedBuilder::max_keys) and none of its keys has refilled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub enum KeyLimitPolicy {
    /// Evict the keys whose state is closest to refilled (the smallest `tat`), an eighth of
    /// the shard at a time, and admit the new key. An evicted key that returns starts full,
    /// so it may get up to its remaining refill time's worth of cells more than its quota:
    /// the smallest excess any eviction can cause. Memory stays bounded.
    #[default]
    EvictNearestRefilled,
    /// Refuse new keys (as [`Throttled`], retry after the first tracked key refills) and
    /// keep limiting the keys already tracked exactly.
    RefuseNewKeys,
}

struct Shard<K> {
    table: ShardLock<Table<K>>,
    /// This shard's tag in the reader slots: its index + 1.
    tag: usize,
    /// Clock reading at which the next time-based sweep is due; `u64::MAX` while empty.
    sweep_due: AtomicU64,
}

/// What an insertion under the write lock came to.
enum Inserted {
    /// Another thread had added the key meanwhile; this is the check on its state.
    Existing(Result<(), CheckNError>),
    /// A new key, admitted.
    New,
    /// The shard is full and the policy refuses new keys.
    Refused(Throttled),
}

/// A GCRA rate limit per key (client IP, API token, user id...), in a sharded table whose
/// memory is bounded by design.
///
/// Checking a key already present takes shared access to its shard (one CAS on a reader
/// slot), one CAS on the key's state, and no allocation. Keys that have refilled are reclaimed automatically (see the module
/// docs), and an optional key limit bounds memory outright.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{KeyedRateLimiter, Quota};
///
/// let clock = ManualClock::new();
/// let limiter = KeyedRateLimiter::<String>::builder(Quota::per_second(1))
///     .shards(1) // one shard, so that the example sees the reclamation at once
///     .clock(clock.clone())
///     .build()?;
/// assert!(limiter.check("alice").is_ok());
/// assert!(limiter.check("alice").is_err());
/// assert!(limiter.check("bob").is_ok(), "keys are limited independently");
/// assert_eq!(limiter.len(), 2);
///
/// // Once both have refilled, they are dropped without any call to clean up.
/// clock.advance(Duration::from_secs(2));
/// assert!(limiter.check("carol").is_ok());
/// assert_eq!(limiter.len(), 1);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct KeyedRateLimiter<K, C = FastClock, S = DefaultHasher> {
    shards: Box<[CachePadded<Shard<K>>]>,
    readers: ReaderSlots,
    hasher: S,
    gcra: Gcra,
    clock: C,
    quota: Quota,
    sweep_interval: u64,
    /// Keys per shard at most (`usize::MAX`: unlimited).
    shard_limit: usize,
    policy: KeyLimitPolicy,
    count_admitted: bool,
    counters: RateCounters,
    reclaimed: Counter,
    evicted: Counter,
    hook: EventHook<RateEvent>,
}

impl<K, C, S> fmt::Debug for KeyedRateLimiter<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedRateLimiter")
            .field("quota", &self.quota)
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// A snapshot of a keyed limiter's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KeyedStats {
    /// Cells admitted; `None` unless admission counting is on.
    pub admitted: Option<u64>,
    /// Calls refused.
    pub rejected: u64,
    /// Async calls that waited.
    pub waited: u64,
    /// Keys currently tracked.
    pub keys: usize,
    /// Keys reclaimed so far because they had refilled.
    pub reclaimed: u64,
    /// Keys evicted so far by the key limit.
    pub evicted: u64,
    /// Bytes held by the shards' tables.
    pub table_bytes: usize,
}

impl<K: Hash + Eq> KeyedRateLimiter<K> {
    /// A limiter for `quota` per key, on the default clock and hasher, without a key limit.
    ///
    /// # Errors
    /// A [`ConfigError`] when the quota is invalid.
    pub fn new(quota: Quota) -> Result<Self, ConfigError> {
        Self::builder(quota).build()
    }

    /// A builder for `quota` per key.
    pub fn builder(quota: Quota) -> KeyedBuilder<K, FastClock, DefaultHasher> {
        KeyedBuilder {
            quota,
            clock: FastClock,
            hasher: DefaultHasher::default(),
            shards: 64,
            max_keys: None,
            policy: KeyLimitPolicy::default(),
            sweep_interval: None,
            count_admitted: false,
            hook: EventHook::none(),
            _key: std::marker::PhantomData,
        }
    }
}

impl<K, C, S> KeyedRateLimiter<K, C, S>
where
    K: Hash + Eq,
    C: Clock,
    S: BuildHasher,
{
    /// Admits one cell for `key`.
    ///
    /// # Errors
    /// [`Throttled`] when the key's quota is used up (or, under
    /// [`KeyLimitPolicy::RefuseNewKeys`], when a new key finds its shard full).
    #[inline]
    pub fn check<Q>(&self, key: &Q) -> Result<(), Throttled>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_inner(key, self.clock.now(), true)
    }

    /// As [`check`](Self::check), judged at clock reading `now` that the caller already
    /// took from this limiter's [`clock`](Self::clock) (see
    /// [`RateLimiter::check_at`](crate::RateLimiter::check_at)).
    ///
    /// # Errors
    /// As [`check`](Self::check).
    #[inline]
    pub fn check_at<Q>(&self, key: &Q, now: u64) -> Result<(), Throttled>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_inner(key, now, true)
    }

    #[inline]
    fn check_inner<Q>(&self, key: &Q, now: u64, report: bool) -> Result<(), Throttled>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        // The read section returns one word (0: admitted; else the earliest time it could
        // be) rather than a `Result<(), Throttled>`, which the compiler would assemble in
        // memory and read back through a failed store forward on every call.
        let hit = self.read(shard, |table| {
            table.find(hash, key).map(|tat| match self.gcra.check(tat, now) {
                Ok(()) => 0,
                Err(refusal) => refusal.earliest(),
            })
        });
        match hit {
            Some(0) => {
                self.after_hit(shard, now);
                self.count(Ok(()), 1)
            }
            Some(earliest) => {
                self.after_hit(shard, now);
                let refusal = Throttled::new(now, earliest);
                if report { self.count(Err(refusal), 1) } else { Err(refusal) }
            }
            None => self.insert(shard, hash, key, now, 1).map_err(CheckNError::expect_throttled),
        }
    }

    /// Admits `n` cells at once for `key` (all or none; `n == 0` succeeds and adds no key).
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they do not fit now;
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the burst.
    pub fn check_n<Q>(&self, key: &Q, n: u32) -> Result<(), CheckNError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_n_inner(key, n, true)
    }

    /// As [`check_n`](Self::check_n); `report` says whether a refusal is a rejected call
    /// (counted and reported) or a step of an async wait (not).
    fn check_n_inner<Q>(&self, key: &Q, n: u32, report: bool) -> Result<(), CheckNError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        if n == 0 {
            return Ok(());
        }
        if n > self.gcra.burst {
            self.counters.rejected.incr();
            return Err(InsufficientCapacity { requested: n, burst: self.gcra.burst }.into());
        }
        let hash = self.hasher.hash_one(key);
        let shard = self.shard(hash);
        let now = self.clock.now();
        let hit = self
            .read(shard, |table| table.find(hash, key).map(|tat| self.gcra.check_n(tat, now, n)));
        match hit {
            Some(result) => {
                self.after_hit(shard, now);
                match result {
                    Ok(()) => self.count(Ok(()), n).map_err(Into::into),
                    Err(CheckNError::Throttled(t)) if report => {
                        self.count(Err(t), n).map_err(Into::into)
                    }
                    Err(e) => Err(e),
                }
            }
            None => self.insert(shard, hash, key, now, n),
        }
    }

    #[inline]
    fn shard(&self, hash: u64) -> &Shard<K> {
        // Bits 48.. pick the shard; the table uses the low bits.
        &self.shards[(hash >> 48) as usize & (self.shards.len() - 1)]
    }

    /// Shared access to a shard's table (biased: usually one CAS on a reader slot).
    #[inline]
    fn read<R>(&self, shard: &Shard<K>, f: impl FnOnce(&Table<K>) -> R) -> R {
        shard.table.read(&self.readers, shard.tag, f)
    }

    /// Exclusive access to a shard's table.
    fn write<R>(&self, shard: &Shard<K>, f: impl FnOnce(&mut Table<K>) -> R) -> R {
        shard.table.write(&self.readers, shard.tag, f)
    }

    #[inline]
    fn count(&self, result: Result<(), Throttled>, cells: u32) -> Result<(), Throttled> {
        self.counters.settle(&self.hook, self.count_admitted, cells, result)
    }

    /// After a hit: sweep the shard if its time has come.
    #[inline]
    fn after_hit(&self, shard: &Shard<K>, now: u64) {
        // Relaxed: a hint; the sweep itself runs under the write lock and re-checks.
        if shard.sweep_due.load(Ordering::Relaxed) <= now {
            self.sweep_due_shard(shard, now);
        }
    }

    #[cold]
    fn sweep_due_shard(&self, shard: &Shard<K>, now: u64) {
        // Claim the sweep so that one thread does it while the others carry on: moving the
        // due time to "never" hides it from them until `sweep` schedules the next one.
        // Relaxed: the claim orders nothing; the write lock orders the table.
        let due = shard.sweep_due.load(Ordering::Relaxed);
        if due <= now
            && shard
                .sweep_due
                .compare_exchange(due, u64::MAX, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            let swept = self.write(shard, |table| self.sweep(shard, table, now, 0));
            self.report_sweep(swept);
        }
    }

    /// Drops the refilled keys of a locked shard (rebuilding it with room for `room` more)
    /// and schedules its next sweep. Returns `(reclaimed, remaining)` for `report_sweep`,
    /// called once the lock is released (listeners never run under a shard lock).
    fn sweep(
        &self,
        shard: &Shard<K>,
        table: &mut Table<K>,
        now: u64,
        room: usize,
    ) -> (usize, usize) {
        let reclaimed = table.rebuild(now, room);
        let due = if table.len() == 0 { u64::MAX } else { now.saturating_add(self.sweep_interval) };
        // Relaxed: read only as a hint by `after_hit`; the write lock orders the rest.
        shard.sweep_due.store(due, Ordering::Relaxed);
        (reclaimed, table.len())
    }

    fn report_sweep(&self, (reclaimed, remaining): (usize, usize)) {
        if reclaimed > 0 {
            self.reclaimed.add(reclaimed as u64);
            self.hook.emit(|| RateEvent::KeysReclaimed { reclaimed, remaining });
        }
    }

    /// The slow path: `key` was not in its shard. Takes the write lock, and admits the key's
    /// first cells into a fresh state (a new key is full, so `n <= burst` always fits).
    #[cold]
    fn insert<Q>(
        &self,
        shard: &Shard<K>,
        hash: u64,
        key: &Q,
        now: u64,
        n: u32,
    ) -> Result<(), CheckNError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        let mut sweeps = [(0, 0); 2];
        let mut evicted = 0;
        let outcome = self.write(shard, |table| {
            if let Some(tat) = table.find(hash, key) {
                // Another thread added it since our read.
                return Inserted::Existing(self.gcra.check_n(tat, now, n));
            }
            if table.len() >= self.shard_limit {
                sweeps[0] = self.sweep(shard, table, now, 1);
                if table.len() >= self.shard_limit {
                    match self.policy {
                        KeyLimitPolicy::EvictNearestRefilled => evicted = Self::evict(table),
                        KeyLimitPolicy::RefuseNewKeys => {
                            let earliest = table.min_tat().unwrap_or(now).max(now);
                            return Inserted::Refused(Throttled::new(now, earliest));
                        }
                    }
                }
            }
            if table.is_full() || shard.sweep_due.load(Ordering::Relaxed) <= now {
                // Reclaim before growing (the rebuild sizes the table for what survives),
                // or because this shard's sweep is due anyway and we hold its lock.
                sweeps[1] = self.sweep(shard, table, now, 1);
            }
            // A fresh key's state is `now`; admitting n cells moves it to now + n * t.
            let tat = now.saturating_add(u64::from(n) * self.gcra.t);
            table.insert(hash, key.to_owned(), tat);
            if shard.sweep_due.load(Ordering::Relaxed) == u64::MAX {
                shard.sweep_due.store(now.saturating_add(self.sweep_interval), Ordering::Relaxed);
            }
            Inserted::New
        });
        sweeps.into_iter().for_each(|s| self.report_sweep(s));
        if evicted > 0 {
            self.evicted.add(evicted as u64);
            self.hook.emit(|| RateEvent::KeysEvicted { evicted });
        }
        match outcome {
            Inserted::New => {
                self.counters.admit(self.count_admitted, n);
                Ok(())
            }
            Inserted::Existing(Ok(())) => self.count(Ok(()), n).map_err(Into::into),
            Inserted::Existing(Err(CheckNError::Throttled(t))) | Inserted::Refused(t) => {
                Err(self.counters.record_throttled(&self.hook, n, t).into())
            }
            Inserted::Existing(Err(e)) => Err(e),
        }
    }

    /// Evicts the eighth of a full shard whose states are smallest (closest to refilled).
    /// Returns how many keys went.
    fn evict(table: &mut Table<K>) -> usize {
        let mut tats = table.tats();
        let victims = (tats.len() / 8).max(1);
        let (_, cutoff, _) = tats.select_nth_unstable(victims - 1);
        let cutoff = *cutoff;
        table.rebuild(cutoff, 1)
    }

    /// Cells `key` could be admitted right now (the burst for an unknown key).
    #[must_use]
    pub fn available<Q>(&self, key: &Q) -> u32
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.state(key).remaining
    }

    /// `key`'s state now: the cells it could be admitted right now and the time until its
    /// whole burst is back (see [`LimitState`]); an unknown key is full. Takes shared access
    /// to the key's shard, as a check does; adds no key.
    #[must_use]
    pub fn state<Q>(&self, key: &Q) -> LimitState
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let hash = self.hasher.hash_one(key);
        let now = self.clock.now();
        let tat = self.read(self.shard(hash), |table| {
            // Relaxed: a snapshot.
            table.find(hash, key).map_or(0, |t| t.load(Ordering::Relaxed))
        });
        self.gcra.state(tat, now)
    }

    /// Keys currently tracked (refilled keys count until they are reclaimed).
    #[must_use]
    pub fn len(&self) -> usize {
        self.shards.iter().map(|s| self.read(s, Table::len)).sum()
    }

    /// True when no key is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims every refilled key now, in every shard, and shrinks the tables. Returns how
    /// many keys were dropped. Never needed for bounded memory (see the module docs); useful
    /// before measuring, or to return memory at once after a known burst.
    pub fn reclaim(&self) -> usize {
        let now = self.clock.now();
        self.shards
            .iter()
            .map(|shard| {
                let swept = self.write(shard, |table| self.sweep(shard, table, now, 0));
                self.report_sweep(swept);
                swept.0
            })
            .sum()
    }

    /// A snapshot of the counters and of the table sizes.
    #[must_use]
    pub fn stats(&self) -> KeyedStats {
        let (keys, table_bytes) = self.shards.iter().fold((0, 0), |(k, b), s| {
            let (len, bytes) = self.read(s, |t| (t.len(), t.footprint()));
            (k + len, b + bytes)
        });
        let rate = self.counters.snapshot(self.count_admitted);
        KeyedStats {
            admitted: rate.admitted,
            rejected: rate.rejected,
            waited: rate.waited,
            keys,
            reclaimed: self.reclaimed.get(),
            evicted: self.evicted.get(),
            table_bytes,
        }
    }

    /// The per-key quota.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The limiter's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.clock
    }
}

impl<K, C, S> KeyedRateLimiter<K, C, S>
where
    K: Hash + Eq,
    C: Clock,
    S: BuildHasher,
{
    /// Waits until one cell is admitted for `key`, sleeping on the limiter's clock.
    /// Cancellation-safe: dropping the future consumes nothing.
    pub async fn until_key_ready<Q>(&self, key: &Q)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.until_key_ready_with_jitter(key, Jitter::NONE).await;
    }

    /// As [`until_key_ready`](Self::until_key_ready) with `jitter` added to each wait.
    pub async fn until_key_ready_with_jitter<Q>(&self, key: &Q, jitter: Jitter)
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        // Refusals while waiting are steps of the wait, not rejected calls: they are
        // counted and reported here only as the wait.
        let ((), waited) =
            retry_until(&self.clock, jitter, || self.check_inner(key, self.clock.now(), false))
                .await;
        self.counters.record_wait(&self.hook, 1, waited);
    }
}

/// Builds a [`KeyedRateLimiter`].
#[must_use]
pub struct KeyedBuilder<K, C, S> {
    quota: Quota,
    clock: C,
    hasher: S,
    shards: usize,
    max_keys: Option<usize>,
    policy: KeyLimitPolicy,
    sweep_interval: Option<Duration>,
    count_admitted: bool,
    hook: EventHook<RateEvent>,
    _key: std::marker::PhantomData<fn(K)>,
}

impl<K, C, S> fmt::Debug for KeyedBuilder<K, C, S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuilder")
            .field("quota", &self.quota)
            .field("shards", &self.shards)
            .field("max_keys", &self.max_keys)
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

impl<K: Hash + Eq, C: Clock, S: BuildHasher> KeyedBuilder<K, C, S> {
    /// Reads time from `clock` instead.
    pub fn clock<C2: Clock>(self, clock: C2) -> KeyedBuilder<K, C2, S> {
        KeyedBuilder {
            quota: self.quota,
            clock,
            hasher: self.hasher,
            shards: self.shards,
            max_keys: self.max_keys,
            policy: self.policy,
            sweep_interval: self.sweep_interval,
            count_admitted: self.count_admitted,
            hook: self.hook,
            _key: self._key,
        }
    }

    /// Hashes keys with `hasher` instead (for example a fixed seed in tests).
    pub fn hasher<S2: BuildHasher>(self, hasher: S2) -> KeyedBuilder<K, C, S2> {
        KeyedBuilder {
            quota: self.quota,
            clock: self.clock,
            hasher,
            shards: self.shards,
            max_keys: self.max_keys,
            policy: self.policy,
            sweep_interval: self.sweep_interval,
            count_admitted: self.count_admitted,
            hook: self.hook,
            _key: self._key,
        }
    }

    /// Number of shards: a power of two from 1 to 4096 (default 64). More shards mean
    /// less contention on each shard's lock word and smaller sweeps; each shard is
    /// reclaimed when traffic reaches it.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = shards;
        self
    }

    /// Tracks at most `max_keys` keys (split evenly across shards; at least one per shard),
    /// applying `policy` when a shard is full. Unlimited by default: reclamation alone keeps
    /// memory proportional to the keys that have not refilled.
    pub fn max_keys(mut self, max_keys: usize, policy: KeyLimitPolicy) -> Self {
        self.max_keys = Some(max_keys);
        self.policy = policy;
        self
    }

    /// How often each shard is swept for refilled keys while traffic reaches it (default:
    /// the quota's refill time, at least one second).
    pub fn sweep_interval(mut self, interval: Duration) -> Self {
        self.sweep_interval = Some(interval);
        self
    }

    /// Also counts admitted cells (off by default: an atomic add on every admission).
    pub fn count_admitted(mut self, yes: bool) -> Self {
        self.count_admitted = yes;
        self
    }

    /// Adds a listener for [`RateEvent`]s (refusals, waits, reclaimed and evicted keys).
    pub fn listener(mut self, listener: impl Listener<RateEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Builds the limiter.
    ///
    /// # Errors
    /// A [`ConfigError`] for an invalid quota; `shards` not a power of two in 1..=4096;
    /// `max_keys` smaller than the shard count; a zero `sweep_interval`.
    pub fn build(self) -> Result<KeyedRateLimiter<K, C, S>, ConfigError> {
        let gcra = self.quota.gcra()?;
        if !self.shards.is_power_of_two() || self.shards > 4096 {
            return Err(ConfigError::new(
                "shards",
                format!("must be a power of two from 1 to 4096, got {}", self.shards),
            ));
        }
        let shard_limit = match self.max_keys {
            None => usize::MAX,
            Some(max) if max >= self.shards => max / self.shards,
            Some(max) => {
                return Err(ConfigError::new(
                    "max_keys",
                    format!("must be at least the shard count ({}), got {max}", self.shards),
                ));
            }
        };
        let sweep_interval = match self.sweep_interval {
            Some(d) => nanos(ConfigError::require_positive("sweep_interval", d)?),
            None => (gcra.t + gcra.tau).max(1_000_000_000),
        };
        let shards = (0..self.shards)
            .map(|i| {
                CachePadded::new(Shard {
                    table: ShardLock::new(Table::new()),
                    tag: i + 1,
                    sweep_due: AtomicU64::new(u64::MAX),
                })
            })
            .collect();
        // Enough reader slots that threads rarely share one (a shared slot only sends a
        // reader to the shard's plain read lock).
        let threads = std::thread::available_parallelism().map_or(4, |n| n.get());
        // Under loom, few slots keep the writers' scans (one modelled RMW per slot) small.
        let slots = if cfg!(loom) { 8 } else { (threads * 8).next_power_of_two().clamp(64, 1024) };
        let readers = ReaderSlots::new(slots);
        Ok(KeyedRateLimiter {
            shards,
            readers,
            hasher: self.hasher,
            gcra,
            clock: self.clock,
            quota: self.quota,
            sweep_interval,
            shard_limit,
            policy: self.policy,
            count_admitted: self.count_admitted,
            counters: RateCounters::default(),
            reclaimed: Counter::new(),
            evicted: Counter::new(),
            hook: self.hook,
        })
    }
}
