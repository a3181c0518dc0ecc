//! `reference-shop cluster`: the shop split into processes on this machine, with one command.
//!
//! 1. Reads the [topology] (`--topology FILE`, or `reference-shop/cluster.toml`).
//! 2. Finds or starts the servers: PostgreSQL, NATS JetStream and Redis, each from
//!    its URL or started from what is installed; a missing one is reported, with what to
//!    install, before anything starts.
//! 3. Starts every process, `reference-shop serve --service <name>` of this same binary, one
//!    at a time, each on a free port of 127.0.0.1 that it keeps across restarts, with the
//!    servers' URLs and its upstreams' URLs in its environment; waits for each to announce
//!    its address; prints a table of service, replica, URL and pid.
//! 4. Supervises them: a process that exits is reported and started again after
//!    a backoff, a bounded number of times. Ctrl-C or SIGTERM stops every process (SIGTERM,
//!    SIGKILL after a grace), then the servers it started, and the command exits 0. Killed
//!    itself (SIGKILL), it takes its processes with it: each stops when its stdin, a pipe the
//!    cluster holds, closes; and its [reaper] stops the servers it started.
//!
//! With `[tls] enabled = true` in the topology, every process serves and calls over mutual
//! TLS: the cluster makes a development CA and a certificate per service (or uses `tls.dir`'s),
//! gives each process its service's, and lists `https://` upstreams.
//!
//! Everything lives in a new directory under `--dir`: `logs/` (one file per process and
//! server, kept), the servers' data and the processes' data directories (removed on exit).
//!
//! ```no_run
//! # async fn example() -> std::process::ExitCode {
//! use clap::Parser;
//! use reference_shop::cluster::{self, Args};
//!
//! #[derive(Parser)]
//! struct Cli {
//!     #[command(flatten)]
//!     cluster: Args,
//! }
//! // `reference-shop cluster --topology cluster.toml`, until Ctrl-C
//! let cli = Cli::parse_from(["cluster", "--topology", "cluster.toml"]);
//! let ctrl_c = async {
//!     let _ = tokio::signal::ctrl_c().await;
//! };
//! cluster::run(cli.cluster, None, ctrl_c).await
//! # }
//! ```

mod ports;
mod process;
pub mod reaper;
mod servers;
mod supervise;
mod tls;
pub mod topology;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use tokio::sync::watch;

pub use servers::{Missing, ServerError};
pub use topology::{Topology, TopologyError};

use process::{Launch, tail};
use servers::{Servers, Wanted};
use supervise::{Slot, supervise};

/// `reference-shop cluster`'s options.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The topology (TOML; the default is reference-shop/cluster.toml, which documents it).
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// PostgreSQL to use, instead of starting one (`postgres://USER@HOST:PORT/DB`).
    #[arg(long)]
    pub postgres_url: Option<String>,
    /// NATS JetStream to use, instead of starting one (`nats://HOST:PORT`).
    #[arg(long)]
    pub nats_url: Option<String>,
    /// Redis to use, instead of starting one (`redis://HOST:PORT/`).
    #[arg(long)]
    pub redis_url: Option<String>,
    /// Where the cluster makes its directory (logs, the servers' and processes' data).
    #[arg(long, default_value_os_t = std::env::temp_dir().join("reference-shop-cluster"))]
    pub dir: PathBuf,
    /// The prefix of the cluster's JetStream streams (letters, digits and `_`): clusters
    /// sharing one NATS server need their own.
    #[arg(long, default_value = "shop_cluster")]
    pub nats_prefix: String,
    /// The directory of PostgreSQL's `initdb` and `pg_ctl` (default: the newest
    /// /usr/lib/postgresql/*/bin, else beside `initdb` on PATH).
    #[arg(long)]
    pub postgres_bin: Option<PathBuf>,
    /// The nats-server binary (default: `nats-server` on PATH).
    #[arg(long)]
    pub nats_server: Option<PathBuf>,
    /// The redis-server binary (default: `redis-server` on PATH).
    #[arg(long)]
    pub redis_server: Option<PathBuf>,
}

/// What the cluster started, stopped in reverse.
#[derive(Debug, Default)]
struct Cluster {
    servers: Servers,
    /// Stops the servers if the cluster dies without stopping them.
    reaper: Option<reaper::Reaper>,
    slots: Vec<Slot>,
}

/// Runs the cluster until `shutdown` completes (the binary passes Ctrl-C or SIGTERM), then
/// stops it. `config` is the settings file every process reads (`--config`), if any.
///
/// Exits with 0 after a stop, 2 for a topology or option it cannot run, 1 when a server or a
/// process does not start (after stopping what did), saying why on stderr.
pub async fn run(
    args: Args,
    config: Option<&Path>,
    shutdown: impl Future<Output = ()>,
) -> ExitCode {
    let topology = match Topology::load(args.topology.as_deref()) {
        Ok(t) => t,
        Err(e) => return refuse(2, &e),
    };
    if !topology.tls.enabled
        && let Ok(settings) = crate::Config::load(config, std::env::vars())
        && settings.server.tls.files().is_some()
    {
        return refuse(
            2,
            &"[server.tls] is set in the settings every process reads, but the topology's `[tls]` \
              is off (its processes would call each other over http://): set `[tls] enabled = true` \
              in the topology (and `dir` for your own certificates) instead",
        );
    }
    let mut nats = levee::nats::NatsConfig::new("nats://127.0.0.1:4222".to_owned());
    nats.prefix.clone_from(&args.nats_prefix);
    if let Err(e) = nats.validate() {
        return refuse(2, &format!("--nats-prefix: {}", e.reason));
    }
    let wanted = Wanted {
        postgres_url: args.postgres_url.clone(),
        nats_url: args.nats_url.clone(),
        redis_url: args.redis_url.clone(),
        postgres_bin: args.postgres_bin.clone(),
        nats_server: args.nats_server.clone(),
        redis_server: args.redis_server.clone(),
    };
    let plan = match servers::plan(&wanted).await {
        Ok(plan) => plan,
        Err(missing) => return refuse(1, &format!("cannot start: {missing}")),
    };
    let exe = match std::env::current_exe() {
        Ok(exe) => exe,
        Err(e) => return refuse(1, &format!("cannot find this binary: {e}")),
    };
    let run_dir = match make_run_dir(&args.dir) {
        Ok(dir) => dir,
        Err(e) => {
            return refuse(1, &format!("cannot make a directory in {}: {e}", args.dir.display()));
        }
    };
    let logs = run_dir.join("logs");
    println!("cluster directory {} (logs in {})", run_dir.display(), logs.display());

    let mut cluster = Cluster::default();
    let mut shutdown = std::pin::pin!(shutdown);
    let start = async {
        cluster.servers.start(plan, &run_dir, &logs).await.map_err(|e| e.to_string())?;
        let watched = cluster.servers.watched();
        if !watched.is_empty() {
            let log = logs.join("cluster-reaper.log");
            cluster.reaper = Some(reaper::Reaper::spawn(&exe, &watched, &log)?);
        }
        let certs = tls::prepare(&topology.tls, &topology, &run_dir)?;
        let launches =
            launches(&topology, &cluster.servers, &args, &exe, config, &run_dir, certs.as_deref())?;
        print_servers(&cluster.servers, &wanted);
        if let Some(dir) = &certs {
            let file = |name: &str| dir.join(name).display().to_string();
            println!(
                "mutual TLS: certificates in {}; call with --cacert {} --cert {} --key {}",
                dir.display(),
                file("ca.pem"),
                file("client.pem"),
                file("client-key.pem")
            );
        }
        start_processes(&mut cluster.slots, launches, topology.restart.start_timeout).await
    };
    let started = tokio::select! {
        started = start => Some(started),
        () = &mut shutdown => None,
    };
    let grace = topology.restart.stop_grace;
    match started {
        Some(Ok(())) => {}
        Some(Err(why)) => {
            eprintln!("reference-shop cluster: cannot start: {why}");
            cluster.stop(grace, &run_dir).await;
            return ExitCode::FAILURE;
        }
        None => {
            println!("stopping (interrupted while starting)");
            cluster.stop(grace, &run_dir).await;
            return ExitCode::SUCCESS;
        }
    }
    print_table(&cluster.slots);
    println!("cluster up: {} processes; Ctrl-C (or SIGTERM) stops them all", cluster.slots.len());

    let (stop, stopping) = watch::channel(false);
    let supervisors: Vec<_> = cluster
        .slots
        .drain(..)
        .map(|slot| tokio::spawn(supervise(slot, topology.restart, stopping.clone())))
        .collect();
    shutdown.await;
    println!("stopping {} processes", supervisors.len());
    let _ = stop.send(true);
    for supervisor in supervisors {
        let _ = supervisor.await;
    }
    cluster.stop(grace, &run_dir).await;
    println!("stopped; logs in {}", logs.display());
    ExitCode::SUCCESS
}

fn refuse(code: u8, why: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("reference-shop cluster: {why}");
    ExitCode::from(code)
}

/// A new directory under `dir` (created if needed) with `logs/` in it. Others may traverse
/// it: PostgreSQL runs as its own user when the cluster runs as root.
fn make_run_dir(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let run = tempfile::Builder::new().prefix("cluster-").tempdir_in(dir)?.keep();
    std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755))?;
    std::fs::create_dir(run.join("logs"))?;
    Ok(run)
}

impl Cluster {
    /// Stops every process, then every server the cluster started; removes their data and
    /// keeps the logs.
    async fn stop(self, grace: Duration, run_dir: &Path) {
        let stops = self.slots.into_iter().map(|mut slot| async move {
            if let Some(note) = process::stop_child(&mut slot.running.child, grace).await {
                println!("stopped: {}: {note}", slot.label);
            }
        });
        futures::future::join_all(stops).await;
        self.servers.stop(grace).await;
        if let Some(reaper) = self.reaper {
            reaper.dismiss().await;
        }
        let _ = std::fs::remove_dir_all(run_dir.join("data"));
    }
}

/// Every process to start, in order: its label, its port and how to start it. With `certs`
/// (TLS on), each gets its service's certificate and `https://` upstream URLs.
fn launches(
    topology: &Topology,
    servers: &Servers,
    args: &Args,
    exe: &Path,
    config: Option<&Path>,
    run_dir: &Path,
    certs: Option<&Path>,
) -> Result<Vec<(String, u16, Launch)>, String> {
    let mut ports = ports::Ports::default();
    // Every process's port first: a process's upstreams may start after it.
    let mut planned = Vec::new();
    for service in &topology.services {
        let roles = (1..=service.replicas)
            .map(|n| (format!("{} {n}", service.name), false))
            .chain((1..=service.standby).map(|n| (format!("{} standby {n}", service.name), true)));
        for (label, standby) in roles {
            let port = ports.take().map_err(|e| format!("no free port: {e}"))?;
            planned.push((service, label, standby, port));
        }
    }
    ports.release();
    let scheme = if certs.is_some() { "https" } else { "http" };
    let urls = |name: &str, standby: bool| {
        let list: Vec<String> = planned
            .iter()
            .filter(|(s, _, st, _)| s.name == name && *st == standby)
            .map(|(_, _, _, port)| format!("{scheme}://127.0.0.1:{port}"))
            .collect();
        serde_json::to_string(&list).unwrap_or_default()
    };
    let mut launches = Vec::with_capacity(planned.len());
    for (service, label, _, port) in &planned {
        let data = run_dir.join("data").join(label.replace(' ', "-"));
        std::fs::create_dir_all(&data)
            .map_err(|e| format!("cannot create {}: {e}", data.display()))?;
        let mut env = vec![
            ("SHOP_SERVER__ADDR".to_owned(), format!("127.0.0.1:{port}")),
            ("SHOP_STORAGE__DATA_DIR".to_owned(), data.display().to_string()),
            ("SHOP_STORAGE__DATABASE_URL".to_owned(), servers.postgres.clone()),
            ("SHOP_QUEUE__BACKEND".to_owned(), "nats".to_owned()),
            ("SHOP_QUEUE__NATS_URL".to_owned(), servers.nats.clone()),
            ("SHOP_QUEUE__NATS_PREFIX".to_owned(), args.nats_prefix.clone()),
            ("SHOP_EDGE__REDIS__URL".to_owned(), servers.redis.clone()),
            // Its log is a file: no colour codes in it.
            ("NO_COLOR".to_owned(), "1".to_owned()),
        ];
        if let Some(dir) = certs {
            env.extend(tls::env(dir, &service.name));
        }
        for (var, upstream) in &service.upstreams {
            env.push((var.clone(), urls(&upstream.service, upstream.standby)));
        }
        env.extend(service.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        let launch = Launch {
            exe: exe.to_owned(),
            config: config.map(Path::to_owned),
            service: service.name.clone(),
            env,
            log: run_dir.join("logs").join(format!("{}.log", label.replace(' ', "-"))),
        };
        launches.push((label.clone(), *port, launch));
    }
    Ok(launches)
}

/// Starts the processes one at a time (the first one alone migrates and seeds the store).
async fn start_processes(
    slots: &mut Vec<Slot>,
    launches: Vec<(String, u16, Launch)>,
    limit: Duration,
) -> Result<(), String> {
    let total = launches.len();
    for (n, (label, port, launch)) in launches.into_iter().enumerate() {
        println!("starting {label} on 127.0.0.1:{port} ({} of {total})", n + 1);
        let running = launch.start(limit).await.map_err(|why| {
            format!(
                "{label} {why}; the end of its log ({}):\n{}",
                launch.log.display(),
                tail(&launch.log, 20)
            )
        })?;
        slots.push(Slot { label, launch, running });
    }
    Ok(())
}

fn print_servers(servers: &Servers, wanted: &Wanted) {
    let how = |given: &Option<String>| if given.is_some() { "given" } else { "started" };
    println!("{:<12} {:<8} url", "server", "");
    println!("{:<12} {:<8} {}", "postgresql", how(&wanted.postgres_url), servers.postgres);
    println!("{:<12} {:<8} {}", "nats", how(&wanted.nats_url), servers.nats);
    println!("{:<12} {:<8} {}", "redis", how(&wanted.redis_url), servers.redis);
}

/// The table of processes: service, replica, URL, pid.
fn print_table(slots: &[Slot]) {
    println!("{:<13} {:<10} {:<24} pid", "service", "replica", "url");
    for slot in slots {
        let (service, replica) = slot.label.split_once(' ').unwrap_or((&slot.label, ""));
        println!("{service:<13} {replica:<10} {:<24} {}", slot.running.url, slot.running.pid);
    }
}
