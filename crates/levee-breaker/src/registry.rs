//! One breaker per downstream, by name, with shared defaults.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use std::sync::Arc;

use levee_core::sync::RwLock;
use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener};

use crate::{
    BreakerEvent, BreakerMetrics, BreakerSettings, CircuitBreaker, OpenWait, SlidingWindow,
};

/// Settings for one breaker that differ from the registry's defaults; `None` keeps the default.
///
/// ```
/// use levee_breaker::{BreakerOverrides, BreakerRegistry, BreakerSettings};
///
/// let registry = BreakerRegistry::new(BreakerSettings::default())?
///     .with_overrides("payments", BreakerOverrides { minimum_calls: Some(5), ..Default::default() })?;
/// assert_eq!(registry.settings_for("payments").minimum_calls, 5);
/// assert_eq!(registry.settings_for("search").minimum_calls, BreakerSettings::default().minimum_calls);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
#[allow(missing_docs)] // each field overrides the `BreakerSettings` field of the same name
pub struct BreakerOverrides {
    pub window: Option<SlidingWindow>,
    pub failure_rate_threshold: Option<f64>,
    pub slow_call_rate_threshold: Option<f64>,
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub slow_call_duration: Option<Duration>,
    pub slow_success_is_failure: Option<bool>,
    pub minimum_calls: Option<u32>,
    pub failure_count_threshold: Option<u32>,
    pub open_wait: Option<OpenWait>,
    pub half_open_calls: Option<u32>,
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option"))]
    pub half_open_max_wait: Option<Duration>,
}

impl BreakerOverrides {
    /// `base` with these overrides applied.
    #[must_use]
    pub fn apply(&self, base: &BreakerSettings) -> BreakerSettings {
        BreakerSettings {
            window: self.window.unwrap_or(base.window),
            failure_rate_threshold: self
                .failure_rate_threshold
                .unwrap_or(base.failure_rate_threshold),
            slow_call_rate_threshold: self
                .slow_call_rate_threshold
                .unwrap_or(base.slow_call_rate_threshold),
            slow_call_duration: self.slow_call_duration.or(base.slow_call_duration),
            slow_success_is_failure: self
                .slow_success_is_failure
                .unwrap_or(base.slow_success_is_failure),
            minimum_calls: self.minimum_calls.unwrap_or(base.minimum_calls),
            failure_count_threshold: self.failure_count_threshold.or(base.failure_count_threshold),
            open_wait: self.open_wait.unwrap_or(base.open_wait),
            half_open_calls: self.half_open_calls.unwrap_or(base.half_open_calls),
            half_open_max_wait: self.half_open_max_wait.or(base.half_open_max_wait),
        }
    }
}

/// A registry's configuration: defaults, and overrides by breaker name.
///
/// ```
/// # #[cfg(feature = "serde")] {
/// use levee_breaker::{BreakerRegistry, RegistrySettings};
///
/// let settings: RegistrySettings = toml::from_str(r#"
///     [defaults]
///     minimum_calls = 20
///     open_wait = { type = "fixed", wait = "10s" }
///
///     [breakers.payment-provider]
///     failure_rate_threshold = 25.0
///     slow_call_duration = "2s"
/// "#).unwrap();
/// let registry = BreakerRegistry::from_settings(settings).unwrap();
/// let payments = registry.get("payment-provider");
/// assert_eq!(payments.settings().failure_rate_threshold, 25.0);
/// assert_eq!(payments.settings().minimum_calls, 20, "the shared default");
/// # }
/// ```
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RegistrySettings {
    /// Settings of every breaker without an override.
    pub defaults: BreakerSettings,
    /// Per-name differences from the defaults.
    pub breakers: BTreeMap<String, BreakerOverrides>,
}

impl RegistrySettings {
    /// A registry with these settings on the default clock ([`FastClock`]).
    ///
    /// # Errors
    /// As [`BreakerRegistry::from_settings`].
    pub fn build(&self) -> Result<BreakerRegistry, ConfigError> {
        BreakerRegistry::from_settings(self.clone())
    }

    /// A registry with these settings whose breakers read `clock`.
    ///
    /// # Errors
    /// As [`BreakerRegistry::from_settings`].
    pub fn build_with_clock<C: Clock + Clone>(
        &self,
        clock: C,
    ) -> Result<BreakerRegistry<C>, ConfigError> {
        self.build().map(|registry| registry.with_clock(clock))
    }
}

/// One [`CircuitBreaker`] per downstream name, created on first use from shared defaults and
/// per-name overrides, all reporting to the same listeners.
///
/// Look a breaker up once and keep the `Arc`: the lookup takes a read lock, the breaker's
/// own paths take none.
///
/// ```
/// use levee_breaker::{BreakerRegistry, BreakerSettings, BreakerOverrides, State};
///
/// let registry = BreakerRegistry::new(BreakerSettings::default())
///     .unwrap()
///     .with_overrides("search", BreakerOverrides { minimum_calls: Some(5), ..Default::default() })
///     .unwrap();
/// let inventory = registry.get("inventory");
/// assert!(std::sync::Arc::ptr_eq(&inventory, &registry.get("inventory")));
/// assert_eq!(registry.get("search").settings().minimum_calls, 5);
/// registry.get("search").force_open();
/// let states: Vec<_> = registry.metrics().into_iter().map(|m| (m.name, m.state)).collect();
/// assert_eq!(states, [("inventory".into(), State::Closed), ("search".into(), State::ForcedOpen)]);
/// ```
#[derive(Debug)]
pub struct BreakerRegistry<C: Clock + Clone = FastClock> {
    defaults: BreakerSettings,
    overrides: HashMap<String, BreakerSettings>,
    clock: C,
    hook: EventHook<BreakerEvent>,
    breakers: RwLock<HashMap<Arc<str>, Arc<CircuitBreaker<C>>>>,
}

impl BreakerRegistry<FastClock> {
    /// A registry whose breakers use `defaults` and [`FastClock`].
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid default.
    pub fn new(defaults: BreakerSettings) -> Result<Self, ConfigError> {
        defaults.validate()?;
        Ok(Self {
            defaults,
            overrides: HashMap::new(),
            clock: FastClock,
            hook: EventHook::none(),
            breakers: RwLock::new(HashMap::new()),
        })
    }

    /// A registry configured by `settings`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting (of the defaults, or of a breaker
    /// once its overrides are applied).
    pub fn from_settings(settings: RegistrySettings) -> Result<Self, ConfigError> {
        let mut registry = Self::new(settings.defaults)?;
        for (name, overrides) in settings.breakers {
            registry = registry.with_overrides(name, overrides)?;
        }
        Ok(registry)
    }
}

impl<C: Clock + Clone> BreakerRegistry<C> {
    /// Gives the registry's breakers `clock` (a `ManualClock` in tests). Part of setting the
    /// registry up: breakers already created have another clock type and are not carried over.
    pub fn with_clock<C2: Clock + Clone>(self, clock: C2) -> BreakerRegistry<C2> {
        BreakerRegistry {
            defaults: self.defaults,
            overrides: self.overrides,
            clock,
            hook: self.hook,
            breakers: RwLock::new(HashMap::new()),
        }
    }

    /// Adds a listener to breakers created from now on.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<BreakerEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Adds a listener to breakers created from now on.
    #[deprecated(since = "0.1.0", note = "renamed to `listener`, as on every levee builder")]
    #[must_use]
    pub fn with_listener(self, listener: impl Listener<BreakerEvent> + 'static) -> Self {
        self.listener(listener)
    }

    /// Sets how breaker `name` differs from the defaults (before it is first used).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting after the overrides are applied.
    pub fn with_overrides(
        mut self,
        name: impl Into<String>,
        overrides: BreakerOverrides,
    ) -> Result<Self, ConfigError> {
        let settings = overrides.apply(&self.defaults);
        settings.validate()?;
        self.overrides.insert(name.into(), settings);
        Ok(self)
    }

    /// The settings breaker `name` has (or will have).
    #[must_use]
    pub fn settings_for(&self, name: &str) -> &BreakerSettings {
        self.overrides.get(name).unwrap_or(&self.defaults)
    }

    /// The breaker for `name`, created on first use.
    pub fn get(&self, name: &str) -> Arc<CircuitBreaker<C>> {
        if let Some(breaker) = self.breakers.read().get(name) {
            return Arc::clone(breaker);
        }
        let mut breakers = self.breakers.write();
        if let Some(breaker) = breakers.get(name) {
            return Arc::clone(breaker);
        }
        let name: Arc<str> = name.into();
        // Settings were validated when the registry was configured.
        let breaker = Arc::new(CircuitBreaker::assemble(
            self.settings_for(&name).clone(),
            self.clock.clone(),
            name.clone(),
            self.hook.clone(),
        ));
        breakers.insert(name, Arc::clone(&breaker));
        breaker
    }

    /// The breaker for `name` if it has been used.
    #[must_use]
    pub fn find(&self, name: &str) -> Option<Arc<CircuitBreaker<C>>> {
        self.breakers.read().get(name).cloned()
    }

    /// Snapshots of every breaker in use, by name.
    #[must_use]
    pub fn metrics(&self) -> Vec<BreakerMetrics> {
        let breakers: Vec<_> = self.breakers.read().values().cloned().collect();
        let mut all: Vec<_> = breakers.iter().map(|b| b.metrics()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn settings_build_on_the_clock_given() {
        let clock = levee_core::ManualClock::new();
        let settings = RegistrySettings::default();
        let registry = settings.build_with_clock(clock.clone()).unwrap();
        let breaker = registry.get("db");
        breaker.trip();
        assert!(breaker.try_acquire().is_err(), "open");
        // The default open wait passes on the manual clock, not in real time.
        clock.advance(Duration::from_secs(3600));
        assert!(breaker.try_acquire().is_ok(), "a trial goes through");
        let single = settings.defaults.build_with_clock(clock.clone()).unwrap();
        single.trip();
        assert!(single.try_acquire().is_err());
        clock.advance(Duration::from_secs(3600));
        assert!(single.try_acquire().is_ok());
        assert!(settings.build().is_ok() && settings.defaults.build().is_ok());
    }

    #[test]
    fn bad_overrides_name_the_setting() {
        let err = BreakerRegistry::new(BreakerSettings::default())
            .unwrap()
            .with_overrides(
                "x",
                BreakerOverrides { half_open_calls: Some(0), ..Default::default() },
            )
            .unwrap_err();
        assert_eq!(err.setting, "half_open_calls");
        let bad = BreakerSettings { minimum_calls: 0, ..Default::default() };
        assert_eq!(BreakerRegistry::new(bad).unwrap_err().setting, "minimum_calls");
    }

    #[test]
    fn listeners_hear_every_breaker() {
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = seen.clone();
        let registry = BreakerRegistry::new(BreakerSettings::default())
            .unwrap()
            .with_clock(levee_core::ManualClock::new())
            .listener(move |e: &BreakerEvent| {
                sink.lock().unwrap().push((e.name.to_string(), e.to))
            });
        registry.get("a").trip();
        registry.get("b").disable();
        assert_eq!(
            *seen.lock().unwrap(),
            [("a".to_owned(), crate::State::Open), ("b".to_owned(), crate::State::Disabled)]
        );
        assert!(registry.find("c").is_none());
    }
}
