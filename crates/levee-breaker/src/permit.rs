//! Permission for one call, and the obligation to say how it went.

use std::time::Duration;

use levee_core::sync::Arc;
use levee_core::{Clock, FastClock, nanos};

use crate::{CircuitBreaker, Outcome};

/// What kind of permit a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// Issued while closed: the result goes to the sliding window.
    Closed,
    /// A half-open trial: the result goes to the trial counters; dropping it hands it back.
    Trial,
    /// Issued while disabled: nothing is recorded.
    Disabled,
    /// Already recorded or handed back.
    Done,
}

/// The data behind a permit: the generation it belongs to and when the call started.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) generation: u32,
    pub(crate) kind: Kind,
    /// Clock reading at issue, only when the breaker measures call durations.
    pub(crate) started: u64,
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Report the call's result with [`success`](Self::success), [`failure`](Self::failure),
/// [`ignore`](Self::ignore) or [`record`](Self::record). A permit dropped without a result
/// records nothing; if it was a half-open trial permit, it is handed back so another call can
/// take it (a cancelled future never leaks a trial). A result that arrives after the breaker
/// changed state is ignored.
#[must_use = "report the call's result with success(), failure(), ignore() or record()"]
#[derive(Debug)]
pub struct Permit<'a, C: Clock = FastClock> {
    breaker: &'a CircuitBreaker<C>,
    ticket: Ticket,
}

/// A [`Permit`] that owns a handle to its breaker, for futures that must be `'static`
/// (tower services, spawned tasks). From [`CircuitBreaker::try_acquire_owned`].
#[must_use = "report the call's result with success(), failure(), ignore() or record()"]
#[derive(Debug)]
pub struct OwnedPermit<C: Clock = FastClock> {
    breaker: Arc<CircuitBreaker<C>>,
    ticket: Ticket,
}

macro_rules! permit_methods {
    () => {
        /// The call succeeded. Its duration is measured from the permit's issue when the
        /// breaker tracks slow calls.
        #[inline]
        pub fn success(mut self) {
            self.finish(Outcome::Success, None);
        }

        /// The call failed.
        #[inline]
        pub fn failure(mut self) {
            self.finish(Outcome::Failure, None);
        }

        /// The call's result says nothing about the backend: nothing is recorded and a trial
        /// permit is handed back.
        #[inline]
        pub fn ignore(mut self) {
            self.finish(Outcome::Ignored, None);
        }

        /// Records `outcome` for a call that took `duration` (measured by the caller).
        #[inline]
        pub fn record(mut self, outcome: Outcome, duration: Duration) {
            self.finish(outcome, Some(nanos(duration)));
        }

        /// Records `outcome`, measuring the duration from the permit's issue.
        #[inline]
        pub fn record_outcome(mut self, outcome: Outcome) {
            self.finish(outcome, None);
        }

        /// True for a half-open trial permit.
        #[must_use]
        pub fn is_trial(&self) -> bool {
            self.ticket.kind == Kind::Trial
        }

        #[inline]
        fn finish(&mut self, outcome: Outcome, elapsed: Option<u64>) {
            let ticket = self.ticket;
            self.ticket.kind = Kind::Done;
            self.breaker.complete(ticket, outcome, elapsed);
        }
    };
}

impl<'a, C: Clock> Permit<'a, C> {
    #[inline]
    pub(crate) const fn new(breaker: &'a CircuitBreaker<C>, ticket: Ticket) -> Self {
        Self { breaker, ticket }
    }

    permit_methods!();
}

impl<C: Clock> OwnedPermit<C> {
    pub(crate) const fn new(breaker: Arc<CircuitBreaker<C>>, ticket: Ticket) -> Self {
        Self { breaker, ticket }
    }

    /// The breaker this permit belongs to.
    #[must_use]
    pub fn breaker(&self) -> &Arc<CircuitBreaker<C>> {
        &self.breaker
    }

    permit_methods!();
}

impl<C: Clock> Drop for Permit<'_, C> {
    #[inline]
    fn drop(&mut self) {
        if self.ticket.kind == Kind::Trial {
            self.breaker.release(self.ticket.generation);
        }
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    fn drop(&mut self) {
        if self.ticket.kind == Kind::Trial {
            self.breaker.release(self.ticket.generation);
        }
    }
}
