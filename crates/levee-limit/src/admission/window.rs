//! The capacity estimator's sliding window: completions and summed latency per time bucket,
//! lock-free, and the two figures the rule needs over the closed buckets of the window: the
//! most completions in one bucket (max throughput) and the smallest mean latency of a
//! bucket (min latency).
//!
//! **Layout.** `buckets + 1` slots in a ring; bucket `i` (the clock reading divided by the
//! bucket length) lives in slot `i % slots`, so the ring holds the current bucket, which is
//! still filling and never read, and the `buckets` closed ones before it. Each slot is two
//! words, each tagged with the low 23 bits of the bucket it counts:
//!
//! ```text
//!  63 62            40 39                                  0
//! +--+----------------+-------------------------------------+
//! |W | bucket & 2^23-1|  completions, or latency sum in µs  |
//! +--+----------------+-------------------------------------+
//! W: written (a word never written belongs to no bucket)
//! ```
//!
//! **The one rule.** A word counts for bucket `i` only while its tag is `i`'s. A writer adds
//! to a word of its own bucket with one CAS; finding an older tag, it starts the word over
//! for its bucket in the same CAS (so no reset can race with an add and lose it); finding a
//! tag at most four ring turns newer (it was descheduled for a whole window) it drops its
//! sample. Any other tag counts as older: the word was last written long ago, or never. A reader ignores a
//! word whose tag is not the bucket it asks about, so a slot nobody wrote since the ring last
//! came round reads as empty. All accesses are `Relaxed`: each word is consistent on its own
//! by its CAS, and the two words of a bucket are statistics read only after the bucket closed.
//!
//! **Limits.** A tag is 23 bits: a slot left unwritten for within four ring turns of a
//! multiple of 2^23 buckets (9.7 days at 100 ms buckets) can read its old figures, or drop
//! one new sample, for one window. Values
//! saturate at 2^40 - 1 (10^12 completions, or 12 days of summed latency, in one bucket).
//! Latency is summed in whole microseconds, rounded to nearest.

use levee_core::sync::{AtomicU64, Ordering};

/// Bits of a word's bucket tag.
const TAG_BITS: u32 = 23;
/// The value's bits: below the tag and the written bit.
const VALUE_BITS: u32 = 63 - TAG_BITS;
const VALUE_MAX: u64 = (1 << VALUE_BITS) - 1;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
/// Set in every word written: a word never written belongs to no bucket.
const WRITTEN: u64 = 1 << 63;

/// A bucket's two words.
#[derive(Debug, Default)]
struct Slot {
    /// Completions in the bucket.
    count: AtomicU64,
    /// Their latencies summed, in microseconds.
    latency_us: AtomicU64,
}

/// Completions and latency per bucket over a sliding window of closed buckets.
#[derive(Debug)]
pub(crate) struct Window {
    slots: Box<[Slot]>,
    bucket_nanos: u64,
}

/// What the closed buckets of the window say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Estimate {
    /// The most completions in one closed bucket.
    pub(crate) max_count: u64,
    /// The bucket with the smallest mean latency: its latency sum (µs) and its completions.
    pub(crate) min_latency_sum_us: u64,
    pub(crate) min_latency_count: u64,
}

impl Estimate {
    /// The smallest mean latency of a bucket, in nanoseconds.
    pub(crate) fn min_latency_nanos(&self) -> u64 {
        let nanos = u128::from(self.min_latency_sum_us) * 1000 / u128::from(self.min_latency_count);
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// Requests in flight the estimate allows: most completions per second times the smallest
    /// mean latency (Little's law), times `headroom`, rounded to nearest, for buckets of
    /// `bucket_nanos`. A headroom over 1 always allows at least one more than the estimate:
    /// rounded to nearest alone, 1 x 1.25 is 1 again, and a controller held at one request
    /// in flight could never grow.
    #[allow(clippy::cast_precision_loss, clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    pub(crate) fn capacity(&self, bucket_nanos: u64, headroom: f64) -> u64 {
        // Once per bucket: f64 is exact enough (53 bits), and `as` saturates.
        let per_second = self.max_count as f64 * 1e9 / bucket_nanos as f64;
        let latency = self.min_latency_sum_us as f64 / 1e6 / self.min_latency_count as f64;
        let estimate = per_second * latency;
        let capacity = (estimate * headroom).round();
        if headroom > 1.0 { capacity.max(estimate.round() + 1.0) as u64 } else { capacity as u64 }
    }
}

impl Window {
    /// A window of `buckets` closed buckets of `bucket_nanos` each (both non-zero).
    pub(crate) fn new(buckets: usize, bucket_nanos: u64) -> Self {
        debug_assert!(buckets > 0 && bucket_nanos > 0);
        Self { slots: (0..=buckets).map(|_| Slot::default()).collect(), bucket_nanos }
    }

    /// The bucket of the clock reading `now`.
    #[inline]
    pub(crate) fn bucket(&self, now: u64) -> u64 {
        now / self.bucket_nanos
    }

    /// The length of a bucket, in nanoseconds.
    pub(crate) fn bucket_nanos(&self) -> u64 {
        self.bucket_nanos
    }

    /// Closed buckets in the window.
    pub(crate) fn buckets(&self) -> usize {
        self.slots.len() - 1
    }

    /// How many buckets late a sample may be and still be told from an older slot's figures:
    /// four turns of the ring.
    #[inline]
    fn late(&self) -> u64 {
        4 * self.slots.len() as u64
    }

    #[inline]
    fn slot(&self, bucket: u64) -> &Slot {
        // The remainder is below `slots.len()`, a usize.
        #[allow(clippy::cast_possible_truncation)]
        &self.slots[(bucket % self.slots.len() as u64) as usize]
    }

    /// Records one completion of `latency_nanos` in bucket `bucket`.
    #[inline]
    pub(crate) fn record(&self, bucket: u64, latency_nanos: u64) {
        let slot = self.slot(bucket);
        let late = self.late();
        add(&slot.count, bucket, 1, late);
        add(&slot.latency_us, bucket, latency_nanos.saturating_add(500) / 1000, late);
    }

    /// The estimate from the closed buckets before `current`, `None` while none of them holds
    /// a completion.
    pub(crate) fn estimate(&self, current: u64) -> Option<Estimate> {
        let mut max_count = 0;
        let mut min: Option<(u64, u64)> = None;
        for back in 1..=self.buckets() as u64 {
            let Some(bucket) = current.checked_sub(back) else { break };
            let slot = self.slot(bucket);
            let count = read(&slot.count, bucket);
            if count == 0 {
                continue;
            }
            max_count = max_count.max(count);
            let sum = read(&slot.latency_us, bucket);
            // sum / count < min_sum / min_count, cross-multiplied.
            let lower = min.is_none_or(|(min_sum, min_count)| {
                u128::from(sum) * u128::from(min_count) < u128::from(min_sum) * u128::from(count)
            });
            if lower {
                min = Some((sum, count));
            }
        }
        min.map(|(min_latency_sum_us, min_latency_count)| Estimate {
            max_count,
            min_latency_sum_us,
            min_latency_count,
        })
    }
}

/// Adds `delta` to `word` for `bucket` (module docs, "The one rule"): a word tagged at most
/// `late` buckets after `bucket` has moved on, any other tag is older.
#[inline]
fn add(word: &AtomicU64, bucket: u64, delta: u64, late: u64) {
    let tag = bucket & TAG_MASK;
    let mut current = word.load(Ordering::Relaxed);
    loop {
        // How far the word's bucket is ahead of this one, modulo the tag's range.
        let ahead = (current >> VALUE_BITS).wrapping_sub(tag) & TAG_MASK;
        let value = if current & WRITTEN == 0 {
            delta.min(VALUE_MAX) // never written
        } else if ahead == 0 {
            (current & VALUE_MAX).saturating_add(delta).min(VALUE_MAX)
        } else if ahead <= late {
            return; // the slot has moved on to a later bucket: this sample left the window
        } else {
            delta.min(VALUE_MAX) // an older bucket's (or never written): start over
        };
        let next = WRITTEN | (tag << VALUE_BITS) | value;
        match word.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(actual) => current = actual,
        }
    }
}

/// `word`'s value for `bucket`: zero unless it is tagged with it.
#[inline]
fn read(word: &AtomicU64, bucket: u64) -> u64 {
    let w = word.load(Ordering::Relaxed);
    if w >> VALUE_BITS == (WRITTEN >> VALUE_BITS) | (bucket & TAG_MASK) { w & VALUE_MAX } else { 0 }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    /// The obviously correct reference: every completion kept, per bucket.
    #[derive(Default)]
    struct Model {
        buckets: BTreeMap<u64, (u64, u64)>,
    }

    impl Model {
        fn record(&mut self, bucket: u64, latency_nanos: u64) {
            let entry = self.buckets.entry(bucket).or_default();
            entry.0 += 1;
            entry.1 += latency_nanos.saturating_add(500) / 1000;
        }

        fn estimate(&self, current: u64, window: u64) -> Option<(u64, u64)> {
            let first = current.saturating_sub(window);
            let closed: Vec<_> = self.buckets.range(first..current).map(|(_, v)| *v).collect();
            let max = closed.iter().map(|c| c.0).max()?;
            // The smallest mean as a rational, compared exactly.
            let min = closed.iter().copied().min_by(|a, b| {
                (u128::from(a.1) * u128::from(b.0)).cmp(&(u128::from(b.1) * u128::from(a.0)))
            })?;
            Some((max, min.1 * 1000 / min.0))
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        /// Moves time on by this many buckets (zero: stays in the bucket).
        Advance(u64),
        /// A completion of this latency (ns).
        Complete(u64),
        /// Reads the estimate.
        Estimate,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => prop_oneof![Just(0u64), Just(1), 0..4u64, 5..40u64].prop_map(Op::Advance),
            6 => (0..5_000_000u64).prop_map(Op::Complete),
            2 => Just(Op::Estimate),
        ]
    }

    proptest! {
        /// The window's max completions and min mean latency over the closed buckets match
        /// a model that keeps every completion, also across idle gaps longer than the window
        /// and across the wrap of the 24-bit bucket tags (the run starts just before it).
        #[test]
        fn matches_a_model_that_keeps_everything(
            buckets in 1..8usize,
            start in prop_oneof![Just(0u64), Just((1 << TAG_BITS) - 20), Just((1 << (TAG_BITS - 1)) + 3), Just(u64::MAX / 1000 - 100)],
            ops in proptest::collection::vec(op(), 1..300),
        ) {
            let window = Window::new(buckets, 1000);
            let mut model = Model::default();
            let mut bucket = start;
            for op in ops {
                match op {
                    Op::Advance(by) => bucket += by,
                    Op::Complete(latency) => {
                        window.record(bucket, latency);
                        model.record(bucket, latency);
                    }
                    Op::Estimate => {}
                }
                let got = window.estimate(bucket).map(|e| (e.max_count, e.min_latency_nanos()));
                prop_assert_eq!(got, model.estimate(bucket, buckets as u64));
            }
        }
    }

    #[test]
    fn capacity_is_littles_law_rounded_to_nearest() {
        // 50 completions per 100 ms bucket = 500/s, at 30 ms each: 15 in flight.
        let e = Estimate { max_count: 50, min_latency_sum_us: 60_000, min_latency_count: 2 };
        assert_eq!(e.capacity(100_000_000, 1.0), 15);
        assert_eq!(e.capacity(100_000_000, 1.25), 19); // 18.75
        // 500/s at 31 ms: 15.5 rounds up to 16; at 30.9 ms, 15.45 rounds down.
        let e = Estimate { max_count: 50, min_latency_sum_us: 31_000, min_latency_count: 1 };
        assert_eq!(e.capacity(100_000_000, 1.0), 16);
        let e = Estimate { max_count: 50, min_latency_sum_us: 30_900, min_latency_count: 1 };
        assert_eq!(e.capacity(100_000_000, 1.0), 15);
        // Nothing overflows.
        let e =
            Estimate { max_count: u64::MAX, min_latency_sum_us: u64::MAX, min_latency_count: 1 };
        assert_eq!(e.capacity(1, 10.0), u64::MAX);
    }

    #[test]
    fn a_late_sample_for_a_bucket_that_left_the_window_is_dropped() {
        let window = Window::new(2, 1000);
        window.record(10, 1000);
        // Slot of bucket 10 is reused by bucket 13; a descheduled writer for 10 arrives late.
        window.record(13, 2000);
        window.record(10, 1000);
        let e = window.estimate(14).unwrap();
        assert_eq!((e.max_count, e.min_latency_nanos()), (1, 2000));
    }

    #[test]
    fn values_saturate_instead_of_spilling_into_the_tag() {
        let word = AtomicU64::new(0);
        add(&word, 7, VALUE_MAX - 1, 4);
        add(&word, 7, 5, 4);
        assert_eq!(read(&word, 7), VALUE_MAX);
        assert_eq!(read(&word, 8), 0);
    }
}
