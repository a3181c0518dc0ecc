//! tower middleware (feature `tower`): layers for the rate limiter, the keyed rate limiter,
//! the bulkhead and the admission controller.
//!
//! The rate-limit layers take any limiter of the family: [`RateLimitLayer`] any
//! [`AsyncRateLimit`](crate::AsyncRateLimit) (local or remote), [`KeyedRateLimitLayer`] any
//! [`KeyedRateLimit`](crate::KeyedRateLimit) (a [`KeyedRateLimiter`](crate::KeyedRateLimiter)
//! or levee-redis's cluster-wide limiter). With the `http` feature both can answer with the
//! IETF rate-limit header fields (`RateLimitHeaders`, feature `http`: `RateLimit-Policy`, `RateLimit`, and
//! `429` with `Retry-After` on refusals), computed from the limiter's own state.
//!
//! Every service holds its limiter in an `Arc`, so clones of a service (and of the layer)
//! share **one** limit: cloning a service per connection, as hyper and axum do, does not
//! multiply the quota (tower's own `RateLimit` keeps its state per clone).
//!
//! Refusals are not waited out: the call returns at once with a [`LimitError`] that says why
//! and, for rate limits, when to retry ([`RetryAfter`]), ready for a `429` with `Retry-After`
//! or for a retry policy. The rate-limit services check in `call` and keep nothing between
//! `poll_ready` and `call`, and so does the admission service (it admits in `call`, so the
//! latency it measures starts with the request); the bulkhead service takes its permit in
//! `poll_ready` (waiting in the bulkhead's queue if configured). Both release their permit
//! when the response future completes or is dropped.

mod admission;
mod bulkhead;
mod future;
#[cfg(feature = "http")]
mod headers;
mod keyed;
mod rate;
mod rate_future;

pub use admission::{AdmissionLayer, AdmissionService};
pub use bulkhead::{BulkheadLayer, BulkheadService};
pub use future::ResponseFuture;
#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use headers::RateLimitHeaders;
#[cfg(all(fuzzing, feature = "http"))]
pub use headers::render_fields;
pub use keyed::{KeyedRateLimitLayer, KeyedRateLimitService};
pub use rate::{RateLimitLayer, RateLimitService};
pub use rate_future::RateLimitFuture;

use std::fmt;
use std::time::Duration;

use crate::admission::Shed;
use crate::bulkhead::BulkheadError;
use crate::error::{RetryAfter, Throttled};

/// The error of levee's tower services: a refusal, or the inner service's error.
///
/// ```
/// use levee_limit::tower::LimitError;
/// use levee_limit::BulkheadError;
///
/// fn status<E>(err: &LimitError<E>) -> u16 {
///     match err {
///         LimitError::Throttled(_) => 429,
///         LimitError::Bulkhead(_) | LimitError::Shed(_) => 503,
///         LimitError::Inner(_) => 500,
///         _ => 500,
///     }
/// }
/// assert_eq!(status(&LimitError::<()>::Bulkhead(BulkheadError::Full { limit: 8 })), 503);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LimitError<E> {
    /// A rate limit refused the request; retry after [`Throttled::retry_after`].
    Throttled(Throttled),
    /// The bulkhead refused the request.
    Bulkhead(BulkheadError),
    /// The admission controller shed the request: the service is over its estimated
    /// capacity. Like a bulkhead refusal, an overload of this process (HTTP 503).
    Shed(Shed),
    /// The inner service failed.
    Inner(E),
}

impl<E> LimitError<E> {
    /// The inner service's error, if that is what this is.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            _ => None,
        }
    }

    /// True for refusals by a limiter (as opposed to the inner service's errors).
    pub fn is_refusal(&self) -> bool {
        !matches!(self, Self::Inner(_))
    }

    /// True for refusals because this process is at capacity (a bulkhead refusal or a
    /// shed), as opposed to a client's rate limit: what HTTP answers with 503 rather
    /// than 429.
    pub fn is_overload(&self) -> bool {
        matches!(self, Self::Bulkhead(_) | Self::Shed(_))
    }
}

impl<E> RetryAfter for LimitError<E> {
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Throttled(t) => Some(t.retry_after()),
            Self::Bulkhead(_) | Self::Shed(_) | Self::Inner(_) => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for LimitError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Throttled(t) => t.fmt(f),
            Self::Bulkhead(b) => b.fmt(f),
            Self::Shed(s) => s.fmt(f),
            Self::Inner(e) => e.fmt(f),
        }
    }
}

impl<E: std::error::Error + 'static> std::error::Error for LimitError<E> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Throttled(t) => Some(t),
            Self::Bulkhead(b) => Some(b),
            Self::Shed(s) => Some(s),
            Self::Inner(e) => Some(e),
        }
    }
}
