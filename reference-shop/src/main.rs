//! `reference-shop`: runs the shop (default), the load generator (`loadgen`), the outage side
//! by side (`outage-compare`), a soak (`soak`), or prints the settings (`print-config`) or the
//! OpenAPI document (`openapi`), writes development certificates (`certs`), or starts a local
//! cluster of the shop's services (`cluster`).
//!
//! Logs go to stderr; stdout carries only what a command prints (the address, the settings,
//! a report). A shop that cannot start says why on stderr and exits with 2 for settings it
//! cannot run with, 1 for anything else (storage, the data directory's lock, the address).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use reference_shop::role::Service;
use reference_shop::{Config, RunningShop, ShopClock, StartError};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(name = "reference-shop", version, about = "The levee reference shop")]
struct Cli {
    /// TOML settings file (every setting can also be set as SHOP_SECTION__KEY).
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    log_json: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The part of the shop this process runs.
    #[arg(long, value_enum, default_value_t = Service::All)]
    service: Service,
    /// Stop, as on SIGTERM, when stdin closes: `reference-shop cluster` starts its processes
    /// so, holding their stdin, and they end with it even when it is killed with SIGKILL.
    #[arg(long)]
    stop_with_stdin: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the shop (the default), or one of its services.
    Serve(ServeArgs),
    /// Print the effective settings as TOML and exit.
    PrintConfig,
    /// Print the OpenAPI document of a shop with these settings and exit (with the default
    /// settings it is `reference-shop/openapi.json`).
    Openapi,
    /// Send bounded traffic to a shop on this machine and report what happened.
    Loadgen(reference_shop::loadgen::Args),
    /// Run one scenario against a shop with levee's protections on, then off; print a table,
    /// draw the latency chart, check that no order was lost.
    OutageCompare(reference_shop::compare::Args),
    /// Mixed traffic with the payment provider slow, failing and back in a cycle against a
    /// shop on this machine; then checks answers, memory and stock accounting.
    Soak(reference_shop::soak::Args),
    /// Write a development CA and a certificate + key per service for `[server.tls]`.
    Certs(reference_shop::certs::Args),
    /// Start the shop split into processes on this machine (with PostgreSQL, NATS and Redis),
    /// supervise them, and stop them all on Ctrl-C.
    Cluster(reference_shop::cluster::Args),
    /// Started by `cluster` (not for use by hand): stops the servers it names when its stdin
    /// closes, so they do not outlive a cluster killed with SIGKILL.
    #[command(hide = true)]
    ClusterReaper(reference_shop::cluster::reaper::Args),
}

fn init_logs(json: bool, default: &str) {
    let filter = EnvFilter::try_from_env("SHOP_LOG").unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The comparison runs two shops in this process: their info lines would bury its output.
    let quiet = matches!(cli.command, Some(Command::OutageCompare(_)));
    init_logs(cli.log_json, if quiet { "warn,sqlx=warn" } else { "info,sqlx=warn" });
    let config = match Config::load(cli.config.as_deref(), std::env::vars()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("reference-shop: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let command = cli
        .command
        .unwrap_or(Command::Serve(ServeArgs { service: Service::All, stop_with_stdin: false }));
    match command {
        Command::Serve(args) => {
            let stop = stop_signal(args.stop_with_stdin);
            match args.service {
                Service::Provider => reference_shop::provider::server::run(config, stop).await,
                service => serve(config, service, stop).await,
            }
        }
        Command::PrintConfig => match toml::to_string_pretty(&config) {
            Ok(text) => {
                print!("{text}");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!("reference-shop: {e}");
                std::process::ExitCode::FAILURE
            }
        },
        Command::Openapi => {
            print!("{}", reference_shop::http::openapi_text(&config));
            std::process::ExitCode::SUCCESS
        }
        Command::Loadgen(args) => reference_shop::loadgen::run(args, &config).await,
        Command::OutageCompare(args) => reference_shop::compare::run(args, &config).await,
        Command::Soak(args) => reference_shop::soak::run(args, &config).await,
        Command::Certs(args) => reference_shop::certs::run(&args),
        Command::ClusterReaper(args) => reference_shop::cluster::reaper::run(&args),
        Command::Cluster(args) => {
            reference_shop::cluster::run(args, cli.config.as_deref(), shutdown_signal()).await
        }
    }
}

async fn serve(
    config: Config,
    service: Service,
    stop: impl std::future::Future<Output = ()>,
) -> std::process::ExitCode {
    let shop = match RunningShop::start_as(config, ShopClock::system(), service).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("reference-shop: cannot start: {e}");
            let code = if matches!(e, StartError::Config(_) | StartError::Tls(_)) { 2 } else { 1 };
            return std::process::ExitCode::from(code);
        }
    };
    let addr = shop.addr();
    let tls = shop.shop().config.server.tls.files().is_some();
    match (service, tls) {
        (Service::All | Service::Gateway, false) => {
            println!("reference shop on http://{addr} (try: curl http://{addr}/products?limit=3)");
        }
        (Service::All | Service::Gateway, true) => println!(
            "reference shop on https://{addr} (mutual TLS; try: curl --cacert CA --cert CERT --key KEY https://{addr}/products?limit=3)"
        ),
        (_, false) => println!("reference shop on http://{addr} ({service} service)"),
        (_, true) => println!("reference shop on https://{addr} ({service} service, mutual TLS)"),
    }
    stop.await;
    shop.shutdown().await;
    std::process::ExitCode::SUCCESS
}

/// Ctrl-C or SIGTERM; or stdin's end too, when `with_stdin`.
async fn stop_signal(with_stdin: bool) {
    if !with_stdin {
        return shutdown_signal().await;
    }
    let (closed, stdin_closed) = tokio::sync::oneshot::channel::<()>();
    // A thread of its own: a read of stdin on tokio's blocking pool would hold the runtime's
    // exit until the read returns.
    std::thread::spawn(move || {
        reference_shop::cluster::reaper::wait_for_stdin_to_close();
        let _ = closed.send(());
    });
    tokio::select! {
        () = shutdown_signal() => {}
        _ = stdin_closed => {}
    }
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
