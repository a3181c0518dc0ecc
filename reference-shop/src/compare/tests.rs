//! The table and the chart on made-up sides.

use std::collections::BTreeMap;

use super::*;
use crate::loadgen::Latency;

fn latency(p50: f64, p99: f64, p999: f64) -> Latency {
    Latency { count: 100, mean: p50, p50, p90: p99, p99, p999, max: p999 }
}

/// A side whose focus operation takes `base` ms in the first phase and `outage` ms in the
/// second, one point a second over 20 s.
fn side(name: &str, base: f64, outage: f64, lost: Vec<i64>) -> Side {
    let phase = |phase: &str, from_s: f64, ms: f64| PhaseRow {
        phase: phase.to_owned(),
        from_s,
        to_s: from_s + 10.0,
        ok_per_s: 99.5,
        error_rate: 0.005,
        all: latency(ms / 2.0, ms, ms * 1.5),
        focus_error_rate: 0.01,
        focus: latency(ms / 2.0, ms, ms * 1.5),
    };
    let series = (1..=20)
        .map(|t| {
            let ms = if t <= 10 { base } else { outage };
            Point { t_s: f64::from(t), p50_ms: ms / 2.0, p99_ms: ms }
        })
        .collect();
    let orders = OrderAudit {
        placed: 200,
        found: 200 - lost.len() as u64,
        missing: lost,
        paid: 150,
        awaiting: 10,
        cancelled: BTreeMap::from([("payment_declined".to_owned(), 40)]),
        dead_letters: 10,
        time_to_paid_ms: latency(30.0, 900.0, 15_000.0),
        ..OrderAudit::default()
    };
    Side {
        name: name.to_owned(),
        phases: vec![phase("steady", 0.0, base), phase("down", 10.0, outage)],
        series,
        orders: Some(orders),
    }
}

#[test]
fn the_table_has_a_row_per_phase_and_side_and_the_orders_of_each() {
    let sides = [side("levee on", 5.0, 8.0, vec![]), side("levee off", 5.0, 12_345.0, vec![7])];
    let t = table(&sides, Operation::PlaceOrder);
    let rows: Vec<&str> = t.lines().filter(|l| l.starts_with("| ")).collect();
    assert!(rows[0].contains("place_order p99.9"), "{t}");
    assert_eq!(rows.len(), 5, "a header and 2 phases x 2 sides: {t}");
    assert!(rows[1].starts_with("| steady (0-10 s) | levee on | 99.5 | 0.5 % | 2.5 ms | 5.0 ms |"));
    assert!(rows[2].contains("| levee off |"));
    // The phases interleave the sides; seconds above 10 s.
    assert!(rows[3].starts_with("| down (10-20 s) | levee on |") && rows[3].contains("| 8.0 ms |"));
    assert!(rows[4].contains("| 12.3 s | 18.5 s |"), "{}", rows[4]);
    assert!(t.contains("levee on: 200 orders placed, 200 found (0 lost): 150 paid, 10 awaiting payment (10 dead letters), 40 cancelled (40 payment_declined); time to paid p50 30.0 ms, p99 900.0 ms, max 15.0 s"), "{t}");
    assert!(t.contains("levee off: 200 orders placed, 199 found (1 lost)"), "{t}");
    assert!(!sides[1].orders.as_ref().unwrap().nothing_lost());
    assert!(sides[0].orders.as_ref().unwrap().nothing_lost());
}

#[test]
fn the_chart_draws_both_series_and_the_phases() {
    let sides = [side("levee on", 5.0, 8.0, vec![]), side("levee off", 5.0, 3_000.0, vec![])];
    let text = svg(&sides, Operation::PlaceOrder).unwrap();
    assert!(text.starts_with("<svg"), "{}", &text[..40]);
    for label in ["levee on: p99", "levee off: p99", "steady", "down", "place_order"] {
        assert!(text.contains(label), "{label} missing");
    }
    // Per side a p50 and a p99 line of 20 points, and the legend's sample.
    let lines: Vec<&str> = text.split("<polyline").skip(1).collect();
    let long = lines.iter().filter(|l| l.matches(',').count() >= 20).count();
    assert_eq!(long, 4, "two series per side");
    // The file is written and not empty.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("outage.svg");
    write_chart(&path, &sides, Operation::PlaceOrder).unwrap();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    let bad = write_chart(&dir.path().join("no/such/dir.svg"), &sides, Operation::PlaceOrder);
    assert!(matches!(bad, Err(ChartError::Write { .. })));
}
