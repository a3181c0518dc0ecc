//! The resilience features at work, over HTTP: edge rate limit and load shedding, the
//! coalescing product cache, the payment breaker with retries, redelivery and the dead-letter
//! queue, and the metrics that show them.

mod common;

use std::time::{Duration, Instant};

use common::{TestDb, eventually, start};
use levee::breaker::OpenWait;
use levee::limit::{BulkheadSettings, Quota};
use reqwest::Method;
use serde_json::{Value, json};

async fn provider_outage_opens_the_breaker_and_payments_recover(db: TestDb) {
    let shop = start(&db, |c| {
        c.payment.retry.max_attempts = 2;
        c.payment.breaker.minimum_calls = 3;
        c.payment.breaker.failure_count_threshold = Some(3);
        c.payment.breaker.open_wait = OpenWait::fixed(Duration::from_secs(30));
        c.queue.subscription.max_deliveries = 3;
    })
    .await;
    let key = shop.customer("ops").await;
    shop.faults(json!({ "provider_failure_rate": 1.0 })).await;

    let mut orders = Vec::new();
    for i in 0..5 {
        let r = shop
            .place(
                &key,
                &format!("outage-{i}"),
                &json!({ "items": [{ "product_id": 30 + i, "quantity": 1 }], "card": "tok_visa" }),
            )
            .await;
        assert_eq!(r.status, 201, "{r:?}");
        orders.push(r.body["id"].as_i64().unwrap());
    }
    // Payments fail, retry, and end in the dead-letter queue; the breaker opens.
    let status = eventually("every payment is dead-lettered", || async {
        let s = shop.status().await;
        (s["queue"]["dlq_depth"] == 5).then_some(s)
    })
    .await;
    assert_eq!(status["breaker"]["state"], "open", "{status}");
    assert!(status["breaker"]["rejected"].as_u64().unwrap() > 0, "{status}");
    // The pipeline retried the provider's faults, and gave up at once on retries that would
    // have had to wait out the open breaker (30 s) past the payment's deadline (5 s).
    assert!(status["payment"]["retries"].as_u64().unwrap() > 0, "{status}");
    assert!(status["payment"]["retries_abandoned"].as_u64().unwrap() > 0, "{status}");
    assert!(status["payment"]["failures"].as_u64().unwrap() >= 3, "{status}");

    // Placement does not depend on the provider: it keeps answering, fast.
    let started = Instant::now();
    let r = shop
        .place(
            &key,
            "during-outage",
            &json!({ "items": [{ "product_id": 40, "quantity": 1 }], "card": "tok_visa" }),
        )
        .await;
    assert_eq!(r.status, 201);
    assert!(started.elapsed() < Duration::from_secs(5));
    orders.push(r.body["id"].as_i64().unwrap());

    // Payments failed cleanly: orders still await payment, stock still reserved, the reason
    // is on the order.
    for &id in &orders[..5] {
        let o = shop.order(&key, id).await;
        assert_eq!(o["status"], "awaiting_payment");
        assert!(o["payment_error"].is_string(), "{o}");
    }
    let metrics =
        shop.http.get(format!("{}/metrics", shop.base)).send().await.unwrap().text().await.unwrap();
    let sample = |name: &str| -> u64 {
        let line = metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or("");
        line.rsplit(' ').next().and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    assert_eq!(sample("levee_breaker_state"), 1, "{metrics}");
    assert!(sample("levee_retry_attempts_total") > 0, "{metrics}");
    assert!(sample("levee_retry_abandoned_total") > 0, "{metrics}");
    assert!(metrics.contains("levee_retry_budget_exhausted_total "), "{metrics}");
    assert!(metrics.contains("levee_timeouts_total{scope=\"attempt\"} "), "{metrics}");
    eventually("the sixth payment is dead-lettered", || async {
        (shop.status().await["queue"]["dlq_depth"] == 6).then_some(())
    })
    .await;
    let dlq = shop.send(shop.admin(Method::GET, "/admin/dlq")).await;
    let letters = dlq.body["dead_letters"].as_array().unwrap();
    assert_eq!(letters.len(), 6, "{dlq:?}");
    assert!(letters.iter().all(|l| l["subscription"] == "payment"), "{dlq:?}");

    // The provider comes back; the breaker's cool-down passes; the operator replays the DLQ.
    shop.faults(json!({ "provider_failure_rate": 0.0 })).await;
    shop.clock.advance(Duration::from_secs(31));
    let r = shop.send(shop.admin(Method::POST, "/admin/dlq/replay").json(&json!({}))).await;
    assert_eq!(r.body["replayed"], 6, "{r:?}");
    // While the half-open breaker lets its one probe through, the other payments are refused
    // and redelivered; on a slow machine some may reach the DLQ again, so the operator
    // replays until every order is paid.
    eventually("every order is paid", || async {
        let mut paid = 0;
        for &id in &orders {
            if shop.order(&key, id).await["status"] == "paid" {
                paid += 1;
            }
        }
        if paid == orders.len() {
            return Some(());
        }
        shop.send(shop.admin(Method::POST, "/admin/dlq/replay").json(&json!({}))).await;
        None
    })
    .await;
    for &id in &orders {
        // Retries and lost answers never charged twice.
        assert_eq!(shop.shop().payments.charges_for(id), 1);
    }
    let status = shop.status().await;
    assert_eq!(status["breaker"]["state"], "closed");
    assert_eq!(status["queue"]["dlq_depth"], 0);
    assert_eq!(status["provider"]["charges"], 6);
    shop.stop().await;
}

async fn edge_rate_limits_per_client_and_sheds_load(db: TestDb) {
    let shop = start(&db, |c| {
        c.edge.rate = Quota::per_second(1).with_burst(3);
        c.edge.bulkhead = BulkheadSettings::new(1);
    })
    .await;
    for _ in 0..3 {
        assert_eq!(shop.send(shop.get("/products/1", Some("demo-alice"))).await.status, 200);
    }
    let r = shop.send(shop.get("/products/1", Some("demo-alice"))).await;
    assert_eq!(r.status, 429, "{r:?}");
    assert_eq!(r.headers["retry-after"], "1");
    assert_eq!(r.body["error"]["code"], "rate_limited");
    // Another client has its own allowance; time restores this one's.
    assert_eq!(shop.send(shop.get("/products/1", Some("demo-bob"))).await.status, 200);
    shop.clock.advance(Duration::from_secs(1));
    assert_eq!(shop.send(shop.get("/products/1", Some("demo-alice"))).await.status, 200);

    // Bulkhead: one request at a time; a second is shed while the first is held by a slow
    // store.
    shop.faults(json!({ "store_latency_ms": 600_000 })).await;
    let slow = tokio::spawn({
        let (http, base) = (shop.http.clone(), shop.base.clone());
        async move {
            http.get(format!("{base}/products?limit=1")).send().await.unwrap().status().as_u16()
        }
    });
    eventually("the slow request holds the bulkhead", || async {
        (shop.status().await["edge"]["in_flight"] == 1).then_some(())
    })
    .await;
    shop.clock.advance(Duration::from_secs(10));
    let r = shop.send(shop.get("/products/2", Some("demo-bob"))).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert!(r.headers.contains_key("retry-after"));
    assert_eq!(r.body["error"]["code"], "overloaded");
    // Health and admin stay reachable while customers are shed.
    assert_eq!(shop.send(shop.admin(Method::GET, "/admin/status")).await.status, 200);
    shop.faults(json!({ "store_latency_ms": 0 })).await;
    assert_eq!(slow.await.unwrap(), 200);
    let s = shop.status().await;
    assert_eq!(s["edge"]["rate_limited"], 1);
    assert_eq!(s["edge"]["shed"], 1);
    shop.stop().await;
}

async fn a_flash_sale_burst_makes_one_store_read(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let reads_before = shop.shop().catalog.product_reads();
    // Hold the first read in the store so the whole burst arrives while it runs.
    shop.faults(json!({ "store_latency_ms": 600_000 })).await;
    let mut burst = Vec::new();
    for _ in 0..50 {
        let (http, base) = (shop.http.clone(), shop.base.clone());
        burst.push(tokio::spawn(async move {
            let r = http.get(format!("{base}/products/8")).send().await.unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }));
    }
    eventually("all 50 reads joined one load", || async {
        let c = shop.shop().catalog.cache_stats();
        // Fifty misses, of which all but the first joined the first one's load.
        (c.misses == 50 && c.coalesced == 49).then_some(())
    })
    .await;
    shop.faults(json!({ "store_latency_ms": 0 })).await;
    for r in burst {
        let (status, body) = r.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(body["id"], 8);
    }
    assert_eq!(shop.shop().catalog.product_reads() - reads_before, 1);
    assert_eq!(shop.shop().catalog.cache_stats().loads, 1);
    // Now cached: no store read at all.
    assert_eq!(shop.send(shop.get("/products/8", None)).await.status, 200);
    assert_eq!(shop.shop().catalog.product_reads() - reads_before, 1);

    // A price change invalidates the entry: the next read shows the new price.
    let r = shop
        .send(shop.admin(Method::PATCH, "/admin/products/8").json(&json!({ "price_cents": 1234 })))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let p = shop.send(shop.get("/products/8", None)).await;
    assert_eq!(p.body["price_cents"], 1234);
    assert_eq!(shop.shop().catalog.product_reads() - reads_before, 2);

    // Metrics show the cache at work.
    let m = shop.send(shop.http.get(format!("{}/metrics", shop.base))).await;
    let text =
        shop.http.get(format!("{}/metrics", shop.base)).send().await.unwrap().text().await.unwrap();
    assert_eq!(m.status, 200);
    for name in [
        "levee_cache_coalesced_total 49",
        "levee_breaker_state 0",
        "levee_retry_budget_available",
        "levee_timeouts_total{scope=\"overall\"} 0",
        "levee_limiter_rejections_total{limiter=\"rate\"}",
        "levee_queue_dlq_depth",
        "levee_timers_pending",
        "http_request_duration_seconds_bucket",
    ] {
        assert!(text.contains(name), "missing {name} in\n{text}");
    }
    shop.stop().await;
}

/// A payment attempt that hangs on a slow provider is cut by the attempt timeout, which runs
/// on the shop's (manual) clock: the test moves the clock past the timeout and the attempt is
/// cut at once, although the provider would take ten minutes of real time and the timeout is
/// a minute long. Once the provider is fast again, the redelivered payment goes through.
async fn a_payment_timeout_fires_when_the_shop_clock_passes_it(db: TestDb) {
    let shop = start(&db, |c| {
        c.payment.attempt_timeout = Duration::from_secs(60);
        c.payment.timeout = Duration::from_secs(600);
        c.payment.retry.max_attempts = 1;
    })
    .await;
    let started = Instant::now();
    let key = shop.customer("slow-provider").await;
    shop.faults(json!({ "provider_latency_ms": 600_000 })).await;
    let r = shop
        .place(
            &key,
            "slow-1",
            &json!({ "items": [{ "product_id": 3, "quantity": 1 }], "card": "tok_visa" }),
        )
        .await;
    assert_eq!(r.status, 201, "{r:?}");
    let id = r.body["id"].as_i64().unwrap();
    eventually("the payment attempt is in flight", || async {
        (shop.status().await["payment"]["calls"].as_u64() >= Some(1)).then_some(())
    })
    .await;
    // The attempt waits on the provider; its timeout sleeps on the shop clock (its deadline
    // was taken before the attempt was counted). Moving the clock a minute fires it now.
    shop.clock.advance(Duration::from_secs(61));
    let status = eventually("the attempt timed out", || async {
        let s = shop.status().await;
        (s["payment"]["attempt_timeouts"].as_u64() >= Some(1)).then_some(s)
    })
    .await;
    assert_eq!(status["provider"]["charges"], 0, "{status}");
    let o = eventually("the order records the timeout", || async {
        let o = shop.order(&key, id).await;
        o["payment_error"].as_str().is_some_and(|e| e.contains("timed out")).then_some(o)
    })
    .await;
    assert_eq!(o["status"], "awaiting_payment");
    assert!(
        started.elapsed() < Duration::from_secs(50),
        "a one-minute timeout fired without a minute of waiting: {:?}",
        started.elapsed()
    );
    // The provider recovers (which also ends the pause of the redelivered attempt already
    // waiting on it): the payment goes through.
    shop.faults(json!({ "provider_latency_ms": 0 })).await;
    eventually("the order is paid", || async {
        (shop.order(&key, id).await["status"] == "paid").then_some(())
    })
    .await;
    assert_eq!(shop.shop().payments.charges_for(id), 1);
    shop.stop().await;
}

/// Every customer request looks its API key up through the customer cache: a known key costs
/// one store read, then is answered from memory; a made-up key is remembered as unknown for
/// the cache's negative time to live (10 s), so a stream of made-up keys does not each cost a
/// store read, and forgotten after it.
async fn api_keys_are_looked_up_through_the_customer_cache(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let stats = || shop.shop().customers.cache_stats();
    let before = stats();
    for _ in 0..3 {
        assert_eq!(shop.send(shop.get("/cart", Some("demo-alice"))).await.status, 200);
    }
    let known = stats();
    assert_eq!(known.loads - before.loads, 1, "one store read for a known key");
    assert_eq!(known.hits - before.hits, 2);
    for _ in 0..3 {
        let r = shop.send(shop.get("/cart", Some("made-up-key"))).await;
        assert_eq!(r.status, 401, "{r:?}");
        assert_eq!(r.body["error"]["code"], "invalid_api_key");
    }
    assert_eq!(stats().loads - known.loads, 1, "an unknown key is remembered as unknown");
    shop.clock.advance(Duration::from_secs(11));
    assert_eq!(shop.send(shop.get("/cart", Some("made-up-key"))).await.status, 401);
    assert_eq!(stats().loads - known.loads, 2, "and forgotten after the negative TTL");
    // The known key is still answered from memory (its time to live is five minutes).
    assert_eq!(shop.send(shop.get("/cart", Some("demo-alice"))).await.status, 200);
    assert_eq!(stats().loads - known.loads, 2);
    shop.stop().await;
}

on_both_databases!(
    a_payment_timeout_fires_when_the_shop_clock_passes_it,
    provider_outage_opens_the_breaker_and_payments_recover,
    edge_rate_limits_per_client_and_sheds_load,
    a_flash_sale_burst_makes_one_store_read,
    api_keys_are_looked_up_through_the_customer_cache,
);

/// Every metric the Grafana dashboard queries is one the shop exports, and the OpenAPI
/// document it serves describes every route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_and_openapi_match_the_shop() {
    let db = TestDb::sqlite();
    let shop = start(&db, |_| {}).await;
    // Make every labelled family have at least one sample.
    let key = shop.customer("metrics").await;
    let r = shop
        .place(
            &key,
            "m-1",
            &json!({ "items": [{ "product_id": 1, "quantity": 1 }], "card": "tok_visa" }),
        )
        .await;
    shop.order_becomes(&key, r.body["id"].as_i64().unwrap(), "paid").await;
    let metrics =
        shop.http.get(format!("{}/metrics", shop.base)).send().await.unwrap().text().await.unwrap();
    let dashboard = include_str!("../dashboards/grafana.json");
    let names: std::collections::BTreeSet<&str> = dashboard
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .filter(|t| t.starts_with("levee_") || t.starts_with("shop_") || t.starts_with("http_"))
        .collect();
    assert!(names.len() > 10, "{names:?}");
    for name in names {
        let exported = metrics
            .lines()
            .any(|l| l.starts_with(&format!("{name} ")) || l.starts_with(&format!("{name}{{")));
        assert!(exported, "dashboard queries {name}, which /metrics does not export");
    }

    let spec = shop.send(shop.get("/openapi.json", None)).await;
    assert_eq!(spec.status, 200);
    let paths = spec.body["paths"].as_object().unwrap();
    for route in [
        "/health",
        "/metrics",
        "/customers",
        "/products",
        "/products/{id}",
        "/cart",
        "/cart/items",
        "/cart/items/{product_id}",
        "/orders",
        "/orders/{id}",
        "/orders/{id}/pay",
        "/orders/{id}/checkout",
        "/orders/{id}/cancel",
        "/orders/{id}/notifications",
        "/admin/status",
        "/admin/faults",
        "/admin/dlq",
        "/admin/dlq/replay",
        "/admin/products/{id}",
    ] {
        assert!(paths.contains_key(route), "openapi.json lacks {route}");
    }
    shop.stop().await;
}
