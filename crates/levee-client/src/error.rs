//! What a client call returns when it gets no response.

use std::time::Duration;

use bytes::Bytes;
use levee_core::RetryAfter;

use crate::Endpoint;

/// A boxed error from the transport (hyper, rustls, the OS).
///
/// ```
/// use levee_client::{BoxError, TransportError, TransportErrorKind};
///
/// // Any error of a transport's own (an I/O error, a string) boxes into the `source`.
/// let source: BoxError = "connection reset by peer".into();
/// let err = TransportError::new(TransportErrorKind::Io, source);
/// assert_eq!(err.source.to_string(), "connection reset by peer");
/// ```
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Why a call got no response. A response with an error status (a 503 after every retry)
/// is not an error: the call returns it.
///
/// ```
/// use levee_client::Error;
///
/// fn status(err: &Error) -> u16 {
///     match err {
///         Error::AllEjected { .. } | Error::NoEndpoints => 503,
///         Error::DeadlineExceeded | Error::Timeout { .. } => 504,
///         _ => 502,
///     }
/// }
/// assert_eq!(status(&Error::NoEndpoints), 503);
/// assert_eq!(Error::DeadlineExceeded.to_string(), "deadline exceeded");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The endpoint list is empty.
    #[error("no endpoints to call")]
    NoEndpoints,
    /// Every endpoint of every priority group is ejected (its breaker is open) or marked
    /// unhealthy. `retry_after` is when the first ejection ends, if any will by itself.
    #[error("every endpoint is ejected or unhealthy{}", match retry_after { Some(d) => format!(", the first returns in {d:?}"), None => String::new() })]
    AllEjected {
        /// How long until the first ejected endpoint may be tried again.
        retry_after: Option<Duration>,
    },
    /// The call's deadline (the client's timeout, or the smaller one it was given) passed.
    #[error("deadline exceeded")]
    DeadlineExceeded,
    /// An attempt ran past the per-attempt timeout (and no retry was left or allowed).
    #[error("{endpoint} did not answer within {timeout:?}")]
    Timeout {
        /// The endpoint that did not answer.
        endpoint: Endpoint,
        /// The per-attempt timeout.
        timeout: Duration,
    },
    /// No connection could be made: the request was not sent.
    #[error("could not connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint.
        endpoint: Endpoint,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The request was sent (or may have been) and the exchange failed.
    #[error("request to {endpoint} failed: {source}")]
    Transport {
        /// The endpoint.
        endpoint: Endpoint,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// The response body was larger than the client's limit.
    #[error("the response of {endpoint} is larger than {limit} bytes")]
    BodyTooLarge {
        /// The endpoint.
        endpoint: Endpoint,
        /// The limit.
        limit: usize,
    },
    /// The request cannot be sent (a malformed header the client had to write, say).
    #[error("invalid request: {0}")]
    InvalidRequest(&'static str),
}

impl Error {
    /// True when the request certainly did not reach any endpoint: retrying it is safe
    /// whatever its method.
    #[must_use]
    pub fn was_not_sent(&self) -> bool {
        matches!(
            self,
            Self::NoEndpoints
                | Self::AllEjected { .. }
                | Self::Connect { .. }
                | Self::InvalidRequest(_)
        )
    }
}

/// When every endpoint is ejected, how long until the first may be tried.
impl RetryAfter for Error {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::AllEjected { retry_after } => *retry_after,
            _ => None,
        }
    }
}

/// What a transport reports instead of a response.
///
/// ```
/// use levee_client::{TransportError, TransportErrorKind};
///
/// let refused = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
/// let err = TransportError::new(TransportErrorKind::Connect, refused);
/// assert_eq!(err.kind, TransportErrorKind::Connect); // never sent: safe to retry elsewhere
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{kind:?}: {source}")]
pub struct TransportError {
    /// What went wrong.
    pub kind: TransportErrorKind,
    /// The underlying error.
    #[source]
    pub source: BoxError,
}

/// The classes of transport failure the client treats differently.
///
/// ```
/// use levee_client::{TransportError, TransportErrorKind};
///
/// // A custom transport says what failed, so the client knows what it may retry.
/// fn classify(e: std::io::Error) -> TransportError {
///     let kind = match e.kind() {
///         std::io::ErrorKind::ConnectionRefused => TransportErrorKind::Connect,
///         _ => TransportErrorKind::Io,
///     };
///     TransportError::new(kind, e)
/// }
/// assert_eq!(classify(std::io::ErrorKind::BrokenPipe.into()).kind, TransportErrorKind::Io);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransportErrorKind {
    /// No connection: the request was not sent (retried for any method).
    Connect,
    /// The exchange failed after the request may have been sent (retried only when
    /// idempotent).
    Io,
    /// The response body exceeded this many bytes (not an endpoint failure, not retried).
    BodyTooLarge(usize),
}

impl TransportError {
    /// A transport failure of `kind`.
    pub fn new(kind: TransportErrorKind, source: impl Into<BoxError>) -> Self {
        Self { kind, source: source.into() }
    }
}

/// One attempt's failure inside the pipeline: an error, or a response the classifier calls a
/// failure (kept, so the caller gets it if no retry follows), and whether a retry may
/// follow.
#[derive(Debug)]
pub(crate) struct AttemptError {
    pub(crate) failure: Failure,
    pub(crate) retriable: bool,
}

#[derive(Debug)]
pub(crate) enum Failure {
    Error(Error),
    /// Boxed: a response is large, and this error travels through every retry.
    Status(Box<http::Response<Bytes>>),
}

impl AttemptError {
    pub(crate) fn fatal(error: Error) -> Self {
        Self { failure: Failure::Error(error), retriable: false }
    }

    pub(crate) fn error(error: Error, retriable: bool) -> Self {
        Self { failure: Failure::Error(error), retriable }
    }

    /// The hint to wait before retrying: when every endpoint is ejected, the end of the
    /// first ejection. A response's `Retry-After` speaks for its replica only, and the
    /// retry goes to another one, so it is not waited for.
    pub(crate) fn retry_after(&self) -> Option<Duration> {
        match &self.failure {
            Failure::Error(e) => e.retry_after(),
            Failure::Status(_) => None,
        }
    }
}
