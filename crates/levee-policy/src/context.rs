//! What each attempt of an operation learns about the call it belongs to.

use std::time::{Duration, Instant};

/// Handed to the operation on every attempt: the deadline to pass on to the next hop, and
/// which attempt (and which hedge) this is.
///
/// `Copy` and 32 bytes, so it costs nothing to hand around. The deadline is the tightest one
/// any enclosing [`Timeout`](crate::Timeout) set; pass [`remaining`](Self::remaining) on to a
/// downstream call (an HTTP client timeout, a gRPC deadline header) so that work the caller
/// will not wait for is not done.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Context, Pipeline};
///
/// let pipeline = Pipeline::builder().timeout(Duration::from_secs(2)).build().unwrap();
/// let seen = pipeline.call(|ctx: Context| {
///     // A blocking client would take this as its own timeout.
///     Ok::<_, ()>(ctx.remaining().unwrap())
/// });
/// assert!(seen.unwrap() <= Duration::from_secs(2));
/// ```
#[derive(Clone, Copy)]
pub struct Context {
    deadline: Option<Instant>,
    attempt: u32,
    hedge: u32,
    now: fn() -> Instant,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("deadline", &self.deadline)
            .field("attempt", &self.attempt)
            .field("hedge", &self.hedge)
            .finish()
    }
}

impl Context {
    /// A context with no deadline, for attempt zero, reading time from `now`.
    #[inline]
    #[must_use]
    pub fn new(now: fn() -> Instant) -> Self {
        Self { deadline: None, attempt: 0, hedge: 0, now }
    }

    /// The instant by which the caller wants an answer, if a timeout set one.
    ///
    /// It is on the clock of the pipeline's timer: `tokio::time::Instant::into_std` for
    /// async calls (so it follows paused time in tests), `std::time::Instant` for blocking
    /// calls. Prefer [`remaining`](Self::remaining), which reads the right clock.
    #[inline]
    #[must_use]
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Time left until the deadline (zero once it has passed), or `None` without a deadline.
    #[inline]
    #[must_use]
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| d.saturating_duration_since((self.now)()))
    }

    /// True once the deadline has passed.
    #[must_use]
    pub fn is_expired(&self) -> bool {
        self.remaining().is_some_and(|r| r.is_zero())
    }

    /// Zero for the first attempt, then one more for each retry.
    #[inline]
    #[must_use]
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// Zero for the primary attempt, `n` for the `n`th hedge started beside it.
    #[inline]
    #[must_use]
    pub fn hedge(&self) -> u32 {
        self.hedge
    }

    /// Reads the clock this context's deadline is on.
    #[inline]
    #[must_use]
    pub fn now(&self) -> Instant {
        (self.now)()
    }

    /// The same context with its deadline tightened to `deadline` (never loosened).
    #[inline]
    #[must_use]
    pub fn with_deadline(mut self, deadline: Instant) -> Self {
        self.deadline = Some(self.deadline.map_or(deadline, |d| d.min(deadline)));
        self
    }

    #[inline]
    pub(crate) fn with_attempt(mut self, attempt: u32) -> Self {
        self.attempt = attempt;
        self
    }

    #[inline]
    pub(crate) fn with_hedge(mut self, hedge: u32) -> Self {
        self.hedge = hedge;
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadline_only_tightens() {
        let now = Instant::now();
        let ctx = Context::new(Instant::now).with_deadline(now + Duration::from_secs(5));
        let tighter = ctx.with_deadline(now + Duration::from_secs(1));
        assert_eq!(tighter.deadline(), Some(now + Duration::from_secs(1)));
        let looser = tighter.with_deadline(now + Duration::from_secs(9));
        assert_eq!(looser.deadline(), Some(now + Duration::from_secs(1)));
        assert!(looser.remaining().unwrap() <= Duration::from_secs(1));
        assert!(!looser.is_expired());
        assert!(Context::new(Instant::now).remaining().is_none());
    }
}
