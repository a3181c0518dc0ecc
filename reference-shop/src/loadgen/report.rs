//! The run's report: totals, per operation and per phase, the timeline, the fault switches,
//! the objectives, and what the shop's resilience mechanisms did; as text and as JSON.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use hdrhistogram::Histogram;
use levee::core::LatencySnapshot;
use serde::Serialize;
use serde_json::Value;

use super::operation::Operation;
use super::scenario::Scenario;
use super::slo::Verdict;
use super::stats::{Cell, Stats, Tally, TimelinePoint};
use super::switches::AppliedSwitch;

/// Latency percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct Latency {
    /// Samples.
    pub count: u64,
    /// Mean.
    pub mean: f64,
    /// Median.
    pub p50: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 99th percentile.
    pub p99: f64,
    /// 99.9th percentile.
    pub p999: f64,
    /// Largest.
    pub max: f64,
}

impl Latency {
    pub(crate) fn of(h: &Histogram<u64>) -> Self {
        let s = LatencySnapshot::from_histogram(h);
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        Self {
            count: s.count,
            mean: ms(s.mean),
            p50: ms(s.p50),
            p90: ms(s.p90),
            p99: ms(s.p99),
            p999: ms(s.p999),
            max: ms(s.max),
        }
    }
}

/// Some requests' outcomes and latency.
#[derive(Debug, Clone, Serialize)]
pub struct Outcomes {
    /// Requests due (sent or dropped).
    pub attempts: u64,
    /// Of those, errors (no answer, 5xx, 429).
    pub errors: u64,
    /// `errors / attempts`.
    pub error_rate: f64,
    /// Answers that were not errors, per second of the span.
    pub throughput_per_s: f64,
    /// No answer within the request timeout.
    pub timed_out: u64,
    /// Connection or protocol failures.
    pub failed: u64,
    /// Not sent: the in-flight bound was reached.
    pub dropped: u64,
    /// Answers by status code.
    pub statuses: BTreeMap<u16, u64>,
    /// From the intended send time to the outcome (coordinated omission corrected), ms.
    pub latency_ms: Latency,
    /// The same, of the answers that were not errors only (the requests the shop served,
    /// apart from its fast refusals when it sheds), ms.
    pub ok_latency_ms: Latency,
}

impl Outcomes {
    fn of<'a>(cells: impl Iterator<Item = &'a Cell> + Clone, span: Duration) -> Self {
        let (tally, latency) = Tally::of(cells.clone());
        let ok_latency = Tally::ok_latency(cells);
        let ok = tally.attempts - tally.errors;
        Self {
            attempts: tally.attempts,
            errors: tally.errors,
            error_rate: tally.error_rate(),
            throughput_per_s: ok as f64 / span.as_secs_f64().max(1e-9),
            timed_out: tally.timed_out,
            failed: tally.failed,
            dropped: tally.dropped,
            statuses: tally.statuses,
            latency_ms: Latency::of(&latency),
            ok_latency_ms: Latency::of(&ok_latency),
        }
    }
}

/// One operation over the whole run.
#[derive(Debug, Clone, Serialize)]
pub struct OperationReport {
    /// Outcomes and latency from the intended send.
    #[serde(flatten)]
    pub outcomes: Outcomes,
    /// From the actual send to the outcome: what a closed-loop client would have reported.
    pub service_ms: Latency,
}

/// One phase.
#[derive(Debug, Clone, Serialize)]
pub struct PhaseReport {
    /// Its name.
    pub name: String,
    /// Start, seconds from the start of the run.
    pub from_s: f64,
    /// End.
    pub to_s: f64,
    /// Scheduled rate at its start and end.
    pub rate: [f64; 2],
    /// Every operation together.
    #[serde(flatten)]
    pub all: Outcomes,
    /// Per operation (those sent).
    pub operations: BTreeMap<Operation, Outcomes>,
}

/// Everything a run found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// `open` or `closed`.
    pub mode: String,
    /// The shop.
    pub target: String,
    /// The scenario's description.
    pub description: String,
    /// Wall time of the load, seconds (to the last answer).
    pub elapsed_s: f64,
    /// Requests the schedule planned.
    pub planned: u64,
    /// Whether a stop (Ctrl-C) cut it short.
    pub interrupted: bool,
    /// Every request together.
    #[serde(flatten)]
    pub all: Outcomes,
    /// How late the generator sent requests against their schedule, ms.
    pub send_lag_ms: Latency,
    /// Per operation (those sent).
    pub operations: BTreeMap<Operation, OperationReport>,
    /// Per phase.
    pub phases: Vec<PhaseReport>,
    /// Per second and operation, by completion time.
    pub timeline: Vec<TimelinePoint>,
    /// Fault switches as they happened.
    pub faults: Vec<AppliedSwitch>,
    /// The objectives.
    pub slo: Verdict,
    /// `GET /admin/status` after the run (`null` if it could not be read).
    pub status: Value,
    /// Ids of the orders the shop acknowledged with 201, so that a check afterwards can find
    /// each one in the shop.
    pub placed_orders: Vec<i64>,
}

/// What [`Report::build`] needs besides the stats.
pub(crate) struct Context<'a> {
    pub(crate) scenario: &'a Scenario,
    pub(crate) mode: &'a str,
    pub(crate) target: &'a str,
    pub(crate) elapsed: Duration,
    pub(crate) interrupted: bool,
    pub(crate) faults: Vec<AppliedSwitch>,
    pub(crate) slo: Verdict,
    pub(crate) status: Value,
    pub(crate) placed_orders: Vec<i64>,
}

impl Report {
    pub(crate) fn build(stats: &Stats, cx: Context<'_>) -> Self {
        let scenario = cx.scenario;
        let all = Outcomes::of(stats.select(None, None), cx.elapsed);
        let mut operations = BTreeMap::new();
        for op in Operation::ALL {
            let outcomes = Outcomes::of(stats.select(None, Some(op)), cx.elapsed);
            if outcomes.attempts > 0 {
                operations.insert(
                    op,
                    OperationReport { outcomes, service_ms: Latency::of(&stats.service(op)) },
                );
            }
        }
        let phases = scenario
            .phases()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let mut per_op = BTreeMap::new();
                for op in Operation::ALL {
                    let outcomes = Outcomes::of(stats.select(Some(i), Some(op)), p.duration);
                    if outcomes.attempts > 0 {
                        per_op.insert(op, outcomes);
                    }
                }
                PhaseReport {
                    name: p.name.clone(),
                    from_s: p.start.as_secs_f64(),
                    to_s: p.end().as_secs_f64(),
                    rate: [p.rate, p.rate_to],
                    all: Outcomes::of(stats.select(Some(i), None), p.duration),
                    operations: per_op,
                }
            })
            .collect();
        Self {
            mode: cx.mode.to_owned(),
            target: cx.target.to_owned(),
            description: scenario.description().to_owned(),
            elapsed_s: cx.elapsed.as_secs_f64(),
            planned: scenario.planned(),
            interrupted: cx.interrupted,
            all,
            send_lag_ms: Latency::of(&stats.send_lag()),
            operations,
            phases,
            timeline: stats.timeline(),
            faults: cx.faults,
            slo: cx.slo,
            status: cx.status,
            placed_orders: cx.placed_orders,
        }
    }

    /// Whether a fault switch failed (the run did not go as the scenario said).
    #[must_use]
    pub fn switch_failed(&self) -> bool {
        self.faults.iter().any(|f| f.error.is_some())
    }

    /// The report for a person.
    #[must_use]
    pub fn text(&self) -> String {
        let mut out = String::new();
        let _ = self.write_text(&mut out);
        out
    }

    fn write_text(&self, out: &mut String) -> std::fmt::Result {
        let a = &self.all;
        writeln!(
            out,
            "\n{} loop against {}: {} requests due ({} planned) in {:.1} s{}; {:.0} ok/s; {} errors ({:.2} %: {} timed out, {} failed, {} dropped)",
            self.mode,
            self.target,
            a.attempts,
            self.planned,
            self.elapsed_s,
            if self.interrupted { " (interrupted)" } else { "" },
            a.throughput_per_s,
            a.errors,
            a.error_rate * 100.0,
            a.timed_out,
            a.failed,
            a.dropped,
        )?;
        writeln!(
            out,
            "latency from each request's intended send time (coordinated omission corrected); sender lag p99 {:.2} ms, max {:.2} ms",
            self.send_lag_ms.p99, self.send_lag_ms.max
        )?;
        writeln!(
            out,
            "\n{:<16} {:>7} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9} {:>11}  statuses",
            "operation",
            "count",
            "errors",
            "p50 ms",
            "p90 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms",
            "service p99"
        )?;
        for (op, r) in &self.operations {
            let o = &r.outcomes;
            let l = &o.latency_ms;
            let statuses: Vec<String> =
                o.statuses.iter().map(|(s, n)| format!("{s}x{n}")).collect();
            writeln!(
                out,
                "{:<16} {:>7} {:>7} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>11.2}  {}",
                op.name(),
                o.attempts,
                o.errors,
                l.p50,
                l.p90,
                l.p99,
                l.p999,
                l.max,
                r.service_ms.p99,
                statuses.join(" ")
            )?;
        }
        if self.phases.len() > 1 {
            writeln!(
                out,
                "\n{:<16} {:>13} {:>9} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9}",
                "phase",
                "span s",
                "rate/s",
                "count",
                "errors",
                "ok/s",
                "p50 ms",
                "p99 ms",
                "ok p99"
            )?;
            for p in &self.phases {
                let rate = if p.rate[0] == p.rate[1] {
                    format!("{}", p.rate[0])
                } else {
                    format!("{}-{}", p.rate[0], p.rate[1])
                };
                writeln!(
                    out,
                    "{:<16} {:>13} {:>9} {:>7} {:>7.2}% {:>9.1} {:>9.2} {:>9.2} {:>9.2}",
                    p.name,
                    format!("{:.0}-{:.0}", p.from_s, p.to_s),
                    rate,
                    p.all.attempts,
                    p.all.error_rate * 100.0,
                    p.all.throughput_per_s,
                    p.all.latency_ms.p50,
                    p.all.latency_ms.p99,
                    p.all.ok_latency_ms.p99,
                )?;
            }
        }
        if !self.faults.is_empty() {
            writeln!(out, "\nfault switches:")?;
            for f in &self.faults {
                writeln!(
                    out,
                    "  {:>7.2} s {} {}{}",
                    f.sent_s,
                    if f.event.restore { "restore" } else { "set    " },
                    Value::Object(f.event.set.clone()),
                    f.error.as_ref().map(|e| format!(" FAILED: {e}")).unwrap_or_default()
                )?;
            }
        }
        if !self.slo.checks.is_empty() {
            writeln!(out, "\nobjectives:")?;
            for c in &self.slo.checks {
                let observed = match (c.observed, &c.objective.bound) {
                    (None, _) => "no requests".to_owned(),
                    (Some(v), super::scenario::Bound::Latency { .. }) => format!("{v:.2} ms"),
                    (Some(v), super::scenario::Bound::ErrorRate { .. }) => {
                        format!("{:.3} %", v * 100.0)
                    }
                };
                writeln!(
                    out,
                    "  {} {:<48} observed {observed} over {} requests",
                    if c.passed { "ok    " } else { "MISSED" },
                    c.text,
                    c.samples
                )?;
            }
        }
        if !self.status.is_null() {
            write_resilience(out, &self.status)?;
        }
        Ok(())
    }
}

fn write_resilience(out: &mut String, s: &Value) -> std::fmt::Result {
    writeln!(out, "\nwhat the resilience features did (from /admin/status):")?;
    writeln!(
        out,
        "  edge:     {} rate-limited (429), {} shed by the bulkhead (503), {} admitted",
        s["edge"]["rate_limited"], s["edge"]["shed"], s["edge"]["admitted"]
    )?;
    writeln!(
        out,
        "  cache:    {} hits, {} misses, {} reads coalesced into a load under way, {} invalidations; {} product reads reached the store",
        s["cache"]["hits"],
        s["cache"]["misses"],
        s["cache"]["coalesced"],
        s["cache"]["invalidations"],
        s["store"]["product_reads"]
    )?;
    writeln!(
        out,
        "  breaker:  {} now; opened {} times, {} calls refused while open",
        s["breaker"]["state"], s["breaker"]["opened"], s["breaker"]["rejected"]
    )?;
    writeln!(
        out,
        "  payment:  {} provider calls, {} failed; {} retries ({} stopped by the retry budget, {} by an open breaker's wait); {} attempt and {} overall timeouts",
        s["payment"]["calls"],
        s["payment"]["failures"],
        s["payment"]["retries"],
        s["payment"]["retry_budget_exhausted"],
        s["payment"]["retries_abandoned"],
        s["payment"]["attempt_timeouts"],
        s["payment"]["overall_timeouts"]
    )?;
    writeln!(
        out,
        "  queue:    {} events published, {} dead letters",
        s["queue"]["published"], s["queue"]["dlq_depth"]
    )?;
    if let Some(subs) = s["queue"]["subscriptions"].as_array() {
        for sub in subs {
            writeln!(
                out,
                "            {:<24} depth {} acked {} redelivered {} dead-lettered {}",
                sub["name"].as_str().unwrap_or("?"),
                sub["depth"],
                sub["acked"],
                sub["redelivered"],
                sub["dead_lettered"]
            )?;
        }
    }
    writeln!(
        out,
        "  timers:   {} waiting (unpaid orders and carts holding stock), {} fired",
        s["timers"]["pending"], s["timers"]["fired"]
    )?;
    writeln!(
        out,
        "  provider: {} calls, {} charges, {} idempotent repeats, {} injected failures, {} declines",
        s["provider"]["calls"],
        s["provider"]["charges"],
        s["provider"]["repeats"],
        s["provider"]["failures"],
        s["provider"]["declines"]
    )
}
