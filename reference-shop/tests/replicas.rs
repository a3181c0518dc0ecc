//! Issue 18 item 5: shop replicas on one PostgreSQL database and one NATS bus, as real
//! processes. Each test starts two shop binaries (`a`, `b`) on a fresh database
//! (`LEVEE_TEST_POSTGRES_URL`) with their events on NATS (`LEVEE_TEST_NATS_URL`, a stream
//! prefix of the test's own); skipped without both, a failure under `CI=true`. Unpaid orders
//! and carts time out after 2 s and each shop sweeps the store every 500 ms, so a test is
//! over in seconds (each is bounded at 30 s).
//!
//! - Started together on an empty database, both come up and the catalog is seeded once.
//! - An order placed on `a`, `a` SIGKILLed before its timer fires: `b` cancels it within the
//!   stated bound (deadline + sweep interval, plus slack for a loaded machine), once: one
//!   cancellation counted, one `order_cancelled` notification, the stock back where it was.
//! - Both alive, a batch of orders placed on both: each cancelled exactly once (the two
//!   shops' cancellation counters add up to the batch, the stock is back exactly).
//! - The same for cart reservations, with `a` killed after its customers filled carts.
//!
//! No sleep stands in for an outcome: each step polls the database until what it waits for
//! shows or its deadline passes.

mod common;
mod process;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use process::Scratch;
use serde_json::{Value, json};
use sqlx::{AnyPool, Row};

/// Unpaid orders and carts end this long after they were made.
const TIMEOUT: &str = "2s";
/// How often each shop sweeps the store.
const SWEEP_MS: i64 = 500;
/// What a loaded test machine may add to the bound (a sweep's transactions, process
/// scheduling, the poll).
const SLACK_MS: i64 = 3_000;
/// Products seeded.
const PRODUCTS: i64 = 5;

/// One shop process with its own data directory; killed on drop.
struct Shop {
    name: &'static str,
    child: Child,
    base: String,
    http: reqwest::Client,
    _dir: Scratch,
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the replicas keep their state: one database, one NATS prefix.
struct Shared {
    database_url: String,
    nats_url: String,
    prefix: String,
}

impl Shared {
    /// A fresh database and prefix, or `None` (skipped) without both servers.
    async fn new() -> Option<Self> {
        let nats_url = levee::core::testing::server_url("LEVEE_TEST_NATS_URL", "NATS replicas")?;
        let db = common::TestDb::postgres().await?;
        let database_url = match &db {
            common::TestDb::Postgres(url) => url.clone(),
            other => unreachable!("a PostgreSQL database, not {other:?}"),
        };
        let prefix =
            format!("rep{}x{:x}", std::process::id(), levee::core::random::next_u64() >> 40);
        Some(Self { database_url, nats_url, prefix })
    }

    fn spawn(&self, name: &'static str) -> (Child, Scratch) {
        let dir = Scratch::new(&format!("replicas-{name}"));
        let mut cmd = process::binary();
        cmd.arg("serve")
            .env("SHOP_SERVER__ADDR", "127.0.0.1:0")
            .env("SHOP_SERVER__ADMIN_TOKEN", "replicas-token")
            .env("SHOP_STORAGE__DATA_DIR", &dir.0)
            .env("SHOP_STORAGE__DATABASE_URL", &self.database_url)
            .env("SHOP_STORAGE__SEED_PRODUCTS", PRODUCTS.to_string())
            .env("SHOP_QUEUE__BACKEND", "nats")
            .env("SHOP_QUEUE__NATS_URL", &self.nats_url)
            .env("SHOP_QUEUE__NATS_PREFIX", &self.prefix)
            .env("SHOP_ORDERS__UNPAID_TIMEOUT", TIMEOUT)
            .env("SHOP_ORDERS__CART_RESERVATION", TIMEOUT)
            .env("SHOP_REPLICAS__SWEEP_INTERVAL", format!("{SWEEP_MS}ms"))
            .env("SHOP_LIMITS__MAX_UNPAID_ORDERS", "100000")
            .env("SHOP_LIMITS__MAX_RESERVED_UNITS", "1000000")
            .env("SHOP_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        (cmd.spawn().expect("the shop starts"), dir)
    }

    async fn pool(&self) -> AnyPool {
        sqlx::any::install_default_drivers();
        sqlx::any::AnyPoolOptions::new()
            .max_connections(2)
            .connect(&self.database_url)
            .await
            .unwrap()
    }
}

impl Shop {
    /// Waits for the shop's announcement.
    fn ready(name: &'static str, (mut child, dir): (Child, Scratch)) -> Self {
        let base = match process::announced_url(&mut child, Duration::from_secs(20)) {
            Ok(base) => base,
            Err(line) => {
                let _ = child.kill();
                panic!("shop {name} did not start: {line:?}");
            }
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        Self { name, child, base, http, _dir: dir }
    }

    /// Signs a customer up; their API key.
    async fn customer(&self) -> String {
        let r = self
            .http
            .post(format!("{}/customers", self.base))
            .json(&json!({ "name": format!("customer of {}", self.name) }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}: sign-up", self.name);
        r.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned()
    }

    /// Places an unpaid order for one unit of `product`; its id and deadline.
    async fn order(&self, key: &str, n: u32, product: i64) -> (i64, i64) {
        let r = self
            .http
            .post(format!("{}/orders", self.base))
            .header("x-api-key", key)
            .header("idempotency-key", format!("{}-{n}", self.name))
            .json(&json!({ "items": [{ "product_id": product, "quantity": 1 }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}: order {n}", self.name);
        let order: Value = r.json().await.unwrap();
        (order["id"].as_i64().unwrap(), order["expires_at_ms"].as_i64().unwrap())
    }

    /// Puts `quantity` of `product` in the customer's cart.
    async fn cart(&self, key: &str, product: i64, quantity: u32) {
        let r = self
            .http
            .post(format!("{}/cart/items", self.base))
            .header("x-api-key", key)
            .json(&json!({ "product_id": product, "quantity": quantity }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}: cart", self.name);
    }

    /// The counter `name` (`shop_orders_cancelled`) on `/metrics`.
    async fn counter(&self, name: &str) -> u64 {
        let text = self.http.get(format!("{}/metrics", self.base)).send().await.unwrap();
        let text = text.text().await.unwrap();
        let line = format!("{name}_total ");
        text.lines()
            .find_map(|l| l.strip_prefix(&line))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{}: no {name} in /metrics", self.name))
    }

    /// SIGKILL: no shutdown, no drain, its timers die with it.
    fn kill(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn now_ms() -> i64 {
    i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis()).unwrap()
}

async fn scalar(pool: &AnyPool, sql: &'static str) -> i64 {
    sqlx::query(sql).fetch_one(pool).await.unwrap().try_get::<i64, _>(0).unwrap()
}

/// Every product's `(stock, reserved)`, by id.
async fn stock(pool: &AnyPool) -> Vec<(i64, i64)> {
    sqlx::query("SELECT stock, reserved FROM products ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
        .iter()
        .map(|r| (r.try_get(0).unwrap(), r.try_get(1).unwrap()))
        .collect()
}

/// Polls `sql` (one integer) until it reads `want`, for `limit` at most; returns when.
async fn until(pool: &AnyPool, sql: &'static str, want: i64, limit: Duration) -> Instant {
    let deadline = Instant::now() + limit;
    loop {
        let got = scalar(pool, sql).await;
        if got == want {
            return Instant::now();
        }
        assert!(Instant::now() < deadline, "{sql}: {got}, not {want}, after {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs `test` within 30 s.
async fn bounded(test: impl Future<Output = ()>) {
    tokio::time::timeout(Duration::from_secs(30), test).await.expect("the test ends within 30 s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_started_together_on_an_empty_database_seed_it_once() {
    let Some(shared) = Shared::new().await else { return };
    bounded(async {
        let started = [shared.spawn("a"), shared.spawn("b")];
        let [a, b] = started;
        let (a, b) = (Shop::ready("a", a), Shop::ready("b", b));
        let pool = shared.pool().await;
        assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM products").await, PRODUCTS);
        assert_eq!(scalar(&pool, "SELECT COUNT(*) FROM customers").await, 2, "the demo customers");
        // Both serve.
        for shop in [&a, &b] {
            let r = shop.http.get(format!("{}/products/1", shop.base)).send().await.unwrap();
            assert_eq!(r.status().as_u16(), 200, "{}", shop.name);
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_whose_replica_died_is_cancelled_once_by_the_other_within_the_bound() {
    let Some(shared) = Shared::new().await else { return };
    bounded(async {
        let [a, b] = [shared.spawn("a"), shared.spawn("b")];
        let (mut a, b) = (Shop::ready("a", a), Shop::ready("b", b));
        let pool = shared.pool().await;
        let before = stock(&pool).await;
        let key = a.customer().await;
        let (id, deadline_ms) = a.order(&key, 1, 2).await;
        a.kill();
        assert!(now_ms() < deadline_ms, "a died before its timer could fire");
        until(
            &pool,
            "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'",
            1,
            Duration::from_secs(15),
        )
        .await;
        let late = now_ms() - deadline_ms;
        assert!(
            late <= SWEEP_MS + SLACK_MS,
            "order {id} cancelled {late} ms after its deadline (bound: {SWEEP_MS} ms + slack)"
        );
        assert!(late >= 0, "not before its deadline: {late} ms");
        // One cancellation: b counted it, the stock came back once, one notification.
        assert_eq!(b.counter("shop_orders_cancelled").await, 1);
        assert_eq!(stock(&pool).await, before);
        until(
            &pool,
            "SELECT COUNT(*) FROM notifications WHERE kind = 'order_cancelled'",
            1,
            Duration::from_secs(10),
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_both_replicas_alive_each_unpaid_order_is_cancelled_exactly_once() {
    let Some(shared) = Shared::new().await else { return };
    bounded(async {
        let [a, b] = [shared.spawn("a"), shared.spawn("b")];
        let (a, b) = (Shop::ready("a", a), Shop::ready("b", b));
        let pool = shared.pool().await;
        let before = stock(&pool).await;
        let (ka, kb) = (a.customer().await, b.customer().await);
        let mut last_deadline = 0;
        let mut first = 0;
        for n in 0..8 {
            let (shop, key) = if n % 2 == 0 { (&a, &ka) } else { (&b, &kb) };
            let (id, deadline) = shop.order(key, n, 1 + i64::from(n) % PRODUCTS).await;
            last_deadline = last_deadline.max(deadline);
            if n == 0 {
                first = id;
            }
        }
        // The customer cancels a's first order through b: a's timer finds it cancelled.
        let r = b
            .http
            .post(format!("{}/orders/{first}/cancel", b.base))
            .header("x-api-key", &ka)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "cancel through the other replica");
        until(
            &pool,
            "SELECT COUNT(*) FROM orders WHERE status = 'cancelled'",
            8,
            Duration::from_secs(15),
        )
        .await;
        assert!(now_ms() - last_deadline <= SWEEP_MS + SLACK_MS);
        let counted =
            a.counter("shop_orders_cancelled").await + b.counter("shop_orders_cancelled").await;
        assert_eq!(counted, 8, "each order cancelled by exactly one replica");
        assert_eq!(stock(&pool).await, before, "each order's stock released once");
        until(
            &pool,
            "SELECT COUNT(*) FROM notifications WHERE kind = 'order_cancelled'",
            8,
            Duration::from_secs(10),
        )
        .await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cart_reservations_expire_once_whichever_replica_armed_them_and_if_it_died() {
    let Some(shared) = Shared::new().await else { return };
    bounded(async {
        let [a, b] = [shared.spawn("a"), shared.spawn("b")];
        let (mut a, b) = (Shop::ready("a", a), Shop::ready("b", b));
        let pool = shared.pool().await;
        let before = stock(&pool).await;
        // Two carts armed on each replica.
        for shop in [&a, &a, &b, &b] {
            let key = shop.customer().await;
            shop.cart(&key, 3, 2).await;
        }
        assert_eq!(stock(&pool).await[2].1, 8, "the carts hold their units");
        // One replica dies with its cart timers; the other ends all four carts.
        a.kill();
        until(&pool, "SELECT COUNT(*) FROM cart_items", 0, Duration::from_secs(15)).await;
        assert_eq!(b.counter("shop_carts_expired").await, 4, "each cart expired once, by b");
        assert_eq!(stock(&pool).await, before, "each cart's units released once");
        until(
            &pool,
            "SELECT COUNT(*) FROM customer_notifications WHERE kind = 'cart_expired'",
            4,
            Duration::from_secs(10),
        )
        .await;
    })
    .await;
}
