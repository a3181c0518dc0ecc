//! Test harness: a real shop on 127.0.0.1 (ephemeral port) over an embedded SQLite database in
//! a temporary directory, or over a fresh PostgreSQL database on the server
//! `LEVEE_TEST_POSTGRES_URL` names; a manual clock; an HTTP client; and `eventually` for async
//! outcomes (polls with a bounded deadline, never sleeps to observe behaviour).
#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use levee::breaker::OpenWait;
use levee::core::ManualClock;
use levee::limit::{BulkheadSettings, Quota};
use levee::policy::Backoff;
use reference_shop::config::QueueBackend;
use reference_shop::{Config, RunningShop, ShopClock};
use serde_json::{Value, json};
use sqlx::Connection;

pub const ADMIN: &str = "test-admin-token";

/// Where a test shop keeps its data, and which broker carries its events (the in-process
/// one unless the variant names another).
#[derive(Debug, Clone)]
pub enum TestDb {
    Sqlite(PathBuf),
    Postgres(String),
    /// SQLite, events on the durable broker in the data directory (the shop's default).
    Durable(PathBuf),
    /// SQLite, events on the NATS server at the URL, under a prefix of their own.
    Nats(PathBuf, String),
}

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A fresh directory under the system's temporary directory.
fn scratch_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(unique("levee-shop-test"));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn unique(prefix: &str) -> String {
    format!(
        "{prefix}_{}_{}_{:x}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        levee::core::random::next_u64() as u32
    )
}

impl TestDb {
    pub fn sqlite() -> Self {
        Self::Sqlite(scratch_dir())
    }

    /// SQLite with the events on the durable broker (`queue.backend = "durable"`).
    pub fn durable() -> Self {
        Self::Durable(scratch_dir())
    }

    /// SQLite with the events on the NATS server `LEVEE_TEST_NATS_URL` names; `None` (the
    /// test is skipped, saying so) when it is not set, except under `CI=true`.
    pub fn nats() -> Option<Self> {
        let url = levee::core::testing::server_url("LEVEE_TEST_NATS_URL", "NATS shop")?;
        Some(Self::Nats(scratch_dir(), url))
    }

    /// A fresh database on the server `LEVEE_TEST_POSTGRES_URL` names; `None` when it is not
    /// set (the test is skipped, saying so), except under `CI=true`, where that panics: CI
    /// starts the server, so a missing one is a failure, never a pass.
    pub async fn postgres() -> Option<Self> {
        let admin_url =
            levee::core::testing::server_url("LEVEE_TEST_POSTGRES_URL", "PostgreSQL shop")?;
        sqlx::any::install_default_drivers();
        let name = unique("shop_test");
        let mut conn = sqlx::AnyConnection::connect(&admin_url)
            .await
            .expect("connect to LEVEE_TEST_POSTGRES_URL");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let _ = conn.close().await;
        let mut url = reqwest::Url::parse(&admin_url).expect("LEVEE_TEST_POSTGRES_URL is a URL");
        url.set_path(&format!("/{name}"));
        Some(Self::Postgres(url.to_string()))
    }

    pub fn apply(&self, config: &mut Config) {
        match self {
            Self::Sqlite(dir) | Self::Durable(dir) | Self::Nats(dir, _) => {
                config.storage.data_dir = dir.clone();
                config.storage.database_url = None;
            }
            Self::Postgres(url) => config.storage.database_url = Some(url.clone()),
        }
        match self {
            Self::Durable(_) => config.queue.backend = QueueBackend::Durable,
            Self::Nats(dir, url) => {
                config.queue.backend = QueueBackend::Nats;
                config.queue.nats_url = url.clone();
                // One data directory, one set of streams: restarts find their events.
                let name = dir.file_name().unwrap().to_string_lossy();
                let tail = name.rsplit('_').next().unwrap_or("x");
                config.queue.nats_prefix = format!("shop_{tail}");
                // JetStream's leases run on the server's clock, not the test's manual one: a
                // delivery left leased by a shutdown comes back after this, within the
                // tests' 30 s bound (the shop's default is a minute).
                config.queue.subscription.ack_wait = Duration::from_secs(3);
            }
            Self::Sqlite(_) | Self::Postgres(_) => {}
        }
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if let Self::Sqlite(dir) | Self::Durable(dir) | Self::Nats(dir, _) = self {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Settings for tests: generous edge limits, a small catalog, fast redelivery.
pub fn test_config() -> Config {
    let mut c = Config::default();
    c.server.addr = "127.0.0.1:0".parse().unwrap();
    c.server.admin_token = ADMIN.to_owned();
    c.server.shutdown_grace = Duration::from_secs(10);
    c.storage.seed_products = 50;
    c.edge.rate = Quota::per_second(1_000_000).with_burst(1_000_000);
    c.edge.bulkhead = BulkheadSettings::new(10_000);
    c.limits.signup = Quota::per_second(1_000_000).with_burst(1_000_000);
    c.limits.max_reserved_units = 1_000_000;
    c.limits.max_unpaid_orders = 1_000_000;
    c.provider.latency = Duration::ZERO;
    c.payment.retry.backoff =
        Backoff::exponential(Duration::from_millis(1), Duration::from_secs(1)).with_jitter(0.2);
    c.payment.breaker.open_wait = OpenWait::fixed(Duration::from_secs(30));
    // The broker's backoffs run on the shop's (manual) clock: redeliver at once.
    c.queue.subscription.backoff = Vec::new();
    // The in-process broker, for speed: the durable default and NATS run where a test says
    // so (`TestDb::durable`, `TestDb::nats`, `on_every_backend!`; tests/outbox_crash.rs).
    c.queue.backend = QueueBackend::Memory;
    c.orders.timer_tick = Duration::from_millis(10);
    c
}

/// A running shop and a client for it.
pub struct TestShop {
    pub running: RunningShop,
    pub base: String,
    pub clock: ManualClock,
    pub http: reqwest::Client,
}

pub async fn start(db: &TestDb, tweak: impl FnOnce(&mut Config)) -> TestShop {
    let mut config = test_config();
    db.apply(&mut config);
    tweak(&mut config);
    let clock = ManualClock::new();
    let running =
        RunningShop::start(config, ShopClock::manual(clock.clone())).await.expect("shop starts");
    TestShop {
        base: format!("http://{}", running.addr()),
        running,
        clock,
        http: reqwest::Client::builder().timeout(Duration::from_secs(60)).build().unwrap(),
    }
}

/// A response: status, headers, JSON body (`Value::Null` when the body is not JSON).
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

impl TestShop {
    pub fn shop(&self) -> &std::sync::Arc<reference_shop::Shop> {
        self.running.shop()
    }

    pub async fn send(&self, req: reqwest::RequestBuilder) -> Resp {
        let r = req.send().await.expect("request reaches the shop");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, headers, body }
    }

    pub fn get(&self, path: &str, key: Option<&str>) -> reqwest::RequestBuilder {
        let r = self.http.get(format!("{}{path}", self.base));
        match key {
            Some(k) => r.header("x-api-key", k),
            None => r,
        }
    }

    pub fn post(&self, path: &str, key: Option<&str>, body: &Value) -> reqwest::RequestBuilder {
        let r = self.http.post(format!("{}{path}", self.base)).json(body);
        match key {
            Some(k) => r.header("x-api-key", k),
            None => r,
        }
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.base)).header("x-admin-token", ADMIN)
    }

    /// Creates a customer and returns its API key.
    pub async fn customer(&self, name: &str) -> String {
        let r = self.send(self.post("/customers", None, &json!({ "name": name }))).await;
        assert_eq!(r.status, 201, "{r:?}");
        r.body["api_key"].as_str().unwrap().to_owned()
    }

    pub async fn place(&self, key: &str, idem: &str, body: &Value) -> Resp {
        self.send(self.post("/orders", Some(key), body).header("idempotency-key", idem)).await
    }

    pub async fn order(&self, key: &str, id: i64) -> Value {
        let r = self.send(self.get(&format!("/orders/{id}"), Some(key))).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    }

    pub async fn product(&self, id: i64) -> Value {
        // Straight from the store, not through the cache, so tests see the truth.
        let p = self.shop().catalog.product_uncached(id).await.unwrap().unwrap();
        serde_json::to_value(p).unwrap()
    }

    pub async fn status(&self) -> Value {
        let r = self.send(self.admin(reqwest::Method::GET, "/admin/status")).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body
    }

    pub async fn faults(&self, patch: Value) {
        let r = self.send(self.admin(reqwest::Method::PUT, "/admin/faults").json(&patch)).await;
        assert_eq!(r.status, 200, "{r:?}");
    }

    /// Polls until the order has `status`, or fails after 30 s.
    pub async fn order_becomes(&self, key: &str, id: i64, status: &str) -> Value {
        eventually(&format!("order {id} becomes {status}"), || async {
            let o = self.order(key, id).await;
            (o["status"] == status).then_some(o)
        })
        .await
    }

    pub async fn stop(self) {
        self.running.shutdown().await;
    }
}

/// Sends a request over a bare TCP connection, writing `body` while reading the answer.
///
/// For bodies over the limit: the shop answers 413 before it has read them and closes the
/// connection, and an HTTP client that is still writing reports the broken pipe instead of
/// the answer. Reading while writing gets the answer every time.
pub async fn raw_request(addr: std::net::SocketAddr, head: String, body: Vec<u8>) -> Resp {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        let _ = writer.write_all(&body).await;
        writer
    });
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            match reader.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    let text = String::from_utf8_lossy(&buf);
                    if let Some((head, body)) = text.split_once("\r\n\r\n") {
                        let length = head
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if body.len() >= length {
                            return;
                        }
                    }
                }
            }
        }
    })
    .await;
    assert!(read.is_ok(), "no answer within 30 s");
    writing.abort();
    let text = String::from_utf8_lossy(&buf).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    let status =
        head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let mut headers = reqwest::header::HeaderMap::new();
    for line in head.lines().skip(1) {
        if let Some((k, v)) = line.split_once(':')
            && let (Ok(k), Ok(v)) = (
                reqwest::header::HeaderName::from_bytes(k.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(v.trim()),
            )
        {
            headers.insert(k, v);
        }
    }
    Resp { status, headers, body: serde_json::from_str(body).unwrap_or(Value::Null) }
}

/// Polls `check` until it returns `Some`, at most 30 s (a bound, not a wait: it returns as
/// soon as the outcome is there).
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Runs a scenario on SQLite, and on PostgreSQL (see [`TestDb::postgres`]: skipped without a
/// server, a failure under `CI=true`).
#[macro_export]
macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario($crate::common::TestDb::sqlite()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(db) = $crate::common::TestDb::postgres().await else { return };
                    super::$scenario(db).await;
                }
            }
        )*
    };
}

/// Runs a scenario as [`on_both_databases!`] does, and on SQLite with the events on the
/// durable broker (the shop's default) and on NATS (skipped without `LEVEE_TEST_NATS_URL`,
/// except under `CI=true`).
#[macro_export]
macro_rules! on_every_backend {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario($crate::common::TestDb::sqlite()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(db) = $crate::common::TestDb::postgres().await else { return };
                    super::$scenario(db).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn durable() {
                    super::$scenario($crate::common::TestDb::durable()).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn nats() {
                    let Some(db) = $crate::common::TestDb::nats() else { return };
                    super::$scenario(db).await;
                }
            }
        )*
    };
}
