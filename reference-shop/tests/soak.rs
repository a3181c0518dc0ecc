//! The soak over real HTTP, with the real binary: a shop process on 127.0.0.1 and
//! `reference-shop soak` against it for 10 s (the provider slow from 2 s to 4 s and failing
//! from 4 s to 6 s), which must pass on a healthy shop: every answer one a shop under faults
//! may give, memory flat, every unit of stock accounted for. Also `GET /admin/stock` itself,
//! and the exit codes for bad arguments (2) and a process that does not exist (3). The
//! checks' failing cases are unit tests in `src/soak/` (made-up samples and ledgers).
//! `GET /admin/stock`'s figures are checked one by one after a paid, an unpaid, a declined
//! order and a cart, on SQLite and PostgreSQL.

mod common;
mod process;

use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

use common::TestDb;
use process::Scratch;
use reference_shop::api::StockLedger;
use reference_shop::soak::stock;
use serde_json::{Value, json};

const TOKEN: &str = "soak-test-token";

/// A shop process on a free port over a scratch directory; killed, and the directory
/// removed, on drop.
struct Shop {
    child: Child,
    base: String,
    /// Removed on drop, after `Drop for Shop` has stopped the process.
    _dir: Scratch,
}

impl Shop {
    fn start() -> Self {
        let scratch = Scratch::new("soak");
        let dir = &scratch.0;
        // Redeliver at once: payments that failed during the outage reach the dead-letter
        // queue (or succeed) within a second, so the queue drains well inside the test.
        let config = dir.join("shop.toml");
        std::fs::write(&config, "[queue.subscription]\nbackoff = [\"100ms\"]\n").unwrap();
        let (child, base) = process::spawn_announced(
            process::serve(Some(&config), TOKEN, &dir.join("data"))
                .env("SHOP_STORAGE__SEED_PRODUCTS", "500"),
        );
        Self { child, base, _dir: scratch }
    }

    fn soak(&self, pid: u32, extra: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_reference-shop"))
            .args(["soak", "--progress", "off", "--admin-token", TOKEN, "--target", &self.base])
            .args(["--pid", &pid.to_string()])
            .args(extra)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_soak_passes_on_a_healthy_shop() {
    let shop = tokio::task::spawn_blocking(Shop::start).await.unwrap();
    let pid = shop.child.id();
    let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();

    // The ledger: every product, all on the shelf before any order; admin only.
    let stock = format!("{}/admin/stock", shop.base);
    let refused = http.get(&stock).send().await.unwrap();
    assert_eq!(refused.status(), 401);
    let ledger: Value =
        http.get(&stock).header("x-admin-token", TOKEN).send().await.unwrap().json().await.unwrap();
    let products = ledger["products"].as_array().unwrap();
    // As many as the load generator draws from (ids 1..=500).
    assert_eq!(products.len(), 500);
    assert_eq!(products[0]["product_id"], 1);
    assert!(products.iter().all(|p| p["stock"].as_i64().unwrap() > 0 && p["sold"] == 0));

    let (shop, out) = tokio::task::spawn_blocking(move || {
        let args = [
            "--duration",
            "10s",
            "--rate",
            "40",
            "--cycle",
            "8s",
            "--slow-ms",
            "300",
            "--sample-every",
            "250ms",
            "--drain-timeout",
            "8s",
            "--json",
            "-",
        ];
        let out = shop.soak(pid, &args);
        (shop, out)
    })
    .await
    .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).expect("the JSON summary");
    assert_eq!(summary["passed"], true, "{stderr}");
    assert_eq!(summary["violations"], Value::Array(Vec::new()));
    assert_eq!(summary["pid"], pid);
    // 400 requests planned, all answered: most served, the rest refusals or declines.
    assert_eq!(summary["requests"], 400);
    let answers = &summary["answers"];
    assert!(answers["served"].as_u64().unwrap() > 300, "{answers}");
    assert_eq!(answers["failed_5xx"], 0);
    assert!(answers["statuses"].get("404").is_none(), "requests for products that do not exist");
    assert_eq!(
        (answers["timed_out"].as_u64(), answers["connection_failures"].as_u64()),
        (Some(0), Some(0))
    );
    // Two fault switches and their restores went through.
    let faults = summary["faults"].as_array().unwrap();
    assert!(faults.len() >= 4 && faults.iter().all(|f| f["error"].is_null()), "{faults:?}");
    // Memory: a sample every 250 ms, the shop's own RSS (megabytes, not the soak's).
    let memory = &summary["memory"];
    assert!(memory["samples"].as_array().unwrap().len() >= 20, "{memory}");
    assert!(memory["start_kib"].as_u64().unwrap() > 1024);
    assert!(memory["last_window_kib"].as_u64() <= memory["allowed_kib"].as_u64());
    // Stock: orders were placed and paid, and every unit is accounted for.
    let stock = &summary["stock"];
    assert_eq!(stock["products"], 500);
    assert_eq!(stock["units_at_start"], stock["units_at_end"]);
    assert!(stock["sold_during_run"].as_i64().unwrap() > 0, "{stock}");
    assert_eq!(summary["drain"]["drained"], true);
    assert!(stderr.contains("soak PASSED"), "{stderr}");

    // Bad arguments: 2, before anything is sent. A process that is not there: 3.
    let (shop, bad) = tokio::task::spawn_blocking(move || {
        let out = shop.soak(pid, &["--cycle", "1s"]);
        (shop, out)
    })
    .await
    .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--cycle must be at least 4s"));
    let gone = tokio::task::spawn_blocking(move || shop.soak(u32::MAX, &[])).await.unwrap();
    assert_eq!(gone.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&gone.stderr).contains("/proc/4294967295/status"));
}

/// Every kind of holder, each on its own product: a paid order (sold), an unpaid one (held
/// by an order), a declined one (released), a cart line (held by a cart).
async fn the_ledger_says_where_every_unit_is(db: TestDb) {
    let shop = common::start(&db, |_| {}).await;
    let ledger = || async {
        let r = shop.send(shop.admin(reqwest::Method::GET, "/admin/stock")).await;
        assert_eq!(r.status, 200, "{r:?}");
        serde_json::from_value::<StockLedger>(r.body).unwrap()
    };
    let before = ledger().await;
    assert_eq!(before.products.len(), 50);
    let key = shop.customer("ledger").await;
    let order = |product: i64, quantity: i64, card: Option<&str>| {
        let mut body = json!({ "items": [{ "product_id": product, "quantity": quantity }] });
        if let Some(card) = card {
            body["card"] = json!(card);
        }
        body
    };
    let placed = shop.place(&key, "paid", &order(1, 2, Some("tok_visa"))).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    shop.order_becomes(&key, placed.body["id"].as_i64().unwrap(), "paid").await;
    let placed = shop.place(&key, "unpaid", &order(3, 4, None)).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let placed = shop.place(&key, "declined", &order(4, 1, Some("tok_declined"))).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    shop.order_becomes(&key, placed.body["id"].as_i64().unwrap(), "cancelled").await;
    let cart = shop
        .send(shop.post("/cart/items", Some(&key), &json!({ "product_id": 2, "quantity": 3 })))
        .await;
    assert_eq!(cart.status, 200, "{cart:?}");

    let after = ledger().await;
    let units = |l: &StockLedger, id: i64| l.products[usize::try_from(id - 1).unwrap()].clone();
    let start = |id| units(&before, id).stock;
    let (p1, p2, p3, p4) = (units(&after, 1), units(&after, 2), units(&after, 3), units(&after, 4));
    assert_eq!((p1.stock, p1.reserved, p1.sold), (start(1) - 2, 0, 2), "{p1:?}");
    assert_eq!(
        (p2.stock, p2.reserved, p2.held_by_carts, p2.held_by_orders),
        (start(2) - 3, 3, 3, 0)
    );
    assert_eq!((p3.stock, p3.reserved, p3.held_by_orders, p3.sold), (start(3) - 4, 4, 4, 0));
    assert_eq!((p4.stock, p4.reserved, p4.sold), (start(4), 0, 0), "{p4:?}");
    assert_eq!(units(&after, 5), units(&before, 5));
    let verdict = stock::check(&before, &after);
    assert!(verdict.passed, "{verdict:?}");
    assert_eq!((verdict.sold_during_run, verdict.reserved_at_end), (2, 7));
    shop.stop().await;
}

on_both_databases!(the_ledger_says_where_every_unit_is);
