//! The edge's limits shared by replicas on Redis (`[edge.redis]`): off unless `url` is set.
//!
//! With a URL, the per-client rate limit and the sign-up limit run on levee-redis's
//! cluster-wide GCRA (server time, one Redis key per client, under `prefix`), so every shop
//! that shares the Redis and the prefix shares each client's quota. Without one the edge
//! keeps its in-process limiters and never talks to Redis.

use std::time::Duration;

use levee::core::ConfigError;
use levee::redis::{FailMode, LeaseSettings};
use serde::{Deserialize, Serialize};

use super::{SettingError, section};

/// `[edge.redis]`: where the edge's shared limits live and what they do without Redis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RedisEdgeConfig {
    /// `redis://host:port/db` (`rediss://` for TLS); unset (the default): in-process limits.
    pub url: Option<String>,
    /// Put before every key, so that deployments sharing one Redis keep their own limits
    /// (shops of one deployment share it). The rate limit's keys are `<prefix>rate:<client>`,
    /// the sign-up limit's `<prefix>signup:<address>`.
    pub prefix: String,
    /// Longest a check waits for Redis (connecting included); then the fail mode decides.
    #[serde(with = "levee::core::serde_duration")]
    pub timeout: Duration,
    /// Without Redis (down, slow, or its breaker open): `{ mode = "open", share = 0.25 }`
    /// admits each client locally at that share of its quota in each shop; `{ mode =
    /// "closed" }` refuses with 429 until Redis answers. Also decides the start: fail-closed
    /// refuses to start without Redis, fail-open starts degraded (a warning) and uses Redis
    /// once it answers.
    pub fail_mode: FailMode,
    /// Lease mode (`[edge.redis.lease]`, off unless present): a shop takes a few cells of a
    /// busy client's quota per round trip and spends them locally; levee-redis documents the
    /// precision it costs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lease: Option<LeaseSettings>,
}

impl Default for RedisEdgeConfig {
    fn default() -> Self {
        Self {
            url: None,
            prefix: "shop:edge:".to_owned(),
            timeout: Duration::from_millis(50),
            fail_mode: FailMode::default(),
            lease: None,
        }
    }
}

impl RedisEdgeConfig {
    /// The Redis URL when the edge's limits are on Redis.
    #[must_use]
    pub fn url(&self) -> Option<&str> {
        self.url.as_deref().filter(|url| !url.trim().is_empty())
    }

    /// Checks what can be checked without a connection (the fail mode and the lease are
    /// checked when the limiters are built).
    ///
    /// # Errors
    /// An empty prefix or a zero timeout, named by its path.
    pub fn validate(&self) -> Result<(), SettingError> {
        if self.prefix.is_empty() {
            return Err(section("edge.redis")(ConfigError::new(
                "prefix",
                "must not be empty (it keeps this deployment's keys apart)",
            )));
        }
        ConfigError::require_positive("timeout", self.timeout).map_err(section("edge.redis"))?;
        Ok(())
    }
}
