//! Building an admission controller: [`AdmissionController::builder`] and
//! [`AdmissionBuilder`]. Apart because configuration is read once and never on a caller's
//! path.

use std::fmt;
use std::sync::Arc;

use levee_core::sync::{AtomicU64, AtomicUsize, CachePadded};
use levee_core::{
    Clock, ConfigError, Counter, EventHook, FastClock, Listener, StripedCounter, nanos,
};

use super::cpu::CpuSource;
use super::window::Window;
use super::{AdmissionController, AdmissionEvent, AdmissionSettings, CpuGate};

impl AdmissionController<FastClock> {
    /// A controller with the default [`AdmissionSettings`] on the default clock.
    ///
    /// # Errors
    /// None with the defaults; the `Result` is that of [`AdmissionBuilder::build`].
    pub fn new() -> Result<Self, ConfigError> {
        Self::builder().build()
    }

    /// A builder with the default settings.
    pub fn builder() -> AdmissionBuilder<FastClock> {
        AdmissionBuilder {
            settings: AdmissionSettings::new(),
            clock: FastClock,
            cpu: None,
            hook: EventHook::none(),
        }
    }
}

/// Builds an [`AdmissionController`].
///
/// ```
/// use levee_core::ManualClock;
/// use levee_limit::{AdmissionController, AdmissionSettings};
///
/// let controller = AdmissionController::builder()
///     .settings(AdmissionSettings::default())
///     .clock(ManualClock::new())
///     .build()?;
/// let permit = controller.try_acquire()?;
/// drop(permit); // completes the request: its latency feeds the capacity estimate
/// assert_eq!(controller.stats().admitted, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct AdmissionBuilder<C> {
    settings: AdmissionSettings,
    clock: C,
    cpu: Option<Arc<dyn CpuSource>>,
    hook: EventHook<AdmissionEvent>,
}

impl<C> fmt::Debug for AdmissionBuilder<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdmissionBuilder")
            .field("settings", &self.settings)
            .field("cpu", &self.cpu.is_some())
            .finish_non_exhaustive()
    }
}

impl<C: Clock> AdmissionBuilder<C> {
    /// Uses `settings` (replacing any set before).
    pub fn settings(mut self, settings: AdmissionSettings) -> Self {
        self.settings = settings;
        self
    }

    /// Reads CPU usage from `source` for the CPU gate (used only when
    /// [`AdmissionSettings::cpu_threshold`] is set).
    pub fn cpu(mut self, source: impl CpuSource) -> Self {
        self.cpu = Some(Arc::new(source));
        self
    }

    /// Reads time from `clock` (latencies, buckets, the cool-down).
    pub fn clock<C2: Clock>(self, clock: C2) -> AdmissionBuilder<C2> {
        AdmissionBuilder { settings: self.settings, clock, cpu: self.cpu, hook: self.hook }
    }

    /// Adds a listener for [`AdmissionEvent`]s.
    pub fn listener(mut self, listener: impl Listener<AdmissionEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Builds the controller.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting (see [`AdmissionSettings`]), or
    /// `cpu_threshold` when it is set without a CPU source.
    pub fn build(self) -> Result<AdmissionController<C>, ConfigError> {
        let s = self.settings;
        let bucket = s.validate()?;
        let cpu = match (s.cpu_threshold, self.cpu) {
            (None, _) => None,
            (Some(threshold), Some(source)) => Some(CpuGate { source, threshold }),
            (Some(_), None) => {
                return Err(ConfigError::new(
                    "cpu_threshold",
                    "needs a CPU source (AdmissionBuilder::cpu)",
                ));
            }
        };
        let window = Window::new(s.buckets, nanos(bucket));
        Ok(AdmissionController {
            in_flight: CachePadded::new(AtomicUsize::new(0)),
            cached: CachePadded::new(AtomicU64::new(0)),
            drain_phase: window.bucket(self.clock.now()) % window.buckets() as u64,
            window,
            last_shed: AtomicU64::new(0),
            min_in_flight: s.min_in_flight,
            cool_down: nanos(s.cool_down),
            cpu,
            settings: s,
            clock: self.clock,
            admitted: StripedCounter::new(),
            shed: Counter::new(),
            hook: self.hook,
        })
    }
}
