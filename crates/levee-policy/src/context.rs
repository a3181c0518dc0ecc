//! What each attempt of an operation learns about the call it belongs to.

use std::time::Duration;

use levee_core::Clock;

/// Handed to the operation on every attempt: the deadline to pass on to the next hop, which
/// attempt (and which hedge) this is, and the pipeline's clock that the deadline is on.
///
/// `Copy` and small, so it costs nothing to hand around: it borrows the pipeline's clock
/// rather than owning one. The deadline is the tightest one any enclosing
/// [`Timeout`](crate::Timeout) set, as a reading of the pipeline's clock; pass
/// [`remaining`](Self::remaining) on to a downstream call (an HTTP client timeout, a gRPC
/// deadline header) so that work the caller will not wait for is not done.
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Context, Pipeline};
///
/// let pipeline = Pipeline::builder().timeout(Duration::from_secs(2)).build().unwrap();
/// let seen = pipeline.call(|ctx: Context<'_>| {
///     // A blocking client would take this as its own timeout.
///     Ok::<_, ()>(ctx.remaining().unwrap())
/// });
/// assert!(seen.unwrap() <= Duration::from_secs(2));
/// ```
#[derive(Clone, Copy)]
pub struct Context<'a> {
    deadline: Option<u64>,
    attempt: u32,
    hedge: u32,
    blocking: bool,
    clock: &'a dyn Clock,
}

impl std::fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("deadline", &self.deadline)
            .field("attempt", &self.attempt)
            .field("hedge", &self.hedge)
            .field("blocking", &self.blocking)
            .finish_non_exhaustive()
    }
}

impl<'a> Context<'a> {
    /// A context with no deadline, for attempt zero of an async call, on `clock`.
    #[inline]
    #[must_use]
    pub fn new(clock: &'a dyn Clock) -> Self {
        Self { deadline: None, attempt: 0, hedge: 0, blocking: false, clock }
    }

    /// The same context for a blocking call ([`Pipeline::call`](crate::Pipeline::call)),
    /// which policies must not make wait on anything but the clock (a bulkhead refuses
    /// rather than queues).
    #[inline]
    #[must_use]
    pub fn blocking(mut self) -> Self {
        self.blocking = true;
        self
    }

    /// True when the call runs on a blocked thread rather than in an async task.
    #[inline]
    #[must_use]
    pub fn is_blocking(&self) -> bool {
        self.blocking
    }

    /// The reading of the pipeline's clock by which the caller wants an answer, if a
    /// timeout set one. Prefer [`remaining`](Self::remaining).
    #[inline]
    #[must_use]
    pub fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    /// Time left until the deadline on the pipeline's clock (zero once it has passed), or
    /// `None` without a deadline.
    #[inline]
    #[must_use]
    pub fn remaining(&self) -> Option<Duration> {
        self.deadline.map(|d| Duration::from_nanos(d.saturating_sub(self.clock.now())))
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

    /// Reads the pipeline's clock (the one the deadline is on).
    #[inline]
    #[must_use]
    pub fn now(&self) -> u64 {
        self.clock.now()
    }

    /// The pipeline's clock: read it, or sleep on it.
    #[inline]
    #[must_use]
    pub fn clock(&self) -> &'a dyn Clock {
        self.clock
    }

    /// The same context with its deadline tightened to `deadline` (never loosened).
    #[inline]
    #[must_use]
    pub fn with_deadline(mut self, deadline: u64) -> Self {
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
    use levee_core::ManualClock;

    #[test]
    fn deadline_only_tightens_and_reads_the_clock() {
        let clock = ManualClock::new();
        let ctx = Context::new(&clock).with_deadline(5_000);
        let tighter = ctx.with_deadline(1_000);
        assert_eq!(tighter.deadline(), Some(1_000));
        let looser = tighter.with_deadline(9_000);
        assert_eq!(looser.deadline(), Some(1_000));
        assert_eq!(looser.remaining(), Some(Duration::from_nanos(1_000)));
        assert!(!looser.is_expired());
        clock.advance_nanos(1_000);
        assert!(looser.is_expired());
        assert!(Context::new(&clock).remaining().is_none());
        assert!(!ctx.is_blocking() && ctx.blocking().is_blocking());
    }
}
