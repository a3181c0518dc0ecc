//! The outage side by side (`reference-shop outage-compare`): the same scenario against a
//! fresh shop with levee's protections on and one with them off (`[protections] enabled =
//! false`), one after the other, each on 127.0.0.1 on a free port with its own temporary data
//! directory; then a table per phase and side ([`table()`]), latency over time for both runs
//! as an SVG chart ([`write_chart`]), and a check that no order was lost on either side
//! ([`OrderAudit`]).
//!
//! Each shop runs in this process, as the load generator does: both sides share the same
//! runtime, cores and settings (the `--config` file and `SHOP_*` variables), except the
//! switch, the address and the data directory (always SQLite: a `DATABASE_URL` is ignored,
//! so the two sides never share a database). After the load, each side gets up to
//! `--settle-secs` for its payment events to finish (retries, redeliveries) before its orders
//! are looked up.
//!
//! What this shows, and what it does not: in this shop payment happens behind the queue, so a
//! customer placing an order never waits for the provider, protections or not. The table's
//! focus operation is `place_order` unless `--operation` says otherwise; the order lines say
//! how each side's payments ended and how long they took from placement.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use reference_shop::compare::{self, Args};
//! use reference_shop::loadgen::{Operation, ProgressMode};
//!
//! let args = Args {
//!     scenario: "reference-shop/scenarios/outage.toml".into(),
//!     chart: "outage.svg".into(),
//!     json: None,
//!     operation: Operation::PlaceOrder,
//!     settle_secs: 60,
//!     progress: ProgressMode::Lines,
//! };
//! let code = compare::run(args, &reference_shop::Config::default()).await;
//! # Ok(()) }
//! ```

mod audit;
mod chart;
mod summary;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use serde::Serialize;

pub use audit::{OrderAudit, audit};
pub use chart::{ChartError, svg, write as write_chart};
pub use summary::{PhaseRow, Point, Side};
pub use table::table;

use crate::RunningShop;
use crate::clock::ShopClock;
use crate::config::{Config, ProtectionsConfig};
use crate::loadgen::{self, Exit, Mode, Operation, Plan, ProgressMode, Report, Scenario, Target};

/// `reference-shop outage-compare` settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The scenario both sides run (TOML, as for `loadgen --scenario`).
    #[arg(long, default_value = "reference-shop/scenarios/outage.toml")]
    pub scenario: PathBuf,
    /// Where to write the latency chart (SVG).
    #[arg(long, default_value = "outage.svg")]
    pub chart: PathBuf,
    /// Also write both sides' summaries and full load reports as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// The operation the table's own columns and the chart follow.
    #[arg(long, value_enum, default_value = "place-order")]
    pub operation: Operation,
    /// Seconds each side may take after its load for payments to settle (0..=600).
    #[arg(long, default_value_t = 60)]
    pub settle_secs: u64,
    /// How to show progress on stderr.
    #[arg(long, value_enum, default_value_t)]
    pub progress: ProgressMode,
}

/// Why one side could not run.
#[derive(Debug, thiserror::Error)]
pub enum SideError {
    /// The temporary data directory.
    #[error("temporary data directory: {0}")]
    TempDir(std::io::Error),
    /// The shop did not start.
    #[error("shop did not start: {0}")]
    Start(#[from] crate::StartError),
    /// The shop's address is not a load generator target (never on 127.0.0.1).
    #[error(transparent)]
    Target(#[from] loadgen::TargetError),
    /// The load could not run.
    #[error(transparent)]
    Run(#[from] loadgen::RunError),
    /// The orders could not be looked up.
    #[error("looking up the orders: {0}")]
    Audit(#[from] crate::store::StoreError),
}

/// Everything the comparison found, as written by `--json`.
#[derive(Debug, Serialize)]
pub struct Comparison {
    /// The focus operation.
    pub operation: Operation,
    /// Per side: the summary.
    pub sides: Vec<Side>,
    /// Per side: the load generator's full report.
    pub reports: Vec<Report>,
}

/// The two sides, in order.
const SIDES: [(&str, bool); 2] = [("levee on", true), ("levee off", false)];

/// Runs the comparison from the command line: 0 both sides ran and neither lost an order, 1
/// an order was lost, 2 bad arguments or scenario, 3 a side could not run or a file could not
/// be written.
pub async fn run(args: Args, config: &Config) -> ExitCode {
    let scenario = match Scenario::load(&args.scenario) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("outage-compare: {e}");
            return Exit::Invalid.into();
        }
    };
    if args.settle_secs > 600 {
        eprintln!("outage-compare: --settle-secs must lie in 0..=600");
        return Exit::Invalid.into();
    }
    let settle = Duration::from_secs(args.settle_secs);
    let (mut sides, mut reports) = (Vec::new(), Vec::new());
    for (name, enabled) in SIDES {
        eprintln!("outage-compare: {name}: {}", scenario.description());
        let protections = ProtectionsConfig { enabled };
        match run_side(config, &protections, &scenario, args.progress, settle).await {
            Ok((report, audit)) => {
                let mut side = Side::of(name, &report, args.operation);
                side.orders = Some(audit);
                sides.push(side);
                reports.push(report);
            }
            Err(e) => {
                eprintln!("outage-compare: {name}: {e}");
                return Exit::RunFailed.into();
            }
        }
    }
    print!("\n{}", table(&sides, args.operation));
    if let Err(e) = write_chart(&args.chart, &sides, args.operation) {
        eprintln!("outage-compare: {e}");
        return Exit::RunFailed.into();
    }
    println!("chart: {}", args.chart.display());
    let lost = sides.iter().any(|s| s.orders.as_ref().is_some_and(|a| !a.nothing_lost()));
    if let Some(path) = &args.json {
        let comparison = Comparison { operation: args.operation, sides, reports };
        let written = serde_json::to_string_pretty(&comparison)
            .map_err(std::io::Error::other)
            .and_then(|text| std::fs::write(path, text));
        if let Err(e) = written {
            eprintln!("outage-compare: cannot write {}: {e}", path.display());
            return Exit::RunFailed.into();
        }
    }
    if lost {
        eprintln!("outage-compare: an acknowledged order is missing (see the order lines)");
        return Exit::SloMissed.into();
    }
    Exit::Passed.into()
}

/// One side: a fresh shop with `protections`, the scenario's load, the settling wait, the
/// order audit, the shutdown.
///
/// # Errors
/// [`SideError`] when the shop, the load or the audit cannot run.
pub async fn run_side(
    config: &Config,
    protections: &ProtectionsConfig,
    scenario: &Scenario,
    progress: ProgressMode,
    settle: Duration,
) -> Result<(Report, OrderAudit), SideError> {
    let dir = tempfile::tempdir().map_err(SideError::TempDir)?;
    let mut config = config.clone();
    config.server.addr = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    config.storage.data_dir = dir.path().to_owned();
    config.storage.database_url = None;
    config.protections = protections.clone();
    let shop = RunningShop::start(config, ShopClock::system()).await?;
    let result = load_and_audit(&shop, scenario, progress, settle).await;
    shop.shutdown().await;
    result
}

async fn load_and_audit(
    shop: &RunningShop,
    scenario: &Scenario,
    progress: ProgressMode,
    settle: Duration,
) -> Result<(Report, OrderAudit), SideError> {
    let plan = Plan {
        scenario: scenario.clone(),
        target: Target::parse(&format!("http://{}", shop.addr()))?,
        admin_token: shop.shop().config.server.admin_token.clone(),
        mode: Mode::Open,
        max_requests: None,
        progress,
    };
    let report = loadgen::execute(&plan, loadgen::never_stop()).await?;
    let shop = shop.shop();
    let deadline = tokio::time::Instant::now() + settle;
    while tokio::time::Instant::now() < deadline && busy(&shop.operations.status().queue) {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let dead_letters = shop.operations.status().queue.dlq_depth;
    let audit = audit(shop.store(), &report.placed_orders, dead_letters).await?;
    Ok((report, audit))
}

/// Whether an event is still waiting, scheduled for redelivery or being handled.
fn busy(queue: &crate::bus::BusStats) -> bool {
    queue.subscriptions.iter().any(|s| s.depth + s.in_flight > 0)
}

#[cfg(test)]
mod tests;
