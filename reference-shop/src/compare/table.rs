//! The comparison as a Markdown table: one row per phase and side, then what became of each
//! side's orders.

use std::fmt::Write as _;

use super::summary::Side;
use crate::loadgen::Operation;

/// The table of `sides` (one row per phase and side, phases in the order of the first side),
/// with `operation`'s own columns, then one line per side on its orders.
#[must_use]
pub fn table(sides: &[Side], operation: Operation) -> String {
    let mut out = String::new();
    let op = operation.name();
    let _ = writeln!(
        out,
        "| phase | side | ok/s | errors | p50 | p99 | p99.9 | {op} errors | {op} p50 | {op} p99 | {op} p99.9 |"
    );
    let _ = writeln!(out, "|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|");
    let phases = sides.first().map_or(0, |s| s.phases.len());
    for i in 0..phases {
        for side in sides {
            let Some(p) = side.phases.get(i) else { continue };
            let _ = writeln!(
                out,
                "| {} ({:.0}-{:.0} s) | {} | {:.1} | {} | {} | {} | {} | {} | {} | {} | {} |",
                p.phase,
                p.from_s,
                p.to_s,
                side.name,
                p.ok_per_s,
                percent(p.error_rate),
                ms(p.all.p50),
                ms(p.all.p99),
                ms(p.all.p999),
                if p.focus.count == 0 { "-".to_owned() } else { percent(p.focus_error_rate) },
                ms_of(p.focus.count, p.focus.p50),
                ms_of(p.focus.count, p.focus.p99),
                ms_of(p.focus.count, p.focus.p999),
            );
        }
    }
    out.push('\n');
    for side in sides {
        let Some(a) = &side.orders else { continue };
        let cancelled: Vec<String> =
            a.cancelled.iter().map(|(reason, n)| format!("{n} {reason}")).collect();
        let _ = writeln!(
            out,
            "{}: {} orders placed, {} found ({} lost): {} paid, {} awaiting payment ({} dead letters), {} cancelled{}; time to paid p50 {}, p99 {}, max {}",
            side.name,
            a.placed,
            a.found,
            a.missing.len(),
            a.paid,
            a.awaiting,
            a.dead_letters,
            a.cancelled.values().sum::<u64>(),
            if cancelled.is_empty() {
                String::new()
            } else {
                format!(" ({})", cancelled.join(", "))
            },
            ms_of(a.time_to_paid_ms.count, a.time_to_paid_ms.p50),
            ms_of(a.time_to_paid_ms.count, a.time_to_paid_ms.p99),
            ms_of(a.time_to_paid_ms.count, a.time_to_paid_ms.max),
        );
    }
    out
}

fn percent(rate: f64) -> String {
    format!("{:.1} %", rate * 100.0)
}

/// Milliseconds below 10 s, seconds above.
fn ms(v: f64) -> String {
    if v < 10_000.0 { format!("{v:.1} ms") } else { format!("{:.1} s", v / 1e3) }
}

fn ms_of(count: u64, v: f64) -> String {
    if count == 0 { "-".to_owned() } else { ms(v) }
}
