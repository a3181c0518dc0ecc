//! When each request is meant to be sent: the schedule of an open-loop run.
//!
//! The phases define a rate `r(t)` (constant or linear within each phase); its integral
//! `N(t)` counts the requests due by `t`. Request `k` (from 0) is due at the `t` where
//! `N(t) = k`. Counting over the whole run, not per phase, carries a fraction left at the
//! end of one phase into the next, so a boundary neither doubles nor drops a request.
//!
//! Within a phase starting at `s` with `n = k - N(s)` requests still to reach, rate `r0` at
//! its start and slope `(r1 - r0) / d`, `N` is quadratic: `r0 τ + (r1 - r0) τ² / (2 d) = n`,
//! solved as `τ = 2n / (r0 + sqrt(r0² + 2 (r1 - r0) n / d))`, the form that stays exact for a
//! constant rate (`τ = n / r0`) and for a ramp from zero.

use std::time::Duration;

use super::scenario::Phase;

/// One scheduled request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Slot {
    /// Its number in the run, from 0.
    pub(crate) index: u64,
    /// When it is due, from the start of the run.
    pub(crate) at: Duration,
    /// The phase it belongs to (index into the scenario's phases).
    pub(crate) phase: usize,
}

/// The intended send times of a run, in order.
#[derive(Debug, Clone)]
pub(crate) struct Schedule<'a> {
    phases: &'a [Phase],
    phase: usize,
    /// `N` at the start of the current phase.
    before: f64,
    next: u64,
}

impl<'a> Schedule<'a> {
    pub(crate) fn new(phases: &'a [Phase]) -> Self {
        Self { phases, phase: 0, before: 0.0, next: 0 }
    }
}

/// Time into a phase at which `n` of its requests have become due.
fn offset(phase: &Phase, n: f64) -> f64 {
    if n <= 0.0 {
        return 0.0;
    }
    let d = phase.duration.as_secs_f64();
    let (r0, r1) = (phase.rate, phase.rate_to);
    let root = (r0 * r0 + 2.0 * (r1 - r0) * n / d).max(0.0).sqrt();
    2.0 * n / (r0 + root)
}

impl Iterator for Schedule<'_> {
    type Item = Slot;

    fn next(&mut self) -> Option<Slot> {
        loop {
            let phase = self.phases.get(self.phase)?;
            let after = self.before + phase.planned();
            let k = self.next as f64;
            if k < after {
                let d = phase.duration.as_secs_f64();
                // Rounding may put the last request of a phase a hair past its end.
                let tau = offset(phase, k - self.before).clamp(0.0, d);
                let at = (phase.start + Duration::from_secs_f64(tau))
                    .min(phase.end().checked_sub(Duration::from_nanos(1)).unwrap_or(phase.start));
                let slot = Slot { index: self.next, at, phase: self.phase };
                self.next += 1;
                return Some(slot);
            }
            self.before = after;
            self.phase += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn phase(start_ms: u64, ms: u64, rate: f64, rate_to: f64) -> Phase {
        Phase {
            name: format!("p{start_ms}"),
            start: Duration::from_millis(start_ms),
            duration: Duration::from_millis(ms),
            rate,
            rate_to,
        }
    }

    fn chain(parts: &[(u64, f64, f64)]) -> Vec<Phase> {
        let mut start = 0;
        parts
            .iter()
            .map(|&(ms, r0, r1)| {
                let p = phase(start, ms, r0, r1);
                start += ms;
                p
            })
            .collect()
    }

    #[test]
    fn a_constant_rate_sends_evenly_from_zero() {
        let phases = chain(&[(1000, 100.0, 100.0)]);
        let slots: Vec<Slot> = Schedule::new(&phases).collect();
        assert_eq!(slots.len(), 100);
        for (k, s) in slots.iter().enumerate() {
            assert_eq!(s.index, k as u64);
            let want = Duration::from_millis(10 * k as u64);
            assert!(s.at.abs_diff(want) < Duration::from_micros(1), "{k}: {:?}", s.at);
        }
    }

    #[test]
    fn a_fraction_carries_over_a_boundary_and_a_quiet_phase_sends_nothing() {
        // 0.5/s for 3 s: requests at 0 s and 2 s, and half a request owed; nothing for 5 s;
        // then 1/s: the owed half comes due 0.5 s in.
        let phases = chain(&[(3000, 0.5, 0.5), (5000, 0.0, 0.0), (2000, 1.0, 1.0)]);
        let got: Vec<(u128, usize)> =
            Schedule::new(&phases).map(|s| (s.at.as_millis(), s.phase)).collect();
        assert_eq!(got, [(0, 0), (2000, 0), (8500, 2), (9500, 2)]);
    }

    #[test]
    fn a_ramp_from_zero_sends_its_integral_ever_faster() {
        // 0 -> 200/s over 1 s: 100 requests, the k-th at sqrt(k / 100) s.
        let phases = chain(&[(1000, 0.0, 200.0)]);
        let slots: Vec<Slot> = Schedule::new(&phases).collect();
        assert_eq!(slots.len(), 100);
        for s in &slots {
            let want = (s.index as f64 / 100.0).sqrt();
            assert!((s.at.as_secs_f64() - want).abs() < 1e-9, "{s:?}");
        }
    }

    proptest! {
        /// Against the definition: request k is due where the integral of the rate reaches k,
        /// inside its own phase, in order, and the count is the integral rounded up.
        #[test]
        fn every_request_is_due_where_the_rate_integral_reaches_its_number(
            parts in prop::collection::vec((1u64..5000, 0.0f64..500.0, 0.0f64..500.0), 1..6),
        ) {
            let phases = chain(&parts);
            let integral = |t: f64| -> f64 {
                phases.iter().map(|p| {
                    let (s, d) = (p.start.as_secs_f64(), p.duration.as_secs_f64());
                    let tau = (t - s).clamp(0.0, d);
                    p.rate * tau + (p.rate_to - p.rate) * tau * tau / (2.0 * d)
                }).sum()
            };
            let total: f64 = phases.iter().map(Phase::planned).sum();
            let slots: Vec<Slot> = Schedule::new(&phases).collect();
            prop_assert_eq!(slots.len() as u64, total.ceil() as u64);
            let mut last = Duration::ZERO;
            for s in &slots {
                let p = &phases[s.phase];
                prop_assert!(s.at >= p.start && s.at < p.end(), "{:?} outside {:?}", s, p);
                prop_assert!(s.at >= last);
                last = s.at;
                let n = integral(s.at.as_secs_f64());
                prop_assert!((n - s.index as f64).abs() < 1e-6 * (1.0 + total), "N = {} at {:?}", n, s);
            }
        }
    }
}
