//! Issue 18 item 1: the shop's services as separate processes behind the gateway.
//!
//! `an_order_goes_through_the_gateway_and_the_catalog_fails_over` runs one process per
//! service (`serve --service <name>`) on one fresh PostgreSQL database
//! (`LEVEE_TEST_POSTGRES_URL`) and one NATS server (`LEVEE_TEST_NATS_URL`, streams under a
//! prefix of its own); skipped without either, failing under CI. The orders service starts
//! first, alone, so that it migrates and seeds the database before the others open it (two
//! first starts racing on one database is another item of issue 18). Then, all through the
//! gateway: sign-up, browsing, a cart, a checkout that the payment service pays and the
//! notification service records; the catalog primary killed: reads go to the standby; the
//! standby killed too: a JSON error at once; an unknown route: a JSON 404.
//!
//! `the_deadline_shrinks_across_the_gateway` starts a gateway in this process in front of an
//! upstream that records the `levee-timeout` it was sent; `a_service_honours_a_shorter_deadline`
//! shows a service answering 504 on the caller's deadline, not its own, on a manual clock.
//!
//! No sleep stands in for an outcome: each wait polls, bounded.

mod common;
mod process;

use std::process::Child;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestDb, eventually, start, test_config};
use parking_lot::Mutex;
use process::Scratch;
use reference_shop::role::Service;
use reference_shop::{RunningShop, ShopClock};
use serde_json::{Value, json};

const TOKEN: &str = "split-admin-token";

/// One service's process, killed on drop.
struct Proc {
    child: Child,
    base: String,
    _dir: Scratch,
}

impl Proc {
    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The settings every service shares: the database, the bus, fast redelivery.
struct Shared {
    database: String,
    nats: String,
    prefix: String,
}

impl Shared {
    /// Spawns `service` with `extra` settings; its announcement is awaited by [`ready`].
    fn spawn(&self, service: &str, extra: &[(&str, String)]) -> (Child, Scratch) {
        let dir = Scratch::new(&format!("split-{service}"));
        let mut cmd = process::serve(None, TOKEN, &dir.0);
        cmd.arg("--service")
            .arg(service)
            .env("DATABASE_URL", &self.database)
            .env("SHOP_QUEUE__BACKEND", "nats")
            .env("SHOP_QUEUE__NATS_URL", &self.nats)
            .env("SHOP_QUEUE__NATS_PREFIX", &self.prefix)
            .env("SHOP_QUEUE__SUBSCRIPTION__BACKOFF", "[\"200ms\"]")
            .env("SHOP_QUEUE__SUBSCRIPTION__ACK_WAIT", "3s")
            .env("SHOP_STORAGE__SEED_PRODUCTS", "5");
        for (name, value) in extra {
            cmd.env(name, value);
        }
        (cmd.spawn().expect("the shop binary runs"), dir)
    }
}

/// Waits for the announcement of a process [`Shared::spawn`] started.
fn ready(service: &str, (mut child, dir): (Child, Scratch)) -> Proc {
    match process::announced_url(&mut child, Duration::from_secs(30)) {
        Ok(base) => Proc { child, base, _dir: dir },
        Err(line) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the {service} service did not start: {line:?}");
        }
    }
}

fn list(urls: &[&str]) -> String {
    serde_json::to_string(urls).unwrap()
}

async fn call(req: reqwest::RequestBuilder) -> (u16, Value) {
    let r = req.send().await.expect("the gateway answers");
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
}

/// Polls `check` every 100 ms until it gives `Some`, for `limit` at most.
async fn until<T, F, Fut>(what: &str, limit: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_goes_through_the_gateway_and_the_catalog_fails_over() {
    let Some(nats) = levee::core::testing::server_url("LEVEE_TEST_NATS_URL", "split shop") else {
        return;
    };
    let Some(db) = TestDb::postgres().await else { return };
    let TestDb::Postgres(database) = &db else { unreachable!("a PostgreSQL database") };
    let database = database.clone();
    let started = Instant::now();
    let prefix = format!("split{}x{:x}", std::process::id(), levee::core::random::next_u64() >> 40);
    let shared = Shared { database, nats, prefix };
    // The services trust the gateway's word on who the client is.
    let behind = [("SHOP_LIMITS__TRUSTED_PROXIES", "[\"127.0.0.1\"]".to_owned())];

    // Orders first, alone: it migrates and seeds the database.
    let orders = ready("orders", shared.spawn("orders", &behind));
    let spawned = [
        shared.spawn("catalog", &behind),
        shared.spawn("catalog", &behind),
        shared.spawn("payment", &behind),
        shared.spawn("notification", &behind),
    ];
    let [catalog, standby, payment, notification] = spawned;
    let mut catalog = ready("catalog", catalog);
    let mut standby = ready("catalog standby", standby);
    let payment = ready("payment", payment);
    let notification = ready("notification", notification);
    let gateway = ready(
        "gateway",
        shared.spawn(
            "gateway",
            &[
                ("SHOP_GATEWAY__CATALOG", list(&[&catalog.base])),
                ("SHOP_GATEWAY__CATALOG_STANDBY", list(&[&standby.base])),
                ("SHOP_GATEWAY__ORDERS", list(&[&orders.base])),
                ("SHOP_GATEWAY__NOTIFICATION", list(&[&notification.base])),
            ],
        ),
    );
    let gw = gateway.base.clone();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // Each service serves its own routes only, and its own health.
    let (status, body) = call(http.get(format!("{}/products/1", orders.base))).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "{body}");
    for p in [&orders, &catalog, &standby, &payment, &notification, &gateway] {
        let (status, body) = call(http.get(format!("{}/health/ready", p.base))).await;
        assert_eq!(status, 200, "{}: {body}", p.base);
    }

    // The order flow, through the gateway only.
    let (status, body) =
        call(http.post(format!("{gw}/customers")).json(&json!({ "name": "split" }))).await;
    assert_eq!(status, 201, "sign-up at the gateway: {body}");
    let key = body["api_key"].as_str().unwrap().to_owned();
    let (status, body) = call(http.get(format!("{gw}/products?limit=3"))).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("\"id\":1"), "the catalog lists product 1: {body}");
    let (status, body) = call(
        http.post(format!("{gw}/cart/items"))
            .header("x-api-key", &key)
            .json(&json!({ "product_id": 1, "quantity": 1 })),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, body) = call(
        http.post(format!("{gw}/orders"))
            .header("x-api-key", &key)
            .header("idempotency-key", "split-1")
            .json(&json!({ "card": "tok_visa" })),
    )
    .await;
    assert_eq!(status, 201, "the cart checked out: {body}");
    let order = body["id"].as_i64().unwrap();
    until("the payment service pays the order", Duration::from_secs(15), || async {
        let (_, body) =
            call(http.get(format!("{gw}/orders/{order}")).header("x-api-key", &key)).await;
        (body["status"] == "paid").then_some(())
    })
    .await;
    until("the notification service records the payment", Duration::from_secs(15), || async {
        let (status, body) =
            call(http.get(format!("{gw}/orders/{order}/notifications")).header("x-api-key", &key))
                .await;
        assert_eq!(status, 200, "{body}");
        let kinds =
            body["notifications"].as_array()?.iter().map(|n| n["kind"].clone()).collect::<Vec<_>>();
        kinds.contains(&json!("payment_succeeded")).then_some(())
    })
    .await;

    // The catalog primary dies: after at most a few failed reads (each a JSON answer), the
    // standby serves, and keeps serving.
    let standby_requests = || async {
        let (status, body) =
            call(http.get(format!("{gw}/admin/upstreams")).header("x-admin-token", TOKEN)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["catalog"][1]["priority"], 1, "{body}");
        (
            body["catalog"][0]["ejected"].as_bool().unwrap(),
            body["catalog"][1]["stats"]["requests"].as_u64().unwrap(),
        )
    };
    let (_, before) = standby_requests().await;
    assert_eq!(before, 0, "the standby took nothing while the primary was up");
    catalog.kill();
    let mut failed = 0;
    for _ in 0..10 {
        let (status, body) = call(http.get(format!("{gw}/products/2"))).await;
        if status == 200 {
            break;
        }
        assert!([502, 503].contains(&status), "{status}: {body}");
        assert!(body["error"]["code"].is_string(), "a JSON error: {body}");
        failed += 1;
    }
    assert!(failed < 10, "the standby never served");
    for _ in 0..5 {
        let (status, body) = call(http.get(format!("{gw}/products/2"))).await;
        assert_eq!(status, 200, "the standby serves: {body}");
    }
    let (ejected, after) = standby_requests().await;
    assert!(ejected, "the dead primary is out of rotation");
    assert!(after >= 5, "the standby served the reads: {after}");
    eprintln!("catalog failover: {failed} read(s) failed before the standby served");

    // The whole group dead: a JSON 5xx at once, never a hang.
    standby.kill();
    let asked = Instant::now();
    let (status, body) = call(http.get(format!("{gw}/products/3"))).await;
    assert!([502, 503].contains(&status), "{status}: {body}");
    assert!(body["error"]["code"].as_str().unwrap().starts_with("upstream_"), "{body}");
    assert!(asked.elapsed() < Duration::from_secs(3), "answered in {:?}", asked.elapsed());
    // Orders still work: only the catalog is gone.
    let (status, body) =
        call(http.get(format!("{gw}/orders/{order}")).header("x-api-key", &key)).await;
    assert_eq!((status, &body["status"]), (200, &json!("paid")), "{body}");
    // A route no service has: the gateway's own JSON 404.
    let (status, body) = call(http.get(format!("{gw}/nowhere"))).await;
    assert_eq!((status, &body["error"]["code"]), (404, &json!("not_found")), "{body}");
    eprintln!("split topology test took {:?}", started.elapsed());
}

/// A stand-in upstream: answers 200 to everything and keeps the `levee-timeout` it was sent.
async fn recording_upstream() -> (String, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = Arc::clone(&seen);
    let app = axum::Router::new().fallback(move |headers: axum::http::HeaderMap| {
        let record = Arc::clone(&record);
        async move {
            let value = headers.get("levee-timeout").map(|v| v.to_str().unwrap().to_owned());
            record.lock().push(value.unwrap_or_default());
            axum::Json(json!({ "notifications": [] }))
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}"), seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deadline_shrinks_across_the_gateway() {
    let Some(nats) = levee::core::testing::server_url("LEVEE_TEST_NATS_URL", "split shop") else {
        return;
    };
    let Some(db) = TestDb::postgres().await else { return };
    let (upstream, seen) = recording_upstream().await;
    let mut config = test_config();
    db.apply(&mut config);
    config.queue.backend = reference_shop::config::QueueBackend::Nats;
    config.queue.nats_url = nats;
    config.queue.nats_prefix =
        format!("splitdl{}x{:x}", std::process::id(), levee::core::random::next_u64() >> 40);
    config.server.clients.request_timeout = Duration::from_secs(2);
    for group in
        [&mut config.gateway.catalog, &mut config.gateway.orders, &mut config.gateway.notification]
    {
        group.push(upstream.clone());
    }
    let gateway =
        RunningShop::start_as(config, ShopClock::system(), Service::Gateway).await.unwrap();
    let gw = format!("http://{}", gateway.addr());
    let http = reqwest::Client::new();
    // The caller has 1.5 s: the upstream is told less (the time spent at the gateway is gone).
    let r =
        http.get(format!("{gw}/products/1")).header("levee-timeout", "1500m").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // No caller deadline: the gateway's own (`request_timeout`, 2 s) is what is left.
    let r = http.get(format!("{gw}/products?limit=1")).send().await.unwrap();
    assert_eq!(r.status(), 200);
    // More than the gateway's own: the gateway's wins.
    let r =
        http.get(format!("{gw}/products/2")).header("levee-timeout", "1M").send().await.unwrap();
    assert_eq!(r.status(), 200);
    // Malformed: refused at the gateway, never forwarded.
    let r =
        http.get(format!("{gw}/products/3")).header("levee-timeout", "soon").send().await.unwrap();
    assert_eq!(r.status(), 400);
    let seen: Vec<Duration> = seen
        .lock()
        .iter()
        .map(|v| levee::client::deadline::parse_timeout(v.as_bytes()).expect("a levee-timeout"))
        .collect();
    assert_eq!(seen.len(), 3, "{seen:?}");
    let bounds = [Duration::from_millis(1500), Duration::from_secs(2), Duration::from_secs(2)];
    for (got, bound) in seen.iter().zip(bounds) {
        assert!(*got < bound, "the upstream saw {got:?}, not less than {bound:?}");
        assert!(*got > bound - Duration::from_millis(500), "the upstream saw {got:?} of {bound:?}");
    }
    gateway.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_honours_a_shorter_deadline() {
    let db = TestDb::sqlite();
    let shop = start(&db, |c| c.server.clients.request_timeout = Duration::from_secs(30)).await;
    // The store answers in a minute (real time); deadlines run on the shop's manual clock.
    shop.faults(json!({ "store_latency_ms": 60_000 })).await;
    let late =
        shop.post("/customers", None, &json!({ "name": "late" })).header("levee-timeout", "200m");
    let pending = tokio::spawn(late.send());
    eventually("the request is being served", || async {
        (shop.shop().edge.stats().in_flight == 1).then_some(())
    })
    .await;
    shop.clock.advance(Duration::from_millis(199));
    tokio::task::yield_now().await;
    assert!(!pending.is_finished(), "not before the caller's deadline");
    shop.clock.advance(Duration::from_millis(1));
    let r = pending.await.unwrap().unwrap();
    assert_eq!(r.status(), 504, "the caller's 200 ms, not the service's 30 s");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "deadline_exceeded", "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("200 ms"), "{body}");
    shop.faults(json!({ "store_latency_ms": 0 })).await;
    let bad = shop.send(shop.get("/products/1", None).header("levee-timeout", "1x")).await;
    assert_eq!(
        (bad.status, &bad.body["error"]["code"]),
        (400, &json!("invalid_timeout")),
        "{bad:?}"
    );
    shop.stop().await;
}

#[test]
fn a_split_service_on_a_one_process_store_is_refused_with_exit_2() {
    for (service, broker, setting) in [
        ("catalog", None, "storage.database_url"),
        ("payment", Some("postgres://shop@127.0.0.1:1/shop"), "queue.backend"),
    ] {
        let dir = Scratch::new("split-refused");
        let mut cmd = process::serve(None, TOKEN, &dir.0);
        cmd.arg("--service").arg(service).stderr(std::process::Stdio::piped());
        if let Some(url) = broker {
            cmd.env("DATABASE_URL", url);
        }
        let mut child = cmd.spawn().expect("the shop binary runs");
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("{service}: still running after 30 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stderr = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
        assert_eq!(status.code(), Some(2), "{service}: {stderr}");
        assert!(stderr.contains(&format!("`{setting}`")), "{service}: {stderr}");
        assert!(stderr.contains(&format!("the {service} service shares")), "{stderr}");
    }
}
