//! Issue 18 items 1 and 3 in the shop: the payment provider as its own processes
//! (`reference-shop serve --service provider`), called through levee's service client
//! (`provider.urls`, `provider.standby_urls`). Real processes on 127.0.0.1, SQLite and the
//! embedded bus for the shop; the provider replicas share one ledger directory, so they are
//! one provider (an order one of them charged is a repeat for the other).
//!
//! No sleep stands in for an outcome: each step polls until what it waits for shows or its
//! deadline passes; every test is bounded.

mod process;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use process::Scratch;
use serde_json::{Value, json};

const TOKEN: &str = "provider-process-token";

/// A provider process; killed (SIGKILL) on drop.
struct Provider {
    child: Child,
    base: String,
}

impl Drop for Provider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Provider {
    /// Starts a provider on `addr` (`127.0.0.1:0` for a free port) with its charges in
    /// `ledger`.
    fn start(addr: &str, ledger: &Path) -> Self {
        let mut cmd = process::binary();
        cmd.args(["serve", "--service", "provider"])
            .env("SHOP_SERVER__ADDR", addr)
            .env("SHOP_SERVER__ADMIN_TOKEN", TOKEN)
            .env("SHOP_PROVIDER__LATENCY", "20ms")
            .env("SHOP_PROVIDER__LEDGER_DIR", ledger)
            .env("SHOP_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        let (child, base) = process::spawn_announced(&mut cmd);
        Self { child, base }
    }

    fn kill(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::take(&mut self.base)
    }

    async fn stats(&self, http: &reqwest::Client) -> Value {
        http.get(format!("{}/stats", self.base)).send().await.unwrap().json().await.unwrap()
    }

    async fn set_failure_rate(&self, http: &reqwest::Client, rate: f64) {
        let r = http
            .put(format!("{}/admin/faults", self.base))
            .header("x-admin-token", TOKEN)
            .json(&json!({ "provider_failure_rate": rate }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200, "provider fault switch");
    }
}

/// The shop, calling `primaries` and `standbys`; killed on drop.
struct Shop {
    child: Child,
    base: String,
    http: reqwest::Client,
    api_key: String,
    placed: u64,
    _dir: Scratch,
}

impl Drop for Shop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn list(urls: &[&str]) -> String {
    serde_json::to_string(urls).unwrap()
}

impl Shop {
    async fn start(name: &str, primaries: &[&str], standbys: &[&str]) -> Self {
        let dir = Scratch::new(name);
        let mut cmd = process::serve(None, TOKEN, &dir.0);
        // The test polls its orders one by one: no rate limit in its way.
        cmd.env("SHOP_STORAGE__SEED_PRODUCTS", "5")
            .env("SHOP_EDGE__RATE__COUNT", "1000000")
            .env("SHOP_LIMITS__MAX_UNPAID_ORDERS", "100000")
            .env("SHOP_LIMITS__MAX_RESERVED_UNITS", "1000000")
            .env("SHOP_PROVIDER__URLS", list(primaries))
            .env("SHOP_PROVIDER__STANDBY_URLS", list(standbys))
            .env("SHOP_PROVIDER__CONNECT_TIMEOUT", "200ms")
            .env("SHOP_PROVIDER__ENDPOINT_BREAKER__OPEN_WAIT__TYPE", "fixed")
            .env("SHOP_PROVIDER__ENDPOINT_BREAKER__OPEN_WAIT__WAIT", "300ms")
            .env("SHOP_PAYMENT__BREAKER__OPEN_WAIT__WAIT", "2s")
            .env("SHOP_QUEUE__SUBSCRIPTION__MAX_DELIVERIES", "100000")
            .env("SHOP_QUEUE__SUBSCRIPTION__BACKOFF", r#"["100ms"]"#);
        let (child, base) = process::spawn_announced(&mut cmd);
        let http = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
        let r = http
            .post(format!("{base}/customers"))
            .json(&json!({ "name": name }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "sign-up");
        let api_key = r.json::<Value>().await.unwrap()["api_key"].as_str().unwrap().to_owned();
        Self { child, base, http, api_key, placed: 0, _dir: dir }
    }

    async fn status(&self) -> Value {
        let r = self
            .http
            .get(format!("{}/admin/status", self.base))
            .header("x-admin-token", TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 200);
        r.json().await.unwrap()
    }

    /// Places an order paid by card through the queue; returns its id.
    async fn order(&mut self, card: Option<&str>) -> i64 {
        self.placed += 1;
        let mut body = json!({ "items": [{ "product_id": 1 + self.placed % 5, "quantity": 1 }] });
        if let Some(card) = card {
            body["card"] = json!(card);
        }
        let r = self
            .http
            .post(format!("{}/orders", self.base))
            .header("x-api-key", &self.api_key)
            .header("idempotency-key", format!("order-{}", self.placed))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 201, "order {}", self.placed);
        r.json::<Value>().await.unwrap()["id"].as_i64().unwrap()
    }

    /// A synchronous checkout: the status (200 paid, 202 pending) and how long it took.
    async fn checkout(&self, id: i64) -> (u16, Duration) {
        let started = Instant::now();
        let r = self
            .http
            .post(format!("{}/orders/{id}/checkout", self.base))
            .header("x-api-key", &self.api_key)
            .json(&json!({ "card": "tok_visa" }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), started.elapsed())
    }

    async fn get(&self, id: i64) -> Value {
        let r = self
            .http
            .get(format!("{}/orders/{id}", self.base))
            .header("x-api-key", &self.api_key)
            .send()
            .await
            .unwrap();
        r.json().await.unwrap()
    }

    /// Each order's status and charge id.
    async fn orders(&self, ids: &[i64]) -> HashMap<i64, (String, Option<String>)> {
        let mut out = HashMap::new();
        for &id in ids {
            let o = self.get(id).await;
            let status = o["status"].as_str().unwrap_or_else(|| panic!("order {id}: {o}"));
            let status = status.to_owned();
            out.insert(id, (status, o["charge_id"].as_str().map(str::to_owned)));
        }
        out
    }

    /// Polls until every order of `ids` is paid (`limit` at most); returns their charge ids.
    async fn until_paid(&self, ids: &[i64], limit: Duration) -> HashMap<i64, String> {
        let deadline = Instant::now() + limit;
        loop {
            let orders = self.orders(ids).await;
            let unpaid: Vec<_> = orders.iter().filter(|(_, (s, _))| s != "paid").collect();
            if unpaid.is_empty() {
                return orders.into_iter().map(|(id, (_, charge))| (id, charge.unwrap())).collect();
            }
            assert!(
                Instant::now() < deadline,
                "{} orders still unpaid after {limit:?}: {unpaid:?}\n{}",
                unpaid.len(),
                self.status().await
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `/admin/status` until `check` holds (`limit` at most).
    async fn until(&self, what: &str, limit: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + limit;
        loop {
            let s = self.status().await;
            if check(&s) {
                return s;
            }
            assert!(Instant::now() < deadline, "not {what} after {limit:?}: {s}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The ledger's charges: order id to charge id.
fn ledger(dir: &Path) -> HashMap<i64, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let id = name.strip_suffix(".charge")?.parse().ok()?;
            Some((id, std::fs::read_to_string(dir.join(&name)).unwrap()))
        })
        .collect()
}

/// Every paid order has exactly the charge the provider made for it, and the provider
/// charged no other order: nothing paid twice, nothing charged and not recorded.
fn assert_charges_match(paid: &HashMap<i64, String>, ledger: &HashMap<i64, String>) {
    for (id, charge) in paid {
        assert_eq!(ledger.get(id), Some(charge), "order {id}: the shop's charge is the provider's");
    }
    let extra: Vec<_> = ledger.keys().filter(|id| !paid.contains_key(id)).collect();
    assert!(extra.is_empty(), "charged but not paid: {extra:?}");
}

fn endpoint<'s>(status: &'s Value, base: &str) -> &'s Value {
    status["provider_endpoints"]
        .as_array()
        .and_then(|all| all.iter().find(|e| e["url"] == base))
        .unwrap_or_else(|| panic!("no endpoint {base} in {status}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payments_survive_losing_a_provider_and_wait_out_losing_both() {
    let run = async {
        let scratch = Scratch::new("provider-ledger");
        let charges = scratch.0.join("charges");
        let a = Provider::start("127.0.0.1:0", &charges);
        let b = Provider::start("127.0.0.1:0", &charges);
        let mut shop = Shop::start("provider-kill", &[&a.base, &b.base], &[]).await;

        // Orders are paid through the remote providers.
        let mut ids = Vec::new();
        for _ in 0..8 {
            ids.push(shop.order(Some("tok_visa")).await);
        }
        let paid = shop.until_paid(&ids, Duration::from_secs(10)).await;
        assert_charges_match(&paid, &ledger(&charges));
        let status = shop.status().await;
        assert_eq!(status["provider"]["calls"], 0, "no in-process provider: {status}");
        let sent: u64 = status["provider_endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["requests"].as_u64().unwrap())
            .sum();
        assert!(sent >= 8, "every payment went over the network: {status}");

        // A burst of checkouts, and one provider SIGKILLed in the middle of it.
        let mut burst = Vec::new();
        for _ in 0..24 {
            burst.push(shop.order(None).await);
        }
        let (first, second) = burst.split_at(12);
        let checkouts = |ids: Vec<i64>| {
            let shop = &shop;
            async move {
                let all = ids.iter().map(|&id| shop.checkout(id));
                futures::future::join_all(all).await
            }
        };
        // Each call takes the provider 20 ms: 30 ms in, calls are under way on both.
        let (_, killed) = tokio::join!(checkouts(first.to_vec()), async {
            tokio::time::sleep(Duration::from_millis(30)).await;
            a.kill()
        });
        let answers = checkouts(second.to_vec()).await;
        assert!(answers.iter().all(|(s, _)| *s == 200 || *s == 202), "{answers:?}");
        ids.extend(&burst);
        // More payments until the client has ejected the dead replica (its calls fail at
        // once; its breaker judges it on its last 20).
        let ejecting = Instant::now() + Duration::from_secs(10);
        let s = loop {
            ids.push(shop.order(Some("tok_visa")).await);
            let s = shop.status().await;
            if endpoint(&s, &killed)["ejected"] == true {
                break s;
            }
            assert!(Instant::now() < ejecting, "{killed} never ejected: {s}");
        };
        assert_eq!(endpoint(&s, &b.base)["ejected"], false, "{s}");
        let paid = shop.until_paid(&ids, Duration::from_secs(15)).await;
        assert_charges_match(&paid, &ledger(&charges));
        // `/metrics` has each replica; the dead one's breaker never closes again (every
        // trial fails), whether it reads open or half-open at this moment.
        let metrics =
            shop.http.get(format!("{}/metrics", shop.base)).send().await.unwrap().text().await;
        let metrics = metrics.unwrap();
        let value = |name: &str, base: &str| {
            let key = format!("{name}{{endpoint=\"{base}\"}} ");
            let line = metrics.lines().find_map(|l| l.strip_prefix(key.as_str()));
            line.unwrap_or_else(|| panic!("no {key} in\n{metrics}")).to_owned()
        };
        assert_ne!(value("shop_provider_endpoint_breaker_state", &killed), "0");
        assert_eq!(value("shop_provider_endpoint_breaker_state", &b.base), "0");
        assert_eq!(value("shop_provider_endpoint_ejected", &b.base), "0");
        assert_ne!(value("shop_provider_endpoint_failures_total", &killed), "0");

        // Both down: the payment breaker opens, checkouts answer fast, orders wait unpaid.
        let b_base = b.kill();
        let mut waiting = Vec::new();
        for _ in 0..6 {
            waiting.push(shop.order(None).await);
        }
        for &id in &waiting {
            let (status, took) = shop.checkout(id).await;
            assert_eq!(status, 202, "order {id}: pending, not paid and not lost");
            assert!(took < Duration::from_millis(1500), "order {id}: checkout took {took:?}");
        }
        shop.until("the payment breaker open", Duration::from_secs(10), |s| {
            s["breaker"]["state"] == "open"
        })
        .await;
        // While it is open (2 s, and every trial fails), a checkout does not wait on the
        // provider at all.
        let late = shop.order(None).await;
        waiting.push(late);
        let (status, took) = shop.checkout(late).await;
        assert_eq!(status, 202);
        assert!(took < Duration::from_millis(300), "breaker open: checkout took {took:?}");
        let unpaid = shop.orders(&waiting).await;
        assert!(unpaid.values().all(|(s, _)| s == "awaiting_payment"), "{unpaid:?}");

        // A provider comes back on its address: the waiting orders get paid.
        let addr = b_base.trim_start_matches("http://").to_owned();
        let _b = Provider::start(&addr, &charges);
        ids.extend(&waiting);
        let paid = shop.until_paid(&ids, Duration::from_secs(20)).await;
        assert_charges_match(&paid, &ledger(&charges));
        let distinct: std::collections::HashSet<_> = paid.values().collect();
        assert_eq!(distinct.len(), paid.len(), "one charge per order");
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.expect("bounded");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_standby_takes_calls_only_while_every_primary_is_ejected() {
    let run = async {
        let scratch = Scratch::new("provider-standby-ledger");
        let charges = scratch.0.join("charges");
        let primary = Provider::start("127.0.0.1:0", &charges);
        let standby = Provider::start("127.0.0.1:0", &charges);
        let mut shop = Shop::start("provider-standby", &[&primary.base], &[&standby.base]).await;
        let http = reqwest::Client::new();

        let mut ids = Vec::new();
        for _ in 0..6 {
            ids.push(shop.order(Some("tok_visa")).await);
        }
        shop.until_paid(&ids, Duration::from_secs(10)).await;
        assert_eq!(standby.stats(&http).await["calls"], 0, "the primary serves");

        // The primary fails every call: its breaker ejects it, the standby serves.
        primary.set_failure_rate(&http, 1.0).await;
        let failing = Instant::now() + Duration::from_secs(15);
        while standby.stats(&http).await["calls"] == 0 {
            assert!(
                Instant::now() < failing,
                "the standby never took a call: {}",
                shop.status().await
            );
            ids.push(shop.order(Some("tok_visa")).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let s = shop.status().await;
        assert_eq!(endpoint(&s, &standby.base)["role"], "standby", "{s}");
        let paid = shop.until_paid(&ids, Duration::from_secs(15)).await;
        assert_charges_match(&paid, &ledger(&charges));

        // The primary heals: once its breaker closes, the standby gets nothing more.
        primary.set_failure_rate(&http, 0.0).await;
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            ids.push(shop.order(Some("tok_visa")).await);
            shop.until_paid(&ids, Duration::from_secs(10)).await;
            let s = shop.status().await;
            if endpoint(&s, &primary.base)["breaker"] == "closed" {
                break;
            }
            assert!(Instant::now() < deadline, "the primary never came back: {s}");
        }
        let before = standby.stats(&http).await["calls"].as_u64().unwrap();
        for _ in 0..6 {
            ids.push(shop.order(Some("tok_visa")).await);
        }
        let paid = shop.until_paid(&ids, Duration::from_secs(10)).await;
        assert_eq!(standby.stats(&http).await["calls"], before, "back on the primary");
        assert_charges_match(&paid, &ledger(&charges));
    };
    tokio::time::timeout(Duration::from_secs(90), run).await.expect("bounded");
}

/// Runs the binary with `env` and returns its exit code and stderr (it exits at once).
fn refused(args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = Scratch::new("provider-refused");
    let mut cmd = process::binary();
    cmd.args(args)
        .env("SHOP_SERVER__ADDR", "127.0.0.1:0")
        .env("SHOP_STORAGE__DATA_DIR", &dir.0)
        .stdin(Stdio::null());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn bad_provider_settings_are_refused_at_start_with_their_path() {
    let cases: [(&[&str], (&str, &str), &str); 4] = [
        (&["serve"], ("SHOP_PROVIDER__URLS", r#"["http://127.0.0.1:1", "nope"]"#), "provider.urls"),
        (
            &["serve"],
            ("SHOP_PROVIDER__STANDBY_URLS", r#"["http://127.0.0.1:1"]"#),
            "provider.standby_urls",
        ),
        (&["serve"], ("SHOP_PROVIDER__MAX_ATTEMPTS", "0"), "provider.max_attempts"),
        (
            &["serve", "--service", "provider"],
            ("SHOP_PROVIDER__FAILURE_RATE", "1.5"),
            "provider.failure_rate",
        ),
    ];
    for (args, (key, value), path) in cases {
        let (code, stderr) = refused(args, &[(key, value)]);
        assert_eq!(code, Some(2), "{key}={value}: {stderr}");
        assert!(stderr.contains(path), "{key}={value}: {stderr}");
    }
}
