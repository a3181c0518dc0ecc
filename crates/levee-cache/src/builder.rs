//! Settings of a [`Cache`], checked when it is built.

use std::any::Any;
use std::fmt;
use std::hash::Hash;
use std::sync::Arc as StdArc;
use std::time::Duration;

use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener, nanos};

use crate::{Cache, CacheEvent};

pub(crate) type Weigher<K, V> = StdArc<dyn Fn(&K, &V) -> u32 + Send + Sync>;
pub(crate) type ExpireAfter<K, V> = StdArc<dyn Fn(&K, &V) -> Option<Duration> + Send + Sync>;
pub(crate) type ErrorFilter = StdArc<dyn Fn(&(dyn Any + Send + Sync)) -> bool + Send + Sync>;

/// The validated settings a cache runs with (times in nanoseconds; zero means "off").
pub(crate) struct Config<K, V> {
    /// The default time to live in nanoseconds, 0 for none. A plain std atomic even under
    /// loom: it is read when an entry is stored and changed only by `set_time_to_live`.
    pub(crate) ttl: std::sync::atomic::AtomicU64,
    pub(crate) expire_after: Option<ExpireAfter<K, V>>,
    pub(crate) tti: u64,
    pub(crate) jitter: f64,
    pub(crate) max_stale: u64,
    pub(crate) beta: f64,
    pub(crate) negative_ttl: u64,
    pub(crate) error_filters: Vec<ErrorFilter>,
    pub(crate) weigher: Option<Weigher<K, V>>,
    /// Any expiry at all: only then does a lookup read the clock. Set at build time, or by the
    /// first `insert_with_ttl` (it only ever goes from false to true).
    pub(crate) timed: std::sync::atomic::AtomicBool,
}

/// Builds a [`Cache`]; start with [`Cache::builder`].
///
/// Every setting is optional except the capacity. Invalid values are reported by
/// [`build`](Self::build) as a [`ConfigError`] naming the setting.
///
/// ```
/// use std::time::Duration;
/// use levee_cache::Cache;
///
/// let cache: Cache<u64, String> = Cache::builder()
///     .max_capacity(10_000)
///     .time_to_live(Duration::from_secs(60))
///     .ttl_jitter(0.1)
///     .stale_while_revalidate(Duration::from_secs(30))
///     .early_refresh(1.0)
///     .build()
///     .unwrap();
/// assert_eq!(cache.get(&1), None);
/// ```
#[must_use]
pub struct CacheBuilder<K, V, C = FastClock> {
    capacity: u64,
    weigher: Option<Weigher<K, V>>,
    shards: Option<usize>,
    ttl: Option<Duration>,
    expire_after: Option<ExpireAfter<K, V>>,
    tti: Option<Duration>,
    jitter: f64,
    max_stale: Option<Duration>,
    beta: Option<f64>,
    negative_ttl: Option<Duration>,
    error_filters: Vec<ErrorFilter>,
    clock: C,
    hook: EventHook<CacheEvent<K, V>>,
}

impl<K, V, C: fmt::Debug> fmt::Debug for CacheBuilder<K, V, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheBuilder")
            .field("capacity", &self.capacity)
            .field("weigher", &self.weigher.is_some())
            .field("shards", &self.shards)
            .field("ttl", &self.ttl)
            .field("expire_after", &self.expire_after.is_some())
            .field("tti", &self.tti)
            .field("jitter", &self.jitter)
            .field("max_stale", &self.max_stale)
            .field("beta", &self.beta)
            .field("negative_ttl", &self.negative_ttl)
            .field("clock", &self.clock)
            .finish_non_exhaustive()
    }
}

impl<K, V> CacheBuilder<K, V, FastClock> {
    pub(crate) fn new() -> Self {
        Self {
            capacity: 0,
            weigher: None,
            shards: None,
            ttl: None,
            expire_after: None,
            tti: None,
            jitter: 0.0,
            max_stale: None,
            beta: None,
            negative_ttl: None,
            error_filters: Vec::new(),
            clock: FastClock,
            hook: EventHook::none(),
        }
    }
}

impl<K, V, C> CacheBuilder<K, V, C> {
    /// How much the cache holds: entries, or total weight when a [`weigher`](Self::weigher)
    /// is set. Zero is allowed and means the cache stores nothing: every lookup misses, but
    /// concurrent `get_with` calls still share one load.
    pub fn max_capacity(mut self, capacity: u64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Weighs entries (for example by their size in bytes) instead of counting them. The
    /// capacity is split evenly over the shards, so one value may weigh at most
    /// [`Cache::max_entry_weight`]; a heavier one is not stored and counted in
    /// [`CacheStats::rejected`](crate::CacheStats::rejected).
    pub fn weigher(mut self, weigher: impl Fn(&K, &V) -> u32 + Send + Sync + 'static) -> Self {
        self.weigher = Some(StdArc::new(weigher));
        self
    }

    /// Number of shards (rounded up to a power of two). By default four per CPU, fewer for
    /// small capacities so each shard holds at least 32 entries.
    pub fn shards(mut self, shards: usize) -> Self {
        self.shards = Some(shards);
        self
    }

    /// Every value expires this long after it was stored.
    pub fn time_to_live(mut self, ttl: Duration) -> Self {
        self.ttl = Some(ttl);
        self
    }

    /// A time to live per entry, computed from its key and value when it is stored. `None`
    /// falls back to [`time_to_live`](Self::time_to_live) (or no expiry); `Some(Duration::ZERO)`
    /// means "do not store this one"; `Some(Duration::MAX)` means "never expires".
    pub fn expire_after(
        mut self,
        ttl: impl Fn(&K, &V) -> Option<Duration> + Send + Sync + 'static,
    ) -> Self {
        self.expire_after = Some(StdArc::new(ttl));
        self
    }

    /// An entry not read for this long expires (measured to within 1/256 of it).
    pub fn time_to_idle(mut self, tti: Duration) -> Self {
        self.tti = Some(tti);
        self
    }

    /// Spreads each entry's time to live by up to `fraction` either way (`0.0..=1.0`), so
    /// entries loaded together do not all expire together.
    pub fn ttl_jitter(mut self, fraction: f64) -> Self {
        self.jitter = fraction;
        self
    }

    /// Stale-while-revalidate: for up to `max_stale` after a value's time to live, loading
    /// calls (`get_with*`) still return it at once while one caller refreshes it. Needs a time
    /// to live.
    pub fn stale_while_revalidate(mut self, max_stale: Duration) -> Self {
        self.max_stale = Some(max_stale);
        self
    }

    /// Probabilistic early refresh (XFetch, Vattani et al., VLDB 2015): a loading call may
    /// refresh a value before it expires, the more likely the closer the expiry and the longer
    /// the value took to load. `beta` scales the eagerness (1.0 is the paper's choice; larger
    /// refreshes earlier). Needs a time to live.
    pub fn early_refresh(mut self, beta: f64) -> Self {
        self.beta = Some(beta);
        self
    }

    /// Negative caching: remember for `ttl` that a key has no value (a `get_optional_with*`
    /// loader returned `None`) or that its load failed with an error chosen by
    /// [`cache_errors_if`](Self::cache_errors_if).
    pub fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// Remember load errors of type `E` for which `filter` says true, for the
    /// [`negative_ttl`](Self::negative_ttl). Without this, errors are never cached.
    pub fn cache_errors_if<E: Any + Send + Sync>(
        mut self,
        filter: impl Fn(&E) -> bool + Send + Sync + 'static,
    ) -> Self {
        self.error_filters.push(StdArc::new(move |e: &(dyn Any + Send + Sync)| {
            e.downcast_ref::<E>().is_some_and(&filter)
        }));
        self
    }

    /// Adds a listener for [`CacheEvent`]s (removals and rejections).
    pub fn listener(mut self, listener: impl Listener<CacheEvent<K, V>> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Takes time from `clock` instead of [`FastClock`] (tests pass a
    /// [`ManualClock`](levee_core::ManualClock)).
    pub fn clock<C2: Clock>(self, clock: C2) -> CacheBuilder<K, V, C2> {
        CacheBuilder {
            capacity: self.capacity,
            weigher: self.weigher,
            shards: self.shards,
            ttl: self.ttl,
            expire_after: self.expire_after,
            tti: self.tti,
            jitter: self.jitter,
            max_stale: self.max_stale,
            beta: self.beta,
            negative_ttl: self.negative_ttl,
            error_filters: self.error_filters,
            clock,
            hook: self.hook,
        }
    }
}

impl<K, V, C> CacheBuilder<K, V, C>
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
    C: Clock,
{
    /// Builds the cache.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting: a zero `time_to_live`,
    /// `time_to_idle`, `stale_while_revalidate` or `negative_ttl` (leave a setting out to turn it
    /// off); a `ttl_jitter` outside `0.0..=1.0`; an `early_refresh` beta that is negative or not
    /// finite; `stale_while_revalidate` or `early_refresh` without a time to live; zero `shards`.
    pub fn build(self) -> Result<Cache<K, V, C>, ConfigError> {
        let positive = |setting, d: Option<Duration>| -> Result<u64, ConfigError> {
            d.map_or(Ok(0), |d| ConfigError::require_positive(setting, d).map(nanos))
        };
        let ttl = positive("time_to_live", self.ttl)?;
        let tti = positive("time_to_idle", self.tti)?;
        let max_stale = positive("stale_while_revalidate", self.max_stale)?;
        let negative_ttl = positive("negative_ttl", self.negative_ttl)?;
        if !(0.0..=1.0).contains(&self.jitter) {
            return Err(ConfigError::new(
                "ttl_jitter",
                format!("must be a fraction in 0.0..=1.0, got {}", self.jitter),
            ));
        }
        let beta = self.beta.unwrap_or(0.0);
        if !beta.is_finite() || beta < 0.0 {
            return Err(ConfigError::new(
                "early_refresh",
                format!("beta must be a finite number >= 0, got {beta}"),
            ));
        }
        let has_ttl = ttl != 0 || self.expire_after.is_some();
        if max_stale != 0 && !has_ttl {
            return Err(ConfigError::new(
                "stale_while_revalidate",
                "needs time_to_live or expire_after",
            ));
        }
        if beta > 0.0 && !has_ttl {
            return Err(ConfigError::new("early_refresh", "needs time_to_live or expire_after"));
        }
        let shards = match self.shards {
            Some(n) => ConfigError::require_nonzero("shards", n)?.next_power_of_two(),
            None => {
                let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
                let mut n = (cpus * 4).next_power_of_two();
                while n > 1 && self.capacity / (n as u64) < 32 {
                    n /= 2;
                }
                n
            }
        };
        let timed = has_ttl || tti != 0 || negative_ttl != 0;
        let config = Config {
            ttl: std::sync::atomic::AtomicU64::new(ttl),
            expire_after: self.expire_after,
            tti,
            jitter: self.jitter,
            max_stale,
            beta,
            negative_ttl,
            error_filters: self.error_filters,
            weigher: self.weigher,
            timed: std::sync::atomic::AtomicBool::new(timed),
        };
        Ok(Cache::from_parts(self.capacity, shards, config, self.clock, self.hook))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    fn builder() -> CacheBuilder<u32, u32> {
        Cache::builder().max_capacity(100)
    }

    #[test]
    fn bad_settings_name_themselves() {
        let setting = |b: CacheBuilder<u32, u32>| b.build().unwrap_err().setting;
        assert_eq!(setting(builder().time_to_live(Duration::ZERO)), "time_to_live");
        assert_eq!(setting(builder().time_to_idle(Duration::ZERO)), "time_to_idle");
        assert_eq!(setting(builder().negative_ttl(Duration::ZERO)), "negative_ttl");
        assert_eq!(setting(builder().ttl_jitter(1.5)), "ttl_jitter");
        assert_eq!(setting(builder().ttl_jitter(f64::NAN)), "ttl_jitter");
        assert_eq!(setting(builder().early_refresh(-1.0)), "early_refresh");
        assert_eq!(setting(builder().early_refresh(1.0)), "early_refresh");
        assert_eq!(setting(builder().shards(0)), "shards");
        assert_eq!(
            setting(builder().stale_while_revalidate(Duration::from_secs(1))),
            "stale_while_revalidate"
        );
        assert_eq!(
            setting(
                builder()
                    .time_to_live(Duration::from_secs(1))
                    .stale_while_revalidate(Duration::ZERO)
            ),
            "stale_while_revalidate"
        );
    }

    #[test]
    fn good_settings_build() {
        let cache = builder()
            .time_to_live(Duration::from_secs(1))
            .stale_while_revalidate(Duration::from_secs(1))
            .early_refresh(1.0)
            .ttl_jitter(0.2)
            .shards(3)
            .build()
            .unwrap();
        assert_eq!(cache.shard_count(), 4);
        assert!(format!("{:?}", builder()).contains("capacity: 100"));
    }
}
