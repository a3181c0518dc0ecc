//! What a failed handler asks the broker to do with its message.

use std::fmt::Display;
use std::time::Duration;

use super::super::nack::Nack;

/// A handler failure, as [`serve`](super::serve)'s handlers return it: why, and whether to
/// try again (after the subscription's backoff, or a given delay) or give up for good.
///
/// Any error that implements [`Display`] converts into a `Failure` that retries with its
/// Display text as the reason, so a handler returning `Result<(), Failure>` can use `?` on
/// `std::io::Error`, `anyhow::Error`, `String`, `&str`, `Box<dyn Error>`... A handler may
/// also return its own error type directly (anything `Into<Failure>`).
///
/// (`Failure` itself is deliberately not `Display` nor `Error`: that is what lets every
/// `Display` type convert into it.)
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::Failure;
///
/// fn charge(cents: i64) -> Result<(), Failure> {
///     if cents < 0 {
///         // Can never succeed: dead-letter it now.
///         return Err(Failure::term(format!("negative amount {cents}")));
///     }
///     let provider_up: Result<(), std::io::Error> = Ok(());
///     provider_up?; // an io::Error would retry on the backoff, its text as the reason
///     Ok(())
/// }
///
/// assert!(charge(-5).unwrap_err().is_term());
/// let busy = Failure::retry_after(Duration::from_secs(5), "rate limited");
/// assert_eq!((busy.reason(), busy.delay()), ("rate limited", Some(Duration::from_secs(5))));
/// assert_eq!(Failure::from("timeout").reason(), "timeout");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    reason: String,
    then: Then,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Then {
    /// Nack: redeliver after this delay, or the subscription's backoff.
    Retry(Option<Duration>),
    /// Term: dead-letter now.
    Term,
}

/// How a handler's outcome settles its delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Settlement {
    Nack(Nack),
    Term(String),
}

impl Failure {
    /// Try again after the subscription's backoff (a nack with `reason`).
    #[must_use]
    pub fn retry(reason: impl Display) -> Self {
        Self { reason: reason.to_string(), then: Then::Retry(None) }
    }

    /// Try again after `delay` instead of the backoff (a nack with a delay and `reason`).
    #[must_use]
    pub fn retry_after(delay: Duration, reason: impl Display) -> Self {
        Self { reason: reason.to_string(), then: Then::Retry(Some(delay)) }
    }

    /// The message can never be handled: dead-letter it now (a term with `reason`).
    #[must_use]
    pub fn term(reason: impl Display) -> Self {
        Self { reason: reason.to_string(), then: Then::Term }
    }

    /// Why the handler failed: the reason kept in the attempt history and the dead letter.
    #[must_use]
    pub fn reason(&self) -> &str {
        &self.reason
    }

    /// True when the message is to be dead-lettered now rather than retried.
    #[must_use]
    pub fn is_term(&self) -> bool {
        self.then == Then::Term
    }

    /// The redelivery delay asked for, if any (`None`: the backoff, or a term).
    #[must_use]
    pub fn delay(&self) -> Option<Duration> {
        match self.then {
            Then::Retry(delay) => delay,
            Then::Term => None,
        }
    }

    pub(crate) fn into_settlement(self) -> Settlement {
        match self.then {
            Then::Retry(delay) => {
                let nack = Nack::new().reason(self.reason);
                Settlement::Nack(match delay {
                    Some(d) => nack.delay(d),
                    None => nack,
                })
            }
            Then::Term => Settlement::Term(self.reason),
        }
    }
}

impl<E: Display> From<E> for Failure {
    fn from(error: E) -> Self {
        Self::retry(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_settle_as_nack_or_term() {
        assert_eq!(
            Failure::retry("down").into_settlement(),
            Settlement::Nack(Nack::new().reason("down"))
        );
        let later = Failure::retry_after(Duration::from_secs(3), 42);
        assert_eq!(later.reason(), "42");
        assert_eq!(
            later.into_settlement(),
            Settlement::Nack(Nack::new().reason("42").delay(Duration::from_secs(3)))
        );
        let term = Failure::term("poison");
        assert!(term.is_term() && term.delay().is_none());
        assert_eq!(term.into_settlement(), Settlement::Term("poison".into()));
        let io = std::io::Error::other("connection reset");
        assert_eq!(Failure::from(io), Failure::retry("connection reset"));
    }
}
