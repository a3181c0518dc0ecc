//! Progress while a run goes on: `indicatif` bars on a terminal (seeding, then the load with
//! a live line of rate, errors and p99 so far), plain lines every few seconds elsewhere (CI
//! logs), or nothing.

use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// How progress is shown (on stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum ProgressMode {
    /// Bars on a terminal, lines otherwise.
    #[default]
    Auto,
    /// A line every few seconds.
    Lines,
    /// Nothing.
    Off,
}

/// Seconds between two progress lines (lines mode).
const LINE_EVERY_SECS: u64 = 5;

/// One job's progress: a bar, lines, or nothing.
#[derive(Debug)]
pub(crate) struct Bar {
    bar: ProgressBar,
    lines: bool,
    label: &'static str,
    last_line: AtomicU64,
}

impl Bar {
    /// A job of `len` steps called `label`; `unit` follows the counts on the bar.
    pub(crate) fn new(mode: ProgressMode, label: &'static str, len: u64, unit: &str) -> Self {
        let bars = mode == ProgressMode::Auto && std::io::stderr().is_terminal();
        let bar = if bars {
            let template = format!(
                "{{prefix:>8}} [{{elapsed_precise}}] {{bar:30.cyan/blue}} {{pos}}/{{len}} {unit} {{msg}}"
            );
            let style = ProgressStyle::with_template(&template)
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
            ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr())
                .with_style(style)
                .with_prefix(label)
        } else {
            ProgressBar::hidden()
        };
        Self {
            bar,
            lines: mode == ProgressMode::Lines || (mode == ProgressMode::Auto && !bars),
            label,
            last_line: AtomicU64::new(0),
        }
    }

    /// One more step done.
    pub(crate) fn inc(&self, n: u64) {
        self.bar.inc(n);
    }

    /// `position` steps done; `message` is the live line (printed every few seconds in
    /// lines mode, where `position` counts seconds).
    pub(crate) fn update(&self, position: u64, message: String) {
        if self.lines {
            let last = self.last_line.load(Ordering::Relaxed);
            if position >= last + LINE_EVERY_SECS {
                self.last_line.store(position, Ordering::Relaxed);
                eprintln!("{} {position}s: {message}", self.label);
            }
        }
        self.bar.set_position(position);
        self.bar.set_message(message);
    }

    /// The job is done: the bar stays with `message`; lines mode prints it.
    pub(crate) fn finish(&self, message: String) {
        if self.lines {
            eprintln!("{} done: {message}", self.label);
        }
        self.bar.finish_with_message(message);
    }
}
