//! The load generator: open-loop traffic against a shop on this machine, following a
//! scenario (operation mix, rates over time, fault switches), then a report of latency
//! percentiles per operation and phase, what the resilience features did, and whether the
//! run met its service-level objectives (the exit code says so).
//!
//! # Open loop, and coordinated omission
//!
//! A closed-loop generator (each client waits for its answer before sending the next) slows
//! down exactly when the shop does: while a request is stuck, the requests that would have
//! arrived behind it are never sent, so they are never measured. Gil Tene named this
//! *coordinated omission* ("How NOT to Measure Latency", 2013/2015; HdrHistogram's
//! `recordValueWithExpectedInterval` and wrk2 correct for it): the generator coordinates with
//! the system under test and omits the samples that would have shown the queueing. Here every
//! request has an *intended* send time from the scenario's rate schedule
//! (see `schedule.rs`); it is sent at that time whatever happened to the others,
//! and its latency runs from the intended time, not from when it actually left. The report
//! also shows the service time from the actual send (what a closed-loop client would have
//! reported) and the generator's own lag behind its schedule. `--closed-loop N` keeps the old
//! mode for comparison.
//!
//! Latencies go into HdrHistograms (3 significant digits) per phase and operation; the
//! report gives p50/p90/p99/p99.9/max, and objectives may ask for any percentile.
//!
//! # Bounds
//!
//! Only `http://` on loopback (`127.0.0.0/8`, `::1`, `localhost`, pinned to 127.0.0.1), no
//! proxy, no redirects. A run lasts at most an hour ([`MAX_DURATION`]), at most
//! [`MAX_RATE`] requests a second per phase, with at most `max_in_flight` requests
//! outstanding (a request due beyond it is dropped and counted as an error) and a timeout per
//! request; `--requests` caps the count. Ctrl-C stops sending, waits for the answers still
//! due, puts back the fault settings and reports.
//!
//! # Exit codes
//!
//! 0 every objective held; 1 one was missed; 2 bad arguments, scenario or target; 3 the run
//! could not go as planned ([`Exit`]).
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use reference_shop::loadgen::{self, Mode, Plan, ProgressMode, Scenario, Target};
//!
//! let mut scenario = Scenario::load("reference-shop/scenarios/steady.toml".as_ref())?;
//! scenario.add_objective("place_order:p99=500ms".parse()?)?;
//! let plan = Plan {
//!     scenario,
//!     target: Target::parse("http://127.0.0.1:8080")?,
//!     admin_token: "dev-admin-token".into(),
//!     mode: Mode::Open,
//!     max_requests: None,
//!     progress: ProgressMode::Auto,
//! };
//! let report = loadgen::execute(&plan, loadgen::never_stop()).await?;
//! println!("{}", report.text());
//! assert!(report.slo.passed);
//! # Ok(()) }
//! ```

mod driver;
mod operation;
mod output;
mod progress;
mod report;
mod runner;
mod scenario;
mod schedule;
mod slo;
mod stats;
mod switches;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use serde_json::Value;
use tokio::sync::watch;
use tokio::time::Instant;

pub use driver::SeedError;
pub use operation::{Mix, Operation};
pub(crate) use output::{publish, stop_on_ctrl_c};
pub use progress::ProgressMode;
pub use report::{Latency, OperationReport, Outcomes, PhaseReport, Report};
pub use runner::Mode;
pub use scenario::{
    Bound, FaultSwitch, MAX_CUSTOMERS, MAX_DURATION, MAX_IN_FLIGHT, MAX_PHASES, MAX_RATE,
    MAX_REQUEST_TIMEOUT, Objective, Phase, Scenario, ScenarioError,
};
pub use slo::{Check, Exit, Verdict};
pub use stats::{Outcome, TimelinePoint};
pub use switches::{AdminError, AppliedSwitch, SwitchEvent};
pub use target::{Target, TargetError};

use crate::config::Config;
use progress::Bar;
use runner::{Load, Stop};
use stats::Stats;
pub(crate) use switches::Admin;

/// Load generator settings (`reference-shop loadgen --help`).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Scenario file (TOML; see reference-shop/scenarios/). Without one, the run is
    /// --rate requests a second for --duration-secs with the default mix.
    #[arg(long)]
    pub scenario: Option<PathBuf>,
    /// Base URL of the shop (http:// on loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Requests per second, without a scenario file.
    #[arg(long, default_value_t = 100.0, conflicts_with = "scenario")]
    pub rate: f64,
    /// Seconds to run, without a scenario file (1..=3600).
    #[arg(long, default_value_t = 30, conflicts_with = "scenario")]
    pub duration_secs: u64,
    /// Stop after this many requests (1..=10000000).
    #[arg(long)]
    pub requests: Option<u64>,
    /// Closed loop instead: this many clients (1..=512), each waiting for its answer before
    /// sending again. Hides queueing delay; for comparison only.
    #[arg(long)]
    pub closed_loop: Option<usize>,
    /// Requests outstanding at most (overrides the scenario's max_in_flight).
    #[arg(long)]
    pub max_in_flight: Option<usize>,
    /// An objective more, `OPERATION[@PHASE]:pNN=DURATION` or `OPERATION[@PHASE]:errors=RATE`
    /// (`place_order:p99=500ms`, `all:errors=1%`); repeatable.
    #[arg(long = "slo", value_name = "OBJECTIVE")]
    pub slo: Vec<Objective>,
    /// Write the report as JSON to this file (`-` for stdout; the text report then goes to
    /// stderr).
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value_t)]
    pub progress: ProgressMode,
    /// Admin token for fault switches and the status report (default: the shop's configured
    /// token).
    #[arg(long)]
    pub admin_token: Option<String>,
}

/// A run, validated.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What to send.
    pub scenario: Scenario,
    /// Where.
    pub target: Target,
    /// For `/admin/faults` and `/admin/status`.
    pub admin_token: String,
    /// Open or closed loop.
    pub mode: Mode,
    /// Stop after this many requests.
    pub max_requests: Option<u64>,
    /// Progress on stderr.
    pub progress: ProgressMode,
}

/// Why the arguments do not make a run.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The scenario.
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    /// The target.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// Another argument.
    #[error("{0}")]
    Argument(&'static str),
}

impl Plan {
    /// Checks the command line and reads the scenario.
    ///
    /// # Errors
    /// [`PlanError`] for a bad scenario, target or argument.
    pub fn from_args(args: Args, config: &Config) -> Result<Self, PlanError> {
        let mut scenario = match &args.scenario {
            Some(path) => Scenario::load(path)?,
            None => {
                if !(1..=MAX_DURATION.as_secs()).contains(&args.duration_secs) {
                    return Err(PlanError::Argument("--duration-secs must lie in 1..=3600"));
                }
                Scenario::constant(args.rate, Duration::from_secs(args.duration_secs))?
            }
        };
        for objective in args.slo {
            scenario.add_objective(objective)?;
        }
        if let Some(n) = args.max_in_flight {
            scenario.set_max_in_flight(n)?;
        }
        if args.requests.is_some_and(|n| !(1..=10_000_000).contains(&n)) {
            return Err(PlanError::Argument("--requests must lie in 1..=10000000"));
        }
        let mode = match args.closed_loop {
            None => Mode::Open,
            Some(clients @ 1..=512) => Mode::Closed { clients },
            Some(_) => return Err(PlanError::Argument("--closed-loop must lie in 1..=512")),
        };
        Ok(Self {
            scenario,
            target: Target::parse(&args.target)?,
            admin_token: args.admin_token.unwrap_or_else(|| config.server.admin_token.clone()),
            mode,
            max_requests: args.requests,
            progress: args.progress,
        })
    }
}

/// The run could not go as planned.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The HTTP client could not be built.
    #[error("http client: {0}")]
    Client(#[from] reqwest::Error),
    /// The admin API refused (a wrong token) or is unreachable.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The customers could not be created.
    #[error(transparent)]
    Seed(#[from] SeedError),
}

/// A stop signal that never fires, for [`execute`] without Ctrl-C.
#[must_use]
pub fn never_stop() -> watch::Receiver<bool> {
    watch::channel(false).1
}

/// Runs `plan`: creates its customers, sends its load while switching its faults, puts the
/// fault settings back, and reports. Sending stops early when `stop` turns true.
///
/// # Errors
/// [`RunError`] when the run cannot start: the shop unreachable, the admin token refused
/// (only asked for when the scenario switches faults), the customers not created. Once the
/// load runs, failures are counted in the report instead.
pub async fn execute(plan: &Plan, stop: watch::Receiver<bool>) -> Result<Report, RunError> {
    let scenario = &plan.scenario;
    let base = plan.target.base();
    let client = plan.target.client(scenario.request_timeout(), scenario.max_in_flight())?;
    let admin = switches::Admin::new(client.clone(), base, plan.admin_token.clone());
    let baseline =
        if scenario.faults().is_empty() { serde_json::Map::new() } else { admin.faults().await? };

    let seeding = Bar::new(plan.progress, "seeding", u64::from(scenario.customers()), "customers");
    let driver = Arc::new(driver::Driver::seed(client, base, scenario, &seeding).await?);
    seeding.finish(format!("{} customers", scenario.customers()));

    let stats = Arc::new(Stats::new(scenario.phases().len()));
    let applied = Mutex::new(Vec::new());
    let stop = Stop::new(stop);
    let start = Instant::now();
    let load = Load {
        scenario,
        driver: Arc::clone(&driver),
        stats: Arc::clone(&stats),
        start,
        max_requests: plan.max_requests.unwrap_or(u64::MAX),
        stop: stop.clone(),
    };
    let bar = Bar::new(plan.progress, "load", scenario.duration().as_secs(), "s");
    let events = switches::plan(scenario.faults(), &baseline);
    {
        let pacing = async {
            match plan.mode {
                Mode::Open => runner::open_loop(load).await,
                Mode::Closed { clients } => runner::closed_loop(load, clients).await,
            }
        };
        let others = futures::future::join(
            switches::run(&admin, start, events, &applied),
            progress_ticker(&stats, scenario, start, &bar),
        );
        tokio::select! {
            biased;
            () = pacing => {}
            _ = others => {}
        }
    }
    let elapsed = start.elapsed();
    stats.tick(elapsed);
    let restore = switches::final_restore(scenario.faults(), &baseline);
    if !restore.is_empty() {
        let error = admin.set_faults(&restore).await.err().map(|e| e.to_string());
        applied.lock().push(AppliedSwitch {
            event: SwitchEvent { at: elapsed, set: restore, restore: true },
            sent_s: start.elapsed().as_secs_f64(),
            error,
        });
    }
    bar.finish(summary_line(&stats));
    let status = admin.status().await.unwrap_or_else(|e| {
        tracing::info!(error = %e, "no resilience report");
        Value::Null
    });
    let slo = slo::evaluate(scenario.objectives(), scenario.phases(), &stats);
    Ok(Report::build(
        &stats,
        report::Context {
            scenario,
            mode: match plan.mode {
                Mode::Open => "open",
                Mode::Closed { .. } => "closed",
            },
            target: base,
            elapsed,
            interrupted: stop.is_set(),
            faults: applied.into_inner(),
            slo,
            status,
            placed_orders: driver.placed(),
        },
    ))
}

/// The live line after the phase and rate: requests, errors, in flight, p99 so far.
fn summary_line(stats: &Stats) -> String {
    let (all, latency) = stats::Tally::of(stats.select(None, None));
    let p99 = Latency::of(&latency).p99;
    format!(
        "{} requests, {} errors ({:.2} %), in flight {}, p99 so far {p99:.1} ms",
        all.attempts,
        all.errors,
        all.error_rate() * 100.0,
        stats.in_flight(),
    )
}

/// Every second: closes the timeline's interval and updates the progress line. Never ends
/// (the run drops it).
async fn progress_ticker(stats: &Stats, scenario: &Scenario, start: Instant, bar: &Bar) {
    let mut tick = tokio::time::interval_at(start + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let elapsed = start.elapsed();
        let (attempts, _) = stats.tick(elapsed);
        let phase = &scenario.phases()[runner::phase_at(scenario.phases(), elapsed)];
        bar.update(
            elapsed.as_secs(),
            format!("{} {attempts}/s, {}", phase.name, summary_line(stats)),
        );
    }
}

/// Runs the load generator from the command line.
pub async fn run(args: Args, config: &Config) -> ExitCode {
    let json = args.json.clone();
    let plan = match Plan::from_args(args, config) {
        Ok(plan) => plan,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return Exit::Invalid.into();
        }
    };
    let s = &plan.scenario;
    eprintln!(
        "loadgen: {} against {}: {} phases over {}, {} requests planned, at most {} in flight{}",
        if s.description().is_empty() { "a run" } else { s.description() },
        plan.target.base(),
        s.phases().len(),
        levee::core::format_duration(s.duration()),
        s.planned(),
        s.max_in_flight(),
        match plan.mode {
            Mode::Open => String::new(),
            Mode::Closed { clients } => format!(" (closed loop, {clients} clients)"),
        }
    );
    let (rx, ctrl_c) = stop_on_ctrl_c("loadgen: stopping: waiting for the answers still due");
    let result = execute(&plan, rx).await;
    ctrl_c.abort();
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return Exit::RunFailed.into();
        }
    };
    if !publish("loadgen", "report", &report.text(), &report, json) {
        return Exit::RunFailed.into();
    }
    report.exit().into()
}

impl Report {
    /// The exit code this report calls for.
    #[must_use]
    pub fn exit(&self) -> Exit {
        if self.switch_failed() {
            Exit::RunFailed
        } else if self.slo.passed {
            Exit::Passed
        } else {
            Exit::SloMissed
        }
    }
}
