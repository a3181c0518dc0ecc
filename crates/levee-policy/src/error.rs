//! The one error a pipeline returns: which policy refused, or the operation's own error.

use std::time::Duration;

/// Why a pipeline call failed: the operation's own error, or the policy that refused.
///
/// Every refusal carries what the caller needs to react: how long the timeout was, how long
/// until the circuit may close or the limiter admits again. Retries return the last
/// attempt's error, unchanged.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Error, ErrorKind, RetryAfter};
///
/// let err: Error<std::io::Error> = Error::CircuitOpen { retry_after: Some(Duration::from_secs(3)) };
/// assert_eq!(err.kind(), ErrorKind::CircuitOpen);
/// assert_eq!(err.retry_after(), Some(Duration::from_secs(3)));
/// assert_eq!(err.to_string(), "circuit open, retry after 3s");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error<E> {
    /// The operation itself failed (after any retries).
    #[error("operation failed: {0}")]
    Operation(#[source] E),
    /// A [`Timeout`](crate::Timeout) expired before the operation completed.
    #[error("timed out after {timeout:?}")]
    Timeout {
        /// The timeout that expired.
        timeout: Duration,
    },
    /// A circuit breaker refused the call; it may let a trial through after `retry_after`
    /// (unknown when the circuit is forced open or its half-open trials are all taken).
    #[error("circuit open{}", match retry_after { Some(d) => format!(", retry after {d:?}"), None => String::new() })]
    CircuitOpen {
        /// How long until the breaker may admit a call, when known.
        retry_after: Option<Duration>,
    },
    /// A rate limiter refused the call; it admits one again after `retry_after`.
    #[error("rate limited, retry after {retry_after:?}")]
    RateLimited {
        /// How long until the limiter admits a call.
        retry_after: Duration,
    },
    /// The bulkhead was full (and the wait for a permit, if any, ran out).
    #[error("bulkhead full: {max_concurrent} calls in flight")]
    BulkheadFull {
        /// The bulkhead's limit at the time of refusal.
        max_concurrent: usize,
    },
}

/// Which variant an [`Error`] is, without its payload: for events, metrics and selectors.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Error, ErrorKind};
///
/// let err: Error<std::io::Error> = Error::RateLimited { retry_after: Duration::from_millis(30) };
/// assert_eq!(err.kind(), ErrorKind::RateLimited);
/// assert_eq!(err.kind().as_str(), "rate_limited"); // a metrics label
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(rename_all = "snake_case"))]
pub enum ErrorKind {
    /// [`Error::Operation`].
    Operation,
    /// [`Error::Timeout`].
    Timeout,
    /// [`Error::CircuitOpen`].
    CircuitOpen,
    /// [`Error::RateLimited`].
    RateLimited,
    /// [`Error::BulkheadFull`].
    BulkheadFull,
}

impl ErrorKind {
    /// The lowercase name, as in metrics labels and settings files.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Operation => "operation",
            Self::Timeout => "timeout",
            Self::CircuitOpen => "circuit_open",
            Self::RateLimited => "rate_limited",
            Self::BulkheadFull => "bulkhead_full",
        }
    }
}

impl<E> Error<E> {
    /// Which variant this is.
    #[must_use]
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Operation(_) => ErrorKind::Operation,
            Self::Timeout { .. } => ErrorKind::Timeout,
            Self::CircuitOpen { .. } => ErrorKind::CircuitOpen,
            Self::RateLimited { .. } => ErrorKind::RateLimited,
            Self::BulkheadFull { .. } => ErrorKind::BulkheadFull,
        }
    }

    /// True when a policy refused before the operation ran (open circuit, rate limit, full
    /// bulkhead); a timeout is not a refusal, the operation did run.
    #[must_use]
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            Self::CircuitOpen { .. } | Self::RateLimited { .. } | Self::BulkheadFull { .. }
        )
    }

    /// The operation's own error, if that is what this is.
    #[must_use]
    pub fn operation(&self) -> Option<&E> {
        match self {
            Self::Operation(e) => Some(e),
            _ => None,
        }
    }

    /// The operation's own error by value, if that is what this is.
    #[must_use]
    pub fn into_operation(self) -> Option<E> {
        match self {
            Self::Operation(e) => Some(e),
            _ => None,
        }
    }

    /// Maps the operation's error, keeping every refusal as it is.
    pub fn map_operation<F>(self, f: impl FnOnce(E) -> F) -> Error<F> {
        match self {
            Self::Operation(e) => Error::Operation(f(e)),
            Self::Timeout { timeout } => Error::Timeout { timeout },
            Self::CircuitOpen { retry_after } => Error::CircuitOpen { retry_after },
            Self::RateLimited { retry_after } => Error::RateLimited { retry_after },
            Self::BulkheadFull { max_concurrent } => Error::BulkheadFull { max_concurrent },
        }
    }
}

/// A refusal or error that says when trying again may succeed: levee-core's trait,
/// re-exported here.
///
/// [`Retry`](crate::Retry) waits at least this long before its next attempt, so a retry
/// never runs into an open circuit before it may close, nor into a limiter before it admits.
/// The pipeline's own [`Error`] implements it for its refusals; levee's limiter and breaker
/// refusals implement it; implement it for an operation error that carries a hint (an HTTP
/// 429 or 503 with `Retry-After`) and turn it on with
/// [`RetryBuilder::honour_retry_after`](crate::RetryBuilder::honour_retry_after).
pub use levee_core::RetryAfter;

impl<E> RetryAfter for Error<E> {
    /// The hint of a circuit or limiter refusal; `None` for the other variants (use
    /// [`RetryBuilder::honour_retry_after`](crate::RetryBuilder::honour_retry_after) for
    /// hints inside the operation's error).
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::CircuitOpen { retry_after } => *retry_after,
            Self::RateLimited { retry_after } => Some(*retry_after),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_and_accessors() {
        let e: Error<&str> = Error::Operation("boom");
        assert_eq!(e.kind(), ErrorKind::Operation);
        assert_eq!(e.operation(), Some(&"boom"));
        assert!(!e.is_refusal());
        assert_eq!(e.retry_after(), None);
        assert_eq!(e.clone().map_operation(str::len), Error::Operation(4));
        assert_eq!(e.into_operation(), Some("boom"));
        let full: Error<&str> = Error::BulkheadFull { max_concurrent: 8 };
        assert!(full.is_refusal());
        assert_eq!(full.to_string(), "bulkhead full: 8 calls in flight");
        assert_eq!(ErrorKind::RateLimited.as_str(), "rate_limited");
    }
}
