//! Issue 22 item 3 in the shop: the payment breaker shared by replicas on NATS, over real
//! processes. Three shop binaries on 127.0.0.1, each with its own data directory, against one
//! nats-server (`LEVEE_TEST_NATS_URL`; skipped without it, except under CI):
//!
//! - `a` and `b` share their payment breaker (`[payment.shared_breaker]`, quorum 1);
//! - `c` is `b`'s twin without sharing: the same settings, the same orders, a plain breaker.
//!
//! The provider fails every call on all three (the admin API's fault switch). Payments on
//! `a` open its breaker; `b`, which has made no call yet, hears of it and goes to probing
//! (half-open) by itself. Then `b` and `c` get the same orders: `b` sends its one trial call
//! into the outage and opens, `c` sends at least its five until its breaker opens.
//! Recovery: the provider is healed on all three; `a` (a short open wait) closes after its own
//! trial call, `b` hears of it and probes at once, and its next payment closes it, while `c`,
//! whose open wait is as long as `b`'s, is still open: recovery is faster, not slower.
//!
//! No sleep stands in for an outcome: every step polls `/admin/status` until what it waits
//! for shows or its deadline passes (the whole test is bounded at 3 minutes).

mod process;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use process::Scratch;
use serde_json::{Value, json};

const TOKEN: &str = "shared-breaker-token";

/// One shop process with its own directory; killed on drop.
struct Shop {
    name: &'static str,
    child: Child,
    base: String,
    http: reqwest::Client,
    api_key: String,
    orders: u64,
    _dir: Scratch,
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts shop `name`; `open_wait` is its payment breaker's; `shared` (NATS URL and prefix)
/// joins it to the shared breaker.
fn spawn(name: &'static str, open_wait: &str, shared: Option<(&str, &str)>) -> (Child, Scratch) {
    let dir = Scratch::new(&format!("shared-breaker-{name}"));
    let mut cmd = process::binary();
    cmd.env("SHOP_SERVER__ADDR", "127.0.0.1:0")
        .env("SHOP_SERVER__ADMIN_TOKEN", TOKEN)
        .env("SHOP_STORAGE__DATA_DIR", &dir.0)
        .env("SHOP_STORAGE__SEED_PRODUCTS", "5")
        .env("SHOP_LIMITS__MAX_UNPAID_ORDERS", "100000")
        .env("SHOP_LIMITS__MAX_RESERVED_UNITS", "1000000")
        // One provider call per payment: every call counted is a payment's attempt.
        .env("SHOP_PAYMENT__RETRY__MAX_ATTEMPTS", "1")
        .env("SHOP_PAYMENT__BREAKER__OPEN_WAIT__WAIT", open_wait)
        .env("SHOP_QUEUE__SUBSCRIPTION__BACKOFF", "[\"200ms\"]")
        .env("SHOP_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some((url, prefix)) = shared {
        cmd.env("SHOP_PAYMENT__SHARED_BREAKER__NATS_URL", url)
            .env("SHOP_PAYMENT__SHARED_BREAKER__PREFIX", prefix)
            .env("SHOP_PAYMENT__SHARED_BREAKER__REPLICA", name)
            .env("SHOP_PAYMENT__SHARED_BREAKER__QUORUM", "1")
            .env("SHOP_PAYMENT__SHARED_BREAKER__POLL", "200ms");
    }
    (cmd.spawn().expect("the shop starts"), dir)
}

impl Shop {
    /// Waits for the shop's announcement and signs a customer up.
    async fn ready(name: &'static str, (mut child, dir): (Child, Scratch)) -> Self {
        let base = match process::announced_url(&mut child, Duration::from_secs(60)) {
            Ok(base) => base,
            Err(line) => {
                let _ = child.kill();
                panic!("shop {name} did not start: {line:?}");
            }
        };
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let r = http
            .post(format!("{base}/customers"))
            .json(&json!({ "name": format!("customer of {name}") }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{name}: sign-up");
        let api_key = r.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned();
        Self { name, child, base, http, api_key, orders: 0, _dir: dir }
    }

    async fn status(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/admin/status", self.base))
            .header("x-admin-token", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}: /admin/status", self.name);
        r.json().await.unwrap()
    }

    async fn breaker(&self) -> String {
        self.status().await["breaker"]["state"].as_str().unwrap().to_owned()
    }

    async fn provider_calls(&self) -> u64 {
        self.status().await["provider"]["calls"].as_u64().unwrap()
    }

    async fn set_failure_rate(&self, rate: f64) {
        let r = self
            .http
            .put(format!("{}/admin/faults", self.base))
            .header("x-admin-token", TOKEN)
            .json(&json!({ "provider_failure_rate": rate }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "{}: fault switch", self.name);
    }

    /// Places one order paid by card (its payment goes through the payment breaker).
    async fn order(&mut self) {
        self.orders += 1;
        let r = self
            .http
            .post(format!("{}/orders", self.base))
            .header("x-api-key", &self.api_key)
            .header("idempotency-key", format!("{}-{}", self.name, self.orders))
            .json(&json!({ "items": [{ "product_id": 1, "quantity": 1 }], "card": "tok_visa" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "{}: order {}", self.name, self.orders);
    }

    /// Polls the breaker's state until it is `state` (placing an order before each look when
    /// `drive`), for `limit` at most.
    async fn until_breaker(&mut self, state: &str, drive: bool, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            if drive {
                self.order().await;
            }
            let now = self.breaker().await;
            if now == state {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{}: breaker still {now}, not {state}, after {limit:?}: {}",
                self.name,
                self.status().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_a_breaker_send_fewer_calls_into_an_outage_and_recover_sooner() {
    let Some(url) = levee::core::testing::server_url("LEVEE_TEST_NATS_URL", "nats") else {
        return;
    };
    let prefix = format!("sbt{}x{:x}", std::process::id(), levee::core::random::next_u64() >> 40);
    let shared = Some((url.as_str(), prefix.as_str()));
    // Start all three at once; each one's start is bounded by `ready`.
    let started = [spawn("a", "3s", shared), spawn("b", "60s", shared), spawn("c", "60s", None)];
    let run = async move {
        let [a, b, c] = started;
        let (mut a, mut b, mut c) =
            tokio::join!(Shop::ready("a", a), Shop::ready("b", b), Shop::ready("c", c));
        for (shop, joined) in [(&a, true), (&b, true)] {
            let s = shop.status().await;
            assert_eq!(s["shared_breaker"]["joined"], joined, "{}: {s}", shop.name);
            assert_eq!(s["shared_breaker"]["replica"], shop.name);
        }
        assert_eq!(c.status().await["shared_breaker"], Value::Null, "c does not share");

        // The outage, on all three.
        for shop in [&a, &b, &c] {
            shop.set_failure_rate(1.0).await;
        }
        a.until_breaker("open", true, Duration::from_secs(30)).await;
        // b has made no call; it hears of a's breaker and probes instead of full traffic.
        b.until_breaker("half_open", false, Duration::from_secs(15)).await;
        let s = b.status().await;
        let shared = &s["shared_breaker"];
        assert_eq!(shared["quorum_probes"], 1, "{s}");
        assert_eq!(shared["peers_open"], 1, "{s}");
        assert_eq!(shared["peer_states"][0]["replica"], "a", "{s}");
        assert_eq!(s["provider"]["calls"], 0, "b probed before any call of its own: {s}");
        assert_eq!(c.breaker().await, "closed", "c, alone, knows nothing");

        // The same orders on b and on c until both breakers are open.
        for _ in 0..8 {
            b.order().await;
            c.order().await;
        }
        b.until_breaker("open", false, Duration::from_secs(15)).await;
        c.until_breaker("open", false, Duration::from_secs(15)).await;
        let (b_calls, c_calls) = (b.provider_calls().await, c.provider_calls().await);
        eprintln!("calls into the outage: b (sharing) {b_calls}, c (alone) {c_calls}");
        assert_eq!(b_calls, 1, "b sends its one trial call (half_open_calls = 1)");
        assert!(c_calls >= 5, "c needs its window's 5 failures to open: {c_calls}");
        assert!(b_calls * 2 <= c_calls, "at most half the calls: b {b_calls}, c {c_calls}");

        // Recovery: a's short open wait passes, its trial call closes it.
        for shop in [&a, &b, &c] {
            shop.set_failure_rate(0.0).await;
        }
        a.until_breaker("closed", true, Duration::from_secs(30)).await;
        // b hears of it and probes long before its own 60 s open wait ends...
        b.until_breaker("half_open", false, Duration::from_secs(15)).await;
        assert_eq!(b.status().await["shared_breaker"]["early_trials"], 1);
        // ...and its next payment closes it, while c waits out its open wait.
        b.until_breaker("closed", true, Duration::from_secs(15)).await;
        assert_eq!(c.breaker().await, "open", "c, alone, is still open");

        let metrics = b.http.get(format!("{}/metrics", b.base)).send().await.unwrap();
        let metrics = metrics.text().await.unwrap();
        for line in [
            "levee_shared_breaker_peers 1",
            "levee_shared_breaker_messages_total{kind=\"received\"}",
            "levee_shared_breaker_probes_total{kind=\"quorum_open\"} 1",
            "levee_shared_breaker_probes_total{kind=\"peer_recovered\"} 1",
        ] {
            assert!(metrics.contains(line), "/metrics lacks {line:?}:\n{metrics}");
        }
    };
    tokio::time::timeout(Duration::from_secs(180), run).await.expect("the test ends in 3 minutes");
}
