//! Several shops on one PostgreSQL database (`[replicas]`): the store sweep that takes over
//! the timers of a shop that is gone.
//!
//! Each shop arms its own timers for the unpaid orders and carts it touches
//! ([`crate::timeouts`]); when that shop dies, its timers die with it. On PostgreSQL every
//! shop also sweeps the store each `sweep_interval` for unpaid orders and carts past their
//! deadline and ends them through the same guarded transition the timers use, so whichever
//! shop gets there first does it, once. The README's "Timers across replicas" says why.

use std::time::Duration;

use levee::core::ConfigError;
use serde::{Deserialize, Serialize};

use super::{SettingError, section};

/// `[replicas]`: the sweep of overdue orders and carts (PostgreSQL only).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReplicasConfig {
    /// How often each shop looks for unpaid orders and carts past their deadline. An order
    /// whose shop died is cancelled at most this (plus one sweep's work) after its deadline.
    #[serde(with = "levee::core::serde_duration")]
    pub sweep_interval: Duration,
    /// Orders, and carts, ended per sweep at most; a full batch sweeps again at once.
    pub sweep_batch: u32,
}

impl Default for ReplicasConfig {
    fn default() -> Self {
        Self { sweep_interval: Duration::from_secs(5), sweep_batch: 256 }
    }
}

impl ReplicasConfig {
    /// Checks the ranges.
    ///
    /// # Errors
    /// A zero interval or batch, named by its path.
    pub fn validate(&self) -> Result<(), SettingError> {
        ConfigError::require_positive("sweep_interval", self.sweep_interval)
            .map_err(section("replicas"))?;
        ConfigError::require_nonzero("sweep_batch", self.sweep_batch)
            .map_err(section("replicas"))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn set_from_the_environment_and_zeros_refused_by_path() {
        let env = |k: &str, v: &str| vec![(k.to_owned(), v.to_owned())];
        let c = Config::load(None, env("SHOP_REPLICAS__SWEEP_INTERVAL", "250ms")).unwrap();
        assert_eq!(c.replicas.sweep_interval, Duration::from_millis(250));
        assert_eq!(c.replicas.sweep_batch, ReplicasConfig::default().sweep_batch);
        for (var, path) in [
            ("SHOP_REPLICAS__SWEEP_INTERVAL", "replicas.sweep_interval"),
            ("SHOP_REPLICAS__SWEEP_BATCH", "replicas.sweep_batch"),
        ] {
            let err = Config::load(None, env(var, "0")).unwrap_err().to_string();
            assert!(err.contains(path), "{var}=0: {err}");
        }
    }
}
