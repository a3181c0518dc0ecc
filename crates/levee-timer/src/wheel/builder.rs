//! A wheel's settings: [`TimingWheelBuilder`] and [`Precision`], validated by [`TimingWheelBuilder::build`].

use std::time::Duration;

use levee_core::ConfigError;

use super::TimingWheel;
use super::slab::MAX_ENTRIES;

/// The shortest tick the builder accepts; keeps every tick count far from `u64` overflow.
pub const MIN_TICK: Duration = Duration::from_micros(1);

/// How precisely a wheel fires: the trade between lateness and work per timer.
///
/// ```
/// use std::time::Duration;
/// use levee_timer::{Precision, TimingWheel};
///
/// // Request timeouts are usually cancelled before they fire: slack mode places each once.
/// let wheel = TimingWheel::builder().tick(Duration::from_millis(10)).mode(Precision::Slack).build::<u64>()?;
/// assert_eq!(wheel.precision(), Precision::Slack);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Precision {
    /// Fires in the first tick boundary at or after the deadline: never early, less than one
    /// tick late. Timers far away are cascaded to finer levels as time nears (about
    /// `log64(remaining ticks)` moves each).
    #[default]
    Exact,
    /// Fires never early and less than one tick + 8/63 (12.7 %) of the time that remained
    /// when the timer was inserted (or reset) late. Each timer is placed once and never
    /// moved, and timers that are close together fire together: cheaper for timeouts that
    /// are usually cancelled before they fire.
    Slack,
}

/// Settings of a [`TimingWheel`]; [`build`](Self::build) validates them.
///
/// ```
/// use std::time::Duration;
/// use levee_timer::{Precision, TimingWheel};
///
/// let wheel: TimingWheel<u64> = TimingWheel::builder()
///     .tick(Duration::from_millis(10))
///     .mode(Precision::Slack)
///     .max_pending(1_000_000)
///     .start(5_000_000_000)
///     .build()
///     .unwrap();
/// assert_eq!(wheel.time(), 5_000_000_000);
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct TimingWheelBuilder {
    pub(super) tick: Duration,
    pub(super) mode: Precision,
    pub(super) max_pending: Option<usize>,
    pub(super) start: u64,
}

/// The former name of [`TimingWheelBuilder`].
///
/// ```
/// #[allow(deprecated)]
/// use levee_timer::{Builder, TimingWheel};
///
/// #[allow(deprecated)]
/// let builder: Builder = TimingWheel::builder(); // prefer `TimingWheelBuilder`
/// let wheel: TimingWheel<&str> = builder.build().unwrap();
/// assert!(wheel.is_empty());
/// ```
#[deprecated(
    since = "0.1.0",
    note = "renamed to `TimingWheelBuilder` (levee's `XBuilder` convention)"
)]
pub type Builder = TimingWheelBuilder;

impl Default for TimingWheelBuilder {
    fn default() -> Self {
        Self { tick: Duration::from_millis(1), mode: Precision::Exact, max_pending: None, start: 0 }
    }
}

impl TimingWheelBuilder {
    /// The granularity of time (default 1 ms, at least [`MIN_TICK`]). Exact timers fire less
    /// than one tick late.
    pub fn tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    /// Exact or slack firing (default [`Precision::Exact`]).
    pub fn mode(mut self, mode: Precision) -> Self {
        self.mode = mode;
        self
    }

    /// The most timers pending at once (default: about 4 billion, the index space); an
    /// insert beyond it fails with [`TimerError::Full`](crate::TimerError::Full).
    pub fn max_pending(mut self, max: usize) -> Self {
        self.max_pending = Some(max);
        self
    }

    /// The clock reading the wheel's ticks count from (default 0); usually the owner's
    /// `clock.now()` at creation. It is the first tick boundary: deadlines before it fire at
    /// it, once a `now` at or after it is passed (nothing fires before).
    pub fn start(mut self, start: u64) -> Self {
        self.start = start;
        self
    }

    pub(crate) fn max_pending_setting(&self) -> Option<usize> {
        self.max_pending
    }

    /// Builds the wheel.
    ///
    /// # Errors
    /// A [`ConfigError`] naming `tick` when it is shorter than [`MIN_TICK`], or `max_pending`
    /// when it is zero or more than the wheel can index (`u32::MAX - 1`).
    pub fn build<T>(self) -> Result<TimingWheel<T>, ConfigError> {
        if self.tick < MIN_TICK {
            return Err(ConfigError::new("tick", "must be at least 1 µs"));
        }
        let max_pending = match self.max_pending {
            None => MAX_ENTRIES,
            Some(0) => return Err(ConfigError::new("max_pending", "must be greater than zero")),
            Some(n) if n > MAX_ENTRIES => {
                return Err(ConfigError::new(
                    "max_pending",
                    format!("must be at most {MAX_ENTRIES}, got {n}"),
                ));
            }
            Some(n) => n,
        };
        Ok(TimingWheel::from_builder(self, max_pending))
    }
}
