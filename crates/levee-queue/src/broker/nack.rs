//! What a nack says: when to redeliver, and why the handler failed.

use std::time::Duration;

/// A handler failure, as [`Delivery::nack`](super::Delivery::nack) and
/// [`Broker::nack`](super::Broker::nack) take it: when to try again, and why it failed.
///
/// The reason is kept in the message's attempt history
/// ([`AttemptRecord::reason`](super::AttemptRecord::reason)), so a dead letter tells an
/// operator what went wrong ([`DeadLetter::last_reason`](super::DeadLetter::last_reason)).
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::Nack;
///
/// // The subscription's backoff schedule, no reason.
/// assert_eq!(Nack::new(), Nack::default());
/// // Redeliver in 5 s, and say why.
/// let nack = Nack::new().delay(Duration::from_secs(5)).reason("payment provider timed out");
/// assert_eq!(nack.delay, Some(Duration::from_secs(5)));
/// assert_eq!(nack.reason.as_deref(), Some("payment provider timed out"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Nack {
    /// Redeliver after this delay; `None` (the default) follows the subscription's backoff
    /// schedule for this failure.
    pub delay: Option<Duration>,
    /// Why the handler failed, for the attempt history and the dead letter.
    pub reason: Option<String>,
}

impl Nack {
    /// A nack that follows the subscription's backoff and gives no reason.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`delay`](Self::delay): redeliver after `delay` instead of the backoff.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.delay = Some(delay);
        self
    }

    /// Sets [`reason`](Self::reason).
    #[must_use]
    pub fn reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }
}
