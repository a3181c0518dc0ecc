//! What happened to each request: per phase and operation, latency histograms (from the
//! intended send time and from the actual send), outcomes and status codes; per second, a
//! timeline for the progress line and for plots.
//!
//! Every request is recorded exactly once, by the task that saw its outcome, so counts add
//! up: `attempts = answered + timed out + failed + dropped`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use levee::core::{LatencyRecorder, nanos};
use parking_lot::Mutex;
use serde::Serialize;

use super::operation::Operation;

/// How one request ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The shop answered with this status.
    Answered(u16),
    /// No complete answer within the request timeout.
    TimedOut,
    /// Connection refused or reset, or an unreadable answer.
    Failed,
    /// Not sent: `max_in_flight` requests were already outstanding (open loop).
    Dropped,
}

impl Outcome {
    /// Whether it counts as an error for the error rate: no answer, or an answer that says the
    /// shop could not serve the request (5xx, or 429 when the edge's limit refused it).
    /// Other 4xx (out of stock, say) are correct answers.
    #[must_use]
    pub fn is_error(self) -> bool {
        match self {
            Self::Answered(status) => status == 429 || status >= 500,
            Self::TimedOut | Self::Failed | Self::Dropped => true,
        }
    }
}

/// The requests of one operation in one phase.
pub(crate) struct Cell {
    /// From the intended send time to the outcome: the coordinated-omission-corrected latency.
    pub(crate) latency: LatencyRecorder,
    /// The same, of the answers that were not errors only: what the requests the shop served
    /// saw, apart from the fast refusals of a shop that sheds.
    pub(crate) ok_latency: LatencyRecorder,
    pub(crate) attempts: AtomicU64,
    pub(crate) errors: AtomicU64,
    pub(crate) timed_out: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) dropped: AtomicU64,
    pub(crate) statuses: Mutex<BTreeMap<u16, u64>>,
}

impl Cell {
    fn new() -> Self {
        Self {
            // One stripe (~270 KiB): a handful of tasks record into it, far from contended.
            latency: LatencyRecorder::with_stripes(1),
            ok_latency: LatencyRecorder::with_stripes(1),
            attempts: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            timed_out: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            statuses: Mutex::new(BTreeMap::new()),
        }
    }
}

/// This second's requests of one operation (emptied at each tick).
struct Live {
    latency: LatencyRecorder,
    attempts: AtomicU64,
    errors: AtomicU64,
}

/// One operation's second on the timeline (by completion time).
#[derive(Debug, Clone, Serialize)]
pub struct TimelinePoint {
    /// End of the interval, in seconds from the start of the run.
    pub t_s: f64,
    /// The operation.
    pub operation: Operation,
    /// Requests whose outcome came in the interval.
    pub attempts: u64,
    /// Of those, errors.
    pub errors: u64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
    /// Largest latency, ms.
    pub max_ms: f64,
}

/// Everything recorded during a run.
pub(crate) struct Stats {
    /// `phases × Operation::ALL.len()` cells, phase-major.
    cells: Vec<Cell>,
    /// From the actual send to the outcome, per operation (service time as the shop's
    /// clients would see it without queueing in the generator).
    service: Vec<LatencyRecorder>,
    /// Actual send minus intended send: how far behind schedule the generator ran.
    send_lag: LatencyRecorder,
    live: Vec<Live>,
    timeline: Mutex<Vec<TimelinePoint>>,
    in_flight: AtomicU64,
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl Stats {
    pub(crate) fn new(phases: usize) -> Self {
        let ops = Operation::ALL.len();
        Self {
            cells: (0..phases * ops).map(|_| Cell::new()).collect(),
            service: (0..ops).map(|_| LatencyRecorder::with_stripes(1)).collect(),
            send_lag: LatencyRecorder::with_stripes(1),
            live: (0..ops)
                .map(|_| Live {
                    latency: LatencyRecorder::with_stripes(1),
                    attempts: AtomicU64::new(0),
                    errors: AtomicU64::new(0),
                })
                .collect(),
            timeline: Mutex::new(Vec::new()),
            in_flight: AtomicU64::new(0),
        }
    }

    pub(crate) fn cell(&self, phase: usize, op: Operation) -> &Cell {
        &self.cells[phase * Operation::ALL.len() + op.index()]
    }

    /// A request is about to be sent `lag` after its intended time.
    pub(crate) fn sending(&self, lag: Duration) {
        self.send_lag.record(lag);
        self.in_flight.fetch_add(1, Ordering::Relaxed);
    }

    /// Requests sent whose outcome is not in yet.
    pub(crate) fn in_flight(&self) -> u64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records a request that was sent: `latency` from its intended send time, `service`
    /// from its actual send.
    pub(crate) fn record(
        &self,
        phase: usize,
        op: Operation,
        outcome: Outcome,
        latency: Duration,
        service: Duration,
    ) {
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.service[op.index()].record(service);
        self.count(phase, op, outcome, Some(latency));
    }

    /// Records a request that was not sent (the in-flight bound was reached).
    pub(crate) fn record_dropped(&self, phase: usize, op: Operation) {
        self.count(phase, op, Outcome::Dropped, None);
    }

    fn count(&self, phase: usize, op: Operation, outcome: Outcome, latency: Option<Duration>) {
        let cell = self.cell(phase, op);
        let live = &self.live[op.index()];
        let error = outcome.is_error();
        cell.attempts.fetch_add(1, Ordering::Relaxed);
        live.attempts.fetch_add(1, Ordering::Relaxed);
        if error {
            cell.errors.fetch_add(1, Ordering::Relaxed);
            live.errors.fetch_add(1, Ordering::Relaxed);
        }
        if let Some(latency) = latency {
            cell.latency.record_nanos(nanos(latency));
            live.latency.record_nanos(nanos(latency));
            if !error {
                cell.ok_latency.record_nanos(nanos(latency));
            }
        }
        match outcome {
            Outcome::Answered(status) => *cell.statuses.lock().entry(status).or_default() += 1,
            Outcome::TimedOut => _ = cell.timed_out.fetch_add(1, Ordering::Relaxed),
            Outcome::Failed => _ = cell.failed.fetch_add(1, Ordering::Relaxed),
            Outcome::Dropped => _ = cell.dropped.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Closes the current interval at `t` (from the start of the run): one timeline point per
    /// operation that had requests. Returns the interval's `(attempts, errors)` over all
    /// operations.
    pub(crate) fn tick(&self, t: Duration) -> (u64, u64) {
        let mut points = Vec::new();
        let (mut attempts, mut errors) = (0, 0);
        for (op, live) in Operation::ALL.into_iter().zip(&self.live) {
            let snap = live.latency.snapshot_and_reset();
            let a = live.attempts.swap(0, Ordering::Relaxed);
            let e = live.errors.swap(0, Ordering::Relaxed);
            if a == 0 {
                continue;
            }
            attempts += a;
            errors += e;
            points.push(TimelinePoint {
                t_s: t.as_secs_f64(),
                operation: op,
                attempts: a,
                errors: e,
                p50_ms: ms(snap.p50),
                p99_ms: ms(snap.p99),
                max_ms: ms(snap.max),
            });
        }
        self.timeline.lock().extend(points);
        (attempts, errors)
    }

    pub(crate) fn timeline(&self) -> Vec<TimelinePoint> {
        self.timeline.lock().clone()
    }

    pub(crate) fn service(&self, op: Operation) -> Histogram<u64> {
        self.service[op.index()].merged()
    }

    pub(crate) fn send_lag(&self) -> Histogram<u64> {
        self.send_lag.merged()
    }

    /// The cells of the given phase (all phases when `None`) and operation (all when `None`).
    pub(crate) fn select(
        &self,
        phase: Option<usize>,
        op: Option<Operation>,
    ) -> impl Iterator<Item = &Cell> + Clone + '_ {
        let ops = Operation::ALL.len();
        self.cells
            .iter()
            .enumerate()
            .filter(move |(i, _)| {
                phase.is_none_or(|p| i / ops == p) && op.is_none_or(|o| i % ops == o.index())
            })
            .map(|(_, c)| c)
    }
}

/// Sums of some cells.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) attempts: u64,
    pub(crate) errors: u64,
    pub(crate) timed_out: u64,
    pub(crate) failed: u64,
    pub(crate) dropped: u64,
    pub(crate) statuses: BTreeMap<u16, u64>,
}

impl Tally {
    /// The counts and the merged latency histogram of `cells`.
    pub(crate) fn of<'a>(cells: impl Iterator<Item = &'a Cell>) -> (Self, Histogram<u64>) {
        let mut tally = Self::default();
        let mut latency = Vec::new();
        for c in cells {
            tally.attempts += c.attempts.load(Ordering::Relaxed);
            tally.errors += c.errors.load(Ordering::Relaxed);
            tally.timed_out += c.timed_out.load(Ordering::Relaxed);
            tally.failed += c.failed.load(Ordering::Relaxed);
            tally.dropped += c.dropped.load(Ordering::Relaxed);
            for (status, n) in c.statuses.lock().iter() {
                *tally.statuses.entry(*status).or_default() += n;
            }
            latency.push(&c.latency);
        }
        (tally, merged(latency))
    }

    /// The merged histogram of the latencies of `cells`' answers that were not errors.
    pub(crate) fn ok_latency<'a>(cells: impl Iterator<Item = &'a Cell>) -> Histogram<u64> {
        merged(cells.map(|c| &c.ok_latency))
    }

    /// Errors over attempts (0 when nothing was attempted).
    pub(crate) fn error_rate(&self) -> f64 {
        if self.attempts == 0 { 0.0 } else { self.errors as f64 / self.attempts as f64 }
    }
}

/// One histogram of every recorder's samples (an empty one for none).
fn merged<'a>(recorders: impl IntoIterator<Item = &'a LatencyRecorder>) -> Histogram<u64> {
    let mut total: Option<Histogram<u64>> = None;
    for r in recorders {
        let h = r.merged();
        match &mut total {
            // Every recorder shares the same bounds, so adding cannot fail.
            Some(total) => total.add(&h).expect("recorders share bounds"),
            None => total = Some(h),
        }
    }
    total.unwrap_or_else(|| LatencyRecorder::with_stripes(1).merged())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outcomes_add_up_per_phase_and_operation() {
        let stats = Stats::new(2);
        let ms = Duration::from_millis;
        stats.sending(ms(0));
        stats.record(0, Operation::Search, Outcome::Answered(200), ms(5), ms(4));
        stats.sending(ms(1));
        stats.record(0, Operation::Search, Outcome::Answered(503), ms(50), ms(40));
        stats.sending(ms(0));
        stats.record(1, Operation::Search, Outcome::TimedOut, ms(900), ms(900));
        stats.record_dropped(1, Operation::PlaceOrder);
        stats.sending(ms(0));
        stats.record(1, Operation::PlaceOrder, Outcome::Answered(409), ms(7), ms(7));
        assert_eq!(stats.in_flight(), 0);

        let (search, h) = Tally::of(stats.select(None, Some(Operation::Search)));
        assert_eq!((search.attempts, search.errors, search.timed_out), (3, 2, 1));
        assert_eq!(search.statuses, BTreeMap::from([(200, 1), (503, 1)]));
        assert_eq!(h.len(), 3);
        // Only the 200 among the answers that were not errors.
        let ok = Tally::ok_latency(stats.select(None, Some(Operation::Search)));
        assert_eq!(ok.len(), 1);
        assert!((5_000_000..5_100_000).contains(&ok.max()), "{}", ok.max());
        let (phase1, h) = Tally::of(stats.select(Some(1), None));
        assert_eq!((phase1.attempts, phase1.errors, phase1.dropped), (3, 2, 1));
        // A dropped request has no latency; the out-of-stock answer is not an error.
        assert_eq!(h.len(), 2);
        assert!((phase1.error_rate() - 2.0 / 3.0).abs() < 1e-12);

        let (attempts, errors) = stats.tick(Duration::from_secs(1));
        assert_eq!((attempts, errors), (5, 3));
        let timeline = stats.timeline();
        assert_eq!(timeline.len(), 2);
        assert_eq!((timeline[0].operation, timeline[0].attempts), (Operation::Search, 3));
        assert!((timeline[0].max_ms - 900.0).abs() < 1.0);
        assert_eq!(stats.tick(Duration::from_secs(2)), (0, 0));
        assert_eq!(stats.timeline().len(), 2);
    }
}
