//! Latency over time for every side, as an SVG chart (plotters' SVG backend): per second of
//! the run, the focus operation's p99 (solid) and p50 (faint) on a log scale, the phases
//! marked.

use std::path::Path;

use plotters::prelude::*;

use super::summary::Side;
use crate::loadgen::Operation;

/// The chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// Drawing failed.
    #[error("drawing the chart: {0}")]
    Draw(String),
    /// The file could not be written.
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: std::path::PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Width and height, pixels.
const SIZE: (u32, u32) = (1000, 520);
/// One colour per side, in order (levee on first).
const COLOURS: [RGBColor; 4] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), GREEN, MAGENTA];
/// The lowest latency drawn, ms (the log scale needs a floor; lower values sit on it).
const FLOOR_MS: f64 = 0.5;

/// The chart of `sides` as SVG text, `operation` named in its caption.
///
/// # Errors
/// [`ChartError::Draw`] when plotters fails.
pub fn svg(sides: &[Side], operation: Operation) -> Result<String, ChartError> {
    let mut out = String::new();
    draw(&mut out, sides, operation).map_err(|e| ChartError::Draw(e.to_string()))?;
    Ok(out)
}

/// Writes [`svg`] to `path`.
///
/// # Errors
/// As [`svg`], or [`ChartError::Write`].
pub fn write(path: &Path, sides: &[Side], operation: Operation) -> Result<(), ChartError> {
    let text = svg(sides, operation)?;
    std::fs::write(path, text).map_err(|source| ChartError::Write { path: path.into(), source })
}

fn draw<'a>(
    out: &'a mut String,
    sides: &[Side],
    operation: Operation,
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(out, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    let points = sides.iter().flat_map(|s| &s.series);
    let x_max = points.clone().map(|p| p.t_s).fold(1.0_f64, f64::max).ceil();
    let y_max = points.map(|p| p.p99_ms).fold(10.0_f64, f64::max) * 2.0;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!("{operation}: latency per second from the intended send time"),
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(70)
        .build_cartesian_2d(0.0..x_max, (FLOOR_MS..y_max).log_scale())?;
    chart
        .configure_mesh()
        .x_desc("seconds into the run")
        .y_desc("latency, ms (log scale)")
        .draw()?;
    // The phases of the first side (every side ran the same scenario).
    for p in sides.first().map_or(&[][..], |s| &s.phases[..]) {
        let grey = BLACK.mix(0.35);
        chart.draw_series(LineSeries::new([(p.from_s, FLOOR_MS), (p.from_s, y_max)], grey))?;
        chart.draw_series(std::iter::once(Text::new(
            p.phase.clone(),
            (p.from_s + 0.5, y_max / 1.6),
            ("sans-serif", 14),
        )))?;
    }
    for (side, colour) in sides.iter().zip(COLOURS) {
        let at = |v: f64| v.max(FLOOR_MS);
        chart.draw_series(LineSeries::new(
            side.series.iter().map(|p| (p.t_s, at(p.p50_ms))),
            colour.mix(0.35),
        ))?;
        chart
            .draw_series(LineSeries::new(
                side.series.iter().map(|p| (p.t_s, at(p.p99_ms))),
                colour.stroke_width(2),
            ))?
            .label(format!("{}: p99 (faint: p50)", side.name))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 20, y)], colour.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()?;
    root.present()?;
    Ok(())
}
