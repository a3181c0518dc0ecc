//! What a refused or failed call returns.

use std::fmt;
use std::time::Duration;

use levee_core::RetryAfter;

use crate::State;

/// A call was refused: the circuit is open, forced open, or half-open with every trial permit
/// taken. Says until when, where that is known.
///
/// ```
/// use std::time::Duration;
/// use levee_breaker::{CircuitBreaker, State};
/// use levee_core::ManualClock;
///
/// let breaker = CircuitBreaker::builder()
///     .open_wait(Duration::from_secs(30))
///     .clock(ManualClock::new())
///     .build()
///     .unwrap();
/// breaker.trip();
/// let refused = breaker.try_acquire().unwrap_err();
/// assert_eq!(refused.state(), State::Open);
/// assert_eq!(refused.retry_after(), Some(Duration::from_secs(30)));
/// assert_eq!(refused.until(), Some(30_000_000_000));
/// assert_eq!(refused.to_string(), "circuit breaker is open, retry after 30000 ms");
/// ```
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Open {
    pub(crate) state: State,
    pub(crate) until: Option<u64>,
    /// In nanoseconds: a refusal is built on the hot path of an open circuit, and most are
    /// dropped unread, so the `Duration` is made only when asked for.
    pub(crate) retry_after_nanos: Option<u64>,
}

impl Open {
    /// The state that refused the call: [`State::Open`], [`State::HalfOpen`] (all trial
    /// permits taken) or [`State::ForcedOpen`].
    #[must_use]
    pub const fn state(&self) -> State {
        self.state
    }

    /// When an open circuit will let a trial call through, as a reading of the breaker's
    /// clock. `None` when forced open (until an operator acts) or half-open (as soon as a
    /// trial completes).
    #[must_use]
    pub const fn until(&self) -> Option<u64> {
        self.until
    }

    /// How long from the refusal until [`until`](Self::until).
    #[must_use]
    pub const fn retry_after(&self) -> Option<Duration> {
        match self.retry_after_nanos {
            Some(nanos) => Some(Duration::from_nanos(nanos)),
            None => None,
        }
    }
}

impl fmt::Debug for Open {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Open")
            .field("state", &self.state)
            .field("until", &self.until)
            .field("retry_after", &self.retry_after())
            .finish()
    }
}

impl fmt::Display for Open {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.state, self.retry_after()) {
            (State::ForcedOpen, _) => f.write_str("circuit breaker is forced open"),
            (State::HalfOpen, _) => {
                f.write_str("circuit breaker is half-open and all trial calls are taken")
            }
            (_, Some(after)) => {
                write!(f, "circuit breaker is open, retry after {} ms", after.as_millis())
            }
            (_, None) => f.write_str("circuit breaker is open"),
        }
    }
}

impl std::error::Error for Open {}

/// An open circuit's refusal carries its hint, for retry policies and `Retry-After` headers.
impl RetryAfter for Open {
    #[inline]
    fn retry_after(&self) -> Option<Duration> {
        Open::retry_after(self)
    }
}

/// The error of a call made through the breaker: refused, or the call's own error.
///
/// ```
/// use levee_breaker::{CallError, CircuitBreaker};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// match breaker.call(|| "42".parse::<u32>()) {
///     Ok(n) => assert_eq!(n, 42),
///     Err(CallError::Open(open)) => println!("refused, retry after {:?}", open.retry_after()),
///     Err(CallError::Inner(parse_error)) => println!("the call failed: {parse_error}"),
/// }
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallError<E> {
    /// The breaker refused the call; it was not made.
    #[error(transparent)]
    Open(Open),
    /// The call was made and returned this error.
    #[error(transparent)]
    Inner(E),
}

impl<E> CallError<E> {
    /// The call's own error, if it was made.
    pub fn into_inner(self) -> Option<E> {
        match self {
            Self::Inner(e) => Some(e),
            Self::Open(_) => None,
        }
    }

    /// The refusal, if the call was not made.
    pub const fn as_open(&self) -> Option<&Open> {
        match self {
            Self::Open(open) => Some(open),
            Self::Inner(_) => None,
        }
    }
}

/// A refusal's hint; `None` for the call's own error (the call was made).
impl<E> RetryAfter for CallError<E> {
    #[inline]
    fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Open(open) => open.retry_after(),
            Self::Inner(_) => None,
        }
    }
}

impl<E> From<Open> for CallError<E> {
    fn from(open: Open) -> Self {
        Self::Open(open)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refusals_carry_their_hint_through_retry_after() {
        let open = Open { state: State::Open, until: Some(5_000), retry_after_nanos: Some(5_000) };
        assert_eq!(RetryAfter::retry_after(&open), Some(Duration::from_micros(5)));
        let refused: CallError<&str> = open.into();
        assert_eq!(refused.retry_after(), Some(Duration::from_micros(5)));
        assert_eq!(CallError::Inner("boom").retry_after(), None);
        let forced = Open { state: State::ForcedOpen, until: None, retry_after_nanos: None };
        assert_eq!(CallError::<()>::from(forced).retry_after(), None);
    }
}
