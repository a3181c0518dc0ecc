//! What an admission controller reports: its events and the [`AdmissionStats`] snapshot.
//! Apart from the admission rule: nothing here changes state.

use std::time::Duration;

use levee_core::Clock;
use levee_core::sync::Ordering;

use super::{AdmissionController, Shed};

/// What an admission controller reports to its listeners.
///
/// ```
/// use levee_limit::{AdmissionController, AdmissionEvent};
///
/// let controller = AdmissionController::builder()
///     .listener(|e: &AdmissionEvent| {
///         let AdmissionEvent::Shed(shed) = e else { return };
///         eprintln!("shed at {} in flight", shed.in_flight);
///     })
///     .build()?;
/// # let _ = controller;
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum AdmissionEvent {
    /// A request was shed.
    Shed(Shed),
}

/// A snapshot of an admission controller's counters and estimate.
///
/// ```
/// use levee_limit::AdmissionController;
///
/// let controller = AdmissionController::new()?;
/// let permit = controller.try_acquire()?;
/// assert_eq!(controller.stats().in_flight, 1);
/// drop(permit);
/// let stats = controller.stats();
/// assert_eq!((stats.admitted, stats.shed, stats.in_flight), (1, 0, 0));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct AdmissionStats {
    /// Requests admitted.
    pub admitted: u64,
    /// Requests shed.
    pub shed: u64,
    /// Requests in flight now.
    pub in_flight: usize,
    /// The estimated capacity (requests in flight): `max_throughput` x `min_latency`, rounded
    /// to nearest; `None` until a bucket of the window holds a completion.
    pub capacity: Option<usize>,
    /// The smallest mean latency of a bucket in the window.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "levee_core::serde_duration::option::serialize")
    )]
    pub min_latency: Option<Duration>,
    /// The most completions of a bucket in the window, per second.
    pub max_throughput: Option<f64>,
    /// Whether the CPU gate is open now (shedding allowed): CPU at or over the threshold, or
    /// within the cool-down of the last shed. Always true without a CPU gate.
    pub gate_open: bool,
}

impl<C: Clock> AdmissionController<C> {
    /// Requests in flight now.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// The estimated capacity now (requests in flight), `None` while there is no estimate
    /// (no completion in the window's closed buckets).
    #[must_use]
    pub fn capacity(&self) -> Option<usize> {
        self.capacity_at(self.clock.now())
    }

    /// A snapshot of counters and the estimate.
    #[must_use]
    pub fn stats(&self) -> AdmissionStats {
        let now = self.clock.now();
        let estimate = self.window.estimate(self.window.bucket(now));
        let bucket_nanos = self.window.bucket_nanos();
        AdmissionStats {
            admitted: self.admitted.get(),
            shed: self.shed.get(),
            in_flight: self.in_flight(),
            capacity: self.capacity_at(now),
            min_latency: estimate.map(|e| Duration::from_nanos(e.min_latency_nanos())),
            #[allow(clippy::cast_precision_loss)] // a rate for display
            max_throughput: estimate
                .map(|e| e.max_count as f64 * 1_000_000_000.0 / bucket_nanos as f64),
            gate_open: self.gate_open(now),
        }
    }

    /// The controller's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.clock
    }
}
