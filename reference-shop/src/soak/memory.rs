//! Memory over a soak: the shop's resident set size (`VmRSS` in `/proc/<pid>/status`) sampled
//! every few seconds, and the check that it stays flat after a warm-up.
//!
//! # The check
//!
//! The samples taken before `warmup` (a share of the run) are left out: caches, pools, the
//! database's page cache and the allocator's arenas fill up first. Of the rest, the median of
//! the last window (`window`, a share of the samples after the warm-up, at least one sample)
//! may exceed the median of the first window by at most the larger of `tolerance_percent` of
//! that first median and `slack_kib`: the slack keeps a small process from failing on the
//! allocator's noise, the percentage scales with a large one. Medians, so one sample taken
//! while a burst was in flight moves neither end. The least-squares slope over the samples
//! after the warm-up is reported too (KiB per minute), as a figure, not as the gate: over a
//! short run it is dominated by noise.

use std::path::PathBuf;

use serde::Serialize;

/// One reading of the shop's resident set size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RssSample {
    /// When, in milliseconds from the start of the load.
    pub t_ms: u64,
    /// Resident set size, KiB.
    pub rss_kib: u64,
}

/// The process's memory could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RssError {
    /// `/proc/<pid>/status` could not be read (no such process: the shop exited).
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file has no `VmRSS:` line in kB (a kernel thread, or not Linux's format).
    #[error("{}: no `VmRSS: N kB` line", path.display())]
    Format {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the resident set size of process `pid`, KiB.
///
/// # Errors
/// [`RssError`] when the process is gone or its status has no `VmRSS` line.
pub fn read_rss_kib(pid: u32) -> Result<u64, RssError> {
    let path = PathBuf::from(format!("/proc/{pid}/status"));
    let text = std::fs::read_to_string(&path)
        .map_err(|source| RssError::Read { path: path.clone(), source })?;
    parse_vm_rss(&text).ok_or(RssError::Format { path })
}

/// The `VmRSS:` value of a `/proc/<pid>/status` text, KiB.
fn parse_vm_rss(status: &str) -> Option<u64> {
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?;
    let mut words = line.split_whitespace();
    let kib = words.next()?.parse().ok()?;
    (words.next()? == "kB").then_some(kib)
}

/// How flat memory must stay.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MemoryLimits {
    /// Share of the run (by time) before samples count, in `0.0..1.0`.
    pub warmup: f64,
    /// Share of the samples after the warm-up in each compared window, in `(0.0, 0.5]`.
    pub window: f64,
    /// Growth allowed from the first window to the last, percent of the first.
    pub tolerance_percent: f64,
    /// Growth always allowed, KiB.
    pub slack_kib: u64,
}

impl Default for MemoryLimits {
    fn default() -> Self {
        Self { warmup: 0.25, window: 0.2, tolerance_percent: 10.0, slack_kib: 16 * 1024 }
    }
}

/// What the memory check found.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MemoryVerdict {
    /// Whether memory stayed flat.
    pub passed: bool,
    /// Why not, if it did not.
    pub violation: Option<String>,
    /// The limits it was held to.
    pub limits: MemoryLimits,
    /// The first sample, KiB (0 without samples).
    pub start_kib: u64,
    /// The last sample, KiB.
    pub end_kib: u64,
    /// The largest sample, KiB.
    pub peak_kib: u64,
    /// Median of the first window after the warm-up, KiB.
    pub first_window_kib: u64,
    /// Median of the last window, KiB.
    pub last_window_kib: u64,
    /// What the last window was allowed to reach, KiB.
    pub allowed_kib: u64,
    /// Least-squares slope over the samples after the warm-up, KiB per minute.
    pub slope_kib_per_min: f64,
    /// Samples in each compared window.
    pub window_samples: usize,
    /// Every sample.
    pub samples: Vec<RssSample>,
}

/// Samples after the warm-up needed for a verdict: one per window at least, and a third to
/// tell the two windows apart.
pub const MIN_SAMPLES_AFTER_WARMUP: usize = 3;

fn median(values: &[u64]) -> u64 {
    let mut v = values.to_vec();
    v.sort_unstable();
    let mid = v.len() / 2;
    if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2 }
}

/// Least-squares slope of `rss_kib` over `t_ms`, KiB per minute (0 for fewer than two
/// distinct times).
fn slope_kib_per_min(samples: &[RssSample]) -> f64 {
    let n = samples.len() as f64;
    if samples.len() < 2 {
        return 0.0;
    }
    let mean_t = samples.iter().map(|s| s.t_ms as f64).sum::<f64>() / n;
    let mean_r = samples.iter().map(|s| s.rss_kib as f64).sum::<f64>() / n;
    let (mut cov, mut var) = (0.0, 0.0);
    for s in samples {
        let dt = s.t_ms as f64 - mean_t;
        cov += dt * (s.rss_kib as f64 - mean_r);
        var += dt * dt;
    }
    if var == 0.0 { 0.0 } else { cov / var * 60_000.0 }
}

/// Checks `samples` (in time order) of a run of `duration_ms` against `limits`.
#[must_use]
pub fn check(samples: Vec<RssSample>, duration_ms: u64, limits: MemoryLimits) -> MemoryVerdict {
    let warm = (duration_ms as f64 * limits.warmup) as u64;
    let after: Vec<RssSample> = samples.iter().copied().filter(|s| s.t_ms >= warm).collect();
    let n = ((after.len() as f64 * limits.window).ceil() as usize).max(1);
    let kib = |s: &[RssSample]| s.iter().map(|s| s.rss_kib).collect::<Vec<_>>();
    let mut verdict = MemoryVerdict {
        passed: false,
        violation: None,
        limits,
        start_kib: samples.first().map_or(0, |s| s.rss_kib),
        end_kib: samples.last().map_or(0, |s| s.rss_kib),
        peak_kib: samples.iter().map(|s| s.rss_kib).max().unwrap_or(0),
        first_window_kib: 0,
        last_window_kib: 0,
        allowed_kib: 0,
        slope_kib_per_min: slope_kib_per_min(&after),
        window_samples: n,
        samples,
    };
    if after.len() < MIN_SAMPLES_AFTER_WARMUP {
        verdict.violation = Some(format!(
            "{} memory samples after the warm-up, {MIN_SAMPLES_AFTER_WARMUP} needed: run longer \
             or sample more often",
            after.len()
        ));
        return verdict;
    }
    let first = median(&kib(&after[..n]));
    let last = median(&kib(&after[after.len() - n..]));
    let growth = ((first as f64 * limits.tolerance_percent / 100.0) as u64).max(limits.slack_kib);
    verdict.first_window_kib = first;
    verdict.last_window_kib = last;
    verdict.allowed_kib = first + growth;
    verdict.passed = last <= verdict.allowed_kib;
    if !verdict.passed {
        verdict.violation = Some(format!(
            "memory grew after the warm-up: RSS median {first} KiB in the first window, {last} \
             KiB in the last (allowed {} KiB: +max({}%, {} KiB)); slope {:.0} KiB/min",
            verdict.allowed_kib,
            limits.tolerance_percent,
            limits.slack_kib,
            verdict.slope_kib_per_min
        ));
    }
    verdict
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples(kib: &[u64]) -> Vec<RssSample> {
        kib.iter()
            .enumerate()
            .map(|(i, &rss_kib)| RssSample { t_ms: i as u64 * 1000, rss_kib })
            .collect()
    }

    const MIB: u64 = 1024;

    #[test]
    fn reads_vm_rss_from_a_status_text_and_this_process() {
        let text = "Name:\treference-shop\nVmPeak:\t  900 kB\nVmRSS:\t   41236 kB\nThreads:\t9\n";
        assert_eq!(parse_vm_rss(text), Some(41_236));
        assert_eq!(parse_vm_rss("Name:\tkthreadd\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\t12 MB\n"), None);
        assert_eq!(parse_vm_rss("VmRSS:\tmany kB\n"), None);
        assert!(read_rss_kib(std::process::id()).unwrap() > 0);
        assert!(matches!(read_rss_kib(u32::MAX), Err(RssError::Read { .. })));
    }

    #[test]
    fn growth_during_the_warm_up_then_flat_passes() {
        // 20 samples over 20 s: the first quarter climbs from 20 to 60 MiB, then it wobbles.
        let mut kib: Vec<u64> = (0..5).map(|i| (20 + 10 * i) * MIB).collect();
        kib.extend([61, 60, 63, 59, 60, 62, 61, 60, 64, 59, 60, 61, 62, 60, 61].map(|m| m * MIB));
        let v = check(samples(&kib), 20_000, MemoryLimits::default());
        assert!(v.passed, "{v:?}");
        assert_eq!(v.violation, None);
        assert_eq!((v.start_kib, v.end_kib, v.peak_kib), (20 * MIB, 61 * MIB, 64 * MIB));
        // 15 samples after the warm-up, windows of ceil(15 * 0.2) = 3.
        assert_eq!(v.window_samples, 3);
        assert_eq!((v.first_window_kib, v.last_window_kib), (61 * MIB, 61 * MIB));
        // 10 % of 61 MiB is under the 16 MiB slack.
        assert_eq!(v.allowed_kib, 77 * MIB);
        assert!(v.slope_kib_per_min.abs() < 2.0 * MIB as f64, "{}", v.slope_kib_per_min);
    }

    #[test]
    fn a_steady_leak_after_the_warm_up_fails() {
        // 100 MiB, then +2 MiB a second: the last window is ~30 MiB above the first.
        let kib: Vec<u64> = (0..20).map(|i| (100 + 2 * i) * MIB).collect();
        let v = check(samples(&kib), 20_000, MemoryLimits::default());
        assert!(!v.passed);
        assert_eq!((v.first_window_kib, v.last_window_kib), (112 * MIB, 136 * MIB));
        assert_eq!(v.allowed_kib, 112 * MIB + 16 * MIB);
        assert!(v.violation.as_deref().unwrap().contains("memory grew after the warm-up"));
        assert!((v.slope_kib_per_min - 120.0 * MIB as f64).abs() < 1.0, "{}", v.slope_kib_per_min);
    }

    #[test]
    fn the_percentage_governs_a_large_process_and_one_spike_does_not_fail() {
        // 1 GiB: 10 % is ~102 MiB, more than the slack. A single 300 MiB spike in the last
        // window does not move its median.
        let limits = MemoryLimits::default();
        let mut kib = vec![1024 * MIB; 20];
        kib[18] = 1324 * MIB;
        kib[17] = 1100 * MIB;
        let v = check(samples(&kib), 20_000, limits);
        assert!(v.passed, "{v:?}");
        assert_eq!(v.allowed_kib, 1024 * MIB + 1024 * MIB / 10);
        // 1.15 GiB held in the last window is over 10 %.
        for k in &mut kib[15..] {
            *k = 1180 * MIB;
        }
        assert!(!check(samples(&kib), 20_000, limits).passed);
    }

    #[test]
    fn too_few_samples_after_the_warm_up_is_a_violation_not_a_pass() {
        let v = check(
            samples(&[10 * MIB, 10 * MIB, 10 * MIB, 10 * MIB]),
            40_000,
            MemoryLimits { warmup: 0.5, ..MemoryLimits::default() },
        );
        assert!(!v.passed);
        assert!(v.violation.unwrap().contains("0 memory samples after the warm-up"));
        assert!(!check(Vec::new(), 1000, MemoryLimits::default()).passed);
    }
}
