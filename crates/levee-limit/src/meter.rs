//! What every rate limiter shares around its algorithm: the clock, the counters, the
//! listeners, the async wait, and the builder that sets them.
//!
//! A limiter is an algorithm (GCRA, a warm-up curve, a window counter...) that decides
//! "admit `n` cells at clock reading `now`, or say when" on its own state, plus a [`Meter`]
//! that reads the clock, counts and reports the outcome, and waits out refusals on the same
//! clock. The algorithms are written once each; the meter once for all of them, as governor
//! writes GCRA once over its state stores.

use std::fmt;

use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener};

use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::stats::{RateCounters, RateEvent, RateStats};
use crate::wait::{Jitter, retry_until};

/// The shared part of a limiter: clock, counters and listeners.
///
/// The counters live in an allocation of their own: each is padded to its own cache line, so
/// inline they would push the fields a check reads (the clock, `count_admitted`) away from
/// the algorithm's parameters; a check touches them only to count a refusal (or an
/// admission, when asked to).
pub(crate) struct Meter<C> {
    pub(crate) clock: C,
    count_admitted: bool,
    hook: EventHook<RateEvent>,
    counters: Box<RateCounters>,
}

impl<C: Clock> Meter<C> {
    /// A clock reading.
    #[inline]
    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }

    /// Counts one check of `cells` cells: an admission (when admissions are counted), or a
    /// refusal, reported to the listeners when it is a "not now".
    #[inline]
    pub(crate) fn settle_n(
        &self,
        cells: u32,
        result: Result<(), CheckNError>,
    ) -> Result<(), CheckNError> {
        match result {
            Ok(()) => {
                self.counters.admit(self.count_admitted, cells);
                Ok(())
            }
            Err(e) => Err(self.counters.record_refusal(&self.hook, cells, e)),
        }
    }

    /// [`settle_n`](Self::settle_n) for a single cell.
    #[inline]
    pub(crate) fn settle(&self, result: Result<(), Throttled>) -> Result<(), Throttled> {
        self.counters.settle(&self.hook, self.count_admitted, 1, result)
    }

    /// Counts an admission made outside a check (a pacer's reservation).
    #[inline]
    pub(crate) fn admitted(&self, cells: u32) {
        self.counters.admit(self.count_admitted, cells);
    }

    /// Counts a wait of `waited` nanoseconds for `cells` cells (nothing when zero).
    pub(crate) fn waited(&self, cells: u32, waited: u64) {
        self.counters.record_wait(&self.hook, cells, waited);
    }

    /// Waits until `decide` admits `n` cells, sleeping on the clock until each refusal's
    /// earliest time plus `jitter`. `decide(now, n)` must not count: refusals on the way are
    /// steps of the wait, counted once as the wait. Cancellation-safe: the future holds
    /// nothing while it sleeps, so dropping it consumes nothing.
    ///
    /// # Errors
    /// [`InsufficientCapacity`] at once when `n` exceeds `burst` (waiting would never end).
    pub(crate) async fn wait(
        &self,
        n: u32,
        burst: u32,
        jitter: Jitter,
        mut decide: impl FnMut(u64, u32) -> Result<(), CheckNError>,
    ) -> Result<(), InsufficientCapacity> {
        if n > burst {
            return Err(InsufficientCapacity { requested: n, burst });
        }
        if n == 0 {
            return Ok(());
        }
        // n <= burst was checked above; a limiter reconfigured to a smaller burst meanwhile
        // ends the wait with the capacity error instead of waiting forever.
        let (fits, waited) =
            retry_until(&self.clock, jitter, || match decide(self.clock.now(), n) {
                Ok(()) => Ok(Ok(())),
                Err(CheckNError::Throttled(refusal)) => Err(refusal),
                Err(CheckNError::InsufficientCapacity(error)) => Ok(Err(error)),
            })
            .await;
        fits?;
        self.counters.admit(self.count_admitted, n);
        self.waited(n, waited);
        Ok(())
    }

    /// A snapshot of the counters.
    pub(crate) fn stats(&self) -> RateStats {
        self.counters.snapshot(self.count_admitted)
    }

    /// Counts and reports a refusal that no check made (a pacer's wait that never came).
    pub(crate) fn refused(&self, cells: u32, error: CheckNError) -> CheckNError {
        self.counters.record_refusal(&self.hook, cells, error)
    }
}

/// Builds a rate limiter: its own settings `S` (a [`Quota`](crate::Quota), a
/// [`WindowQuota`](crate::WindowQuota), ...) plus what every limiter takes: a clock,
/// listeners, and whether to count admissions.
///
/// Every limiter's builder is this type (`RateLimiterBuilder<C>` is
/// `LimiterBuilder<Quota, C>`, and so on), so the shared settings read the same everywhere.
///
/// ```
/// use levee_core::ManualClock;
/// use levee_limit::{Quota, RateEvent, RateLimiter, SlidingWindowLimiter, WindowQuota};
///
/// let clock = ManualClock::new();
/// let gcra = RateLimiter::builder(Quota::per_second(5))
///     .clock(clock.clone())
///     .count_admitted(true)
///     .listener(|e: &RateEvent| println!("{e:?}"))
///     .build()?;
/// let window = SlidingWindowLimiter::builder(WindowQuota::per_second(5))
///     .buckets(10)
///     .clock(clock.clone())
///     .count_admitted(true)
///     .build()?;
/// gcra.check()?;
/// window.check()?;
/// assert_eq!(gcra.stats().admitted, window.stats().admitted);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct LimiterBuilder<S, C = FastClock> {
    pub(crate) settings: S,
    clock: C,
    hook: EventHook<RateEvent>,
    count_admitted: bool,
}

impl<S: fmt::Debug, C> fmt::Debug for LimiterBuilder<S, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LimiterBuilder")
            .field("settings", &self.settings)
            .field("count_admitted", &self.count_admitted)
            .finish_non_exhaustive()
    }
}

impl<S> LimiterBuilder<S, FastClock> {
    /// Settings `settings` on the default clock, without listeners; `count_admitted` is the
    /// limiter's default for counting admissions.
    pub(crate) fn new(settings: S, count_admitted: bool) -> Self {
        Self { settings, clock: FastClock, hook: EventHook::none(), count_admitted }
    }
}

impl<S, C: Clock> LimiterBuilder<S, C> {
    /// Reads (and sleeps on) `clock` instead of [`FastClock`].
    pub fn clock<C2: Clock>(self, clock: C2) -> LimiterBuilder<S, C2> {
        LimiterBuilder {
            settings: self.settings,
            clock,
            hook: self.hook,
            count_admitted: self.count_admitted,
        }
    }

    /// Counts admitted cells ([`RateStats::admitted`]) or not. On by default except for
    /// [`RateLimiter`](crate::RateLimiter), where it costs an atomic add on every admission
    /// (about a third of an uncontended `check`) and a shared cache line under contention.
    /// Refusals and waits are always counted.
    pub fn count_admitted(mut self, yes: bool) -> Self {
        self.count_admitted = yes;
        self
    }

    /// Adds a listener for [`RateEvent`]s (refusals, waits).
    pub fn listener(mut self, listener: impl Listener<RateEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Splits off the shared part, for `build`.
    pub(crate) fn into_parts(self) -> (S, Meter<C>) {
        let meter = Meter {
            clock: self.clock,
            count_admitted: self.count_admitted,
            hook: self.hook,
            counters: Box::default(),
        };
        (self.settings, meter)
    }

    /// A clock reading, for builders whose state starts at the current time.
    pub(crate) fn now(&self) -> u64 {
        self.clock.now()
    }
}

/// Checks a builder setting that must not exceed `max` nanoseconds-worth; shared by the
/// builders' `build`.
pub(crate) fn at_most_max_span(
    setting: &'static str,
    value: std::time::Duration,
) -> Result<(), ConfigError> {
    if value > crate::quota::MAX_SPAN {
        return Err(ConfigError::new(setting, "must be at most 2^62 ns (146 years)"));
    }
    Ok(())
}
