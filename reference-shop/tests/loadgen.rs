//! The load generator against a stand-in shop on 127.0.0.1 whose product reads are served
//! one at a time (a server slower than the arrival rate), under paused tokio time: the open
//! loop keeps sending on schedule while latency from the intended send time grows; the
//! closed loop slows down and hides it. Also: the in-flight bound, fault switches through
//! the admin API, the command line's exit codes and JSON, and one short run against the real
//! shop to keep the generator's requests in step with the shop's API.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use parking_lot::Mutex;
use reference_shop::loadgen::{
    self, Exit, Mode, Operation, Plan, ProgressMode, RunError, Scenario, Target,
};
use serde_json::{Value, json};
use tokio::time::Instant;

const TOKEN: &str = "stand-in-token";

/// What the stand-in shop saw.
#[derive(Default)]
struct Seen {
    /// When each product read arrived.
    arrivals: Vec<Instant>,
    /// Product reads being served now, and the most at once.
    open: usize,
    most_open: usize,
    customers_asked: usize,
    /// `(when, body)` of each fault change.
    fault_puts: Vec<(Instant, Value)>,
    faults: Value,
}

struct StandIn {
    seen: Mutex<Seen>,
    /// One product read at a time, each taking `service`.
    serial: tokio::sync::Mutex<()>,
    service: Duration,
}

async fn customers(State(s): State<Arc<StandIn>>) -> Response {
    let n = {
        let mut seen = s.seen.lock();
        seen.customers_asked += 1;
        seen.customers_asked
    };
    // The first call is refused as the shop's edge would: the generator must come back.
    if n == 1 {
        return (StatusCode::TOO_MANY_REQUESTS, [("retry-after", "1")], "{}").into_response();
    }
    (StatusCode::CREATED, axum::Json(json!({ "id": n, "api_key": format!("key-{n}") })))
        .into_response()
}

async fn product(State(s): State<Arc<StandIn>>) -> Response {
    {
        let mut seen = s.seen.lock();
        seen.arrivals.push(Instant::now());
        seen.open += 1;
        seen.most_open = seen.most_open.max(seen.open);
    }
    {
        let _one_at_a_time = s.serial.lock().await;
        tokio::time::sleep(s.service).await;
    }
    s.seen.lock().open -= 1;
    axum::Json(json!({ "id": 1 })).into_response()
}

fn admin_ok(headers: &HeaderMap) -> bool {
    headers.get("x-admin-token").is_some_and(|t| t == TOKEN)
}

async fn get_faults(State(s): State<Arc<StandIn>>, headers: HeaderMap) -> Response {
    if !admin_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(s.seen.lock().faults.clone()).into_response()
}

async fn put_faults(
    State(s): State<Arc<StandIn>>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !admin_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    let mut seen = s.seen.lock();
    for (k, v) in body.as_object().unwrap() {
        seen.faults[k] = v.clone();
    }
    seen.fault_puts.push((Instant::now(), body));
    axum::Json(seen.faults.clone()).into_response()
}

async fn status(headers: HeaderMap) -> Response {
    if !admin_ok(&headers) {
        return StatusCode::UNAUTHORIZED.into_response();
    }
    axum::Json(json!({ "breaker": { "state": "closed" } })).into_response()
}

/// Starts the stand-in on 127.0.0.1 (ephemeral port) in the current runtime.
async fn stand_in(service: Duration) -> (Arc<StandIn>, String) {
    let state = Arc::new(StandIn {
        seen: Mutex::new(Seen {
            faults: json!({ "provider_latency_ms": 20, "provider_failure_rate": 0.0, "store_latency_ms": 0 }),
            ..Seen::default()
        }),
        serial: tokio::sync::Mutex::new(()),
        service,
    });
    let app = Router::new()
        .route("/customers", post(customers))
        .route("/products/{id}", get(product))
        .route("/admin/faults", get(get_faults).put(put_faults))
        .route("/admin/status", get(status))
        .with_state(Arc::clone(&state));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (state, format!("http://{addr}"))
}

fn plan(scenario: &str, target: &str, mode: Mode) -> Plan {
    Plan {
        scenario: Scenario::from_toml(scenario).unwrap(),
        target: Target::parse(target).unwrap(),
        admin_token: TOKEN.to_owned(),
        mode,
        max_requests: None,
        progress: ProgressMode::Off,
    }
}

/// Product reads only, 200 a second for one second, from two customers.
const READS: &str = r#"
customers = 2
request_timeout = "30s"
[mix]
get_product = 1
[[phase]]
name = "load"
duration = "1s"
rate = 200
"#;

fn ms(v: f64) -> Duration {
    Duration::from_secs_f64(v / 1e3)
}

/// The server takes 10 ms per read, one at a time; requests are due every 5 ms. The open
/// loop still sends all 200 within the second, and their latency from the intended send
/// time grows by 5 ms per request (the k-th waits for k reads before it): about 0.5 s at
/// the median and 1 s at the end. A closed-loop client against the same server sends one
/// read per 10 ms and reports 10 ms for each: the queue the open loop measured is invisible.
#[tokio::test(start_paused = true)]
async fn the_open_loop_keeps_its_schedule_against_a_slow_server_and_counts_the_queue() {
    let (server, base) = stand_in(Duration::from_millis(10)).await;
    let mut open = plan(READS, &base, Mode::Open);
    open.scenario.add_objective("get_product:p99=2s".parse().unwrap()).unwrap();
    open.scenario.add_objective("get_product:p50=100ms".parse().unwrap()).unwrap();
    let report = loadgen::execute(&open, loadgen::never_stop()).await.unwrap();

    let (arrivals, customers_asked) = {
        let seen = server.seen.lock();
        (seen.arrivals.clone(), seen.customers_asked)
    };
    // Seeding came back after the 429 and made both customers.
    assert_eq!(customers_asked, 3);
    // The send rate held: 200 arrivals, the last within the second the schedule spans
    // (the server needed two seconds to answer them).
    assert_eq!((report.all.attempts, report.all.errors), (200, 0));
    assert_eq!(arrivals.len(), 200);
    let span = *arrivals.last().unwrap() - arrivals[0];
    assert!(span <= ms(1000.0), "arrivals spread over {span:?}");
    for (k, at) in arrivals.iter().enumerate() {
        let due = ms(5.0 * k as f64);
        let off = (*at - arrivals[0]).abs_diff(due);
        assert!(off <= ms(6.0), "request {k} arrived {off:?} off its schedule");
    }
    assert!(report.send_lag_ms.p99 <= 6.0, "{:?}", report.send_lag_ms);
    // Latency from the intended send grew with the queue: ~5 ms per request ahead.
    let latency = report.operations[&Operation::GetProduct].outcomes.latency_ms;
    assert!((400.0..=620.0).contains(&latency.p50), "{latency:?}");
    assert!((950.0..=1100.0).contains(&latency.max), "{latency:?}");
    assert!(report.elapsed_s >= 1.9, "the last answer came after two seconds of service");
    // The gate: p99 under 2 s holds, p50 under 100 ms does not.
    let passed: Vec<bool> = report.slo.checks.iter().map(|c| c.passed).collect();
    assert_eq!(passed, [true, false]);
    assert_eq!(report.exit(), Exit::SloMissed);

    // The same server, one closed-loop client: half the requests, and no queue to see.
    let closed = plan(READS, &base, Mode::Closed { clients: 1 });
    let report = loadgen::execute(&closed, loadgen::never_stop()).await.unwrap();
    let attempts = report.all.attempts;
    assert!((95..=101).contains(&attempts), "closed loop sent {attempts}");
    let hidden = report.operations[&Operation::GetProduct].outcomes.latency_ms;
    assert!(hidden.p99 < 15.0, "{hidden:?}");
    assert!(latency.p99 > 50.0 * hidden.p99, "open {latency:?} vs closed {hidden:?}");
}

/// With at most 10 requests out, the server never sees more than 10 at once and the
/// requests due beyond that are dropped and counted as errors, not queued in the generator.
#[tokio::test(start_paused = true)]
async fn the_in_flight_bound_holds_and_what_it_refuses_counts_as_dropped() {
    let (server, base) = stand_in(Duration::from_millis(10)).await;
    let mut p = plan(READS, &base, Mode::Open);
    p.scenario.set_max_in_flight(10).unwrap();
    let report = loadgen::execute(&p, loadgen::never_stop()).await.unwrap();
    let (arrivals, most_open) = {
        let seen = server.seen.lock();
        (seen.arrivals.len() as u64, seen.most_open)
    };
    assert!(most_open <= 10, "{most_open} at once");
    assert_eq!(report.all.attempts, 200);
    assert!(report.all.dropped >= 50, "{} dropped", report.all.dropped);
    assert_eq!(report.all.dropped + arrivals, 200);
    assert_eq!(report.all.errors, report.all.dropped);
    // A dropped request has no latency to report.
    assert_eq!(report.all.latency_ms.count, arrivals);
}

/// Fault switches go out at their times through the admin API, windows are undone at their
/// end, and everything switched is put back when the run ends.
#[tokio::test(start_paused = true)]
async fn fault_switches_go_out_on_time_and_are_put_back() {
    let (server, base) = stand_in(Duration::ZERO).await;
    let scenario = r#"
customers = 1
[mix]
get_product = 1
[[phase]]
name = "one"
duration = "1s"
rate = 10
[[phase]]
name = "two"
duration = "1s"
rate = 10
[[fault]]
at = "500ms"
until = "1500ms"
set = { provider_failure_rate = 1.0 }
[[fault]]
at = "1s"
set = { provider_latency_ms = 3000 }
"#;
    let report =
        loadgen::execute(&plan(scenario, &base, Mode::Open), loadgen::never_stop()).await.unwrap();
    let (first, puts, faults) = {
        let seen = server.seen.lock();
        (seen.arrivals[0], seen.fault_puts.clone(), seen.faults.clone())
    };
    let got: Vec<(u128, Value)> =
        puts.iter().map(|(at, body)| ((*at - first).as_millis(), body.clone())).collect();
    assert_eq!(
        got,
        [
            (500, json!({ "provider_failure_rate": 1.0 })),
            (1000, json!({ "provider_latency_ms": 3000 })),
            (1500, json!({ "provider_failure_rate": 0.0 })),
            // The end of the run (the last request was due at 1.9 s).
            (1900, json!({ "provider_failure_rate": 0.0, "provider_latency_ms": 20 })),
        ]
    );
    assert_eq!(faults["provider_latency_ms"], 20);
    assert_eq!(report.faults.len(), 4);
    assert!(report.faults.iter().all(|f| f.error.is_none()));
    assert_eq!(report.phases.iter().map(|p| p.all.attempts).collect::<Vec<_>>(), [10, 10]);
    assert_eq!(report.exit(), Exit::Passed);

    // A wrong admin token stops the run before anything is sent.
    let mut wrong = plan(scenario, &base, Mode::Open);
    wrong.admin_token = "nope".to_owned();
    let err = loadgen::execute(&wrong, loadgen::never_stop()).await.unwrap_err();
    assert!(matches!(err, RunError::Admin(_)), "{err}");
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(server.seen.lock().arrivals.len(), 20);
}

fn shop_binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_reference-shop"))
}

fn temp_file(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("levee-loadgen-{}-{name}", std::process::id()))
}

/// The command line's exit codes: 0 when every objective holds, 1 when one is missed, 2
/// for a bad scenario or a target off this machine, 3 when the shop cannot be reached; and
/// the JSON report. Each run is 10 requests over half a second against the stand-in.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_exits_by_its_objectives_and_writes_json() {
    let (_server, base) = stand_in(Duration::ZERO).await;
    let scenario = temp_file("scenario.toml");
    std::fs::write(
        &scenario,
        "customers = 1\n[mix]\nget_product = 1\n[[phase]]\nname = \"p\"\nduration = \"500ms\"\nrate = 20\n",
    )
    .unwrap();
    let json = temp_file("report.json");
    let run_at = |target: &str, extra: &[&str]| {
        let (scenario, target) = (scenario.clone(), target.to_owned());
        let extra: Vec<String> = extra.iter().map(|s| (*s).to_owned()).collect();
        tokio::task::spawn_blocking(move || {
            shop_binary()
                .args(["loadgen", "--progress", "off", "--admin-token", TOKEN, "--target", &target])
                .arg("--scenario")
                .arg(&scenario)
                .args(extra)
                .output()
                .unwrap()
        })
    };
    let run = |extra: &[&str]| run_at(&base, extra);
    let out = run(&["--slo", "all:errors=0", "--json", json.to_str().unwrap()]).await.unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["mode"], "open");
    assert_eq!(report["operations"]["get_product"]["attempts"], 10);
    assert_eq!(report["phases"][0]["name"], "p");
    assert_eq!(report["slo"]["passed"], true);
    assert!(report["operations"]["get_product"]["latency_ms"]["p99"].as_f64().unwrap() > 0.0);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("get_product") && text.contains("ok     all error rate <= 0%"), "{text}");

    let out = run(&["--slo", "get_product:p50=1ns"]).await.unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(String::from_utf8_lossy(&out.stdout).contains("MISSED get_product p50 <= 1ns"));

    let out = run(&["--slo", "get_product@nope:p50=1s"]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("names phase `nope`"));
    let out = run_at("http://192.168.1.1:8080", &[]).await.unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("only http:// on this machine"));

    // A port nothing listens on: the run cannot start.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let out = run_at(&dead, &[]).await.unwrap();
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stderr));

    let _ = std::fs::remove_file(&scenario);
    let _ = std::fs::remove_file(&json);
}

/// One short open-loop run (40 requests over a second, every operation) against the real
/// shop: every answer is one the shop gives to well-formed requests, so the generator's
/// requests match the shop's API.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_is_a_request_the_real_shop_accepts() {
    let db = common::TestDb::sqlite();
    let shop = common::start(&db, |_| {}).await;
    let scenario = r#"
description = "every operation once in a while"
customers = 4
products = 50
[mix]
create_customer = 1
get_product = 1
search = 1
add_to_cart = 1
place_order = 1
checkout = 1
list_orders = 1
[[phase]]
name = "all"
duration = "1s"
rate = 40
"#;
    let mut p = plan(scenario, &shop.base, Mode::Open);
    p.admin_token = common::ADMIN.to_owned();
    let report = loadgen::execute(&p, loadgen::never_stop()).await.unwrap();
    assert_eq!(report.all.attempts, 40);
    for (op, r) in &report.operations {
        for status in r.outcomes.statuses.keys() {
            // 409: out of stock, a correct answer under load; 402: a checkout with the
            // scenario's declined card.
            let declined = *op == Operation::Checkout && *status == 402;
            assert!(
                matches!(status, 200 | 201 | 409) || declined,
                "{op}: {:?}",
                r.outcomes.statuses
            );
        }
    }
    assert_eq!(report.all.errors, 0, "{}", report.text());
    assert_eq!(report.status["breaker"]["state"], "closed");
    shop.running.shutdown().await;
}
