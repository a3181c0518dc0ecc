//! The time-based window: the calls of the last `length`, in `B` buckets of `length / B`.
//!
//! How it works (lock-free, O(1) amortised per record):
//!
//! - Time is cut into bucket periods `idx = (now - origin) / width`. Period `idx` lives in
//!   bucket `idx mod B`, whose `stamp` says which period it currently holds.
//! - The window's totals (calls, failures, slow calls) and each bucket's counts are
//!   generation-tagged counters (`tagged.rs`): a new closed generation starts from zero and a
//!   late writer of an old one is refused.
//! - A recorder first makes sure no expired period is still counted: `head` is the latest
//!   period seen; whoever moves it forward evicts the periods in between (at most B). To evict,
//!   a thread wins the CAS of a bucket's `stamp` to the new period, then empties the bucket's
//!   counters and subtracts what it took from the totals of the generation that wrote it.
//! - It then adds its call to the totals first and to its bucket second, counter by counter
//!   (calls, failures, slow calls). So a total is never below the sum of its buckets and an
//!   eviction never drives it negative. A call recorded in the very instant its bucket turns
//!   over may stay with the old period (and leave with it), land in the new one, or, since
//!   its counters are separate words, be split between the two (its call kept, its failure
//!   gone, say). It is never counted twice, totals and buckets always agree, and
//!   single-threaded use is exact.
//! - A call whose period has already left the window (a thread that read the clock long
//!   before recording) is not counted.

use levee_core::sync::{AtomicU64, CachePadded, Ordering};

use super::{Sample, Tally, tagged};

#[derive(Debug)]
struct Bucket {
    stamp: AtomicU64,
    calls: AtomicU64,
    failed: AtomicU64,
    slow: AtomicU64,
}

#[derive(Debug)]
pub(crate) struct TimeWindow {
    origin: u64,
    width: u64,
    buckets: u64,
    head: CachePadded<AtomicU64>,
    calls: CachePadded<AtomicU64>,
    failed: AtomicU64,
    slow: AtomicU64,
    ring: Box<[Bucket]>,
}

impl TimeWindow {
    /// A window of `length` nanoseconds in `buckets` buckets, periods counted from `origin`.
    pub(crate) fn new(length: u64, buckets: u32, origin: u64) -> Self {
        let ring = (0..buckets)
            .map(|_| Bucket {
                stamp: AtomicU64::new(0),
                calls: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                slow: AtomicU64::new(0),
            })
            .collect();
        Self {
            origin,
            width: (length / u64::from(buckets)).max(1),
            buckets: u64::from(buckets),
            head: CachePadded::new(AtomicU64::new(0)),
            calls: CachePadded::new(AtomicU64::new(0)),
            failed: AtomicU64::new(0),
            slow: AtomicU64::new(0),
            ring,
        }
    }

    #[inline]
    fn period(&self, now: u64) -> u64 {
        now.saturating_sub(self.origin) / self.width
    }

    #[inline]
    fn slot(&self, period: u64) -> usize {
        (period % self.buckets) as usize
    }

    /// Moves the window to `period`, evicting every period that left it.
    fn advance(&self, period: u64) {
        let mut head = self.head.load(Ordering::Relaxed);
        while period > head {
            match self.head.compare_exchange_weak(
                head,
                period,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    let first = (head + 1).max((period + 1).saturating_sub(self.buckets));
                    for p in first..=period {
                        self.evict_for(p, self.slot(p));
                    }
                    return;
                }
                Err(actual) => head = actual,
            }
        }
    }

    /// Makes `period`'s bucket (at `slot`) hold `period`, emptying what it held before.
    /// Returns false if the bucket already holds a later period.
    fn evict_for(&self, period: u64, slot: usize) -> bool {
        let bucket = &self.ring[slot];
        let mut stamp = bucket.stamp.load(Ordering::Relaxed);
        loop {
            if stamp == period {
                return true;
            }
            if stamp > period {
                return false;
            }
            match bucket.stamp.compare_exchange_weak(
                stamp,
                period,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => stamp = actual,
            }
        }
        for (counter, total) in [
            (&bucket.calls, &*self.calls),
            (&bucket.failed, &self.failed),
            (&bucket.slow, &self.slow),
        ] {
            let (generation, n) = tagged::take(counter);
            if n > 0 {
                tagged::sub(total, generation, n);
            }
        }
        true
    }

    /// Records one call of generation `generation` made at `now`; see [`super::Window::record`].
    pub(crate) fn record(&self, generation: u32, sample: Sample, now: u64) -> Option<Tally> {
        let period = self.period(now);
        self.advance(period);
        let slot = self.slot(period);
        if !self.evict_for(period, slot) {
            return None;
        }
        let calls = tagged::add(&self.calls, generation, 1)?;
        let failed = if sample.failed {
            tagged::add(&self.failed, generation, 1)?
        } else {
            tagged::read(&self.failed, generation)
        };
        let slow = if sample.slow {
            tagged::add(&self.slow, generation, 1)?
        } else {
            tagged::read(&self.slow, generation)
        };
        let bucket = &self.ring[slot];
        tagged::add(&bucket.calls, generation, 1)?;
        if sample.failed {
            tagged::add(&bucket.failed, generation, 1)?;
        }
        if sample.slow {
            tagged::add(&bucket.slow, generation, 1)?;
        }
        // Calls leave the window as time passes, so a success can find the remaining calls
        // over a threshold: judge every record, as Resilience4j does.
        Some(Tally { calls, failed, slow })
    }

    /// Keeps the tags fresh at a transition to `generation`: the totals, and one bucket (a
    /// different one each generation, so every bucket is visited within `2 * buckets`
    /// consecutive generations); see `CountWindow::refresh`.
    pub(crate) fn refresh(&self, generation: u32) {
        tagged::retag(&self.calls, generation);
        tagged::retag(&self.failed, generation);
        tagged::retag(&self.slow, generation);
        let bucket = &self.ring[(u64::from(generation) % self.buckets) as usize];
        for counter in [&bucket.calls, &bucket.failed, &bucket.slow] {
            tagged::retag(counter, generation);
        }
    }

    /// What generation `generation`'s window holds at `now`.
    pub(crate) fn tally(&self, generation: u32, now: u64) -> Tally {
        self.advance(self.period(now));
        Tally {
            calls: tagged::read(&self.calls, generation),
            failed: tagged::read(&self.failed, generation),
            slow: tagged::read(&self.slow, generation),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    const OK: Sample = Sample { failed: false, slow: false };
    const FAIL: Sample = Sample { failed: true, slow: false };

    const SEC: u64 = 1_000_000_000;

    #[test]
    fn calls_leave_with_their_bucket() {
        // 10 s in 10 buckets.
        let w = TimeWindow::new(10 * SEC, 10, 0);
        assert_eq!(w.record(0, FAIL, 0), Some(Tally { calls: 1, failed: 1, slow: 0 }));
        w.record(0, OK, SEC / 2);
        w.record(0, FAIL, 5 * SEC);
        assert_eq!(w.tally(0, 9 * SEC + SEC / 2), Tally { calls: 3, failed: 2, slow: 0 });
        assert_eq!(w.tally(0, 10 * SEC), Tally { calls: 1, failed: 1, slow: 0 }, "period 0 left");
        assert_eq!(w.tally(0, 15 * SEC), Tally::default());
        w.record(0, OK, 1000 * SEC);
        assert_eq!(w.tally(0, 1000 * SEC), Tally { calls: 1, failed: 0, slow: 0 }, "long gap");
    }

    #[test]
    fn late_and_stale_records_are_dropped() {
        let w = TimeWindow::new(10 * SEC, 10, 0);
        w.record(0, OK, 20 * SEC);
        assert_eq!(w.record(0, FAIL, 5 * SEC), None, "period already left the window");
        assert_eq!(w.record(2, FAIL, 20 * SEC), Some(Tally { calls: 1, failed: 1, slow: 0 }));
        assert_eq!(w.record(0, FAIL, 20 * SEC), None, "old generation");
        assert_eq!(w.tally(2, 20 * SEC), Tally { calls: 1, failed: 1, slow: 0 });
        assert_eq!(w.tally(0, 20 * SEC), Tally::default());
    }

    #[test]
    fn every_record_is_judged() {
        let w = TimeWindow::new(10 * SEC, 10, 0);
        w.record(0, OK, 0);
        w.record(0, FAIL, 5 * SEC);
        // The early success has left: the new success sees one failure in two calls.
        assert_eq!(w.record(0, OK, 11 * SEC), Some(Tally { calls: 2, failed: 1, slow: 0 }));
    }
}
