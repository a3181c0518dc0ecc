//! The optional CPU gate's source: anything that reads the process's CPU usage cheaply.
//!
//! levee measures no CPU itself (how depends on the platform, the container and the
//! scheduler); the caller supplies a reading. The controller asks for it only when a request
//! would be shed, so a source should be a load of a value something else keeps up to date:
//! [`CpuGauge`] is that, a shared number a sampling task sets every few hundred milliseconds.

use std::fmt;
use std::sync::Arc;

use levee_core::sync::{AtomicU64, Ordering};

/// A reading of CPU usage as a fraction of what the process may use (`0.0..=1.0`; above 1.0
/// reads as saturated). Called on the shedding path only; keep it to a load.
///
/// ```
/// use levee_limit::{AdmissionController, AdmissionSettings, CpuSource};
///
/// /// A fixed reading, as a test would use (any `Fn() -> f64` is a source too).
/// struct Busy;
///
/// impl CpuSource for Busy {
///     fn usage(&self) -> f64 {
///         0.95
///     }
/// }
///
/// assert_eq!(Busy.usage(), 0.95);
/// let controller = AdmissionController::builder()
///     .settings(AdmissionSettings::new().cpu_threshold(0.8))
///     .cpu(Busy)
///     .build()?;
/// # let _ = controller;
/// let from_closure = || 0.5;
/// assert_eq!(from_closure.usage(), 0.5);
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub trait CpuSource: Send + Sync + 'static {
    /// CPU usage now, `0.0..=1.0`.
    fn usage(&self) -> f64;
}

impl<F: Fn() -> f64 + Send + Sync + 'static> CpuSource for F {
    fn usage(&self) -> f64 {
        self()
    }
}

/// A CPU reading shared between the task that samples it and the controllers that read it:
/// clones share one value. Starts at 0.0 (idle: the gate stays shut until a sample arrives).
///
/// ```
/// use levee_limit::{CpuGauge, CpuSource};
///
/// let gauge = CpuGauge::new();
/// let reader = gauge.clone();
/// gauge.set(0.93); // e.g. from a task reading /proc/self/stat every 250 ms
/// assert_eq!(reader.usage(), 0.93);
/// ```
#[derive(Clone, Default)]
pub struct CpuGauge(Arc<AtomicU64>);

impl CpuGauge {
    /// A gauge reading 0.0.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the reading (a NaN reads as 0.0).
    pub fn set(&self, usage: f64) {
        let usage = if usage.is_nan() { 0.0 } else { usage };
        // Relaxed: a lone value, read without ordering anything else.
        self.0.store(usage.to_bits(), Ordering::Relaxed);
    }
}

impl CpuSource for CpuGauge {
    fn usage(&self) -> f64 {
        f64::from_bits(self.0.load(Ordering::Relaxed))
    }
}

impl fmt::Debug for CpuGauge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("CpuGauge").field(&self.usage()).finish()
    }
}
