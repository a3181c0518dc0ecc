//! The edge's limits on Redis (`[edge.redis]`, issue 17.6), over real HTTP on 127.0.0.1:
//! two shops on one Redis share each client's limit; without Redis the fail mode decides, at
//! the start and mid-run, within the timeout; a limit on Redis is not changed live. The
//! in-process default is what every other test file runs on.
//!
//! The tests that need a Redis take CI's (`LEVEE_TEST_REDIS_URL`) or start their own
//! (`LEVEE_REDIS_SERVER_BIN`), and say they were skipped without one; the others point the
//! shop at a port nothing listens on. Each is a few dozen requests.

mod common;

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{TestDb, TestShop, start, test_config};
use levee::limit::Quota;
use levee::redis::FailMode;
use reference_shop::{Config, RunningShop, ShopClock, StartError};
use reqwest::Method;
use serde_json::json;

/// How long a request may take beyond the Redis timeout on a loaded machine.
const SLACK: Duration = Duration::from_secs(2);

/// A key prefix no other test run uses.
fn unique_prefix(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("shop-test:{name}:{}:{nanos}:", std::process::id())
}

/// A port on 127.0.0.1 that nothing listened on a moment ago.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The edge's limits on `url` under `prefix`: a burst of 3 product reads per client (one a
/// minute after it, so that real time refills nothing) and 2 sign-ups per address.
fn on_redis(c: &mut Config, url: &str, prefix: &str, fail_mode: FailMode) {
    c.edge.rate = Quota::per_minute(1).with_burst(3);
    c.limits.signup = Quota::per_minute(1).with_burst(2);
    c.edge.redis.url = Some(url.to_owned());
    c.edge.redis.prefix = prefix.to_owned();
    c.edge.redis.timeout = Duration::from_millis(250);
    c.edge.redis.fail_mode = fail_mode;
}

/// An anonymous product read (the client is the address, 127.0.0.1, on every shop), timed.
async fn read(shop: &TestShop) -> (common::Resp, Duration) {
    let t = Instant::now();
    let r = shop.send(shop.get("/products/1", None)).await;
    (r, t.elapsed())
}

async fn metrics(shop: &TestShop) -> String {
    let r = shop.http.get(format!("{}/metrics", shop.base)).send().await.unwrap();
    assert_eq!(r.status(), 200);
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_shops_on_one_redis_share_each_clients_limit() {
    let Some(url) = levee::core::testing::server_url("LEVEE_TEST_REDIS_URL", "redis") else {
        return;
    };
    let prefix = unique_prefix("shared");
    let (db_a, db_b) = (TestDb::sqlite(), TestDb::sqlite());
    let a = start(&db_a, |c| on_redis(c, &url, &prefix, FailMode::Closed)).await;
    let b = start(&db_b, |c| on_redis(c, &url, &prefix, FailMode::Closed)).await;

    // The client spends its burst of 3 on shop A, and shop B refuses it: one limit.
    for _ in 0..3 {
        let (r, _) = read(&a).await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let (refused, _) = read(&b).await;
    assert_eq!(refused.status, 429, "{refused:?}");
    assert_eq!(refused.body["error"]["code"], "rate_limited");
    // The answer is the in-process edge's: Retry-After and the IETF fields, from Redis'
    // clock (the next read conforms a minute after the first, less the time taken).
    let retry: u64 = refused.headers["retry-after"].to_str().unwrap().parse().unwrap();
    assert!((55..=60).contains(&retry), "Retry-After {retry}");
    let fields = refused.headers["ratelimit"].to_str().unwrap();
    assert!(fields.starts_with(r#""client";r=0;t="#), "{fields}");
    assert!(refused.headers["ratelimit-policy"].to_str().unwrap().starts_with(r#""client";q="#));
    assert_eq!(read(&a).await.0.status, 429, "and shop A refuses it too");

    // Sign-ups: their own limit per address, shared as well (2 on B, the third on A).
    for name in ["ann", "bob"] {
        let r = b.send(b.post("/customers", None, &json!({ "name": name }))).await;
        assert_eq!(r.status, 201, "{r:?}");
    }
    let r = a.send(a.post("/customers", None, &json!({ "name": "cid" }))).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (429, Some("rate_limited")));

    // What each shop did with Redis, in /admin/status and /metrics.
    let status = a.status().await;
    let redis = &status["edge"]["redis"];
    assert_eq!(redis["rate"]["checks"], 4, "{status}");
    assert_eq!(
        (redis["rate"]["failures"].clone(), redis["rate"]["breaker"].clone()),
        (0.into(), "closed".into())
    );
    assert_eq!(redis["signup"]["checks"], 1);
    assert_eq!(status["edge"]["rate_limited"], 1);
    let text = metrics(&b).await;
    for line in [
        r#"levee_redis_checks_total{limiter="rate"} 1"#,
        r#"levee_redis_checks_total{limiter="signup"} 2"#,
        r#"levee_redis_fallbacks_total{limiter="rate"} 0"#,
        r#"levee_redis_breaker_state{limiter="rate"} 0"#,
    ] {
        assert!(text.contains(line), "{line} not in\n{text}");
    }
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_closed_without_redis_does_not_start_and_names_the_setting() {
    let db = TestDb::sqlite();
    let mut config = test_config();
    db.apply(&mut config);
    let url = format!("redis://:secret@127.0.0.1:{}/", free_port());
    on_redis(&mut config, &url, "shop-test:closed:", FailMode::Closed);
    let t = Instant::now();
    let clock = ShopClock::manual(levee::core::ManualClock::new());
    let Err(error) = RunningShop::start(config, clock).await else {
        panic!("a shop failing closed started without its Redis");
    };
    assert!(t.elapsed() < Duration::from_millis(250) + SLACK, "took {:?}", t.elapsed());
    assert!(matches!(error, StartError::Redis(_)), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("`edge.redis.url`") && message.contains("fail_mode"), "{message}");
    assert!(!message.contains("secret"), "the password stays out of the message: {message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fail_open_without_redis_starts_degraded_at_its_share() {
    let db = TestDb::sqlite();
    let url = format!("redis://127.0.0.1:{}/", free_port());
    // Half of a burst of 4 on this shop alone while Redis is away.
    let shop = start(&db, |c| {
        on_redis(c, &url, "shop-test:open:", FailMode::open(0.5));
        c.edge.rate = Quota::per_minute(2).with_burst(4);
    })
    .await;
    let mut statuses = Vec::new();
    for _ in 0..3 {
        let (r, took) = read(&shop).await;
        assert!(took < Duration::from_millis(250) + SLACK, "a read took {took:?}");
        statuses.push(r.status);
    }
    assert_eq!(statuses, [200, 200, 429], "the local share's burst of 2");
    let redis = shop.status().await["edge"]["redis"].clone();
    assert_eq!(redis["rate"]["fallbacks"], 3, "{redis}");
    assert!(redis["rate"]["failures"].as_u64().unwrap() >= 1, "{redis}");

    // Its limits are every shop's on Redis: not changed live, and nothing else of the patch.
    let before = shop.send(shop.admin(Method::GET, "/admin/settings")).await.body;
    let patch =
        json!({"edge": {"rate": {"count": 9, "period": "1m", "burst": 9}, "max_concurrent": 7}});
    let r = shop.send(shop.admin(Method::PATCH, "/admin/settings").json(&patch)).await;
    assert_eq!((r.status, r.body["error"]["code"].as_str()), (422, Some("setting_not_live")));
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`edge.rate`") && message.contains("Redis"), "{message}");
    let after = shop.send(shop.admin(Method::GET, "/admin/settings")).await.body;
    assert_eq!(before, after, "a refused patch changes nothing");
    // What does not run on Redis still changes live.
    let patch = json!({"edge": {"max_concurrent": 7}});
    let r = shop.send(shop.admin(Method::PATCH, "/admin/settings").json(&patch)).await;
    assert_eq!((r.status, r.body["edge"]["max_concurrent"].as_u64()), (200, Some(7)), "{r:?}");
    shop.stop().await;
}

/// A `redis-server` of this test's own on 127.0.0.1 (no persistence), killed on drop.
struct OwnRedis {
    child: Child,
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnRedis {
    fn start() -> Option<Self> {
        let bin = levee::core::testing::server_url("LEVEE_REDIS_SERVER_BIN", "redis-server")?;
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--dir"])
            .arg(dir.path())
            .stdout(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(Instant::now() < deadline, "redis-server did not listen within 10 s");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(Self { child, dir, port })
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = &self.dir;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_fails_closed_within_the_timeout() {
    let Some(mut redis) = OwnRedis::start() else { return };
    let db = TestDb::sqlite();
    let url = redis.url();
    let shop = start(&db, |c| on_redis(c, &url, "shop-test:stopped:", FailMode::Closed)).await;
    let (r, _) = read(&shop).await;
    assert_eq!(r.status, 200, "{r:?}");

    redis.stop();
    for _ in 0..8 {
        let (r, took) = read(&shop).await;
        assert!(took < Duration::from_millis(250) + SLACK, "a read took {took:?}");
        assert_eq!((r.status, r.body["error"]["code"].as_str()), (429, Some("rate_limited")));
        assert!(r.headers.contains_key("retry-after"), "{r:?}");
    }
    let redis = shop.status().await["edge"]["redis"]["rate"].clone();
    assert_eq!(redis["fallbacks"], 8, "{redis}");
    // Five failures of five open the breaker (levee-redis's default): the rest go nowhere.
    assert_eq!(redis["breaker"], "open", "{redis}");
    assert!(redis["checks"].as_u64().unwrap() < 9, "{redis}");
    shop.stop().await;
}
