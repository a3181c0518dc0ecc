//! Peak-EWMA: a latency estimate per endpoint that reacts to a slow response at once and
//! forgets it slowly, times the requests in flight (the load the balancer compares).
//!
//! The idea is Finagle's `PeakEwma` load metric ("Beyond Round Robin: Load Balancing for
//! Latency", Linkerd blog, 2016; tower's `load::PeakEwma` implements it too). How it works:
//!
//! - A response's round-trip time `rtt` **above** the estimate replaces it (the peak).
//! - Otherwise the estimate moves towards `rtt` as an exponentially weighted moving average
//!   whose weight depends on the time since the last sample: `w = exp(-elapsed / tau)`,
//!   `estimate = estimate * w + rtt * (1 - w)`.
//! - Read between samples, the estimate decays towards zero at the same rate
//!   (`estimate * exp(-elapsed / tau)`), so an endpoint that was slow once and has not been
//!   tried since becomes attractive again and gets a request that measures it afresh.
//! - The load is `(estimate + 1 ns) * (in_flight + 1)`: of two endpoints equally fast, the
//!   less busy; of two idle ones, the faster.
//!
//! Unlike Finagle and tower (a lock around the estimate, written on every read), the
//! estimate and the time of its last sample share one `AtomicU64`: an `f32` of nanoseconds
//! in the high half, the sample's time in whole milliseconds (mod 2^32) in the low half. A
//! sample is one compare-and-swap; a read is one load and never writes. Millisecond stamps
//! wrap every 49.7 days: a second word keeps the full time of the last sample, so a gap of
//! 24 days or more (far past any sensible `tau`, which is at most an hour) reads as fully
//! decayed instead of as the gap modulo 2^32 ms.

// The loom build has the estimator without the balancer that reads it (lib.rs).
#![cfg_attr(loom, allow(dead_code))]

use std::time::Duration;

use levee_core::sync::{AtomicU32, AtomicU64, Ordering};
use levee_core::{ConfigError, nanos};

const MS: u64 = 1_000_000;
/// Gaps of at least this many milliseconds (24.8 days) read as fully decayed.
const WRAP_GUARD_MS: u64 = 1 << 31;
/// The longest decay time allowed.
pub(crate) const MAX_DECAY: Duration = Duration::from_secs(3600);

/// How the peak-EWMA estimate behaves.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct EwmaSettings {
    /// The estimate of an endpoint before its first response.
    pub(crate) default_rtt: Duration,
    /// `tau`: how fast old samples lose weight.
    pub(crate) decay: Duration,
}

impl Default for EwmaSettings {
    fn default() -> Self {
        // Linkerd's defaults.
        Self { default_rtt: Duration::from_millis(30), decay: Duration::from_secs(10) }
    }
}

impl EwmaSettings {
    pub(crate) fn validate(&self) -> Result<(), ConfigError> {
        ConfigError::require_positive("ewma.decay", self.decay)?;
        if self.decay > MAX_DECAY {
            return Err(ConfigError::new("ewma.decay", "must be at most one hour"));
        }
        if self.default_rtt > Duration::from_secs(3600) {
            return Err(ConfigError::new("ewma.default_rtt", "must be at most one hour"));
        }
        Ok(())
    }
}

#[inline]
fn pack(estimate_ns: f32, stamp_ms: u32) -> u64 {
    u64::from(estimate_ns.to_bits()) << 32 | u64::from(stamp_ms)
}

#[inline]
fn unpack(word: u64) -> (f32, u32) {
    (f32::from_bits((word >> 32) as u32), word as u32)
}

/// The load of one endpoint: its peak-EWMA latency estimate and its requests in flight.
#[derive(Debug)]
pub(crate) struct PeakEwma {
    /// `f32` estimate in nanoseconds (high half) and the last sample's time in ms (low half).
    word: AtomicU64,
    /// The last sample's time in whole milliseconds, unwrapped (the wrap guard only).
    last_ms: AtomicU64,
    in_flight: AtomicU32,
    /// `1 / tau` in 1/ms, so a decay is one multiplication and one `exp`.
    inv_tau_ms: f64,
}

impl PeakEwma {
    /// An estimate of `settings.default_rtt`, sampled at `now`.
    pub(crate) fn new(settings: EwmaSettings, now: u64) -> Self {
        let now_ms = now / MS;
        Self {
            word: AtomicU64::new(pack(nanos(settings.default_rtt) as f32, now_ms as u32)),
            last_ms: AtomicU64::new(now_ms),
            in_flight: AtomicU32::new(0),
            inv_tau_ms: MS as f64 / nanos(settings.decay) as f64,
        }
    }

    /// Milliseconds from the stamp to `now_ms`, or `None` once the gap is too long to tell
    /// (read as fully decayed).
    #[inline]
    fn elapsed_ms(&self, stamp: u32, now_ms: u64) -> Option<u32> {
        // Relaxed: the guard only has to catch gaps of weeks; any recent value will do.
        if now_ms.saturating_sub(self.last_ms.load(Ordering::Relaxed)) >= WRAP_GUARD_MS {
            return None;
        }
        Some((now_ms as u32).wrapping_sub(stamp))
    }

    #[inline]
    fn weight(&self, elapsed_ms: Option<u32>) -> f64 {
        match elapsed_ms {
            Some(0) => 1.0,
            // A stamp a little ahead of `now` (another thread read the clock later and won
            // the race to write) is no elapsed time.
            Some(ms) if ms >= 1 << 31 => 1.0,
            Some(ms) => (-f64::from(ms) * self.inv_tau_ms).exp(),
            None => 0.0,
        }
    }

    /// The estimate at `now`, decayed towards zero since the last sample, in nanoseconds.
    #[inline]
    pub(crate) fn estimate(&self, now: u64) -> f64 {
        // Relaxed: the word is self-contained; nothing else is published with it.
        let (estimate, stamp) = unpack(self.word.load(Ordering::Relaxed));
        f64::from(estimate) * self.weight(self.elapsed_ms(stamp, now / MS))
    }

    /// What the balancer compares: `(estimate + 1 ns) * (in_flight + 1)`.
    #[inline]
    pub(crate) fn load(&self, now: u64) -> f64 {
        let pending = self.in_flight.load(Ordering::Relaxed);
        (self.estimate(now) + 1.0) * f64::from(pending.saturating_add(1))
    }

    /// Records a response that took `rtt_ns`, at `now`.
    pub(crate) fn observe(&self, rtt_ns: u64, now: u64) {
        let now_ms = now / MS;
        let rtt = rtt_ns as f64;
        let mut current = self.word.load(Ordering::Relaxed);
        loop {
            let (estimate, stamp) = unpack(current);
            let estimate = f64::from(estimate);
            let next = if rtt > estimate {
                rtt
            } else {
                let w = self.weight(self.elapsed_ms(stamp, now_ms));
                estimate * w + rtt * (1.0 - w)
            };
            // Relaxed: as in `estimate`; a lost race retries with the winner's sample.
            match self.word.compare_exchange_weak(
                current,
                pack(next as f32, now_ms as u32),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => current = actual,
            }
        }
        self.last_ms.fetch_max(now_ms, Ordering::Relaxed);
    }

    /// Requests in flight.
    #[inline]
    pub(crate) fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// One more request in flight; the caller must call [`finish`](Self::finish) once.
    #[inline]
    pub(crate) fn start(&self) {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// One request fewer in flight.
    #[inline]
    pub(crate) fn finish(&self) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const SEC: u64 = 1_000_000_000;

    fn ewma() -> PeakEwma {
        PeakEwma::new(
            EwmaSettings { default_rtt: Duration::from_millis(30), decay: Duration::from_secs(10) },
            0,
        )
    }

    #[test]
    fn a_peak_replaces_the_estimate_and_decays_slowly() {
        let e = ewma();
        assert!((e.estimate(0) - 30e6).abs() < 1.0);
        e.observe(200 * MS, 0);
        assert!((e.estimate(0) - 200e6).abs() < 1.0, "the peak is taken at once");
        // One tau later the read is down to 1/e.
        let later = e.estimate(10 * SEC);
        assert!((later - 200e6 / std::f64::consts::E).abs() < 1e3, "{later}");
        // A fast sample 10 s later moves it most of the way.
        e.observe(MS, 10 * SEC);
        let mixed = e.estimate(10 * SEC);
        let expected = 200e6 * (-1f64).exp() + 1e6 * (1.0 - (-1f64).exp());
        assert!((mixed - expected).abs() < 1e2, "{mixed} vs {expected}");
    }

    #[test]
    fn load_multiplies_by_requests_in_flight() {
        let e = ewma();
        let idle = e.load(0);
        e.start();
        e.start();
        assert!((e.load(0) - 3.0 * idle).abs() < 1.0);
        e.finish();
        e.finish();
        assert_eq!(e.in_flight(), 0);
    }

    #[test]
    fn a_gap_past_the_millisecond_wrap_reads_as_decayed() {
        let e = ewma();
        e.observe(500 * MS, 0);
        // 2^32 ms + 5 ms later: the packed stamp alone would read 5 ms.
        let now = ((1u64 << 32) + 5) * MS;
        assert_eq!(e.estimate(now), 0.0);
        e.observe(2 * MS, now);
        assert!((e.estimate(now) - 2e6).abs() < 1.0, "a fresh sample after the gap counts");
        // And stamps keep working across the wrap.
        let after = now + SEC;
        let expected = 2e6 * (-0.1f64).exp();
        assert!((e.estimate(after) - expected).abs() < 1.0);
    }

    #[test]
    fn settings_are_checked() {
        let bad = EwmaSettings { decay: Duration::ZERO, ..EwmaSettings::default() };
        assert_eq!(bad.validate().unwrap_err().setting, "ewma.decay");
        let bad = EwmaSettings { decay: Duration::from_secs(7200), ..EwmaSettings::default() };
        assert!(bad.validate().is_err());
        assert!(EwmaSettings::default().validate().is_ok());
    }
}

#[cfg(all(test, not(loom)))]
mod model {
    //! The packed, lock-free estimator against the formula written plainly in `f64`.
    use super::*;
    use proptest::prelude::*;

    const TAU_MS: f64 = 10_000.0;

    /// The obviously correct estimator: full-precision state, full-width time.
    struct Reference {
        estimate: f64,
        stamp_ms: u64,
    }

    impl Reference {
        fn weight(&self, now_ms: u64) -> f64 {
            (-((now_ms - self.stamp_ms) as f64) / TAU_MS).exp()
        }
        fn observe(&mut self, rtt: f64, now_ms: u64) {
            self.estimate = if rtt > self.estimate {
                rtt
            } else {
                let w = self.weight(now_ms);
                self.estimate * w + rtt * (1.0 - w)
            };
            self.stamp_ms = now_ms;
        }
        fn read(&self, now_ms: u64) -> f64 {
            self.estimate * self.weight(now_ms)
        }
    }

    proptest! {
        /// Any sequence of (time step, sample) reads the same as the reference, to the
        /// precision of an `f32`, including steps past the millisecond wrap.
        #[test]
        fn matches_the_reference(steps in proptest::collection::vec(
            (prop_oneof![0u64..50, 0u64..30_000, (1u64 << 31)..(1u64 << 33)], 0u64..500_000_000),
            1..60,
        )) {
            let e = PeakEwma::new(
                EwmaSettings { default_rtt: Duration::from_millis(30), decay: Duration::from_secs(10) },
                0,
            );
            let mut reference = Reference { estimate: 30e6, stamp_ms: 0 };
            let mut now_ms = 0u64;
            for (step, rtt) in steps {
                now_ms += step;
                let now = now_ms * MS;
                let (ours, theirs) = (e.estimate(now), reference.read(now_ms));
                prop_assert!((ours - theirs).abs() <= theirs * 1e-5 + 1.0, "read {ours} vs {theirs}");
                e.observe(rtt, now);
                reference.observe(rtt as f64, now_ms);
                let (ours, theirs) = (e.estimate(now), reference.read(now_ms));
                prop_assert!((ours - theirs).abs() <= theirs * 1e-5 + 1.0, "after {rtt}: {ours} vs {theirs}");
            }
        }
    }
}
