//! Adaptive admission at twice the shop's capacity (issue 22 item 2), with the real binaries
//! over 127.0.0.1: a shop whose product reads have a fixed capacity (`[work]`: 4 at once,
//! 100 ms each, 40 a second, far below what even a debug build on two busy cores serves), and
//! the open-loop load generator sending product reads at 80 a second against it
//! (`scenarios/admission-2x.toml`, the shop's settings in `scenarios/shops/admission-2x.toml`), once with
//! `[edge.admission]` and once without it, the edge otherwise the same.
//!
//! With admission, over the three measured phases after a 3 s warm-up: the reads served
//! (200) run at the capacity (within 10 %), their p99 stays under 10x the service time
//! (1 s) in every phase, and the rest are refused at once with 503 and `Retry-After`.
//! Without it every read is served, at the same capacity, so the queue grows by 40 reads a
//! second: the served reads' p99 is several times the bound and rises from the first third
//! to the last. The figures are printed (`--nocapture`) for the README.

mod process;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use process::Scratch;
use serde_json::Value;

const TOKEN: &str = "admission-load-token";

/// The capacity `[work]` gives the shop, reads a second, and its service time.
const CAPACITY: f64 = 40.0;
const SERVICE_TIME: Duration = Duration::from_millis(100);

/// The measured phases of the scenario (after its warm-up).
const THIRDS: [&str; 3] = ["first", "middle", "last"];

fn scenarios() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scenarios"))
}

/// A shop process on a free port; killed, and its directory removed, on drop.
struct Shop {
    child: Child,
    base: String,
    _dir: Scratch,
}

impl Shop {
    /// The shop of `scenarios/shops/admission-2x.toml`, without its `[edge.admission]` unless `admission`.
    fn start(admission: bool) -> Self {
        let scratch = Scratch::new("admission-load");
        let text = std::fs::read_to_string(scenarios().join("shops/admission-2x.toml")).unwrap();
        let mut config: toml::Table = text.parse().unwrap();
        let work = &config["work"];
        assert_eq!(
            (work["concurrency"].as_integer(), work["service_time"].as_str()),
            (Some(4), Some("100ms")),
            "the test's figures follow the shop's settings"
        );
        let edge = config["edge"].as_table_mut().unwrap();
        assert!(edge.contains_key("admission"));
        if !admission {
            edge.remove("admission");
        }
        let path = scratch.0.join("shop.toml");
        std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
        let (child, base) = process::spawn_announced(&mut process::serve(
            Some(&path),
            TOKEN,
            &scratch.0.join("data"),
        ));
        Self { child, base, _dir: scratch }
    }

    /// Runs the scenario against the shop and returns the load generator's JSON report.
    fn load(&self) -> Value {
        let out = Command::new(env!("CARGO_BIN_EXE_reference-shop"))
            .args(["loadgen", "--progress", "off", "--json", "-", "--admin-token", TOKEN])
            .arg("--scenario")
            .arg(scenarios().join("admission-2x.toml"))
            .args(["--target", &self.base])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(0), "{stderr}");
        serde_json::from_slice(&out.stdout).expect("the JSON report")
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What one run found in each measured third.
#[derive(Debug)]
struct Third {
    /// Reads sent.
    sent: u64,
    /// Answered 200, and 503.
    served: u64,
    shed: u64,
    /// p99 of the served reads, from their intended send time, ms.
    served_p99: f64,
}

fn thirds(report: &Value) -> Vec<Third> {
    THIRDS
        .iter()
        .map(|name| {
            let phase = report["phases"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == *name)
                .unwrap_or_else(|| panic!("no phase {name}"));
            let status = |s: &str| phase["statuses"][s].as_u64().unwrap_or(0);
            let third = Third {
                sent: phase["attempts"].as_u64().unwrap(),
                served: status("200"),
                shed: status("503"),
                served_p99: phase["ok_latency_ms"]["p99"].as_f64().unwrap(),
            };
            // Every read answered, none timed out, failed or dropped, no other status.
            assert_eq!(third.served + third.shed, third.sent, "{name}: {phase}");
            third
        })
        .collect()
}

/// Reads served a second over the measured thirds (and `more`), counted by the phase they were sent in
/// (without admission every read sent is served, after the run if need be, so that is the
/// load's rate, not the shop's).
fn served_per_s(report: &Value, thirds: &[Third], more: u64) -> f64 {
    let span: f64 = THIRDS
        .iter()
        .map(|name| {
            let p = report["phases"].as_array().unwrap().iter().find(|p| p["name"] == *name);
            let p = p.unwrap();
            p["to_s"].as_f64().unwrap() - p["from_s"].as_f64().unwrap()
        })
        .sum();
    (thirds.iter().map(|t| t.served).sum::<u64>() + more) as f64 / span
}

/// A read sent outside the load generator while it runs: its status, `Retry-After` and how
/// long the answer took.
async fn probe(http: &reqwest::Client, base: &str) -> (u16, Option<String>, Duration) {
    let sent = Instant::now();
    let r = http.get(format!("{base}/products/1")).send().await.unwrap();
    let retry_after = r.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
    let status = r.status().as_u16();
    let _ = r.bytes().await;
    (status, retry_after, sent.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_twice_the_capacity_admission_holds_throughput_and_p99() {
    let bound_ms = 10.0 * SERVICE_TIME.as_secs_f64() * 1e3;
    let http = reqwest::Client::builder().timeout(Duration::from_secs(30)).build().unwrap();

    // With admission, and reads of our own during the measured phases: 4 rounds of 3 at
    // once, 700 ms apart (each read is shed or served as the controller finds it, so a
    // round of 3 on top of the load is likely to see both).
    let shop = tokio::task::spawn_blocking(|| Shop::start(true)).await.unwrap();
    let base = shop.base.clone();
    let load = tokio::task::spawn_blocking(move || (shop.load(), shop));
    tokio::time::sleep(Duration::from_millis(3200)).await;
    let mut probes = Vec::new();
    for _ in 0..4 {
        let round =
            futures::future::join3(probe(&http, &base), probe(&http, &base), probe(&http, &base))
                .await;
        probes.extend([round.0, round.1, round.2]);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let (with, shop) = load.await.unwrap();
    let status: Value = http
        .get(format!("{base}/admin/status"))
        .header("x-admin-token", TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    drop(shop);

    let without = tokio::task::spawn_blocking(|| {
        let shop = Shop::start(false);
        shop.load()
    })
    .await
    .unwrap();

    let (on, off) = (thirds(&with), thirds(&without));
    // The probes the shop served took their share of its capacity.
    let probes_served = probes.iter().filter(|(s, ..)| *s == 200).count() as u64;
    let on_rate = served_per_s(&with, &on, probes_served);
    let off_rate = served_per_s(&without, &off, 0);
    eprintln!("capacity {CAPACITY}/s, load {}/s, p99 bound {bound_ms} ms", 2.0 * CAPACITY);
    for (name, run, rate) in [("admission on", &on, on_rate), ("admission off", &off, off_rate)] {
        eprintln!("{name}: {rate:.1}/s of the reads sent in the thirds were served");
        for (third, t) in THIRDS.iter().zip(run.iter()) {
            eprintln!(
                "  {third:<6} sent {:>4} served {:>4} shed {:>4} served p99 {:>8.1} ms",
                t.sent, t.served, t.shed, t.served_p99
            );
        }
    }
    eprintln!("probes (status, retry-after, ms): {probes:?}");

    // With admission: the capacity's throughput, p99 under the bound in every third, the
    // rest shed (about half of the reads).
    assert!((on_rate - CAPACITY).abs() <= 0.1 * CAPACITY, "served {on_rate:.1}/s: {on:?}");
    for t in &on {
        assert!(t.served_p99 < bound_ms, "{on:?}");
        assert!(t.shed * 3 > t.sent, "{on:?}");
    }
    assert_eq!(status["edge"]["shed"], 0, "the bulkhead shed nothing: {status}");
    assert!(status["edge"]["admission_shed"].as_u64().unwrap() > 0, "{status}");
    // Shed reads are answered at once with 503 and Retry-After: the probes that were shed
    // took less than the service time, as a median (a busy machine may delay any one).
    let mut shed: Vec<Duration> = probes
        .iter()
        .filter(|(s, ..)| *s == 503)
        .map(|(_, retry_after, took)| {
            let secs: u64 = retry_after.as_deref().expect("Retry-After").parse().unwrap();
            assert!(secs >= 1);
            *took
        })
        .collect();
    assert!(probes.iter().all(|(s, ..)| matches!(s, 200 | 503)), "{probes:?}");
    assert!(shed.len() >= 3, "{probes:?}");
    shed.sort_unstable();
    assert!(shed[shed.len() / 2] < SERVICE_TIME, "{probes:?}");

    // Without: nothing shed, every read served at the same capacity, late, and later and
    // later. The queue grows by 40 reads a second, so the wait by about a second a second:
    // several times the bound by the last third, rising from third to third, and by more
    // than a second over the 2.4 s from the end of the first third to the end of the last.
    assert!(off.iter().all(|t| t.shed == 0), "{off:?}");
    assert!(off[2].served_p99 > 3.0 * bound_ms, "{off:?}");
    assert!(off[0].served_p99 < off[1].served_p99, "{off:?}");
    assert!(off[1].served_p99 < off[2].served_p99, "{off:?}");
    assert!(off[2].served_p99 - off[0].served_p99 > 1_000.0, "{off:?}");
}
