//! Permission for one call, and the obligation to say how it went.

use std::time::Duration;

use std::sync::Arc;

use levee_core::{Clock, FastClock, nanos};

use crate::{CircuitBreaker, Open, Outcome, State};

/// What kind of permit a ticket is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Kind {
    /// Issued while closed: the result goes to the sliding window.
    Closed = 0,
    /// A half-open trial: the result goes to the trial counters; dropping it hands it back.
    Trial = 1,
    /// Issued while disabled: nothing is recorded.
    Disabled = 2,
    /// Already recorded or handed back.
    Done = 3,
    /// Not a permit: the call was refused.
    Refused = 4,
}

/// The data behind a permit, or a refusal, in two words so that it travels in registers
/// (the acquire paths return it without a trip through memory).
///
/// `meta` bits 0..3 are the [`Kind`]. A permit has its generation in bits 8..33 and `started`
/// is the clock reading at issue (only when the breaker measures durations). A refusal has
/// the refusing state in bits 3..6, bit 6 set when `started` holds the open deadline, and the
/// wait until it in bits 8..64 (2^56 ns is two years; open waits are at most 24 days).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    pub(crate) started: u64,
    meta: u64,
}

const KIND_MASK: u64 = 0b111;
const MAX_RETRY: u64 = (1 << 56) - 1;

const fn min(a: u64, b: u64) -> u64 {
    if a < b { a } else { b }
}
const HAS_UNTIL: u64 = 1 << 6;

impl Ticket {
    #[inline]
    pub(crate) const fn permit(kind: Kind, generation: u32, started: u64) -> Self {
        Self { started, meta: kind as u64 | (generation as u64) << 8 }
    }

    #[inline]
    pub(crate) const fn refusal(state: State, until: Option<(u64, u64)>) -> Self {
        let state_bits = (state as u64) << 3;
        match until {
            Some((until, now)) => Self {
                started: until,
                meta: Kind::Refused as u64
                    | state_bits
                    | HAS_UNTIL
                    | min(until.saturating_sub(now), MAX_RETRY) << 8,
            },
            None => Self { started: 0, meta: Kind::Refused as u64 | state_bits },
        }
    }

    #[inline]
    pub(crate) const fn kind(self) -> Kind {
        match self.meta & KIND_MASK {
            0 => Kind::Closed,
            1 => Kind::Trial,
            2 => Kind::Disabled,
            3 => Kind::Done,
            _ => Kind::Refused,
        }
    }

    #[inline]
    pub(crate) const fn generation(self) -> u32 {
        (self.meta >> 8) as u32
    }

    #[inline]
    pub(crate) const fn done(mut self) -> Self {
        self.meta = (self.meta & !KIND_MASK) | Kind::Done as u64;
        self
    }

    /// The refusal this ticket stands for, if it is one.
    #[inline]
    pub(crate) fn refused(self) -> Option<Open> {
        if self.kind() != Kind::Refused {
            return None;
        }
        let state = match (self.meta >> 3) & 0b111 {
            x if x == State::Open as u64 => State::Open,
            x if x == State::HalfOpen as u64 => State::HalfOpen,
            _ => State::ForcedOpen,
        };
        let until = (self.meta & HAS_UNTIL != 0).then_some(self.started);
        Some(Open { state, until, retry_after_nanos: until.map(|_| self.meta >> 8) })
    }
}

/// Permission to make one call, from [`CircuitBreaker::try_acquire`].
///
/// Report the call's result with [`success`](Self::success), [`failure`](Self::failure),
/// [`ignore`](Self::ignore) or [`record`](Self::record). A permit dropped without a result
/// records nothing; if it was a half-open trial permit, it is handed back so another call can
/// take it (a cancelled future never leaks a trial). A result that arrives after the breaker
/// changed state is ignored.
///
/// ```
/// use std::time::Duration;
/// use levee_breaker::{CircuitBreaker, Outcome};
///
/// let breaker = CircuitBreaker::builder().build()?;
/// let permit = breaker.try_acquire()?; // refused with `Open` when the circuit is open
/// // ... make the call, timing it ...
/// permit.record(Outcome::Success, Duration::from_millis(12));
/// assert_eq!(breaker.metrics().calls, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "report the call's result with success(), failure(), ignore() or record()"]
#[derive(Debug)]
pub struct Permit<'a, C: Clock = FastClock> {
    breaker: &'a CircuitBreaker<C>,
    ticket: Ticket,
}

/// A [`Permit`] that owns a handle to its breaker, for futures that must be `'static`
/// (tower services, spawned tasks). From [`CircuitBreaker::try_acquire_owned`].
///
/// ```
/// use std::sync::Arc;
/// use levee_breaker::CircuitBreaker;
///
/// let breaker = Arc::new(CircuitBreaker::builder().build()?);
/// let permit = breaker.try_acquire_owned()?;
/// std::thread::spawn(move || permit.success()).join().unwrap();
/// assert_eq!(breaker.metrics().calls, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
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
            self.ticket.kind() == Kind::Trial
        }

        #[inline]
        fn finish(&mut self, outcome: Outcome, elapsed: Option<u64>) {
            let ticket = self.ticket;
            self.ticket = ticket.done();
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
        if self.ticket.kind() == Kind::Trial {
            self.breaker.release(self.ticket.generation());
        }
    }
}

impl<C: Clock> Drop for OwnedPermit<C> {
    fn drop(&mut self) {
        if self.ticket.kind() == Kind::Trial {
            self.breaker.release(self.ticket.generation());
        }
    }
}
