//! A cache's settings as data, for settings files.

use std::time::Duration;

use levee_core::{Clock, ConfigError, FastClock};

use crate::{Cache, CacheBuilder};

/// The settings of a [`Cache`] that a settings file can hold, as plain data: serde (feature
/// `serde`) reads them with durations in levee's one format (`"30s"`, `"250ms"`, or a number
/// of milliseconds). Every setting but the capacity is optional, and each means what the
/// [`CacheBuilder`] method of the same name does; they are checked when the cache is built.
/// What a file cannot hold (a weigher, a per-entry expiry, error filters, listeners, the
/// clock) goes on the builder that [`builder`](Self::builder) returns.
///
/// ```
/// use std::time::Duration;
/// use levee_cache::{Cache, CacheSettings};
///
/// let settings = CacheSettings::new(10_000)
///     .time_to_live(Duration::from_secs(60))
///     .negative_ttl(Duration::from_secs(5));
/// let cache: Cache<u64, String> = settings.build()?;
/// assert_eq!(cache.get(&1), None);
///
/// // A bad setting is named when the cache is built.
/// let bad = CacheSettings { ttl_jitter: 2.0, ..settings };
/// assert_eq!(bad.build::<u64, String>().unwrap_err().setting, "ttl_jitter");
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
///
/// In a TOML file:
///
/// ```toml
/// max_capacity = 10000
/// time_to_live = "5m"
/// ttl_jitter = 0.1
/// negative_ttl = "10s"
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct CacheSettings {
    /// How many entries the cache holds ([`CacheBuilder::max_capacity`]).
    pub max_capacity: u64,
    /// [`CacheBuilder::time_to_live`]; `None`: values do not expire by age.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option", default))]
    pub time_to_live: Option<Duration>,
    /// [`CacheBuilder::time_to_idle`]; `None`: values do not expire by idleness.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option", default))]
    pub time_to_idle: Option<Duration>,
    /// [`CacheBuilder::ttl_jitter`] (default 0: no spread).
    #[cfg_attr(feature = "serde", serde(default))]
    pub ttl_jitter: f64,
    /// [`CacheBuilder::stale_while_revalidate`]; `None`: expired values are not served.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option", default))]
    pub stale_while_revalidate: Option<Duration>,
    /// [`CacheBuilder::early_refresh`]'s beta; `None`: no early refresh.
    #[cfg_attr(feature = "serde", serde(default))]
    pub early_refresh: Option<f64>,
    /// [`CacheBuilder::negative_ttl`]; `None`: absences and errors are not remembered.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option", default))]
    pub negative_ttl: Option<Duration>,
    /// [`CacheBuilder::shards`]; `None`: chosen from the CPU count and the capacity.
    #[cfg_attr(feature = "serde", serde(default))]
    pub shards: Option<usize>,
}

impl CacheSettings {
    /// A cache of `max_capacity` entries and nothing else set.
    #[must_use]
    pub const fn new(max_capacity: u64) -> Self {
        Self {
            max_capacity,
            time_to_live: None,
            time_to_idle: None,
            ttl_jitter: 0.0,
            stale_while_revalidate: None,
            early_refresh: None,
            negative_ttl: None,
            shards: None,
        }
    }

    /// Sets [`time_to_live`](Self::time_to_live).
    #[must_use]
    pub const fn time_to_live(mut self, ttl: Duration) -> Self {
        self.time_to_live = Some(ttl);
        self
    }

    /// Sets [`negative_ttl`](Self::negative_ttl).
    #[must_use]
    pub const fn negative_ttl(mut self, ttl: Duration) -> Self {
        self.negative_ttl = Some(ttl);
        self
    }

    /// A builder set to these settings, for what a settings file does not hold.
    pub fn builder<K, V>(&self) -> CacheBuilder<K, V, FastClock> {
        let mut b = Cache::builder().max_capacity(self.max_capacity).ttl_jitter(self.ttl_jitter);
        if let Some(ttl) = self.time_to_live {
            b = b.time_to_live(ttl);
        }
        if let Some(tti) = self.time_to_idle {
            b = b.time_to_idle(tti);
        }
        if let Some(stale) = self.stale_while_revalidate {
            b = b.stale_while_revalidate(stale);
        }
        if let Some(beta) = self.early_refresh {
            b = b.early_refresh(beta);
        }
        if let Some(ttl) = self.negative_ttl {
            b = b.negative_ttl(ttl);
        }
        if let Some(shards) = self.shards {
            b = b.shards(shards);
        }
        b
    }

    /// The cache, on the default clock.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting, as [`CacheBuilder::build`].
    pub fn build<K, V>(&self) -> Result<Cache<K, V>, ConfigError>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
    {
        self.builder().build()
    }

    /// The cache, its expiry measured on `clock`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with_clock<K, V, C>(&self, clock: C) -> Result<Cache<K, V, C>, ConfigError>
    where
        K: std::hash::Hash + Eq + Clone + Send + Sync + 'static,
        V: Clone + Send + Sync + 'static,
        C: Clock,
    {
        self.builder().clock(clock).build()
    }
}
