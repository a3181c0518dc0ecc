//! Drives a `FixedWindowLimiter` and a `SlidingWindowLimiter` side by side with arbitrary
//! quotas and sequences of clock moves, `check`, `check_n` and (sliding) `record`, each
//! against a map of counts per time bucket: a fixed window is one bucket as long as the
//! window, a sliding window `buckets` buckets of `window / buckets` (rounded up). After every
//! step the decision, the refusal's earliest time (the first bucket start at which enough old
//! buckets have left), `count`, `remaining` and the counters must be equal; and no run of
//! `buckets` consecutive buckets ever holds more than the limit through `check_n`.
#![no_main]

use std::collections::BTreeMap;
use std::time::Duration;

use arbitrary::Arbitrary;
use levee_core::{Clock, ManualClock};
use levee_limit::{
    CheckNError, FixedWindowLimiter, MAX_BUCKETS, MAX_WINDOW_LIMIT, SlidingWindowLimiter,
    WindowQuota,
};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, Arbitrary)]
enum Limit {
    Small(u8),
    Any(u32),
}

#[derive(Debug, Arbitrary)]
struct Case {
    limit: Limit,
    /// Window length in microseconds.
    window_us: u32,
    buckets: u16,
    start: u32,
    ops: Vec<Op>,
}

#[derive(Debug, Arbitrary)]
enum Op {
    /// `x / 64` of a bucket.
    AdvanceFraction(u8),
    /// Whole buckets (of the sliding window).
    AdvanceBuckets(u8),
    Nanos(u16),
    Check,
    CheckN(u8),
    /// Counts cells in the sliding window without a limit.
    Record(u32),
}

/// Counts per bucket; the window at bucket `b` is buckets `b - span + 1 ..= b`.
struct Buckets {
    bucket: u64,
    span: u64,
    limit: u32,
    counts: BTreeMap<u64, u32>,
    admitted: u64,
    rejected: u64,
}

impl Buckets {
    fn new(bucket: u64, span: u64, limit: u32) -> Self {
        Self { bucket, span, limit, counts: BTreeMap::new(), admitted: 0, rejected: 0 }
    }

    /// Cells in the window that ends with bucket `b`, counting only buckets from `from` on.
    fn sum(&self, b: u64, from: u64) -> u64 {
        let oldest = (b + 1).saturating_sub(self.span).max(from);
        if oldest > b {
            return 0;
        }
        self.counts.range(oldest..=b).map(|(_, &c)| u64::from(c)).sum()
    }

    fn count(&self, now: u64) -> u64 {
        let b = now / self.bucket;
        self.sum(b, 0)
    }

    /// `n` cells at `now`: `Ok`, `Err(Some(earliest))`, or `Err(None)` when `n` exceeds the
    /// limit.
    fn check_n(&mut self, n: u32, now: u64) -> Result<(), Option<u64>> {
        if n > self.limit {
            self.rejected += 1;
            return Err(None);
        }
        if n == 0 {
            return Ok(());
        }
        let b = now / self.bucket;
        let limit = u64::from(self.limit);
        if self.sum(b, 0) + u64::from(n) <= limit {
            *self.counts.entry(b).or_default() += n;
            self.admitted += u64::from(n);
            return Ok(());
        }
        self.rejected += 1;
        // At the start of bucket b + k the window has lost buckets up to b + k - span.
        let k = (1..=self.span)
            .find(|k| self.sum(b, (b + k + 1).saturating_sub(self.span)) + u64::from(n) <= limit)
            .expect("once every bucket has left, n <= limit fits");
        Err(Some((b + k) * self.bucket))
    }

    /// `record`: counted unless the bucket would pass the largest count a bucket holds.
    fn record(&mut self, n: u32, now: u64) {
        let n = n.min(MAX_WINDOW_LIMIT);
        let count = self.counts.entry(now / self.bucket).or_default();
        if u64::from(*count) + u64::from(n) <= u64::from(MAX_WINDOW_LIMIT) {
            *count += n;
        }
    }
}

fn compare(got: Result<(), CheckNError>, want: Result<(), Option<u64>>, n: u32, now: u64) {
    match (got, want) {
        (Ok(()), Ok(())) => {}
        (Err(CheckNError::Throttled(r)), Err(Some(earliest))) => {
            assert_eq!(r.earliest(), earliest, "earliest of {n} at {now}");
            assert_eq!(r.decided_at(), now);
        }
        (Err(CheckNError::InsufficientCapacity(e)), Err(None)) => assert_eq!(e.requested, n),
        (got, want) => panic!("{n} cells at {now}: levee {got:?}, model {want:?}"),
    }
}

fuzz_target!(|case: Case| {
    let limit = match case.limit {
        Limit::Small(n) => u32::from(n),
        Limit::Any(n) => n,
    };
    let window = u64::from(case.window_us) * 1_000;
    let buckets = u32::from(case.buckets);
    let quota = WindowQuota::new(limit, Duration::from_nanos(window));
    let clock = ManualClock::starting_at(u64::from(case.start) << 8);
    let fixed =
        FixedWindowLimiter::builder(quota).clock(clock.clone()).count_admitted(true).build();
    let sliding = SlidingWindowLimiter::builder(quota)
        .buckets(buckets)
        .clock(clock.clone())
        .count_admitted(true)
        .build();
    let quota_ok = (1..=MAX_WINDOW_LIMIT).contains(&limit) && window > 0;
    assert_eq!(fixed.is_ok(), quota_ok, "{quota:?}");
    assert_eq!(sliding.is_ok(), quota_ok && (1..=MAX_BUCKETS).contains(&buckets));
    let (Ok(fixed), Ok(sliding)) = (fixed, sliding) else { return };

    let bucket = window.div_ceil(u64::from(buckets));
    assert_eq!(sliding.window(), Duration::from_nanos(bucket * u64::from(buckets)));
    let mut fixed_model = Buckets::new(window, 1, limit);
    let mut sliding_model = Buckets::new(bucket, u64::from(buckets), limit);
    // Cells admitted through `check_n` only, per bucket: the limit's promise.
    let mut through_checks = Buckets::new(bucket, u64::from(buckets), limit);

    for op in case.ops.iter().take(2_000) {
        let now = clock.now();
        match *op {
            Op::AdvanceFraction(x) => {
                clock.advance_nanos(bucket * u64::from(x) / 64);
            }
            Op::AdvanceBuckets(k) => {
                clock.advance_nanos(bucket * u64::from(k));
            }
            Op::Nanos(ns) => {
                clock.advance_nanos(u64::from(ns));
            }
            Op::Check | Op::CheckN(_) => {
                let n = match *op {
                    Op::CheckN(n) => u32::from(n),
                    _ => 1,
                };
                let got = match *op {
                    Op::CheckN(_) => fixed.check_n(n),
                    _ => fixed.check().map_err(Into::into),
                };
                compare(got, fixed_model.check_n(n, now), n, now);
                let got = match *op {
                    Op::CheckN(_) => sliding.check_n(n),
                    _ => sliding.check().map_err(Into::into),
                };
                let want = sliding_model.check_n(n, now);
                if want.is_ok() && n > 0 {
                    *through_checks.counts.entry(now / bucket).or_default() += n;
                }
                compare(got, want, n, now);
            }
            Op::Record(n) => {
                sliding.record(n);
                sliding_model.record(n, now);
            }
        }
        let now = clock.now();
        let fixed_count = fixed_model.count(now);
        assert_eq!(u64::from(fixed.count()), fixed_count, "fixed count at {now}");
        assert_eq!(u64::from(fixed.remaining()), u64::from(limit).saturating_sub(fixed_count));
        let sliding_count = sliding_model.count(now);
        assert_eq!(sliding.count(), sliding_count, "sliding count at {now}");
        assert_eq!(sliding.remaining(), u64::from(limit).saturating_sub(sliding_count));
        for (limiter, model) in [(fixed.stats(), &fixed_model), (sliding.stats(), &sliding_model)] {
            assert_eq!(
                (limiter.admitted, limiter.rejected),
                (Some(model.admitted), model.rejected)
            );
        }
    }
    // The promise: no run of `buckets` consecutive buckets holds more than the limit. A run's
    // total only falls between buckets that hold cells, so the runs ending at those suffice.
    for &end in through_checks.counts.keys() {
        assert!(through_checks.sum(end, 0) <= u64::from(limit), "over the limit at bucket {end}");
    }
});
