//! The one way a refusal says when to come back.

use std::time::Duration;

/// A refusal or error that says how long to back off before trying again.
///
/// Every levee refusal implements it (a rate limiter's `Throttled`, a breaker's `Open`, the
/// pipeline's `Error`), so a retry policy or an HTTP layer (`Retry-After`) can honour the
/// hint without knowing which primitive refused. Implement it for an operation error that
/// carries a hint of its own (an HTTP 429 or 503 with `Retry-After`).
///
/// ```
/// use std::time::Duration;
/// use levee_core::RetryAfter;
///
/// /// A backend's answer: 429 with a `Retry-After` header, or a plain failure.
/// enum HttpError {
///     TooManyRequests { retry_after_secs: u64 },
///     Status(u16),
/// }
///
/// impl RetryAfter for HttpError {
///     fn retry_after(&self) -> Option<Duration> {
///         match self {
///             Self::TooManyRequests { retry_after_secs } => {
///                 Some(Duration::from_secs(*retry_after_secs))
///             }
///             Self::Status(_) => None,
///         }
///     }
/// }
///
/// let busy = HttpError::TooManyRequests { retry_after_secs: 2 };
/// assert_eq!(busy.retry_after(), Some(Duration::from_secs(2)));
/// assert_eq!(HttpError::Status(500).retry_after(), None);
/// // References forward to the value.
/// assert_eq!((&busy).retry_after(), Some(Duration::from_secs(2)));
/// ```
pub trait RetryAfter {
    /// How long to wait before a retry can succeed; `None` when waiting will not help (the
    /// request can never be admitted) or the refusal carries no time.
    fn retry_after(&self) -> Option<Duration>;
}

impl<T: RetryAfter + ?Sized> RetryAfter for &T {
    #[inline]
    fn retry_after(&self) -> Option<Duration> {
        (**self).retry_after()
    }
}
