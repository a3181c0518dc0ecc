//! Why a limiter could not be built.

use levee_core::ConfigError;

/// Why [`RedisLimiterBuilder::connect`](crate::RedisLimiterBuilder::connect) failed.
///
/// ```
/// use levee_limit::Quota;
/// use levee_redis::{BuildError, RedisRateLimiter};
///
/// // Outside a tokio runtime the connection could not reconnect in the background.
/// let err = RedisRateLimiter::builder(Quota::per_second(10)).connect("redis://127.0.0.1:6379/").unwrap_err();
/// assert!(matches!(err, BuildError::NoRuntime));
/// ```
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
