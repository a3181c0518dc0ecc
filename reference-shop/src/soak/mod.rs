//! The soak: mixed traffic for minutes to an hour against a running shop on this machine,
//! with the payment provider slow, failing and back in a cycle, and three checks at the end
//! (`reference-shop soak --help`):
//!
//! - **answers** ([`statuses`]): no 5xx other than the 503 of deliberate shedding (or a busy
//!   database), every request answered;
//! - **memory** ([`memory`]): the shop process's resident set size, sampled every few seconds
//!   from `/proc/<pid>/status`, flat after a warm-up;
//! - **stock** ([`stock`]): once the faults are off and the event queue has drained, every
//!   unit of every product is on the shelf, reserved by someone, or sold, exactly as many as
//!   at the start (`GET /admin/stock` before and after).
//!
//! The traffic is the load generator's ([`crate::loadgen`]): an open-loop scenario built from
//! the arguments (one phase at `--rate`, the usual mix plus sign-ups, a fault switch per
//! quarter cycle), so the soak measures what `loadgen` measures and switches faults the way it
//! does. The exit code is the load generator's: 0 every check held, 1 one failed, 2 bad
//! arguments, 3 the soak could not run (the shop unreachable, the admin token refused, no
//! such process). The summary goes to stdout as text, and as JSON with `--json`.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use reference_shop::loadgen::{ProgressMode, Target, never_stop};
//! use reference_shop::soak::{self, MemoryLimits, Soak};
//!
//! let soak = Soak {
//!     scenario: soak::scenario(Duration::from_secs(180), 100.0, Duration::from_secs(60), 2000)?,
//!     target: Target::parse("http://127.0.0.1:8080")?,
//!     admin_token: "dev-admin-token".into(),
//!     pid: 4242,
//!     sample_every: Duration::from_secs(5),
//!     memory: MemoryLimits::default(),
//!     drain_timeout: Duration::from_secs(60),
//!     progress: ProgressMode::Lines,
//! };
//! let summary = soak::execute(&soak, never_stop()).await?;
//! println!("{}", summary.text());
//! assert!(summary.passed, "{:?}", summary.violations);
//! # Ok(()) }
//! ```

pub mod memory;
pub mod statuses;
pub mod stock;

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use levee::core::{format_duration, parse_duration};
use serde::Serialize;
use tokio::sync::watch;
use tokio::time::Instant;

pub use memory::{MemoryLimits, MemoryVerdict, RssError, RssSample};
pub use statuses::{Answers, StatusVerdict};
pub use stock::StockVerdict;

use crate::api::StockLedger;
use crate::config::Config;
use crate::loadgen::{
    self, AdminError, AppliedSwitch, Exit, Latency, MAX_DURATION, Mode, Plan, ProgressMode,
    RunError, Scenario, ScenarioError, Target, TargetError,
};

/// Soak settings (`reference-shop soak --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Base URL of the shop (http:// on loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// The shop's process id: its memory is read from /proc/PID/status.
    #[arg(long)]
    pub pid: u32,
    /// How long to send traffic ("3m", "1h"; at most 1h).
    #[arg(long, default_value = "3m", value_parser = parse_duration)]
    pub duration: Duration,
    /// Requests per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// One fault cycle, a quarter each: healthy, provider slow, provider failing every call,
    /// healthy again (at least 4s).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub cycle: Duration,
    /// The provider's latency while it is slow, ms.
    #[arg(long, default_value_t = 2000)]
    pub slow_ms: u64,
    /// Time between two memory samples.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub sample_every: Duration,
    /// Share of the run before memory counts (0 to 0.9).
    #[arg(long, default_value_t = 0.25)]
    pub warmup: f64,
    /// Growth allowed from the first window after the warm-up to the last, percent.
    #[arg(long, default_value_t = 10.0)]
    pub rss_tolerance_percent: f64,
    /// Growth always allowed, MiB (the allocator's noise in a small process).
    #[arg(long, default_value_t = 16)]
    pub rss_slack_mib: u64,
    /// Longest wait for the event queue to drain once the load is over.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Write the summary as JSON to this file (`-` for stdout; the text then goes to
    /// stderr).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value_t)]
    pub progress: ProgressMode,
    /// Admin token (default: the shop's configured token).
    #[arg(long)]
    pub admin_token: Option<String>,
}

/// A soak, validated.
#[derive(Debug, Clone)]
pub struct Soak {
    /// The traffic and the fault switches ([`scenario`]).
    pub scenario: Scenario,
    /// The shop.
    pub target: Target,
    /// For `/admin/faults`, `/admin/status` and `/admin/stock`.
    pub admin_token: String,
    /// The shop's process, whose memory is sampled.
    pub pid: u32,
    /// Time between two memory samples.
    pub sample_every: Duration,
    /// How flat memory must stay.
    pub memory: MemoryLimits,
    /// Longest wait for the event queue to drain after the load.
    pub drain_timeout: Duration,
    /// Progress on stderr.
    pub progress: ProgressMode,
}

/// Why the arguments do not make a soak.
#[derive(Debug, thiserror::Error)]
pub enum SoakArgError {
    /// The scenario built from them.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The target.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Another argument.
    #[error("{0}")]
    Argument(&'static str),
}

/// The soak could not run (as opposed to a check that failed, which the summary reports).
#[derive(Debug, thiserror::Error)]
pub enum SoakError {
    /// The load generator could not start.
    #[error(transparent)]
    Run(#[from] RunError),
    /// The admin API refused or is unreachable.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The shop's memory cannot be read before the run (no such process).
    #[error(transparent)]
    Rss(#[from] RssError),
    /// `GET /admin/stock` answered something that is not a ledger.
    #[error("GET /admin/stock: {0}")]
    Ledger(serde_json::Error),
}

/// The shortest fault cycle: a second per quarter.
pub const MIN_CYCLE: Duration = Duration::from_secs(4);

/// The soak's traffic: `rate` requests a second for `duration` in the load generator's usual
/// mix plus a few sign-ups, one order in ten paid with a card that is declined (its stock
/// released), and per `cycle` a quarter each of a healthy provider, one that answers in
/// `slow_ms`, one that fails every call, and a healthy one again.
///
/// # Errors
/// [`ScenarioError`] for a duration, rate or latency out of the load generator's (or the
/// shop's fault settings') bounds.
pub fn scenario(
    duration: Duration,
    rate: f64,
    cycle: Duration,
    slow_ms: u64,
) -> Result<Scenario, ScenarioError> {
    let ms = |d: Duration| d.as_millis();
    let mut toml = format!(
        "description = \"{} at {rate}/s; the payment provider slow, failing and back every \
         {}\"\n\
         customers = 32\ndeclined_percent = 10\nrequest_timeout = \"10s\"\n\
         [mix]\nget_product = 58\nsearch = 12\nadd_to_cart = 12\nplace_order = 10\n\
         list_orders = 6\ncreate_customer = 2\n\
         [[phase]]\nname = \"soak\"\nduration = \"{}ms\"\nrate = {rate}\n",
        format_duration(duration),
        format_duration(cycle),
        ms(duration),
    );
    let quarter = cycle / 4;
    let mut start = Duration::ZERO;
    while start < duration {
        for (k, set) in [
            (1, format!("{{ provider_latency_ms = {slow_ms} }}")),
            (2, "{ provider_failure_rate = 1.0 }".to_owned()),
        ] {
            let at = start + quarter * k;
            if at < duration {
                let until = (at + quarter).min(duration);
                let _ = write!(
                    toml,
                    "[[fault]]\nat = \"{}ms\"\nuntil = \"{}ms\"\nset = {set}\n",
                    ms(at),
                    ms(until)
                );
            }
        }
        start += cycle;
    }
    Scenario::from_toml(&toml)
}

impl Soak {
    /// Checks the command line and builds the scenario.
    ///
    /// # Errors
    /// [`SoakArgError`] for an argument out of range or a target off this machine.
    pub fn from_args(args: Args, config: &Config) -> Result<Self, SoakArgError> {
        if args.duration.is_zero() || args.duration > MAX_DURATION {
            return Err(SoakArgError::Argument("--duration must lie in 1s..=1h"));
        }
        if args.cycle < MIN_CYCLE {
            return Err(SoakArgError::Argument("--cycle must be at least 4s"));
        }
        if !(Duration::from_millis(100)..=Duration::from_secs(60)).contains(&args.sample_every) {
            return Err(SoakArgError::Argument("--sample-every must lie in 100ms..=60s"));
        }
        if !(0.0..=0.9).contains(&args.warmup) {
            return Err(SoakArgError::Argument("--warmup must lie in 0..=0.9"));
        }
        if !(0.0..=1000.0).contains(&args.rss_tolerance_percent) {
            return Err(SoakArgError::Argument("--rss-tolerance-percent must lie in 0..=1000"));
        }
        if args.rss_slack_mib > 1 << 20 {
            return Err(SoakArgError::Argument("--rss-slack-mib must be at most 1048576"));
        }
        if args.drain_timeout > Duration::from_secs(600) {
            return Err(SoakArgError::Argument("--drain-timeout must be at most 10m"));
        }
        Ok(Self {
            scenario: scenario(args.duration, args.rate, args.cycle, args.slow_ms)?,
            target: Target::parse(&args.target)?,
            admin_token: args.admin_token.unwrap_or_else(|| config.server.admin_token.clone()),
            pid: args.pid,
            sample_every: args.sample_every,
            memory: MemoryLimits {
                warmup: args.warmup,
                tolerance_percent: args.rss_tolerance_percent,
                slack_kib: args.rss_slack_mib * 1024,
                ..MemoryLimits::default()
            },
            drain_timeout: args.drain_timeout,
            progress: args.progress,
        })
    }
}

/// Waiting for the event queue to drain after the load.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Drain {
    /// Whether every subscription was empty (nothing waiting, nothing being handled).
    pub drained: bool,
    /// How long it took, or how long the soak waited, seconds.
    pub waited_s: f64,
    /// Events still waiting or being handled at the last look.
    pub left: u64,
    /// Dead letters at the end (payments that gave up during the outages; their orders stay
    /// reserved until the unpaid timeout, and the stock check counts them as held).
    pub dead_letters: u64,
}

/// What a soak found.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Whether every check held.
    pub passed: bool,
    /// Every violation, one line each.
    pub violations: Vec<String>,
    /// The shop.
    pub target: String,
    /// Its process.
    pub pid: u32,
    /// The scenario's description.
    pub description: String,
    /// Planned load, seconds.
    pub duration_s: f64,
    /// The whole soak (seeding, load, drain, checks), seconds.
    pub took_s: f64,
    /// Requests due.
    pub requests: u64,
    /// Latency from the intended send time over every request, ms.
    pub latency_ms: Latency,
    /// Whether a stop (Ctrl-C) cut the load short.
    pub interrupted: bool,
    /// Answers by class.
    pub answers: StatusVerdict,
    /// Memory.
    pub memory: MemoryVerdict,
    /// The event queue after the load.
    pub drain: Drain,
    /// Stock accounting.
    pub stock: StockVerdict,
    /// The fault switches as they happened.
    pub faults: Vec<AppliedSwitch>,
}

/// Seconds between two memory lines on stderr.
const PROGRESS_EVERY: Duration = Duration::from_secs(30);
/// Time between two looks at the event queue while it drains.
const DRAIN_POLL: Duration = Duration::from_millis(250);

async fn ledger(admin: &loadgen::Admin) -> Result<StockLedger, SoakError> {
    serde_json::from_value(admin.get("/admin/stock").await?).map_err(SoakError::Ledger)
}

/// Samples the RSS of `pid` every `every` until `done` turns true. Returns the samples, the
/// time it ran, and why sampling stopped early (the process is gone) if it did.
async fn sample_rss(
    pid: u32,
    every: Duration,
    progress: ProgressMode,
    mut done: watch::Receiver<bool>,
) -> (Vec<RssSample>, Duration, Option<RssError>) {
    let start = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut next_line = Duration::ZERO;
    loop {
        tokio::select! {
            biased;
            _ = done.changed() => return (samples, start.elapsed(), None),
            _ = tick.tick() => {}
        }
        let t = start.elapsed();
        match memory::read_rss_kib(pid) {
            Ok(rss_kib) => {
                samples.push(RssSample { t_ms: t.as_millis() as u64, rss_kib });
                if progress != ProgressMode::Off && t >= next_line {
                    eprintln!(
                        "soak: {} s, shop RSS {:.1} MiB",
                        t.as_secs(),
                        rss_kib as f64 / 1024.0
                    );
                    next_line = t + PROGRESS_EVERY;
                }
            }
            Err(e) => return (samples, t, Some(e)),
        }
    }
}

/// Waits up to `timeout` for every subscription to have nothing waiting and nothing in
/// hand (`GET /admin/status`).
async fn drain(admin: &loadgen::Admin, timeout: Duration) -> Result<Drain, AdminError> {
    let start = Instant::now();
    loop {
        let status = admin.get("/admin/status").await?;
        let queue = &status["queue"];
        let left: u64 = queue["subscriptions"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| s["depth"].as_u64().unwrap_or(0) + s["in_flight"].as_u64().unwrap_or(0))
            .sum();
        let waited = start.elapsed();
        if left == 0 || waited >= timeout {
            return Ok(Drain {
                drained: left == 0,
                waited_s: waited.as_secs_f64(),
                left,
                dead_letters: queue["dlq_depth"].as_u64().unwrap_or(0),
            });
        }
        tokio::time::sleep(DRAIN_POLL).await;
    }
}

/// Runs `soak`: reads the stock ledger, sends the load while sampling the shop's memory, waits
/// for the event queue to drain, reads the ledger again and checks. Sending stops early when
/// `stop` turns true (the summary then says so, and fails).
///
/// # Errors
/// [`SoakError`] when the soak cannot run: the shop unreachable, the admin token refused, no
/// process `pid`, the customers not created. Once the load runs, what goes wrong is a
/// violation in the summary.
pub async fn execute(soak: &Soak, stop: watch::Receiver<bool>) -> Result<Summary, SoakError> {
    let began = Instant::now();
    let base = soak.target.base();
    let client = soak.target.client(Duration::from_secs(10), 4).map_err(RunError::from)?;
    let admin = loadgen::Admin::new(client, base, soak.admin_token.clone());
    memory::read_rss_kib(soak.pid)?;
    let before = ledger(&admin).await?;

    let plan = Plan {
        scenario: soak.scenario.clone(),
        target: soak.target.clone(),
        admin_token: soak.admin_token.clone(),
        mode: Mode::Open,
        max_requests: None,
        progress: soak.progress,
    };
    let (done, done_rx) = watch::channel(false);
    let load = async {
        let report = loadgen::execute(&plan, stop).await;
        let _ = done.send(true);
        report
    };
    let sampling = sample_rss(soak.pid, soak.sample_every, soak.progress, done_rx);
    let (report, (samples, sampled_for, rss_error)) = tokio::join!(load, sampling);
    let report = report?;

    let drain = drain(&admin, soak.drain_timeout).await?;
    let after = ledger(&admin).await?;

    let all = &report.all;
    let answers = statuses::check(Answers {
        statuses: all.statuses.clone(),
        timed_out: all.timed_out,
        failed: all.failed,
        dropped: all.dropped,
    });
    let memory = memory::check(samples, sampled_for.as_millis() as u64, soak.memory);
    let stock = stock::check(&before, &after);

    let mut violations = answers.violations.clone();
    if let Some(e) = rss_error {
        violations.push(format!("the shop's memory could not be read during the load: {e}"));
    }
    violations.extend(memory.violation.clone());
    if report.switch_failed() {
        violations.push("a fault switch failed (see faults)".to_owned());
    }
    if report.interrupted {
        violations.push("interrupted: the load was cut short".to_owned());
    }
    if !drain.drained {
        violations.push(format!(
            "the event queue did not drain within {}: {} events left",
            format_duration(soak.drain_timeout),
            drain.left
        ));
    }
    if stock.violation_count > 0 {
        violations.push(format!("stock: {} products inconsistent", stock.violation_count));
    } else if !stock.passed {
        violations.push("stock: the ledger is empty".to_owned());
    }
    Ok(Summary {
        passed: violations.is_empty(),
        violations,
        target: base.to_owned(),
        pid: soak.pid,
        description: soak.scenario.description().to_owned(),
        duration_s: soak.scenario.duration().as_secs_f64(),
        took_s: began.elapsed().as_secs_f64(),
        requests: all.attempts,
        latency_ms: all.latency_ms,
        interrupted: report.interrupted,
        answers,
        memory,
        drain,
        stock,
        faults: report.faults,
    })
}

impl Summary {
    /// The summary for people: a line per check, then the violations.
    #[must_use]
    pub fn text(&self) -> String {
        let mib = |kib: u64| kib as f64 / 1024.0;
        let (a, m, s) = (&self.answers, &self.memory, &self.stock);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "soak {}: {} against {} (pid {}), {:.0} s",
            if self.passed { "PASSED" } else { "FAILED" },
            self.description,
            self.target,
            self.pid,
            self.took_s
        );
        let statuses: Vec<String> = a.statuses.iter().map(|(c, n)| format!("{c}: {n}")).collect();
        let _ = writeln!(
            out,
            "  answers: {} requests; {} served, {} declined (4xx), {} refused (429/503), {} \
             other 5xx, {} timed out, {} connection failures, {} dropped; by status {{{}}}",
            self.requests,
            a.served,
            a.declined,
            a.refused,
            a.failed_5xx,
            a.timed_out,
            a.connection_failures,
            a.dropped,
            statuses.join(", ")
        );
        let _ = writeln!(
            out,
            "  latency: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.latency_ms.p50, self.latency_ms.p99, self.latency_ms.max
        );
        let _ = writeln!(
            out,
            "  memory: RSS {:.1} MiB at the start, {:.1} MiB at the end, peak {:.1} MiB; \
             after the warm-up median {:.1} -> {:.1} MiB (allowed {:.1}), slope {:.2} MiB/min, \
             {} samples",
            mib(m.start_kib),
            mib(m.end_kib),
            mib(m.peak_kib),
            mib(m.first_window_kib),
            mib(m.last_window_kib),
            mib(m.allowed_kib),
            m.slope_kib_per_min / 1024.0,
            m.samples.len()
        );
        let _ = writeln!(
            out,
            "  queue: {} in {:.1} s ({} left), {} dead letters",
            if self.drain.drained { "drained" } else { "NOT drained" },
            self.drain.waited_s,
            self.drain.left,
            self.drain.dead_letters
        );
        let _ = writeln!(
            out,
            "  stock: {} products, {} units at the start and {} at the end, {} sold during the \
             run, {} reserved at the end, {} inconsistent",
            s.products,
            s.units_at_start,
            s.units_at_end,
            s.sold_during_run,
            s.reserved_at_end,
            s.violation_count
        );
        for v in self.violations.iter().chain(&s.violations) {
            let _ = writeln!(out, "  VIOLATION {v}");
        }
        out
    }

    /// The exit code: 0 passed, 1 a check failed.
    #[must_use]
    pub fn exit(&self) -> Exit {
        if self.passed { Exit::Passed } else { Exit::SloMissed }
    }
}

/// Runs the soak from the command line.
pub async fn run(args: Args, config: &Config) -> ExitCode {
    let json = args.json.clone();
    let soak = match Soak::from_args(args, config) {
        Ok(soak) => soak,
        Err(e) => {
            eprintln!("soak: {e}");
            return Exit::Invalid.into();
        }
    };
    eprintln!(
        "soak: {} against {} (pid {}), {} requests planned",
        soak.scenario.description(),
        soak.target.base(),
        soak.pid,
        soak.scenario.planned()
    );
    let (rx, ctrl_c) = loadgen::stop_on_ctrl_c("soak: stopping: the checks still run");
    let result = execute(&soak, rx).await;
    ctrl_c.abort();
    let summary = match result {
        Ok(summary) => summary,
        Err(e) => {
            eprintln!("soak: {e}");
            return Exit::RunFailed.into();
        }
    };
    if !loadgen::publish("soak", "summary", &summary.text(), &summary, json) {
        return Exit::RunFailed.into();
    }
    summary.exit().into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scenario_cycles_slow_then_failing_then_back() {
        let s = scenario(Duration::from_secs(180), 100.0, Duration::from_secs(60), 2000).unwrap();
        assert_eq!(s.duration(), Duration::from_secs(180));
        assert_eq!(s.planned(), 18_000);
        let faults: Vec<(u64, Option<u64>, Vec<&String>)> = s
            .faults()
            .iter()
            .map(|f| (f.at.as_secs(), f.until.map(|u| u.as_secs()), f.set.keys().collect()))
            .collect();
        assert_eq!(faults.len(), 6);
        let slow = "provider_latency_ms".to_owned();
        let failing = "provider_failure_rate".to_owned();
        assert_eq!(faults[0], (15, Some(30), vec![&slow]));
        assert_eq!(faults[1], (30, Some(45), vec![&failing]));
        assert_eq!(faults[4], (135, Some(150), vec![&slow]));
        assert_eq!(faults[5], (150, Some(165), vec![&failing]));
        assert_eq!(s.faults()[0].set["provider_latency_ms"], 2000);
        assert!(s.mix().weights().any(|(op, w)| op == loadgen::Operation::CreateCustomer && w > 0));
    }

    #[test]
    fn a_cycle_cut_by_the_end_of_the_run_ends_with_it() {
        let s = scenario(Duration::from_secs(10), 50.0, Duration::from_secs(8), 500).unwrap();
        let windows: Vec<(u128, Option<u128>)> =
            s.faults().iter().map(|f| (f.at.as_millis(), f.until.map(|u| u.as_millis()))).collect();
        // 2-4 slow, 4-6 failing; the second cycle's slow quarter (10 s) is past the end.
        assert_eq!(windows, [(2000, Some(4000)), (4000, Some(6000))]);
        let s = scenario(Duration::from_secs(11), 50.0, Duration::from_secs(8), 500).unwrap();
        assert_eq!(s.faults().last().unwrap().until, Some(Duration::from_secs(11)));
    }

    #[test]
    fn out_of_range_settings_are_refused() {
        assert!(scenario(Duration::from_secs(7200), 100.0, Duration::from_secs(60), 1).is_err());
        assert!(scenario(Duration::from_secs(60), -1.0, Duration::from_secs(60), 1).is_err());
    }
}
