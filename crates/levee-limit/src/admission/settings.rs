//! The admission controller's settings as data, for settings files, and their checks.

use std::time::Duration;

use levee_core::{Clock, ConfigError, FastClock};

use super::{AdmissionBuilder, AdmissionController};
use crate::quota::MAX_SPAN;

/// The most buckets a window may have.
pub const MAX_ADMISSION_BUCKETS: usize = 4096;

/// The shortest bucket: latencies are summed in microseconds, and shorter buckets make the
/// per-bucket throughput too coarse to estimate from.
const MIN_BUCKET: Duration = Duration::from_millis(1);

/// The settings of an [`AdmissionController`] as plain data: serde (feature `serde`) reads
/// them from a settings file, with durations in levee's one format (`"250ms"`, `"10s"`, or a
/// number of milliseconds); every field has a default. They are checked when the controller
/// is built.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::AdmissionSettings;
///
/// let settings = AdmissionSettings::new()
///     .window(Duration::from_secs(5), 50)
///     .cool_down(Duration::from_millis(500));
/// let controller = settings.build()?;
/// assert_eq!(controller.stats().capacity, None, "no estimate before the first bucket closes");
///
/// // A bad setting is named when the controller is built.
/// let err = AdmissionSettings::new().window(Duration::from_millis(10), 20).build().unwrap_err();
/// assert_eq!(err.setting, "buckets");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// In a TOML file:
///
/// ```toml
/// window = "10s"        # how far back max throughput and min latency are taken
/// buckets = 100         # 100 ms buckets
/// min_in_flight = 1     # never shed while at most this many are in flight
/// headroom = 1.25       # admit up to the estimate times this
/// cool_down = "1s"      # with a CPU gate: keep shedding this long after the last shed
/// cpu_threshold = 0.8   # default: no CPU gate (shed on the in-flight rule alone)
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct AdmissionSettings {
    /// How far back the estimate looks (default 10 s): the max throughput and min latency
    /// are taken over this many closed buckets.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub window: Duration,
    /// Buckets in the window (default 100; each at least 1 ms, at most
    /// [`MAX_ADMISSION_BUCKETS`]).
    pub buckets: usize,
    /// Never shed while at most this many requests are in flight (default 1, at least 1), so
    /// a lone request always passes whatever the estimate.
    pub min_in_flight: usize,
    /// The estimate is multiplied by this (default 1.25, in `1.0..=10.0`): room for the
    /// downward bias of the min latency (module docs of the controller, "The headroom").
    pub headroom: f64,
    /// With a CPU gate: how long shedding stays on after the last shed once CPU usage has
    /// fallen under the threshold (default 1 s), so the gate does not flap around it. Zero:
    /// no cool-down. Unused without a CPU gate.
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub cool_down: Duration,
    /// Shed only while CPU usage is at or above this fraction (`0.0 < t <= 1.0`) or within
    /// the cool-down of the last shed. Default: no gate. Needs a
    /// [`CpuSource`](super::CpuSource) on the builder ([`AdmissionBuilder::cpu`]).
    #[cfg_attr(feature = "serde", serde(skip_serializing_if = "Option::is_none"))]
    pub cpu_threshold: Option<f64>,
}

impl Default for AdmissionSettings {
    fn default() -> Self {
        Self::new()
    }
}

impl AdmissionSettings {
    /// The defaults: a 10 s window of 100 buckets, `min_in_flight` 1, headroom 1.25, a 1 s
    /// cool-down, no CPU gate.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            window: Duration::from_secs(10),
            buckets: 100,
            min_in_flight: 1,
            headroom: 1.25,
            cool_down: Duration::from_secs(1),
            cpu_threshold: None,
        }
    }

    /// Sets [`window`](Self::window) and [`buckets`](Self::buckets).
    #[must_use]
    pub const fn window(mut self, window: Duration, buckets: usize) -> Self {
        self.window = window;
        self.buckets = buckets;
        self
    }

    /// Sets [`min_in_flight`](Self::min_in_flight).
    #[must_use]
    pub const fn min_in_flight(mut self, min_in_flight: usize) -> Self {
        self.min_in_flight = min_in_flight;
        self
    }

    /// Sets [`headroom`](Self::headroom).
    #[must_use]
    pub const fn headroom(mut self, headroom: f64) -> Self {
        self.headroom = headroom;
        self
    }

    /// Sets [`cool_down`](Self::cool_down).
    #[must_use]
    pub const fn cool_down(mut self, cool_down: Duration) -> Self {
        self.cool_down = cool_down;
        self
    }

    /// Sets [`cpu_threshold`](Self::cpu_threshold).
    #[must_use]
    pub const fn cpu_threshold(mut self, threshold: f64) -> Self {
        self.cpu_threshold = Some(threshold);
        self
    }

    /// Checks the settings; returns the bucket length.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting.
    pub(crate) fn validate(&self) -> Result<Duration, ConfigError> {
        let window = ConfigError::require_positive("window", self.window)?;
        if window > MAX_SPAN {
            return Err(ConfigError::new("window", "must be at most 2^62 ns (146 years)"));
        }
        let buckets = ConfigError::require_nonzero("buckets", self.buckets)?;
        if buckets > MAX_ADMISSION_BUCKETS {
            return Err(ConfigError::new(
                "buckets",
                format!("must be at most {MAX_ADMISSION_BUCKETS}, got {buckets}"),
            ));
        }
        // At most 4096 buckets: the count fits a u32.
        let bucket = window / u32::try_from(buckets).unwrap_or(u32::MAX);
        if bucket < MIN_BUCKET {
            return Err(ConfigError::new(
                "buckets",
                format!(
                    "each bucket must be at least 1ms; {buckets} buckets over {window:?} are {bucket:?}"
                ),
            ));
        }
        ConfigError::require_nonzero("min_in_flight", self.min_in_flight)?;
        if !(1.0..=10.0).contains(&self.headroom) {
            return Err(ConfigError::new(
                "headroom",
                format!("must lie in 1.0..=10.0, got {}", self.headroom),
            ));
        }
        if self.cool_down > MAX_SPAN {
            return Err(ConfigError::new("cool_down", "must be at most 2^62 ns (146 years)"));
        }
        if let Some(t) = self.cpu_threshold {
            if !(t > 0.0 && t <= 1.0) {
                return Err(ConfigError::new(
                    "cpu_threshold",
                    format!("must be a fraction in (0.0, 1.0], got {t}"),
                ));
            }
        }
        Ok(bucket)
    }

    /// A builder set to these settings, for what settings files do not hold (a clock, a CPU
    /// source, listeners).
    pub fn builder(&self) -> AdmissionBuilder<FastClock> {
        AdmissionController::builder().settings(*self)
    }

    /// The controller, on the default clock.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting, as [`AdmissionBuilder::build`].
    pub fn build(&self) -> Result<AdmissionController, ConfigError> {
        self.builder().build()
    }

    /// The controller, timed by `clock`.
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub fn build_with_clock<C: Clock>(
        &self,
        clock: C,
    ) -> Result<AdmissionController<C>, ConfigError> {
        self.builder().clock(clock).build()
    }
}
