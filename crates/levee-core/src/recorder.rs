//! A latency recorder that many threads write into without sharing one lock.
//!
//! Samples go into one of several striped [`hdrhistogram`] histograms, chosen per thread, so two
//! threads recording at once almost never touch the same lock or cache line. A snapshot merges
//! the stripes. Values keep three significant digits (0.1 % precision), from 1 ns to one hour;
//! longer samples are clamped to one hour and still counted.
//!
//! A stripe's histogram (264 KiB: 33,792 `u64` counts for three digits over 1 ns to an hour)
//! is made by the first sample recorded into it. Every cache, hedge, timer service and broker
//! subscription owns a recorder, most never record on all their stripes (on a 64-CPU machine a
//! recorder has 128), and one that never records costs a few hundred bytes rather than
//! zeroing 264 KiB a stripe when it is built (a levee cache of 100k entries: 11 bytes an
//! entry, `cargo bench --bench cache_memory`).

use std::fmt;
use std::time::Duration;

use hdrhistogram::Histogram;

use crate::sync::{CachePadded, Mutex};

/// Largest value a recorder keeps exactly: one hour in nanoseconds. Longer samples are clamped.
pub const MAX_TRACKABLE_NANOS: u64 = 3_600_000_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// Records durations from many threads; [`snapshot`](Self::snapshot) reads percentiles.
///
/// ```
/// use std::time::Duration;
/// use levee_core::LatencyRecorder;
///
/// let recorder = LatencyRecorder::new();
/// for ms in 1..=100 {
///     recorder.record(Duration::from_millis(ms));
/// }
/// let snap = recorder.snapshot();
/// assert_eq!(snap.count, 100);
/// assert_eq!(snap.p50.as_millis(), 50);
/// assert_eq!(snap.max.as_millis(), 100);
/// ```
pub struct LatencyRecorder {
    stripes: Box<[CachePadded<Stripe>]>,
}

/// One stripe: `None` until its first sample (module docs).
type Stripe = Mutex<Option<Histogram<u64>>>;

impl fmt::Debug for LatencyRecorder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LatencyRecorder").field("stripes", &self.stripes.len()).finish()
    }
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

fn empty_histogram() -> Histogram<u64> {
    // Bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low, digits <= 5).
    Histogram::new_with_bounds(1, MAX_TRACKABLE_NANOS, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

impl LatencyRecorder {
    /// A recorder with one stripe per two hardware threads' worth of contention
    /// (twice the available parallelism, rounded up to a power of two).
    #[must_use]
    pub fn new() -> Self {
        let cpus = std::thread::available_parallelism().map_or(4, |n| n.get());
        Self::with_stripes(cpus * 2)
    }

    /// A recorder with `stripes` histograms (at least one, rounded up to a power of two).
    /// Each stripe costs 264 KiB from its first sample on.
    #[must_use]
    pub fn with_stripes(stripes: usize) -> Self {
        let n = stripes.clamp(1, 1024).next_power_of_two();
        Self { stripes: (0..n).map(|_| CachePadded::new(Mutex::new(None))).collect() }
    }

    /// Records one sample.
    #[inline]
    pub fn record(&self, latency: Duration) {
        self.record_nanos(crate::clock::nanos(latency));
    }

    /// Records one sample given in nanoseconds (for example the difference of two
    /// [`Clock`](crate::Clock) readings).
    #[inline]
    pub fn record_nanos(&self, nanos: u64) {
        self.record_all_nanos([nanos]);
    }

    /// Records every sample of `nanos` (in nanoseconds) under one lock: for a caller that
    /// has a batch at hand (a timer service's pass over the timers it fires).
    pub fn record_all_nanos(&self, nanos: impl IntoIterator<Item = u64>) {
        let stripe = &self.stripes[crate::sync::thread_index() & (self.stripes.len() - 1)];
        let mut stripe = stripe.lock();
        let histogram = stripe.get_or_insert_with(empty_histogram);
        for n in nanos {
            // `saturating_record` clamps to the trackable range instead of failing.
            histogram.saturating_record(n.max(1));
        }
    }

    /// Merges every stripe into one consistent view. Samples recorded while the snapshot runs
    /// are either in it or in the next one, never lost.
    #[must_use]
    pub fn snapshot(&self) -> LatencySnapshot {
        LatencySnapshot::from_histogram(&self.merged())
    }

    /// Like [`snapshot`](Self::snapshot), and empties the recorder in the same step, so
    /// consecutive calls report disjoint intervals.
    pub fn snapshot_and_reset(&self) -> LatencySnapshot {
        let mut merged = empty_histogram();
        for stripe in self.stripes.iter() {
            if let Some(h) = stripe.lock().as_mut() {
                merged.add(&*h).expect("stripes share bounds");
                h.reset();
            }
        }
        LatencySnapshot::from_histogram(&merged)
    }

    /// The merged histogram itself, for exporters that want every bucket.
    #[must_use]
    pub fn merged(&self) -> Histogram<u64> {
        let mut merged = empty_histogram();
        for stripe in self.stripes.iter() {
            if let Some(h) = stripe.lock().as_ref() {
                merged.add(h).expect("stripes share bounds");
            }
        }
        merged
    }
}

/// Summary statistics of recorded latencies. All durations are zero when `count` is zero.
///
/// ```
/// use std::time::Duration;
/// use levee_core::{LatencyRecorder, LatencySnapshot};
///
/// assert_eq!(LatencyRecorder::new().snapshot(), LatencySnapshot::default());
/// let r = LatencyRecorder::new();
/// r.record(Duration::from_micros(250));
/// let snap = LatencySnapshot::from_histogram(&r.merged());
/// assert_eq!((snap.count, snap.p99.as_micros()), (1, 250));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct LatencySnapshot {
    /// Number of samples.
    pub count: u64,
    /// Smallest sample.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub min: Duration,
    /// Largest sample (clamped to one hour).
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub max: Duration,
    /// Arithmetic mean.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub mean: Duration,
    /// Median.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub p50: Duration,
    /// 90th percentile.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub p90: Duration,
    /// 99th percentile.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub p99: Duration,
    /// 99.9th percentile.
    #[cfg_attr(feature = "serde", serde(with = "crate::serde_duration"))]
    pub p999: Duration,
}

impl LatencySnapshot {
    /// Summarises a histogram whose values are nanoseconds.
    #[must_use]
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let q = |quantile: f64| Duration::from_nanos(h.value_at_quantile(quantile));
        Self {
            count: h.len(),
            min: Duration::from_nanos(h.min()),
            max: Duration::from_nanos(h.max()),
            mean: Duration::from_nanos(h.mean().round() as u64),
            p50: q(0.50),
            p90: q(0.90),
            p99: q(0.99),
            p999: q(0.999),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The exact quantile hdrhistogram defines: the smallest sample with at least
    /// `ceil(q * n)` samples at or below it.
    fn exact_quantile(sorted: &[u64], q: f64) -> u64 {
        let rank = ((q * sorted.len() as f64).ceil() as usize).max(1);
        sorted[rank - 1]
    }

    /// hdrhistogram reports a value equivalent to the exact one within its precision:
    /// 3 significant digits, so 0.1 % (plus one unit at the bottom of the range).
    fn assert_close(name: &str, got: Duration, exact: u64) {
        let got = got.as_nanos() as u64;
        let tolerance = exact / 1000 + 1;
        assert!(
            got.abs_diff(exact) <= tolerance,
            "{name}: recorder says {got}, exact is {exact} (tolerance {tolerance})"
        );
    }

    proptest! {
        #[test]
        fn percentiles_match_exact_sorted_values(
            samples in prop::collection::vec(1u64..MAX_TRACKABLE_NANOS, 1..2000),
        ) {
            let recorder = LatencyRecorder::with_stripes(4);
            for &s in &samples {
                recorder.record_nanos(s);
            }
            let mut sorted = samples.clone();
            sorted.sort_unstable();
            let snap = recorder.snapshot();
            prop_assert_eq!(snap.count, samples.len() as u64);
            assert_close("min", snap.min, sorted[0]);
            assert_close("max", snap.max, *sorted.last().unwrap());
            assert_close("p50", snap.p50, exact_quantile(&sorted, 0.50));
            assert_close("p90", snap.p90, exact_quantile(&sorted, 0.90));
            assert_close("p99", snap.p99, exact_quantile(&sorted, 0.99));
            assert_close("p99.9", snap.p999, exact_quantile(&sorted, 0.999));
            let mean = samples.iter().map(|&s| s as u128).sum::<u128>() / samples.len() as u128;
            assert_close("mean", snap.mean, mean as u64);
        }
    }

    #[test]
    fn empty_snapshot_is_zero() {
        assert_eq!(LatencyRecorder::new().snapshot(), LatencySnapshot::default());
    }

    #[test]
    fn out_of_range_samples_are_clamped_not_lost() {
        let r = LatencyRecorder::with_stripes(1);
        r.record(Duration::ZERO);
        r.record(Duration::from_secs(10 * 3600));
        let snap = r.snapshot();
        assert_eq!(snap.count, 2);
        assert_eq!(snap.min, Duration::from_nanos(1));
        assert!(snap.max >= Duration::from_secs(3599));
    }

    #[test]
    fn a_stripe_makes_its_histogram_on_its_first_sample() {
        let r = LatencyRecorder::with_stripes(8);
        let made = |r: &LatencyRecorder| r.stripes.iter().filter(|s| s.lock().is_some()).count();
        assert_eq!(made(&r), 0, "a recorder that never records holds no histogram");
        assert_eq!(r.merged().high(), MAX_TRACKABLE_NANOS, "merging no stripe: empty, same bounds");
        r.record(Duration::from_micros(3));
        r.record(Duration::from_micros(4));
        assert_eq!(made(&r), 1, "one thread records into one stripe");
        let snap = r.snapshot_and_reset();
        assert_eq!((snap.count, snap.max.as_micros()), (2, 4));
        assert_eq!(made(&r), 1, "a reset empties the histogram and keeps it");
    }

    #[test]
    fn a_batch_records_as_its_samples_one_by_one() {
        let (one_by_one, batch) = (LatencyRecorder::with_stripes(2), LatencyRecorder::new());
        let samples = [0, 7, 1_000, 250_000, u64::MAX];
        samples.iter().for_each(|&n| one_by_one.record_nanos(n));
        batch.record_all_nanos(samples);
        assert_eq!(batch.snapshot(), one_by_one.snapshot());
        assert_eq!(batch.snapshot().count, 5);
    }

    #[test]
    fn snapshot_and_reset_reports_disjoint_intervals() {
        let r = LatencyRecorder::new();
        r.record(Duration::from_micros(5));
        assert_eq!(r.snapshot_and_reset().count, 1);
        assert_eq!(r.snapshot().count, 0);
    }

    #[test]
    fn many_threads_lose_no_sample() {
        let r = LatencyRecorder::with_stripes(2);
        std::thread::scope(|s| {
            for t in 0..8u64 {
                let r = &r;
                s.spawn(move || {
                    for i in 0..1000 {
                        r.record_nanos(t * 1000 + i + 1);
                    }
                });
            }
        });
        assert_eq!(r.snapshot().count, 8000);
    }
}
