//! What the comparison keeps of each run: per phase, throughput, error rate and latency (of
//! every request and of the operation in focus); per second, the focus operation's latency;
//! and what became of the orders placed ([`OrderAudit`]).

use serde::Serialize;

use super::audit::OrderAudit;
use crate::loadgen::{Latency, Operation, Report};

/// One side of the comparison: one run against one shop.
#[derive(Debug, Clone, Serialize)]
pub struct Side {
    /// `levee on` or `levee off`.
    pub name: String,
    /// Per phase of the scenario.
    pub phases: Vec<PhaseRow>,
    /// The focus operation's latency per second of the run.
    pub series: Vec<Point>,
    /// The orders the run placed, found again in the shop afterwards.
    pub orders: Option<OrderAudit>,
}

/// One phase of one run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PhaseRow {
    /// The phase's name.
    pub phase: String,
    /// Start, seconds from the start of the run.
    pub from_s: f64,
    /// End.
    pub to_s: f64,
    /// Answers that were not errors, per second (every operation).
    pub ok_per_s: f64,
    /// Errors over requests due (every operation).
    pub error_rate: f64,
    /// Every operation's latency from the intended send time, ms.
    pub all: Latency,
    /// The focus operation's error rate (0 when it was not sent).
    pub focus_error_rate: f64,
    /// The focus operation's latency (`count` 0 when it was not sent).
    pub focus: Latency,
}

/// The focus operation in one second of a run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Point {
    /// End of the second, seconds from the start of the run.
    pub t_s: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 99th percentile, ms.
    pub p99_ms: f64,
}

impl Side {
    /// The side called `name`, from its run's `report`, with `operation` in focus.
    #[must_use]
    pub fn of(name: &str, report: &Report, operation: Operation) -> Self {
        let phases = report
            .phases
            .iter()
            .map(|p| {
                let focus = p.operations.get(&operation);
                PhaseRow {
                    phase: p.name.clone(),
                    from_s: p.from_s,
                    to_s: p.to_s,
                    ok_per_s: p.all.throughput_per_s,
                    error_rate: p.all.error_rate,
                    all: p.all.latency_ms,
                    focus_error_rate: focus.map_or(0.0, |o| o.error_rate),
                    focus: focus.map(|o| o.latency_ms).unwrap_or_default(),
                }
            })
            .collect();
        let series = report
            .timeline
            .iter()
            .filter(|t| t.operation == operation)
            .map(|t| Point { t_s: t.t_s, p50_ms: t.p50_ms, p99_ms: t.p99_ms })
            .collect();
        Self { name: name.to_owned(), phases, series, orders: None }
    }
}
