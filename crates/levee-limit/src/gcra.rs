//! The generic cell rate algorithm on one atomic word.
//!
//! GCRA (ATM Forum TM 4.0; the same arithmetic as a token bucket, with a single number of
//! state) keeps the *theoretical arrival time* `tat`: the clock reading at which the limiter
//! would be exactly drained had every admitted cell arrived evenly spaced. With emission
//! interval `t` (one cell's worth of time) and tolerance `tau` (`burst - 1` cells' worth):
//!
//! - a cell arriving at `now` conforms when `tat <= now + tau`;
//! - admitting it moves `tat` to `max(tat, now) + t`;
//! - otherwise it can conform at `tat - tau`.
//!
//! `tat == 0` (or any `tat <= now`) is a full limiter: `max(tat, now) = now`, so a state at or
//! behind the clock behaves exactly like a fresh one. The keyed limiter relies on this to
//! reclaim keys: an entry whose `tat <= now` carries no information.
//!
//! Each operation is one clock read by the caller, one load and, when admitting, one CAS.
//! Every atomic here is `Relaxed`: the word publishes no other memory, and a CAS always acts
//! on the latest value in the word's modification order, which is all the limit needs (each
//! admission moves `tat` from the value it was decided on, so no two admissions are decided
//! on the same state).

use std::time::Duration;

use crate::error::{CheckNError, InsufficientCapacity, Throttled};
use crate::quota::Gcra;
use crate::state::LimitState;
use levee_core::sync::{AtomicU64, Ordering};

impl Gcra {
    /// Admits one cell at `now` or returns the refusal.
    #[inline(always)]
    pub(crate) fn check(&self, tat: &AtomicU64, now: u64) -> Result<(), Throttled> {
        // Relaxed: see the module docs; a stale value only costs one failed CAS.
        let mut current = tat.load(Ordering::Relaxed);
        // `now + tau` cannot overflow for real clocks (tau <= 2^62); saturate for manual ones.
        let limit = now.saturating_add(self.tau);
        loop {
            if current > limit {
                // current > now + tau >= tau, so the subtraction cannot underflow.
                return Err(Throttled::new(now, current - self.tau));
            }
            let next = current.max(now).saturating_add(self.t);
            // Relaxed on both paths: the CAS orders nothing but this word (module docs).
            match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Admits `n` cells at once at `now` (all or nothing).
    #[inline]
    pub(crate) fn check_n(&self, tat: &AtomicU64, now: u64, n: u32) -> Result<(), CheckNError> {
        if n == 0 {
            return Ok(());
        }
        let extra = self.extra_weight(n)?;
        let mut current = tat.load(Ordering::Relaxed); // Relaxed: module docs.
        let limit = now.saturating_add(self.tau);
        loop {
            // The last of the n cells conforms when tat + (n - 1) t <= now + tau.
            let last = current.saturating_add(extra);
            if last > limit {
                return Err(Throttled::new(now, last - self.tau).into());
            }
            let next = last.max(now.saturating_add(extra)).saturating_add(self.t);
            match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok(()),
                Err(actual) => current = actual,
            }
        }
    }

    /// Reserves `n` cells for the earliest time they conform, provided that is at most
    /// `max_wait` nanoseconds after `now`. Returns `(start, previous, next)`: the clock
    /// reading at which the cells may go, and the state transition made (for [`Self::undo`]).
    #[inline]
    pub(crate) fn reserve(
        &self,
        tat: &AtomicU64,
        now: u64,
        n: u32,
        max_wait: u64,
    ) -> Result<(u64, u64, u64), CheckNError> {
        let n = n.max(1);
        let extra = self.extra_weight(n)?;
        let mut current = tat.load(Ordering::Relaxed); // Relaxed: module docs.
        loop {
            let last = current.saturating_add(extra);
            let start = last.saturating_sub(self.tau).max(now);
            let wait = start - now;
            if wait > max_wait {
                return Err(Throttled::new(now, start - max_wait).into());
            }
            let next = current.max(now).saturating_add(extra).saturating_add(self.t);
            match tat.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return Ok((start, current, next)),
                Err(actual) => current = actual,
            }
        }
    }

    /// Gives back a reservation if nothing was admitted after it (the state still reads
    /// `next`); otherwise its slot stays used, which can only make the limiter stricter.
    /// Returns whether the reservation was returned.
    #[inline]
    pub(crate) fn undo(tat: &AtomicU64, previous: u64, next: u64) -> bool {
        // Relaxed: as every other transition of this word (module docs).
        tat.compare_exchange(next, previous, Ordering::Relaxed, Ordering::Relaxed).is_ok()
    }

    /// `(n - 1) * t`, or the capacity error when `n` exceeds the burst.
    #[inline]
    fn extra_weight(&self, n: u32) -> Result<u64, CheckNError> {
        if n > self.burst {
            return Err(InsufficientCapacity { requested: n, burst: self.burst }.into());
        }
        // n <= burst, so (n - 1) * t <= tau <= 2^62: no overflow.
        Ok(u64::from(n - 1) * self.t)
    }

    /// How many more cells would conform right now, given state `tat` (at most `burst`).
    #[inline]
    pub(crate) fn available(&self, tat: u64, now: u64) -> u32 {
        let limit = now.saturating_add(self.tau);
        if tat > limit {
            return 0;
        }
        // Cells fit while tat + (k - 1) t <= now + tau, counting from max(tat, now).
        let room = limit - tat.max(now);
        let k = room / self.t + 1;
        k.min(u64::from(self.burst)) as u32
    }

    /// The state of a limiter with these parameters whose theoretical arrival time is `tat`
    /// at clock reading `now`: the cells admissible now, and the time until `tat`, when the
    /// whole burst is admissible again. Any two readings of one clock will do, so a limiter
    /// that keeps `tat` relative to a clock of its own (a Redis script, where it is
    /// `tat - now`) passes that difference and `now = 0`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_limit::Quota;
    ///
    /// // 10 per second, burst 10: three cells taken at once leave seven, back in 300 ms.
    /// let gcra = Quota::per_second(10).gcra()?;
    /// let state = gcra.state(300_000_000, 0);
    /// assert_eq!((state.remaining, state.reset), (7, Duration::from_millis(300)));
    /// assert_eq!(gcra.state(0, 5).remaining, 10, "a state behind the clock is full");
    /// # Ok::<(), levee_core::ConfigError>(())
    /// ```
    #[must_use]
    pub fn state(&self, tat: u64, now: u64) -> LimitState {
        LimitState {
            remaining: self.available(tat, now),
            reset: Duration::from_nanos(tat.saturating_sub(now)),
        }
    }
}
