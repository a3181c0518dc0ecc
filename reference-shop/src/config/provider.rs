//! `[provider]`: the simulated payment provider, in this process (the default) or as its own
//! processes (`reference-shop serve --service provider`) that the shop calls over HTTP.
//!
//! - `latency`, `failure_rate`: the provider's starting faults (changeable at run time), in
//!   whichever process runs it: the shop in-process, or a provider process.
//! - `urls`, `standby_urls`: set `urls` and the shop calls remote providers through
//!   levee's service client (`levee::client`): power of two choices on peak-EWMA latency
//!   across `urls`, a breaker per endpoint (`endpoint_breaker`) that ejects a failing one,
//!   and `standby_urls` only while every primary is ejected. Empty (the default): the
//!   in-process provider.
//! - `ledger_dir`: for a provider process, where its charges live. Replicas given the same
//!   directory are one provider (as a real provider's replicas share its database): an
//!   order charged by one is a repeat for the others, and a restarted replica knows its
//!   earlier charges. Unset: charges in memory, gone with the process.

use std::path::PathBuf;
use std::time::Duration;

use levee::breaker::{BreakerSettings, OpenWait};
use levee::client::Endpoint;
use levee::core::ConfigError;
use serde::{Deserialize, Serialize};

use super::endpoints::read_endpoints;
use super::{SettingError, section};

/// `[provider]`: the simulated payment provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// Added latency of every call (at start; the admin API changes it).
    #[serde(with = "levee::core::serde_duration")]
    pub latency: Duration,
    /// Share of calls that fail as "unavailable", 0.0 to 1.0 (half of them after charging:
    /// the answer is lost).
    pub failure_rate: f64,
    /// Remote provider replicas, `http://host:port` (primaries). Empty: in-process provider.
    pub urls: Vec<String>,
    /// Remote replicas that take calls only while every primary is ejected.
    pub standby_urls: Vec<String>,
    /// The longest one remote call may take, retries on other replicas included (the
    /// payment pipeline's own deadlines cut it shorter when they have less left).
    #[serde(with = "levee::core::serde_duration")]
    pub timeout: Duration,
    /// The TCP connect timeout of a remote call.
    #[serde(with = "levee::core::serde_duration")]
    pub connect_timeout: Duration,
    /// Attempts per remote call, on different replicas (1: no retry in the client; the
    /// payment pipeline retries over time).
    pub max_attempts: u32,
    /// Each remote replica's breaker (levee-breaker's settings): when it opens, the replica
    /// is out of rotation until a trial call passes.
    pub endpoint_breaker: BreakerSettings,
    /// A provider process's charges on disk, shared by its replicas; unset: in memory.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledger_dir: Option<PathBuf>,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(20),
            failure_rate: 0.0,
            urls: Vec::new(),
            standby_urls: Vec::new(),
            timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(250),
            max_attempts: 2,
            endpoint_breaker: BreakerSettings {
                open_wait: OpenWait::exponential(Duration::from_secs(1), Duration::from_secs(10))
                    .jitter(0.1),
                ..levee::client::default_endpoint_breaker()
            },
            ledger_dir: None,
        }
    }
}

impl ProviderConfig {
    /// Whether the shop calls remote providers (`urls` set).
    #[must_use]
    pub fn is_remote(&self) -> bool {
        !self.urls.is_empty()
    }

    /// The remote endpoints: `urls` as primaries, then `standby_urls` as standbys.
    ///
    /// # Errors
    /// The first URL that is not `http://host:port` or `https://host:port`, named by its path
    /// (`provider.urls`, `provider.standby_urls`) and position.
    pub fn endpoints(&self) -> Result<Vec<Endpoint>, SettingError> {
        read_endpoints([("urls", &self.urls, false), ("standby_urls", &self.standby_urls, true)])
            .map_err(|bad| {
                section("provider")(ConfigError::new(
                    bad.setting,
                    format!(
                        "entry {} (`{}`) is not a provider address: {}",
                        bad.index, bad.address, bad.error
                    ),
                ))
            })
    }

    /// Checks every `[provider]` setting.
    ///
    /// # Errors
    /// The first invalid one, named by its path.
    pub fn validate(&self) -> Result<(), SettingError> {
        let provider = section("provider");
        if !(0.0..=1.0).contains(&self.failure_rate) {
            return Err(provider(ConfigError::new("failure_rate", "must lie in 0.0..=1.0")));
        }
        if self.urls.is_empty() && !self.standby_urls.is_empty() {
            return Err(provider(ConfigError::new(
                "standby_urls",
                "needs `urls` too: standbys serve only while every primary is ejected",
            )));
        }
        self.endpoints()?;
        ConfigError::require_positive("timeout", self.timeout).map_err(&provider)?;
        ConfigError::require_positive("connect_timeout", self.connect_timeout)
            .map_err(&provider)?;
        ConfigError::require_nonzero("max_attempts", self.max_attempts).map_err(&provider)?;
        self.endpoint_breaker.validate().map_err(section("provider.endpoint_breaker"))?;
        if self.ledger_dir.as_ref().is_some_and(|d| d.as_os_str().is_empty()) {
            return Err(provider(ConfigError::new("ledger_dir", "must not be empty")));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with(f: impl FnOnce(&mut ProviderConfig)) -> Result<(), SettingError> {
        let mut config = ProviderConfig::default();
        f(&mut config);
        config.validate()
    }

    #[test]
    fn the_defaults_are_in_process_and_valid() {
        let config = ProviderConfig::default();
        assert!(!config.is_remote());
        config.validate().unwrap();
        assert!(config.endpoints().unwrap().is_empty());
    }

    #[test]
    fn primaries_come_before_standbys() {
        let config = ProviderConfig {
            urls: vec!["http://127.0.0.1:9001".into(), "http://127.0.0.1:9002".into()],
            standby_urls: vec!["http://127.0.0.1:9003".into()],
            ..ProviderConfig::default()
        };
        config.validate().unwrap();
        let priorities: Vec<u8> =
            config.endpoints().unwrap().iter().map(|e| e.priority()).collect();
        assert_eq!(priorities, [0, 0, 1]);
    }

    #[test]
    fn bad_settings_are_named_by_their_path() {
        type Change = fn(&mut ProviderConfig);
        let cases: [(Change, &str); 6] = [
            (|c| c.urls = vec!["http://127.0.0.1:1".into(), "not a url".into()], "provider.urls"),
            (|c| c.standby_urls = vec!["http://127.0.0.1:1".into()], "provider.standby_urls"),
            (
                |c| {
                    c.urls = vec!["http://127.0.0.1:1".into()];
                    c.standby_urls = vec!["ftp://x".into()];
                },
                "provider.standby_urls",
            ),
            (|c| c.max_attempts = 0, "provider.max_attempts"),
            (|c| c.timeout = Duration::ZERO, "provider.timeout"),
            (|c| c.endpoint_breaker.minimum_calls = 0, "provider.endpoint_breaker.minimum_calls"),
        ];
        for (change, path) in cases {
            let err = with(change).unwrap_err();
            assert_eq!(err.path(), path, "{err}");
        }
        let err = with(|c| c.urls = vec!["http://a:1".into(), "nope".into()]).unwrap_err();
        assert!(err.to_string().contains("entry 1 (`nope`)"), "{err}");
    }
}
