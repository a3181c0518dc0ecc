//! Issue 15.6: the shop killed with SIGKILL during a burst of orders, on its default event bus
//! (the durable broker under the data directory, fed by the transactional outbox), and
//! restarted on the same data directory: every order the store committed gets exactly one of
//! each notification its history calls for, and none it does not.
//!
//! The burst mixes orders paid with a good card (`order_placed`, `payment_succeeded`), with a
//! declined card (`order_placed`, `payment_failed`, `order_cancelled`) and without a card,
//! cancelled by the customer right away (`order_placed`, `order_cancelled`). Before the kill
//! the provider is slow (200 ms), every query waits 20 ms (the store latency fault) and each
//! subscription handles one event at a time, so events pile up in the broker: when the kill
//! comes they are in every stage, in the outbox, in the broker, in a handler. (On the
//! in-memory broker, `SHOP_QUEUE__BACKEND=memory`, this test fails: the events queued in
//! memory die with the process.) The test checks that the kill left notifications missing
//! (or it would prove nothing), then restarts the shop with its usual speed and waits
//! (bounded) until the database holds exactly the expected notifications and the outbox is
//! empty. Loopback only.

mod process;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use process::Scratch;
use serde_json::{Value, json};
use sqlx::{Connection, Row};

/// Orders acknowledged before the kill.
const KILL_AFTER: usize = 120;
/// Customers placing orders at once.
const CUSTOMERS: usize = 8;
/// How long the restarted shop may take to deliver everything.
const SETTLE: Duration = Duration::from_secs(60);

/// The shop on `data_dir`, on a free port, with its default event bus and `env`.
fn spawn(data_dir: &Path, env: &[(&str, &str)]) -> (Child, String) {
    let mut cmd = process::binary();
    cmd.envs(env.iter().copied());
    cmd.env("SHOP_SERVER__ADDR", "127.0.0.1:0")
        .env("SHOP_SERVER__ADMIN_TOKEN", "outbox-crash-token")
        .env("SHOP_STORAGE__DATA_DIR", data_dir)
        .env("SHOP_STORAGE__SEED_PRODUCTS", "20")
        .env("SHOP_LIMITS__MAX_UNPAID_ORDERS", "100000")
        .env("SHOP_LIMITS__MAX_RESERVED_UNITS", "1000000")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd.spawn().expect("the shop starts");
    match process::announced_url(&mut child, Duration::from_secs(60)) {
        Ok(base) => (child, base),
        Err(line) => {
            let _ = child.kill();
            panic!("the shop did not say it listens within 60 s: {line:?}");
        }
    }
}

/// What the store holds: each order's status and cancel reason, and how many notifications of
/// each kind each order got; plus the outbox's length.
struct Snapshot {
    orders: BTreeMap<i64, (String, Option<String>, bool)>,
    notes: BTreeMap<(i64, String), i64>,
    outbox: i64,
}

async fn snapshot(data_dir: &Path) -> Snapshot {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", data_dir.join("shop.db").display());
    let mut conn = sqlx::AnyConnection::connect(&url).await.expect("the database opens");
    let orders = sqlx::query(
        "SELECT id, status, cancel_reason, CASE WHEN card IS NULL THEN 0 ELSE 1 END AS has_card \
         FROM orders",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| {
        let card = r.get::<i64, _>("has_card") == 1;
        (r.get::<i64, _>("id"), (r.get("status"), r.get("cancel_reason"), card))
    })
    .collect();
    let notes = sqlx::query(
        "SELECT order_id, kind, COUNT(*) AS n FROM notifications GROUP BY order_id, kind",
    )
    .fetch_all(&mut conn)
    .await
    .unwrap()
    .iter()
    .map(|r| ((r.get("order_id"), r.get("kind")), r.get("n")))
    .collect();
    let outbox: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox")
        .fetch_one(&mut conn)
        .await
        .unwrap()
        .get("n");
    let _ = conn.close().await;
    Snapshot { orders, notes, outbox }
}

impl Snapshot {
    /// The notifications each order's history calls for, by kind, or `None` while an order is
    /// still waiting for its payment (it has a card: its outcome is on the way).
    fn expected(&self, id: i64) -> Option<Vec<&'static str>> {
        let (status, reason, card) = &self.orders[&id];
        Some(match (status.as_str(), reason.as_deref(), card) {
            ("paid", _, _) => vec!["order_placed", "payment_succeeded"],
            ("cancelled", Some("payment_declined"), _) => {
                vec!["order_cancelled", "order_placed", "payment_failed"]
            }
            ("cancelled", _, _) => vec!["order_cancelled", "order_placed"],
            // The kill came before the customer's cancel: it waits for its timeout.
            ("awaiting_payment", _, false) => vec!["order_placed"],
            _ => return None,
        })
    }

    /// The orders whose notifications are not exactly those expected (empty: all delivered).
    fn wrong(&self) -> Vec<String> {
        let mut wrong = Vec::new();
        for &id in self.orders.keys() {
            let got: Vec<(&str, i64)> = self
                .notes
                .range((id, String::new())..(id + 1, String::new()))
                .map(|((_, kind), n)| (kind.as_str(), *n))
                .collect();
            let want: Option<Vec<(&str, i64)>> =
                self.expected(id).map(|kinds| kinds.into_iter().map(|k| (k, 1)).collect());
            if want.as_ref() != Some(&got) {
                wrong
                    .push(format!("order {id} {:?}: got {got:?}, want {want:?}", self.orders[&id]));
            }
        }
        wrong
    }
}

/// Places orders for one customer until the shop stops answering: two of four with a good
/// card, one declined, one without a card and cancelled at once.
async fn burst(http: reqwest::Client, base: String, key: String, acked: Arc<AtomicUsize>) {
    for i in 0_u64.. {
        let card = match i % 4 {
            0 | 1 => Some("tok_visa"),
            2 => Some("tok_declined"),
            _ => None,
        };
        let mut body = json!({ "items": [{ "product_id": 1 + i % 20, "quantity": 1 }] });
        if let Some(card) = card {
            body["card"] = json!(card);
        }
        let placed = http
            .post(format!("{base}/orders"))
            .header("x-api-key", &key)
            .header("idempotency-key", format!("burst-{i}"))
            .json(&body)
            .send()
            .await;
        let Ok(placed) = placed else { return };
        if placed.status().as_u16() != 201 {
            continue; // out of stock or limited: nothing committed
        }
        acked.fetch_add(1, Ordering::SeqCst);
        let Ok(order) = placed.json::<Value>().await else { return };
        if card.is_none() {
            let id = order["id"].as_i64().unwrap();
            let cancel =
                http.post(format!("{base}/orders/{id}/cancel")).header("x-api-key", &key).send();
            if cancel.await.is_err() {
                return;
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shop_delivers_every_committed_event_exactly_once_after_restart() {
    let dir = Scratch::new("outbox-crash");
    let slow = [("SHOP_PROVIDER__LATENCY", "200ms"), ("SHOP_QUEUE__SERVE__CONCURRENCY", "1")];
    let (mut child, base) = spawn(&dir.0, &slow);
    let http = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().unwrap();
    let mut keys = Vec::new();
    for c in 0..CUSTOMERS {
        let r = http
            .post(format!("{base}/customers"))
            .json(&json!({ "name": format!("burst {c}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201);
        keys.push(r.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned());
    }
    let faults = http
        .put(format!("{base}/admin/faults"))
        .header("x-admin-token", "outbox-crash-token")
        .json(&json!({ "store_latency_ms": 20 }))
        .send()
        .await
        .unwrap();
    assert_eq!(faults.status().as_u16(), 200);
    let acked = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = keys
        .into_iter()
        .map(|key| tokio::spawn(burst(http.clone(), base.clone(), key, Arc::clone(&acked))))
        .collect();
    let started = Instant::now();
    while acked.load(Ordering::SeqCst) < KILL_AFTER {
        assert!(started.elapsed() < Duration::from_secs(60), "the burst made no progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SIGKILL, mid-burst: requests, relaying, deliveries and handlers all in flight.
    child.kill().unwrap();
    child.wait().unwrap();
    for task in tasks {
        task.await.unwrap();
    }

    let at_kill = snapshot(&dir.0).await;
    assert!(at_kill.orders.len() >= KILL_AFTER, "{} orders committed", at_kill.orders.len());
    let missing = at_kill.wrong().len();
    assert!(missing > 0, "the kill left nothing undelivered: the test proves nothing");

    let (mut child, _base) = spawn(&dir.0, &[]);
    let deadline = Instant::now() + SETTLE;
    let done = loop {
        let now = snapshot(&dir.0).await;
        if now.wrong().is_empty() && now.outbox == 0 {
            break now;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            let wrong = now.wrong();
            panic!(
                "{} of {} orders lack or repeat notifications {SETTLE:?} after the restart \
                 (outbox {}), e.g. {:?}",
                wrong.len(),
                now.orders.len(),
                now.outbox,
                &wrong[..wrong.len().min(5)]
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    child.kill().unwrap();
    child.wait().unwrap();
    // Nothing committed was lost across the restart.
    assert_eq!(done.orders.len(), at_kill.orders.len());
    eprintln!(
        "{} orders committed before the kill, {missing} of them incomplete at the kill; all \
         complete after the restart",
        done.orders.len()
    );
}
