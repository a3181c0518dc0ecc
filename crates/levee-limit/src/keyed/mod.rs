//! The keyed rate limiter: one GCRA state per key in a sharded table, with memory that
//! returns by itself.
//!
//! **Lookups.** The key's hash picks a shard (its bits 48 and up) and a slot (its low bits).
//! A key already present is checked with shared access to the shard: the state is an atomic
//! word, so many threads check keys of one shard at once and none waits for another. Shared
//! access goes through levee-core's `ShardLocks`: one exchange on a counter in the calling
//! thread's own row, no shared lock word.
//!
//! **New keys** are added with shared access too (`table.rs`): the table's slots publish a
//! key once and readers never see half of one, so a new key costs a mutex among the threads
//! adding keys to that shard, not an exclusive lock that stops its readers. Exclusive access
//! is taken only to rebuild a table: to reclaim, to grow, or to apply the key limit.
//!
//! **Reclamation (governor issue 171).** A key whose state is at or behind the clock
//! (`tat <= now`) has refilled completely: it behaves exactly like a key never seen, so it can
//! be dropped without changing any decision. Nothing has to call a `retain_recent`: a key
//! that has been refilled for a whole sweep interval is dropped
//!
//! - when its shard's table would grow past 7/8 load (the table is first rebuilt for the
//!   keys worth keeping; it grows only if they need the room, and shrinks when most are
//!   gone); the work is proportional to the table and amortised O(1) per insertion;
//! - every `sweep_interval` (by default the quota's refill time, at least one second), when
//!   the next check that lands on a shard claims its sweep (one CAS, so one thread does it),
//!   so after a burst over many keys memory returns to the working set as traffic goes on,
//!   even if no new key arrives.
//!
//! Waiting a sweep interval past the refill is what keeps reclamation off the ordinary
//! check: a per-client key checked less often than its emission interval refills between its
//! checks, and is still in the table when it comes back within the interval (were it
//! dropped, its next check would have to add it again). The price is memory: keys seen once
//! stay for up to two intervals, so a limiter facing a flood of new keys holds about two
//! intervals' worth of them (a shorter `sweep_interval` trades re-additions for memory).
//! [`KeyedRateLimiter::reclaim`] drops every refilled key at once for those who want to.
//!
//! **Reclamation never changes a decision.** A key not in its shard's table is judged on the
//! largest state reclamation dropped there (`table.rs`, "The horizon"): exact at readings at
//! or after it, and `check` reads the clock again, with the shard held, when its reading is
//! older (`shard.rs`), so a key it misses had refilled by the time it reads. A reading the
//! caller took itself (`check_at`) can be older than the last reclamation of the shard; a key
//! it misses is then judged on that bound, so keeping the key could only have admitted more;
//! automatic passes drop only keys refilled a sweep interval ago, so a reading up to a sweep
//! interval old is exact.
//!
//! **Key limit.** With [`max_keys`](KeyedBuilder::max_keys), each shard holds at most
//! `max_keys / shards` keys. A new key arriving at a full shard first reclaims refilled keys;
//! if none are, [`KeyLimitPolicy`] decides: evict the keys closest to refilled (the default)
//! or refuse the new key until one refills.

mod shard;
mod table;
mod view;

use std::borrow::Borrow;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::time::Duration;

use levee_core::sync::{AtomicU64, Mutex, Ordering, Retained, ShardLocks};
use levee_core::{Clock, ConfigError, Counter, EventHook, FastClock, Listener, nanos};

use crate::error::{CheckNError, Throttled};
use crate::live::translate;
use crate::quota::{Gcra, Quota};
use crate::state::LimitState;
use crate::stats::{RateCounters, RateEvent};
use crate::wait::{Jitter, retry_until};
use shard::Shard;
pub use view::KeyLimit;

/// The default hasher: foldhash, seeded per limiter (fast, and not predictable by clients
/// choosing keys).
///
/// ```
/// use levee_limit::{DefaultHasher, KeyedRateLimiter, Quota};
///
/// // The hasher a keyed limiter uses unless its builder is given another.
/// let limiter: KeyedRateLimiter<u64, _, DefaultHasher> = KeyedRateLimiter::new(Quota::per_second(1))?;
/// assert!(limiter.check(&7).is_ok());
/// assert!(limiter.check(&7).is_err());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub type DefaultHasher = foldhash::fast::RandomState;

/// What a keyed limiter does when a new key arrives at a shard that already holds its share
/// of [`max_keys`](KeyedBuilder::max_keys) and none of its keys has refilled.
///
/// ```
/// use levee_limit::{KeyLimitPolicy, KeyedRateLimiter, Quota};
///
/// // At most 1024 keys; once full, new keys are refused rather than evicting others.
/// let limiter = KeyedRateLimiter::<String>::builder(Quota::per_second(5))
///     .max_keys(1024, KeyLimitPolicy::RefuseNewKeys)
///     .build()?;
/// assert!(limiter.check("alice").is_ok());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
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

/// A GCRA rate limit per key (client IP, API token, user id...), in a sharded table whose
/// memory is bounded by design.
///
/// Checking a key already present takes shared access to its shard (one exchange on the
/// calling thread's own reader counter), one CAS on the key's state, and no allocation; a
/// new key is added with shared access too. Keys that have refilled are reclaimed
/// automatically (see the module docs), and an optional key limit bounds memory outright.
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
/// // Once both have been refilled for a sweep interval (here one second), they are dropped
/// // without any call to clean up.
/// clock.advance(Duration::from_secs(3));
/// assert!(limiter.check("carol").is_ok());
/// assert_eq!(limiter.len(), 1);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct KeyedRateLimiter<K, C = FastClock, S = DefaultHasher> {
    shards: ShardLocks<Shard<K>>,
    hasher: S,
    clock: C,
    /// The quota now (each shard holds its own copy of the GCRA parameters, switched under
    /// its lock by [`reconfigure`](Self::reconfigure)); every quota is kept until the drop.
    quota: Retained<Quota>,
    /// Serialises [`reconfigure`](Self::reconfigure); never taken by a check.
    change: Mutex<()>,
    /// Nanoseconds; follows the quota's refill time unless the builder set it.
    sweep_interval: AtomicU64,
    sweep_explicit: bool,
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
            .field("quota", &*self.quota.load())
            .field("shards", &self.shards.len())
            .finish_non_exhaustive()
    }
}

/// A snapshot of a keyed limiter's counters.
///
/// ```
/// use levee_limit::{KeyedRateLimiter, Quota};
///
/// let limiter = KeyedRateLimiter::<u64>::new(Quota::per_second(1))?;
/// limiter.check(&1).unwrap();
/// assert!(limiter.check(&1).is_err());
/// let stats = limiter.stats();
/// assert_eq!((stats.keys, stats.rejected), (1, 1));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
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
        let clock = || self.clock.now();
        self.check_inner(key, 1, clock(), &clock, true).map_err(CheckNError::expect_throttled)
    }

    /// As [`check`](Self::check), judged at clock reading `now` that the caller already
    /// took from this limiter's [`clock`](Self::clock) (see
    /// [`RateLimiter::check_at`](crate::RateLimiter::check_at)). A reading older than the
    /// key's shard's last reclamation may be judged more strictly than with the key kept,
    /// never less (see the module docs).
    ///
    /// # Errors
    /// As [`check`](Self::check).
    #[inline]
    pub fn check_at<Q>(&self, key: &Q, now: u64) -> Result<(), Throttled>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ToOwned<Owned = K> + ?Sized,
    {
        self.check_inner(key, 1, now, &|| now, true).map_err(CheckNError::expect_throttled)
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
        // `n` above the burst is refused by the key's shard, whose quota is the one that
        // counts while a `reconfigure` is switching the shards.
        let clock = || self.clock.now();
        self.check_inner(key, n, clock(), &clock, report)
    }

    /// The shard of a hash: its bits 48 and up (the table uses the low bits).
    #[inline]
    fn shard_index(&self, hash: u64) -> usize {
        (hash >> 48) as usize & (self.shards.len() - 1)
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
        self.shards.read(self.shard_index(hash), |shard| {
            let now = self.clock.now(); // inside the lock, as `check` (`shard.rs`)
            let table = &shard.table;
            let tat = table.find(hash, key).map_or(table.horizon(), |t| t.load(Ordering::Relaxed));
            shard.gcra.state(tat, now)
        })
    }

    /// Keys currently tracked (refilled keys count until they are reclaimed).
    #[must_use]
    pub fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.shards.read(i, |s| s.table.len())).sum()
    }

    /// True when no key is tracked.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Reclaims every refilled key now, in every shard, and shrinks the tables. Returns how
    /// many keys were dropped. Never needed for bounded memory (see the module docs); useful
    /// before measuring, or to return memory at once after a known burst. Afterwards a
    /// `check_at` with a reading older than this call is judged on the dropped states' bound
    /// (module docs).
    pub fn reclaim(&self) -> usize {
        (0..self.shards.len())
            .map(|i| {
                let pass = self.shards.write(i, |shard| {
                    let now = self.clock.now();
                    self.pass(shard, now, now, 0)
                });
                self.report_pass(pass);
                pass.0
            })
            .sum()
    }

    /// A snapshot of the counters and of the table sizes.
    #[must_use]
    pub fn stats(&self) -> KeyedStats {
        let (keys, table_bytes) = (0..self.shards.len()).fold((0, 0), |(k, b), i| {
            let (len, bytes) = self.shards.read(i, |s| (s.table.len(), s.table.footprint()));
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
        *self.quota.load()
    }

    /// How many quotas this limiter has had, the first included (each is kept until the
    /// limiter is dropped; see [`reconfigure`](Self::reconfigure)).
    #[must_use]
    pub fn quotas_kept(&self) -> usize {
        self.quota.versions()
    }

    /// Changes the per-key quota at run time, keeping what every key owes.
    ///
    /// **The rule** is [`RateLimiter::reconfigure`](crate::RateLimiter::reconfigure)'s, per
    /// key: a key that owed 3 cells still owes 3, paid back at the new rate; a full key
    /// stays full; a burst that shrank below a key's debt caps it. The state standing for
    /// reclaimed keys moves by the same rule. The sweep interval follows the new refill
    /// time unless the builder set it.
    ///
    /// **How.** Each shard holds the GCRA parameters its checks use and switches them, and
    /// translates its keys, while it holds its lock exclusively, as a reclamation pass does:
    /// the shards switch one after another (each in microseconds for a few hundred keys), so
    /// a check sees either the old quota and the old states or the new quota and the
    /// translated states, never a mix. Checks of other shards go on meanwhile.
    ///
    /// **Limits.** Each quota the limiter has had is kept until it is dropped (a few dozen
    /// bytes; for [`quota`](Self::quota) to need no lock): change quotas as an operator
    /// does, not per request. A waiter whose `n` no longer fits a smaller burst ends with
    /// [`InsufficientCapacity`](crate::InsufficientCapacity).
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_core::ManualClock;
    /// use levee_limit::{KeyedRateLimiter, Quota};
    ///
    /// let clock = ManualClock::new();
    /// let limiter = KeyedRateLimiter::<String>::builder(Quota::per_second(10))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// limiter.check_n("alice", 10)?; // drained: 10 cells owed at 100 ms each
    /// // Twice the rate, same burst: alice still owes 10 cells, now at 50 ms each.
    /// limiter.reconfigure(Quota::per_second(20).with_burst(10))?;
    /// assert_eq!(limiter.check("alice").unwrap_err().retry_after(), Duration::from_millis(50));
    /// assert_eq!(limiter.state("alice").reset, Duration::from_millis(500));
    /// assert_eq!(limiter.available("bob"), 10, "a new key starts full under the new quota");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`ConfigError`] when `quota` is invalid (see [`Quota::gcra`]); the limiter keeps
    /// its quota.
    pub fn reconfigure(&self, quota: Quota) -> Result<Quota, ConfigError> {
        let gcra = quota.gcra()?;
        let _change = self.change.lock();
        let previous = *self.quota.load();
        for i in 0..self.shards.len() {
            self.shards.write(i, |shard| {
                // Held exclusively: no check of this shard is under way.
                let now = self.clock.now();
                let old = shard.gcra;
                shard.table.translate(|tat| translate(tat, now, &old, &gcra));
                shard.gcra = gcra;
            });
        }
        if !self.sweep_explicit {
            // Relaxed: a scheduling hint, read under the shards' locks.
            self.sweep_interval.store(default_sweep_interval(&gcra), Ordering::Relaxed);
        }
        self.quota.publish(quota);
        Ok(previous)
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
        let clock = || self.clock.now();
        let check = || {
            self.check_inner(key, 1, clock(), &clock, false).map_err(CheckNError::expect_throttled)
        };
        let ((), waited) = retry_until(&self.clock, jitter, check).await;
        self.counters.record_wait(&self.hook, 1, waited);
    }
}

/// Builds a [`KeyedRateLimiter`].
///
/// ```
/// use levee_core::ManualClock;
/// use levee_limit::{KeyLimitPolicy, KeyedRateLimiter, Quota};
///
/// let limiter = KeyedRateLimiter::<String>::builder(Quota::per_minute(60).with_burst(5))
///     .clock(ManualClock::new())
///     .shards(16)
///     .max_keys(100_000, KeyLimitPolicy::EvictNearestRefilled)
///     .count_admitted(true)
///     .build()?;
/// assert!(limiter.check("10.0.0.1").is_ok());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
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

    /// Number of shards: a power of two from 1 to 4096 (default 64). More shards mean fewer
    /// threads adding keys to one shard at once and smaller rebuilds; each shard is
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

    /// How often each shard is swept while traffic reaches it, and how long a key stays
    /// after it has refilled (default: the quota's refill time, at least one second). A key
    /// that comes back within the interval finds its state still there; memory holds the
    /// keys active within about two intervals.
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
            None => default_sweep_interval(&gcra),
        };
        let shards = ShardLocks::new(self.shards, |_| Shard::new(gcra));
        Ok(KeyedRateLimiter {
            shards,
            hasher: self.hasher,
            clock: self.clock,
            quota: Retained::new(self.quota),
            change: Mutex::new(()),
            sweep_interval: AtomicU64::new(sweep_interval),
            sweep_explicit: self.sweep_interval.is_some(),
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

/// The sweep interval that follows the quota: its refill time, at least one second.
fn default_sweep_interval(gcra: &Gcra) -> u64 {
    (gcra.t + gcra.tau).max(1_000_000_000)
}
