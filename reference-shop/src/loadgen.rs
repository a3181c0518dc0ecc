//! The load generator: bounded traffic against a shop on this machine, then a report of
//! latency percentiles and of what the resilience features did.
//!
//! It only talks to loopback addresses (`127.0.0.0/8`, `::1`, `localhost`) and stops after
//! `--requests` requests or `--duration-secs` seconds, whichever comes first.

use std::collections::BTreeMap;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use levee::core::LatencyRecorder;
use levee::core::random::below;
use parking_lot::Mutex;
use serde_json::{Value, json};

use crate::config::Config;

/// Load generator settings.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// Base URL of the shop (loopback only).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub target: String,
    /// Requests to send at most (1..=1000000).
    #[arg(long, default_value_t = 5000)]
    pub requests: u64,
    /// Seconds to run at most (1..=3600).
    #[arg(long, default_value_t = 30)]
    pub duration_secs: u64,
    /// Concurrent clients, each with its own customer (1..=512).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Percent of product reads that go to product 1 (a flash sale).
    #[arg(long, default_value_t = 30)]
    pub hot_percent: u64,
    /// Admin token for the final status report (default: the shop's configured token).
    #[arg(long)]
    pub admin_token: Option<String>,
}

#[derive(Default)]
struct OpStats {
    latency: LatencyRecorder,
    statuses: Mutex<BTreeMap<u16, u64>>,
}

struct Report {
    ops: BTreeMap<&'static str, OpStats>,
    errors: AtomicU64,
}

const OPS: [&str; 6] =
    ["create_customer", "get_product", "search", "add_to_cart", "place_order", "list_orders"];

/// Whether `url` points at this machine.
fn is_loopback(url: &reqwest::Url) -> bool {
    let Some(host) = url.host_str() else {
        return false;
    };
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host == "localhost" || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Runs the load generator.
pub async fn run(args: Args, config: &Config) -> ExitCode {
    let Ok(base) = reqwest::Url::parse(&args.target) else {
        eprintln!("loadgen: --target is not a URL: {}", args.target);
        return ExitCode::from(2);
    };
    if !is_loopback(&base) || base.scheme() != "http" {
        eprintln!("loadgen: refusing {}: only http:// on this machine's loopback", args.target);
        return ExitCode::from(2);
    }
    if !(1..=1_000_000).contains(&args.requests)
        || !(1..=3600).contains(&args.duration_secs)
        || !(1..=512).contains(&args.concurrency)
        || args.hot_percent > 100
    {
        eprintln!(
            "loadgen: --requests 1..=1000000, --duration-secs 1..=3600, --concurrency 1..=512, --hot-percent 0..=100"
        );
        return ExitCode::from(2);
    }
    let client = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    let base = args.target.trim_end_matches('/').to_owned();
    let report = Arc::new(Report {
        ops: OPS.iter().map(|op| (*op, OpStats::default())).collect(),
        errors: AtomicU64::new(0),
    });
    let sent = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(args.duration_secs);
    println!(
        "loadgen: {} clients against {base}, at most {} requests or {} s",
        args.concurrency, args.requests, args.duration_secs
    );
    let mut workers = Vec::new();
    for worker in 0..args.concurrency {
        let (client, base, report, sent, args) =
            (client.clone(), base.clone(), Arc::clone(&report), Arc::clone(&sent), args.clone());
        workers.push(tokio::spawn(async move {
            client_loop(worker, &client, &base, &report, &sent, &args, deadline).await;
        }));
    }
    for w in workers {
        let _ = w.await;
    }
    let elapsed = started.elapsed();
    print_report(&report, elapsed);
    let token = args.admin_token.unwrap_or_else(|| config.server.admin_token.clone());
    match client.get(format!("{base}/admin/status")).header("x-admin-token", token).send().await {
        Ok(r) if r.status().is_success() => {
            let status: Value = r.json().await.unwrap_or(Value::Null);
            print_resilience(&status);
        }
        Ok(r) => println!("(no resilience report: /admin/status answered {})", r.status()),
        Err(e) => println!("(no resilience report: {e})"),
    }
    ExitCode::SUCCESS
}

async fn timed(
    report: &Report,
    op: &'static str,
    request: reqwest::RequestBuilder,
) -> Option<(u16, Value)> {
    let start = Instant::now();
    let result = request.send().await;
    let stats = &report.ops[op];
    match result {
        Ok(response) => {
            let status = response.status().as_u16();
            let body = response.json::<Value>().await.unwrap_or(Value::Null);
            stats.latency.record(start.elapsed());
            *stats.statuses.lock().entry(status).or_default() += 1;
            Some((status, body))
        }
        Err(_) => {
            report.errors.fetch_add(1, Ordering::Relaxed);
            None
        }
    }
}

async fn client_loop(
    worker: usize,
    client: &reqwest::Client,
    base: &str,
    report: &Report,
    sent: &AtomicU64,
    args: &Args,
    deadline: Instant,
) {
    let take = || sent.fetch_add(1, Ordering::Relaxed) < args.requests && Instant::now() < deadline;
    if !take() {
        return;
    }
    let created = timed(
        report,
        "create_customer",
        client
            .post(format!("{base}/customers"))
            .json(&json!({ "name": format!("loadgen-{worker}") })),
    )
    .await;
    let Some((201, customer)) = created else {
        return;
    };
    let key = customer["api_key"].as_str().unwrap_or_default().to_owned();
    let mut orders = 0_u64;
    while take() {
        let product = if below(100) < args.hot_percent { 1 } else { 1 + below(500) };
        let roll = below(100);
        if roll < 60 {
            timed(
                report,
                "get_product",
                client.get(format!("{base}/products/{product}")).header("x-api-key", &key),
            )
            .await;
        } else if roll < 72 {
            let words = ["lamp", "oak", "mug", "wool", "steel", "tent"];
            let q = words[below(words.len() as u64) as usize];
            timed(
                report,
                "search",
                client.get(format!("{base}/products?q={q}&limit=10")).header("x-api-key", &key),
            )
            .await;
        } else if roll < 84 {
            timed(
                report,
                "add_to_cart",
                client
                    .post(format!("{base}/cart/items"))
                    .header("x-api-key", &key)
                    .json(&json!({ "product_id": product, "quantity": 1 + below(3) })),
            )
            .await;
        } else if roll < 94 {
            orders += 1;
            let card = if below(10) == 0 { "tok_declined" } else { "tok_visa" };
            timed(
                report,
                "place_order",
                client
                    .post(format!("{base}/orders"))
                    .header("x-api-key", &key)
                    .header("idempotency-key", format!("loadgen-{worker}-{orders}"))
                    .json(&json!({ "items": [{ "product_id": product, "quantity": 1 }], "card": card })),
            )
            .await;
        } else {
            timed(
                report,
                "list_orders",
                client.get(format!("{base}/orders?limit=5")).header("x-api-key", &key),
            )
            .await;
        }
    }
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1e3)
}

fn print_report(report: &Report, elapsed: Duration) {
    let done: u64 = report.ops.values().map(|s| s.latency.snapshot().count).sum();
    println!(
        "\n{done} responses in {:.1} s ({:.0}/s); {} transport errors",
        elapsed.as_secs_f64(),
        done as f64 / elapsed.as_secs_f64().max(1e-9),
        report.errors.load(Ordering::Relaxed),
    );
    println!(
        "\n{:<16} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  statuses",
        "operation", "count", "p50 ms", "p90 ms", "p99 ms", "p99.9 ms", "max ms"
    );
    for (op, stats) in &report.ops {
        let s = stats.latency.snapshot();
        if s.count == 0 {
            continue;
        }
        let statuses: Vec<String> =
            stats.statuses.lock().iter().map(|(code, n)| format!("{code}x{n}")).collect();
        println!(
            "{:<16} {:>7} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            op,
            s.count,
            ms(s.p50),
            ms(s.p90),
            ms(s.p99),
            ms(s.p999),
            ms(s.max),
            statuses.join(" ")
        );
    }
}

fn print_resilience(s: &Value) {
    println!("\nwhat the resilience features did (from /admin/status):");
    println!(
        "  edge:     {} rate-limited (429), {} shed by the bulkhead (503), {} admitted",
        s["edge"]["rate_limited"], s["edge"]["shed"], s["edge"]["admitted"]
    );
    println!(
        "  cache:    {} hits, {} misses, {} reads coalesced into a load under way, {} invalidations; {} product reads reached the store",
        s["cache"]["hits"],
        s["cache"]["misses"],
        s["cache"]["coalesced"],
        s["cache"]["invalidations"],
        s["store"]["product_reads"]
    );
    println!(
        "  breaker:  {} now; opened {} times, {} calls refused while open",
        s["breaker"]["state"], s["breaker"]["opened"], s["breaker"]["rejected"]
    );
    println!(
        "  payment:  {} provider calls, {} failed; {} retries ({} stopped by the retry budget, {} by an open breaker's wait); {} attempt and {} overall timeouts",
        s["payment"]["calls"],
        s["payment"]["failures"],
        s["payment"]["retries"],
        s["payment"]["retry_budget_exhausted"],
        s["payment"]["retries_abandoned"],
        s["payment"]["attempt_timeouts"],
        s["payment"]["overall_timeouts"]
    );
    println!(
        "  queue:    {} events published, {} dead letters",
        s["queue"]["published"], s["queue"]["dlq_depth"]
    );
    if let Some(subs) = s["queue"]["subscriptions"].as_array() {
        for sub in subs {
            println!(
                "            {:<24} depth {} acked {} redelivered {} dead-lettered {}",
                sub["name"].as_str().unwrap_or("?"),
                sub["depth"],
                sub["acked"],
                sub["redelivered"],
                sub["dead_lettered"]
            );
        }
    }
    println!(
        "  timers:   {} waiting (unpaid orders and carts holding stock), {} fired",
        s["timers"]["pending"], s["timers"]["fired"]
    );
    println!(
        "  provider: {} calls, {} charges, {} idempotent repeats, {} injected failures, {} declines",
        s["provider"]["calls"],
        s["provider"]["charges"],
        s["provider"]["repeats"],
        s["provider"]["failures"],
        s["provider"]["declines"]
    );
}

#[cfg(test)]
mod tests {
    use super::is_loopback;

    #[test]
    fn only_loopback_targets() {
        for ok in
            ["http://127.0.0.1:8080", "http://localhost:1", "http://[::1]:80", "http://127.5.0.1"]
        {
            assert!(is_loopback(&reqwest::Url::parse(ok).unwrap()), "{ok}");
        }
        for bad in ["http://10.0.0.1", "http://example.com", "http://192.168.1.1:8080"] {
            assert!(!is_loopback(&reqwest::Url::parse(bad).unwrap()), "{bad}");
        }
    }
}
