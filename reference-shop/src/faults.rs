//! Fault injection: payment-provider latency and failure rate, store latency, changed at run
//! time through the admin API.
//!
//! Injected delays are real waits, but a change of the settings wakes every waiter at once and
//! re-measures it against the new value, so lowering a latency ends the pauses already under
//! way (tests use that to hold requests in flight without waiting for the clock).

use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

/// The injected faults now in force.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct FaultSettings {
    /// Added latency of every payment-provider call, in milliseconds.
    pub provider_latency_ms: u64,
    /// Share of payment-provider calls that fail as "unavailable", 0.0 to 1.0.
    pub provider_failure_rate: f64,
    /// Added latency of every store call, in milliseconds.
    pub store_latency_ms: u64,
}

/// A change to some of the settings (absent fields stay as they are).
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultPatch {
    /// New provider latency, at most 600 000 (ten minutes).
    #[schema(maximum = 600_000)]
    pub provider_latency_ms: Option<u64>,
    /// New provider failure rate, 0.0 to 1.0.
    #[schema(minimum = 0.0, maximum = 1.0)]
    pub provider_failure_rate: Option<f64>,
    /// New store latency, at most 600 000 (ten minutes).
    #[schema(maximum = 600_000)]
    pub store_latency_ms: Option<u64>,
}

/// A patch was out of range.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{field}` {reason}")]
pub struct FaultError {
    /// The field.
    pub field: &'static str,
    /// What is wrong.
    pub reason: &'static str,
}

/// Shared fault settings.
#[derive(Debug)]
pub struct Faults {
    tx: watch::Sender<FaultSettings>,
}

/// Longest injectable latency: ten minutes.
const MAX_LATENCY_MS: u64 = 600_000;

impl Faults {
    /// Starts with `initial`.
    #[must_use]
    pub fn new(initial: FaultSettings) -> Self {
        Self { tx: watch::Sender::new(initial) }
    }

    /// The settings now.
    #[must_use]
    pub fn get(&self) -> FaultSettings {
        *self.tx.borrow()
    }

    /// Applies `patch` and returns the new settings.
    ///
    /// # Errors
    /// A failure rate outside `0.0..=1.0` or a latency above ten minutes; nothing changes then.
    pub fn apply(&self, patch: FaultPatch) -> Result<FaultSettings, FaultError> {
        let mut next = self.get();
        if let Some(rate) = patch.provider_failure_rate {
            if !(0.0..=1.0).contains(&rate) {
                return Err(FaultError {
                    field: "provider_failure_rate",
                    reason: "must lie in 0.0..=1.0",
                });
            }
            next.provider_failure_rate = rate;
        }
        for (value, slot, field) in [
            (patch.provider_latency_ms, &mut next.provider_latency_ms, "provider_latency_ms"),
            (patch.store_latency_ms, &mut next.store_latency_ms, "store_latency_ms"),
        ] {
            if let Some(ms) = value {
                if ms > MAX_LATENCY_MS {
                    return Err(FaultError {
                        field,
                        reason: "must be at most 600000 (ten minutes)",
                    });
                }
                *slot = ms;
            }
        }
        self.tx.send_replace(next);
        Ok(next)
    }

    /// Waits the injected store latency.
    pub async fn store_delay(&self) {
        self.delay(|s| s.store_latency_ms).await;
    }

    /// Waits the injected provider latency.
    pub async fn provider_delay(&self) {
        self.delay(|s| s.provider_latency_ms).await;
    }

    async fn delay(&self, pick: fn(&FaultSettings) -> u64) {
        let mut rx = self.tx.subscribe();
        let ms = pick(&rx.borrow_and_update());
        if ms == 0 {
            return;
        }
        let start = Instant::now();
        loop {
            let target = start + Duration::from_millis(pick(&rx.borrow_and_update()));
            if Instant::now() >= target {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(target) => return,
                changed = rx.changed() => if changed.is_err() { return },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patches_are_checked_and_partial() {
        let faults = Faults::new(FaultSettings::default());
        let s = faults
            .apply(FaultPatch { store_latency_ms: Some(5), ..FaultPatch::default() })
            .unwrap();
        assert_eq!(s.store_latency_ms, 5);
        let err = faults
            .apply(FaultPatch { provider_failure_rate: Some(1.5), ..FaultPatch::default() })
            .unwrap_err();
        assert_eq!(err.field, "provider_failure_rate");
        assert_eq!(faults.get().store_latency_ms, 5);
    }

    #[tokio::test(start_paused = true)]
    async fn lowering_the_latency_ends_waits_under_way() {
        let faults = std::sync::Arc::new(Faults::new(FaultSettings {
            store_latency_ms: 600_000,
            ..FaultSettings::default()
        }));
        let waiter = tokio::spawn({
            let faults = faults.clone();
            async move { faults.store_delay().await }
        });
        tokio::task::yield_now().await;
        faults.apply(FaultPatch { store_latency_ms: Some(0), ..FaultPatch::default() }).unwrap();
        let started = Instant::now();
        waiter.await.unwrap();
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}
