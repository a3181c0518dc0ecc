//! Hostile clients against a real shop on 127.0.0.1 (issue 14 items 2 and 3): the rate limit
//! cannot be bypassed with made-up keys, forwarded headers or sign-ups, and no customer can
//! hoard stock. The shop runs on a manual clock that the tests never advance unless they say
//! so: a limit's budget refills only when a test moves time.

mod common;

use std::time::Duration;

use common::{TestDb, TestShop, start};
use levee::limit::Quota;
use serde_json::{Value, json};

/// Sends `n` `GET /products/1`, each with the key `key(i)` (none for `None`) and the
/// `X-Forwarded-For` `xff(i)` (none for `None`); returns (served, refused with 429).
async fn flood(
    shop: &TestShop,
    n: usize,
    key: impl Fn(usize) -> Option<String>,
    xff: impl Fn(usize) -> Option<String>,
) -> (usize, usize) {
    let (mut served, mut refused) = (0, 0);
    for i in 0..n {
        let mut req = shop.get("/products/1", key(i).as_deref());
        if let Some(x) = xff(i) {
            req = req.header("x-forwarded-for", x);
        }
        let r = shop.send(req).await;
        match r.status {
            200 => served += 1,
            429 => {
                assert_eq!(r.body["error"]["code"], "rate_limited", "{r:?}");
                assert!(r.headers.contains_key("retry-after"), "{r:?}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    (served, refused)
}

fn made_up(i: usize) -> Option<String> {
    Some(format!("key-made-up-{i}-{:x}", levee::core::random::next_u64()))
}

fn no_header(_: usize) -> Option<String> {
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn made_up_keys_cost_the_address_and_a_known_key_has_its_own_budget() {
    let db = TestDb::sqlite();
    let shop = start(&db, |c| c.edge.rate = Quota::per_minute(20).with_burst(20)).await;
    let known = shop.customer("ann").await;

    // A fresh made-up key per request: every one counts against 127.0.0.1.
    let (served, refused) = flood(&shop, 100, made_up, no_header).await;
    println!("made-up key flood, 100 requests: {served} served, {refused} refused");
    assert_eq!((served, refused), (20, 80));
    // Without a key the address's budget is the same one, spent.
    assert_eq!(flood(&shop, 5, |_| None, no_header).await, (0, 5));

    // The known customer has a budget of their own, untouched by the flood.
    let (served, refused) = flood(&shop, 25, |_| Some(known.clone()), no_header).await;
    assert_eq!((served, refused), (20, 5));
    let status = shop.status().await;
    assert_eq!(status["edge"]["rate_limited"], 90, "{status}");

    // Time refills both budgets: 4 s is one request each at 20 a minute (one per 3 s).
    shop.clock.advance(Duration::from_secs(4));
    assert_eq!(flood(&shop, 2, made_up, no_header).await, (1, 1));
    assert_eq!(flood(&shop, 2, |_| Some(known.clone()), no_header).await, (1, 1));
    shop.stop().await;
}

/// A served answer tells the client where its budget stands before it is refused: the IETF
/// `RateLimit-Policy` / `RateLimit` fields (issue 21 item 4) count down with each request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn served_answers_carry_the_rate_limit_fields() {
    let db = TestDb::sqlite();
    let shop = start(&db, |c| c.edge.rate = Quota::per_minute(20).with_burst(3)).await;
    let known = shop.customer("cy").await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let r = shop.send(shop.get("/products/1", Some(&known))).await;
        assert_eq!(r.status, 200, "{r:?}");
        let policy = r.headers["ratelimit-policy"].to_str().unwrap().to_owned();
        assert_eq!(policy, r#""client";q=20;w=60"#, "{r:?}");
        remaining.push(r.headers["ratelimit"].to_str().unwrap().to_owned());
    }
    // Three cells, one spent per request; the full burst is back 3 s per spent cell later.
    assert_eq!(
        remaining,
        [r#""client";r=2;t=3"#, r#""client";r=1;t=6"#, r#""client";r=0;t=9"#],
        "{remaining:?}"
    );
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_ups_have_their_own_per_address_limit() {
    let db = TestDb::sqlite();
    let shop = start(&db, |c| c.limits.signup = Quota::per_minute(6).with_burst(5)).await;
    let (mut created, mut refused) = (0, 0);
    for i in 0..20 {
        // A key (made up, or even a real one) does not change whose sign-up it is.
        let r = shop
            .send(shop.post(
                "/customers",
                made_up(i).as_deref(),
                &json!({ "name": format!("c{i}") }),
            ))
            .await;
        match r.status {
            201 => created += 1,
            429 => {
                assert_eq!(r.body["error"]["code"], "rate_limited", "{r:?}");
                assert_eq!(r.headers["retry-after"], "10", "one sign-up per 10 s: {r:?}");
                refused += 1;
            }
            other => panic!("unexpected {other}: {r:?}"),
        }
    }
    assert_eq!((created, refused), (5, 15));
    assert_eq!(shop.status().await["edge"]["signup_limited"], 15);
    // The sign-up limit is not the edge's rate: other routes from the address still work.
    assert_eq!(flood(&shop, 3, |_| None, no_header).await, (3, 0));
    // 11 s later: one more (one per 10 s).
    shop.clock.advance(Duration::from_secs(11));
    let r = shop.send(shop.post("/customers", None, &json!({ "name": "late" }))).await;
    assert_eq!(r.status, 201, "{r:?}");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
    let spoofed = |i: usize| Some(format!("198.51.100.{}", i % 250));
    // No trusted proxy (the default): the header is the client's word, and ignored.
    let db = TestDb::sqlite();
    let shop = start(&db, |c| c.edge.rate = Quota::per_minute(10).with_burst(10)).await;
    assert_eq!(flood(&shop, 30, |_| None, spoofed).await, (10, 20));
    shop.stop().await;

    // 127.0.0.1 is a trusted proxy: each forwarded client has its own budget...
    let db = TestDb::sqlite();
    let shop = start(&db, |c| {
        c.edge.rate = Quota::per_minute(10).with_burst(10);
        c.limits.trusted_proxies = vec!["127.0.0.0/8".parse().unwrap()];
    })
    .await;
    assert_eq!(flood(&shop, 30, |_| None, spoofed).await, (30, 0));
    // ... counted by the rightmost untrusted hop: what the client prepends changes nothing.
    let chained = |i: usize| Some(format!("10.9.9.{i}, 203.0.113.5, 127.0.0.9"));
    assert_eq!(flood(&shop, 15, |_| None, chained).await, (10, 5));
    // Garbage in the header stops at the proxy: the proxy's own budget, not a fresh one.
    let garbage = |i: usize| Some(format!("not-an-address-{i}"));
    assert_eq!(flood(&shop, 15, |_| None, garbage).await, (10, 5));
    shop.stop().await;
}

async fn cart(shop: &TestShop, key: &str, product_id: i64, quantity: u32) -> common::Resp {
    let body = json!({ "product_id": product_id, "quantity": quantity });
    shop.send(shop.post("/cart/items", Some(key), &body)).await
}

fn assert_cap(r: &common::Resp, cap: &str, limit: i64, held_units: i64, requested: i64) {
    assert_eq!(r.status, 409, "{r:?}");
    let e = &r.body["error"];
    assert_eq!(e["code"], "reservation_cap", "{r:?}");
    let h = &e["holding"];
    assert_eq!((h["cap"].as_str(), h["limit"].as_i64()), (Some(cap), Some(limit)), "{r:?}");
    assert_eq!(
        (h["held_units"].as_i64(), h["requested"].as_i64()),
        (Some(held_units), Some(requested)),
        "{r:?}"
    );
    assert!(e["message"].as_str().unwrap().contains(cap), "{r:?}");
}

async fn reserved_total(shop: &TestShop) -> i64 {
    let mut total = 0;
    for id in 1..=50 {
        total += shop.product(id).await["reserved"].as_i64().unwrap();
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_customer_cannot_hoard_stock() {
    let db = TestDb::sqlite();
    let shop = start(&db, |c| {
        c.limits.max_reserved_units = 500;
        c.limits.max_unpaid_orders = 2;
        c.orders.max_quantity = 100;
    })
    .await;
    let key = shop.customer("hoarder").await;

    // 5,000 units in one card-less order: refused, nothing reserved.
    let items: Vec<Value> = (1..=50).map(|p| json!({ "product_id": p, "quantity": 100 })).collect();
    let r = shop.place(&key, "all", &json!({ "items": items })).await;
    assert_cap(&r, "max_reserved_units", 500, 0, 5_000);
    assert_eq!(r.body["error"]["holding"]["held_unpaid_orders"], 0);
    assert_eq!(reserved_total(&shop).await, 0);

    // The cart counts: 5 x 100 is exactly the cap, one unit more is over.
    for p in 1..=5 {
        assert_eq!(cart(&shop, &key, p, 100).await.status, 200);
    }
    assert_cap(&cart(&shop, &key, 6, 1).await, "max_reserved_units", 500, 500, 1);
    // Lowering a line is always allowed, and raising it back within the cap too.
    assert_eq!(cart(&shop, &key, 5, 40).await.status, 200);
    assert_cap(&cart(&shop, &key, 6, 61).await, "max_reserved_units", 500, 440, 61);
    assert_eq!(cart(&shop, &key, 5, 100).await.status, 200);
    // An order beside the full cart is over, even one unit.
    let one = json!({ "items": [{ "product_id": 9, "quantity": 1 }] });
    assert_cap(&shop.place(&key, "one", &one).await, "max_reserved_units", 500, 500, 1);
    // Checking the cart out adds no units: allowed.
    let r = shop.place(&key, "from-cart", &json!({})).await;
    assert_eq!(r.status, 201, "{r:?}");
    assert_eq!(reserved_total(&shop).await, 500);
    // Cancelling frees its units: they can be ordered again.
    let cancel = format!("/orders/{}/cancel", r.body["id"]);
    assert_eq!(shop.send(shop.post(&cancel, Some(&key), &json!({}))).await.status, 200);
    let r = shop.place(&key, "one", &one).await;
    assert_eq!(r.status, 201, "{r:?}");
    // The unpaid order cap: two unpaid now (the cancelled one does not count).
    let r =
        shop.place(&key, "two", &json!({ "items": [{ "product_id": 9, "quantity": 1 }] })).await;
    assert_eq!(r.status, 201, "{r:?}");
    let r = shop.place(&key, "three", &one).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.body["error"]["holding"]["cap"], "max_unpaid_orders", "{r:?}");
    assert_eq!(r.body["error"]["holding"]["held_unpaid_orders"], 2, "{r:?}");
    // A replay of an order placed before the cap was reached is still answered.
    assert_eq!(
        shop.place(&key, "two", &json!({ "items": [{ "product_id": 9, "quantity": 1 }] }))
            .await
            .status,
        200
    );
    // Another customer is not affected.
    let other = shop.customer("other").await;
    assert_eq!(shop.place(&other, "x", &one).await.status, 201);
    shop.stop().await;
}

/// 24 concurrent orders of 3 units each against a cap of 10: exactly three get through (9
/// units), whatever the interleaving; the rest are refused with the cap, and the stock shows
/// 9 units reserved.
async fn concurrent_orders_cannot_exceed_the_cap_together(db: TestDb) {
    let shop = start(&db, |c| {
        c.limits.max_reserved_units = 10;
        c.limits.max_unpaid_orders = 100;
    })
    .await;
    let key = shop.customer("racer").await;
    let orders = (0..24).map(|i| {
        let body = json!({ "items": [{ "product_id": 1 + i % 3, "quantity": 3 }] });
        let (shop, key) = (&shop, &key);
        async move { shop.place(key, &format!("race-{i}"), &body).await }
    });
    let answers = futures::future::join_all(orders).await;
    let created = answers.iter().filter(|r| r.status == 201).count();
    for r in answers.iter().filter(|r| r.status != 201) {
        assert_eq!(r.status, 409, "{r:?}");
        assert_eq!(r.body["error"]["holding"]["cap"], "max_reserved_units", "{r:?}");
        let held = r.body["error"]["holding"]["held_units"].as_i64().unwrap();
        assert!(held + 3 > 10 && held <= 10, "{r:?}");
    }
    assert_eq!(created, 3);
    assert_eq!(reserved_total(&shop).await, 9);
    shop.stop().await;
}

on_both_databases!(concurrent_orders_cannot_exceed_the_cap_together);
