//! Pacing: admitted requests are spaced evenly instead of refused, up to a maximum queueing
//! time (Sentinel's "rate limiter" control behaviour, a leaky bucket as a meter).
//!
//! A pacer is GCRA with reservations: a request arriving while the limiter is drained is
//! given the next free slot (`tat - tau`) and told to wait until then, as long as that wait
//! is at most `max_queueing`; a request that would wait longer is refused at once with the
//! time at which its wait would have been acceptable. Reserving is one CAS, so the order of
//! slots is the order in which callers reserved them.

use std::fmt;
use std::time::Duration;

use levee_core::sync::{AtomicU64, CachePadded, Ordering};
use levee_core::{Clock, ConfigError, FastClock, nanos};

use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::meter::{LimiterBuilder, Meter, at_most_max_span};
use crate::quota::{Gcra, Quota};
use crate::state::LimitState;
use crate::stats::RateStats;
use crate::wait::{Jitter, retry_until};

struct Hot<C> {
    tat: AtomicU64,
    gcra: Gcra,
    max_queueing: u64,
    meter: Meter<C>,
}

/// Spaces requests evenly at the quota's rate, making each wait for its slot, and refuses
/// those that would have to wait longer than a maximum queueing time.
///
/// With a burst of one (the usual setting for pacing) requests are exactly one emission
/// interval apart; a larger burst lets that many through at once after a quiet spell.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{Pacer, Quota};
///
/// let clock = ManualClock::new();
/// let pacer = Pacer::builder(Quota::per_second(10).with_burst(1))
///     .max_queueing(Duration::from_millis(250))
///     .clock(clock.clone())
///     .build()?;
/// // Slots 100 ms apart: go now, in 100 ms, in 200 ms; the fourth would wait 300 ms.
/// assert_eq!(pacer.try_reserve().unwrap().wait(), Duration::ZERO);
/// assert_eq!(pacer.try_reserve().unwrap().wait(), Duration::from_millis(100));
/// assert_eq!(pacer.try_reserve().unwrap().wait(), Duration::from_millis(200));
/// let refused = pacer.try_reserve().unwrap_err();
/// assert_eq!(refused.retry_after(), Duration::from_millis(50));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub struct Pacer<C = FastClock> {
    hot: CachePadded<Hot<C>>,
    quota: Quota,
}

impl<C> fmt::Debug for Pacer<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pacer")
            .field("quota", &self.quota)
            .field("max_queueing", &Duration::from_nanos(self.hot.max_queueing))
            .finish_non_exhaustive()
    }
}

/// A slot reserved by a [`Pacer`]: go at [`at`](Self::at), that is after [`wait`](Self::wait).
///
/// Dropping it does not give the slot back; [`Pacer::cancel`] does, when possible.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{Pacer, Quota};
///
/// let pacer = Pacer::builder(Quota::per_second(10).with_burst(1)).clock(ManualClock::new()).build()?;
/// assert_eq!(pacer.try_reserve()?.wait(), Duration::ZERO);
/// let next = pacer.try_reserve()?;
/// assert_eq!(next.wait(), Duration::from_millis(100)); // go in 100 ms
/// assert!(pacer.cancel(next)); // not used after all: the slot goes back
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a reservation tells when to go; cancel it if unused"]
pub struct Reservation {
    reserved_at: u64,
    start: u64,
    previous: u64,
    next: u64,
}

impl Reservation {
    /// The clock reading at which the reserved cells may go.
    #[must_use]
    pub const fn at(&self) -> u64 {
        self.start
    }

    /// How long after the reservation was made the cells may go (zero: go now).
    #[must_use]
    pub const fn wait(&self) -> Duration {
        Duration::from_nanos(self.start - self.reserved_at)
    }
}

impl Pacer<FastClock> {
    /// A builder for `quota`; the maximum queueing time defaults to 500 ms.
    pub fn builder(quota: Quota) -> PacerBuilder<FastClock> {
        LimiterBuilder::new(PacerSettings { quota, max_queueing: Duration::from_millis(500) }, true)
    }
}

impl<C: Clock> Pacer<C> {
    /// Reserves the next slot for one cell.
    ///
    /// # Errors
    /// [`Throttled`] when the slot is more than the maximum queueing time away; its
    /// `retry_after` is when the wait would be acceptable. Nothing is reserved.
    pub fn try_reserve(&self) -> Result<Reservation, Throttled> {
        self.try_reserve_n(1).map_err(CheckNError::expect_throttled)
    }

    /// Reserves the next slot for `n` cells at once (`n == 0` counts as one).
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when the slot is too far away;
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the burst.
    pub fn try_reserve_n(&self, n: u32) -> Result<Reservation, CheckNError> {
        let hot = &*self.hot;
        let now = hot.meter.now();
        match hot.gcra.reserve(&hot.tat, now, n, hot.max_queueing) {
            Ok((start, previous, next)) => {
                hot.meter.admitted(n.max(1));
                Ok(Reservation { reserved_at: now, start, previous, next })
            }
            Err(e) => Err(hot.meter.refused(n.max(1), e)),
        }
    }

    /// Admits one cell only if its slot is now (no waiting): the [`RateLimit`] view of a
    /// pacer.
    ///
    /// [`RateLimit`]: crate::RateLimit
    ///
    /// # Errors
    /// [`Throttled`] with the time at which a cell would go without waiting.
    pub fn check(&self) -> Result<(), Throttled> {
        let hot = &*self.hot;
        hot.meter.settle(hot.gcra.check(&hot.tat, hot.meter.now()))
    }

    /// Admits `n` cells only if their slot is now (all or none; `n == 0` succeeds).
    ///
    /// # Errors
    /// [`CheckNError::Throttled`] when they would have to wait;
    /// [`CheckNError::InsufficientCapacity`] when `n` exceeds the burst.
    pub fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        let hot = &*self.hot;
        hot.meter.settle_n(n, hot.gcra.check_n(&hot.tat, hot.meter.now(), n))
    }

    /// Gives a reservation's slot back. This succeeds only while it is the latest
    /// reservation (nothing was reserved after it); otherwise the slot stays used, which
    /// leaves a gap but never lets the pacer exceed its rate. Returns whether it was given
    /// back.
    pub fn cancel(&self, reservation: Reservation) -> bool {
        Gcra::undo(&self.hot.tat, reservation.previous, reservation.next)
    }

    /// The quota this pacer enforces.
    #[must_use]
    pub fn quota(&self) -> Quota {
        self.quota
    }

    /// The longest a request is made to wait.
    #[must_use]
    pub fn max_queueing(&self) -> Duration {
        Duration::from_nanos(self.hot.max_queueing)
    }

    /// How long a request arriving now would wait for its slot (it may be refused if that
    /// exceeds the maximum queueing time).
    #[must_use]
    pub fn queueing_time(&self) -> Duration {
        let hot = &*self.hot;
        let now = hot.meter.now();
        // Relaxed: a snapshot.
        let tat = hot.tat.load(Ordering::Relaxed);
        Duration::from_nanos(tat.saturating_sub(hot.gcra.tau).saturating_sub(now))
    }

    /// The pacer's state now, as its [`check`](Self::check) sees it: the cells that would
    /// go without waiting, and the time until the whole burst would (see [`LimitState`]).
    #[must_use]
    pub fn state(&self) -> LimitState {
        let hot = &*self.hot;
        // Relaxed: a snapshot.
        hot.gcra.state(hot.tat.load(Ordering::Relaxed), hot.meter.now())
    }

    /// The pacer's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.hot.meter.clock
    }

    /// A snapshot of the counters: `admitted` counts reserved cells (cancelled ones
    /// included), `waited` the calls that waited for their slot.
    #[must_use]
    pub fn stats(&self) -> RateStats {
        self.hot.meter.stats()
    }
}

/// Cancels its reservation unless disarmed: what makes [`Pacer::acquire`] give its slot
/// back when the future is dropped while waiting.
struct CancelOnDrop<'a, C: Clock> {
    pacer: &'a Pacer<C>,
    reservation: Option<Reservation>,
}

impl<C: Clock> Drop for CancelOnDrop<'_, C> {
    fn drop(&mut self) {
        if let Some(r) = self.reservation.take() {
            self.pacer.cancel(r);
        }
    }
}

impl<C: Clock> Pacer<C> {
    /// Reserves a slot and waits (on the pacer's clock) until it comes.
    ///
    /// Dropping the future while it waits gives the slot back if no later slot was
    /// reserved meanwhile (otherwise the slot stays a gap: the pacer never goes faster than
    /// its rate).
    ///
    /// # Errors
    /// [`Throttled`] at once when the wait would exceed the maximum queueing time.
    pub async fn acquire(&self) -> Result<(), Throttled> {
        let reservation = self.try_reserve()?;
        self.wait_for(reservation, 1).await;
        Ok(())
    }

    /// As [`acquire`](Self::acquire) for `n` cells at once.
    ///
    /// # Errors
    /// As [`try_reserve_n`](Self::try_reserve_n).
    pub async fn acquire_n(&self, n: u32) -> Result<(), CheckNError> {
        let reservation = self.try_reserve_n(n)?;
        self.wait_for(reservation, n.max(1)).await;
        Ok(())
    }

    async fn wait_for(&self, reservation: Reservation, cells: u32) {
        if reservation.start > reservation.reserved_at {
            let guard = CancelOnDrop { pacer: self, reservation: Some(reservation) };
            self.hot.meter.clock.sleep_until(reservation.start).await;
            std::mem::forget(guard);
            self.hot.meter.waited(cells, reservation.start - reservation.reserved_at);
        }
    }

    /// Waits until one cell may go: for a slot within the maximum queueing time, then for
    /// the slot itself. Cancellation-safe as [`acquire`](Self::acquire).
    pub async fn until_ready(&self) {
        // One cell always fits a burst of at least one.
        let _ = self.until_n_ready(1).await;
    }

    /// Waits until `n` cells may go at once (`n == 0` counts as one).
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds the burst.
    pub async fn until_n_ready(&self, n: u32) -> Result<(), InsufficientCapacity> {
        let hot = &*self.hot;
        let n = n.max(1);
        if n > hot.gcra.burst {
            return Err(InsufficientCapacity { requested: n, burst: hot.gcra.burst });
        }
        // Refused reservations are steps of the wait, not rejected calls: not counted.
        let (reservation, _) = retry_until(&hot.meter.clock, Jitter::NONE, || {
            let now = hot.meter.now();
            hot.gcra
                .reserve(&hot.tat, now, n, hot.max_queueing)
                .map(|(start, previous, next)| Reservation {
                    reserved_at: now,
                    start,
                    previous,
                    next,
                })
                .map_err(CheckNError::expect_throttled)
        })
        .await;
        hot.meter.admitted(n);
        self.wait_for(reservation, n).await;
        Ok(())
    }
}

/// What a [`PacerBuilder`] collects besides the shared settings.
///
/// ```
/// use std::time::Duration;
/// use levee_limit::{Pacer, Quota};
///
/// // The settings a `PacerBuilder` carries: set through its methods.
/// let pacer = Pacer::builder(Quota::per_second(50)).max_queueing(Duration::from_millis(200)).build()?;
/// assert_eq!(pacer.max_queueing(), Duration::from_millis(200));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PacerSettings {
    quota: Quota,
    max_queueing: Duration,
}

/// Builds a [`Pacer`] (see [`LimiterBuilder`] for the shared settings).
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_limit::{Pacer, Quota};
///
/// let pacer = Pacer::builder(Quota::per_second(20))
///     .max_queueing(Duration::from_secs(1))
///     .clock(ManualClock::new())
///     .build()?;
/// assert_eq!(pacer.max_queueing(), Duration::from_secs(1));
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
pub type PacerBuilder<C = FastClock> = LimiterBuilder<PacerSettings, C>;

impl<C: Clock> PacerBuilder<C> {
    /// The longest a request may be made to wait for its slot (zero: never wait).
    pub fn max_queueing(mut self, max: Duration) -> Self {
        self.settings.max_queueing = max;
        self
    }

    /// Builds the pacer.
    ///
    /// # Errors
    /// A [`ConfigError`] for an invalid quota, or `max_queueing` above [`MAX_SPAN`](crate::MAX_SPAN).
    pub fn build(self) -> Result<Pacer<C>, ConfigError> {
        let gcra = self.settings.quota.gcra()?;
        at_most_max_span("max_queueing", self.settings.max_queueing)?;
        let (PacerSettings { quota, max_queueing }, meter) = self.into_parts();
        Ok(Pacer {
            hot: CachePadded::new(Hot {
                tat: AtomicU64::new(0),
                gcra,
                max_queueing: nanos(max_queueing),
                meter,
            }),
            quota,
        })
    }
}
