//! GCRA written out in exact integer arithmetic, the model of the `gcra` and `keyed_gcra`
//! targets.
//!
//! One state, the theoretical arrival time `tat` (in `u128`, so nothing ever saturates): a
//! cell conforms at reading `now` when `tat <= now + tau`, and admitting it moves `tat` to
//! `max(tat, now) + t`. `n` cells at once are admitted only if each would conform in turn
//! (the definition of "all or none").

use std::time::Duration;

use levee_limit::CheckNError;

/// A quota's GCRA parameters in nanoseconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gcra {
    /// One cell's worth of time.
    pub t: u128,
    /// The tolerance: `burst - 1` cells' worth.
    pub tau: u128,
    /// Cells admissible at once.
    pub burst: u32,
}

impl Gcra {
    /// The parameters of `count` cells per `period` ns with `burst`, or `None` where
    /// `Quota::gcra` documents a refusal: a zero, a period or burst span over 2^62 ns, or
    /// more than one cell per nanosecond.
    #[must_use]
    pub fn new(count: u32, period: u64, burst: u32) -> Option<Self> {
        let span = 1u128 << 62;
        if count == 0 || period == 0 || burst == 0 || u128::from(period) > span {
            return None;
        }
        if period < u64::from(count) {
            return None;
        }
        let t = u128::from(period.div_ceil(u64::from(count)));
        (t * u128::from(burst) <= span).then(|| Self { t, tau: t * u128::from(burst - 1), burst })
    }

    /// Admits `n` cells (`1..=burst`) at `now`, moving `tat`; or returns the earliest reading
    /// at which all `n` would conform, leaving `tat` alone.
    ///
    /// # Panics
    /// When `n` is zero or over the burst (callers handle those first).
    pub fn check_n(&self, tat: &mut u128, n: u32, now: u128) -> Result<(), u128> {
        assert!((1..=self.burst).contains(&n));
        let mut next = *tat;
        for _ in 0..n {
            if next > now + self.tau {
                // The last of the n cells, queued behind the state, conforms once
                // tat + (n - 1) t <= reading + tau.
                return Err(*tat + u128::from(n - 1) * self.t - self.tau);
            }
            next = next.max(now) + self.t;
        }
        *tat = next;
        Ok(())
    }

    /// Cells that would conform one after another at `now`, at most the burst.
    #[must_use]
    pub fn available(&self, mut tat: u128, now: u128) -> u32 {
        let mut cells = 0;
        while cells < self.burst && tat <= now + self.tau {
            tat = tat.max(now) + self.t;
            cells += 1;
        }
        cells
    }
}

/// What levee's limiters count: cells admitted, calls refused.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counters {
    /// Cells admitted.
    pub admitted: u64,
    /// Calls refused (throttled, or asking for more than the burst).
    pub rejected: u64,
}

impl Gcra {
    /// The decision on `n` cells at `now` for state `tat`: `Some(Ok)` (zero cells always
    /// fit), `Some(Err(earliest))`, or `None` when `n` exceeds the burst; counted in
    /// `counters`.
    pub fn decide(
        &self,
        tat: &mut u128,
        n: u32,
        now: u64,
        counters: &mut Counters,
    ) -> Option<Result<(), u128>> {
        let decision = match n {
            0 => Some(Ok(())),
            n if n > self.burst => None,
            n => Some(self.check_n(tat, n, u128::from(now))),
        };
        match decision {
            Some(Ok(())) => counters.admitted += u64::from(n),
            _ => counters.rejected += 1,
        }
        decision
    }
}

/// Asserts that levee decided on `n` cells at reading `now` as the model did: the same
/// admission, or a refusal with the same earliest time, decided at `now`, retry after the
/// difference; or the same "more than the burst".
///
/// # Panics
/// On any difference.
pub fn assert_same(
    got: Result<(), CheckNError>,
    want: Option<Result<(), u128>>,
    n: u32,
    now: u64,
    what: &dyn std::fmt::Display,
) {
    match (got, want) {
        (Ok(()), Some(Ok(()))) => {}
        (Err(CheckNError::Throttled(refusal)), Some(Err(earliest))) => {
            assert_eq!(
                u128::from(refusal.earliest()),
                earliest,
                "{what}: earliest of {n} at {now}"
            );
            assert_eq!(refusal.decided_at(), now, "{what}: decided at");
            assert_eq!(
                refusal.retry_after(),
                Duration::from_nanos(refusal.earliest() - now),
                "{what}: retry after"
            );
        }
        (Err(CheckNError::InsufficientCapacity(e)), None) => assert_eq!(e.requested, n),
        (got, want) => panic!("{what}: {n} cells at {now}: levee {got:?}, model {want:?}"),
    }
}

/// A clock reading `behind` units of `unit` ns behind `now` (ahead of it when negative).
#[must_use]
pub fn reading(now: u64, behind: i32, unit: u64) -> u64 {
    let by = u64::from(behind.unsigned_abs()) * unit;
    if behind >= 0 { now.saturating_sub(by) } else { now + by }
}
