//! A bulkhead's settings as data, for settings files.

use std::time::Duration;

use levee_core::{Clock, ConfigError, FastClock};

use super::{Bulkhead, BulkheadBuilder};

/// The settings of a [`Bulkhead`] as plain data: serde (feature `serde`) reads them from a
/// settings file, with durations in levee's one format (`"250ms"`, `"2s"`, or a number of
/// milliseconds). They are checked when the bulkhead is built.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::BulkheadSettings;
///
/// let settings = BulkheadSettings::new(64).max_queue(128).max_wait(Duration::from_millis(50));
/// let bulkhead = settings.build()?;
/// assert_eq!((bulkhead.limit(), bulkhead.available()), (64, 64));
///
/// // Listeners, counters and the clock go on the builder the settings start.
/// let counted = settings.builder().count_acquired(true).build()?;
/// let _permit = counted.try_acquire()?;
/// assert_eq!(counted.stats().acquired, Some(1));
///
/// // A bad setting is named when the bulkhead is built.
/// assert_eq!(BulkheadSettings::new(0).build().unwrap_err().setting, "max_concurrent");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// In a TOML file:
///
/// ```toml
/// max_concurrent = 256
/// max_queue = 512       # default 0: refuse at once when full
/// max_wait = "100ms"    # default: wait as long as it takes
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(deny_unknown_fields))]
pub struct BulkheadSettings {
    /// Calls in flight at most.
    pub max_concurrent: usize,
    /// Calls that may wait for a permit (default 0: refuse at once when full).
    #[cfg_attr(feature = "serde", serde(default))]
    pub max_queue: usize,
    /// How long a queued call waits at most (default: until a permit frees up).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration::option", default))]
    pub max_wait: Option<Duration>,
}

impl BulkheadSettings {
    /// At most `max_concurrent` calls in flight, no queue.
    #[must_use]
    pub const fn new(max_concurrent: usize) -> Self {
        Self { max_concurrent, max_queue: 0, max_wait: None }
    }

    /// Sets [`max_queue`](Self::max_queue).
    #[must_use]
    pub const fn max_queue(mut self, max_queue: usize) -> Self {
        self.max_queue = max_queue;
        self
    }

    /// Sets [`max_wait`](Self::max_wait).
    #[must_use]
    pub const fn max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = Some(max_wait);
        self
    }

    /// A builder set to these settings, for what settings files do not hold (a clock,
    /// listeners, admission counting).
    pub fn builder(&self) -> BulkheadBuilder<FastClock> {
        let mut builder = Bulkhead::builder(self.max_concurrent).max_queue(self.max_queue);
        if let Some(wait) = self.max_wait {
            builder = builder.max_wait(wait);
        }
        builder
    }

    /// The bulkhead, on the default clock.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting, as [`BulkheadBuilder::build`].
    pub fn build(&self) -> Result<Bulkhead, ConfigError> {
        self.builder().build()
    }

    /// The bulkhead, its waits measured on `clock`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with_clock<C: Clock>(&self, clock: C) -> Result<Bulkhead<C>, ConfigError> {
        self.builder().clock(clock).build()
    }
}
