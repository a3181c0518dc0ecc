//! Live settings over real HTTP on 127.0.0.1 (issue 22.1): an operator changes the edge's
//! rate limit, the payment breaker and the caches with `PATCH /admin/settings` while the
//! shop runs, and the mechanisms keep what they learnt. The shop runs on a manual clock that
//! the tests move only where they say so.

mod common;

use std::time::Duration;

use common::{TestDb, TestShop, start};
use levee::limit::Quota;
use reqwest::Method;
use serde_json::{Value, json};

async fn settings(shop: &TestShop) -> Value {
    let r = shop.send(shop.admin(Method::GET, "/admin/settings")).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body
}

async fn change(shop: &TestShop, patch: Value) -> common::Resp {
    shop.send(shop.admin(Method::PATCH, "/admin/settings").json(&patch)).await
}

/// `n` product reads by the client `key`: (served, refused with 429).
async fn reads(shop: &TestShop, key: &str, n: usize) -> (usize, usize) {
    let (mut served, mut refused) = (0, 0);
    for _ in 0..n {
        let r = shop.send(shop.get("/products/1", Some(key))).await;
        match r.status {
            200 => served += 1,
            429 => refused += 1,
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    (served, refused)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_faster_rate_keeps_what_each_client_owes() {
    let db = TestDb::sqlite();
    let shop = start(&db, |c| c.edge.rate = Quota::per_minute(10).with_burst(10)).await;
    let key = shop.customer("ann").await;
    let before = settings(&shop).await;
    assert_eq!(before["edge"]["rate"], json!({"count": 10, "period": "1m", "burst": 10}));

    assert_eq!(reads(&shop, &key, 12).await, (10, 2), "the burst of 10, then refused");
    let r =
        change(&shop, json!({"edge": {"rate": {"count": 20, "period": "1m", "burst": 20}}})).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["edge"]["rate"], json!({"count": 20, "period": "1m", "burst": 20}));
    // Ann still owes her 10 requests (now at 3 s each): 10 of the new burst of 20 are free,
    // where a rebuilt limiter would have given her all 20.
    assert_eq!(reads(&shop, &key, 12).await, (10, 2));
    // And they are paid back at the new rate: 3 s a request.
    shop.clock.advance(Duration::from_secs(3));
    assert_eq!(reads(&shop, &key, 2).await, (1, 1));
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_patch_changes_nothing_and_says_what_is_wrong() {
    let db = TestDb::sqlite();
    let shop = start(&db, |_| {}).await;
    let before = settings(&shop).await;

    // A valid cache change beside an invalid rate: neither is applied.
    let r = change(
        &shop,
        json!({"cache": {"products": {"time_to_live": "5s"}},
               "edge": {"rate": {"count": 0, "period": "1s"}}}),
    )
    .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert_eq!(r.body["error"]["code"], "invalid_setting");
    let message = r.body["error"]["message"].as_str().unwrap();
    assert!(message.contains("`edge.rate.count`"), "{message}");
    assert_eq!(settings(&shop).await, before);

    // A breaker with another kind of window: refused by the breaker, nothing else applied.
    let mut breaker = before["payment"]["breaker"].clone();
    breaker["window"] = json!({"type": "time", "size": "30s"});
    let r = change(&shop, json!({"payment": {"breaker": breaker}, "edge": {"max_concurrent": 3}}))
        .await;
    assert_eq!(r.status, 422, "{r:?}");
    assert!(r.body["error"]["message"].as_str().unwrap().contains("payment.breaker"), "{r:?}");
    assert_eq!(settings(&shop).await, before);

    for bad in [
        json!({"edge": {"max_concurrent": 0}}),
        json!({"cache": {"customers": {"max_capacity": 0}}}),
        json!({"cache": {"products": {"time_to_live": "0s"}}}),
    ] {
        let r = change(&shop, bad.clone()).await;
        assert_eq!((r.status, &r.body["error"]["code"]), (422, &json!("invalid_setting")), "{bad}");
    }
    let r = change(&shop, json!({"edge": {"burst": 3}})).await;
    assert_eq!((r.status, &r.body["error"]["code"]), (422, &json!("invalid_body")), "{r:?}");
    let r = shop.send(shop.http.get(format!("{}/admin/settings", shop.base))).await;
    assert_eq!(r.status, 401, "no admin token: {r:?}");
    assert_eq!(settings(&shop).await, before);
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn breaker_and_cache_changes_apply_at_once() {
    let db = TestDb::sqlite();
    let shop = start(&db, |_| {}).await;
    let mut breaker = settings(&shop).await["payment"]["breaker"].clone();
    breaker["failure_count_threshold"] = json!(2);
    breaker["open_wait"] = json!({"type": "fixed", "wait": "3s"});
    let r = change(
        &shop,
        json!({"payment": {"breaker": breaker.clone()},
               "edge": {"max_concurrent": 7},
               "cache": {"products": {"time_to_live": "2s", "max_capacity": 500}}}),
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["payment"]["breaker"], breaker);
    assert_eq!(r.body["edge"]["max_concurrent"], 7);
    assert_eq!(r.body["cache"]["products"], json!({"max_capacity": 500, "time_to_live": "2s"}));
    assert_eq!(shop.status().await["edge"]["max_concurrent"], json!(7), "the bulkhead itself");

    // The shorter TTL: a product read through the cache is read again from the store
    // once 2 s have passed, not 300 s.
    let reads_now = || async { shop.status().await["store"]["product_reads"].as_u64().unwrap() };
    let key = shop.customer("bob").await;
    shop.send(shop.get("/products/2", Some(&key))).await;
    let first = reads_now().await;
    shop.send(shop.get("/products/2", Some(&key))).await;
    assert_eq!(reads_now().await, first, "cached");
    shop.clock.advance(Duration::from_secs(3));
    shop.send(shop.get("/products/2", Some(&key))).await;
    assert_eq!(reads_now().await, first + 1, "expired after the new TTL");
    shop.stop().await;
}
