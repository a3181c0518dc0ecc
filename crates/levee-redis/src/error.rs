//! Why a limiter could not be built.

use levee_core::ConfigError;

/// Why [`RedisLimiterBuilder::connect`](crate::RedisLimiterBuilder::connect) failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// A setting is invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The Redis URL is invalid, or the client refused its settings.
    #[error("redis: {0}")]
    Redis(#[from] redis::RedisError),
    /// Called outside a tokio runtime: the connection needs one to reconnect in the
    /// background.
    #[error("a Redis limiter must be built inside a tokio runtime")]
    NoRuntime,
}
