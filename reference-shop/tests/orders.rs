//! End to end over real HTTP: browse, cart, order, payment, notification; the payment failure
//! path; unpaid orders cancelled by the timer (manual time) with their stock restored, also
//! after a restart; cart reservations held, extended and expired on the same timers, each
//! expiry told to its customer once through the outbox (also across a restart);
//! idempotent placement; no overselling under concurrency; graceful shutdown keeps
//! acknowledged orders. Each on SQLite and PostgreSQL with the in-process broker, on the
//! durable broker (the shop's default) and on NATS (`LEVEE_TEST_NATS_URL`).

mod common;

use std::time::Duration;

use common::{TestDb, TestShop, eventually, start};
use serde_json::{Value, json};

fn id(v: &Value) -> i64 {
    v["id"].as_i64().expect("an id")
}

async fn kinds(shop: &TestShop, key: &str, order: i64) -> Vec<String> {
    let r = shop.send(shop.get(&format!("/orders/{order}/notifications"), Some(key))).await;
    assert_eq!(r.status, 200, "{r:?}");
    r.body["notifications"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["kind"].as_str().unwrap().to_owned())
        .collect()
}

async fn browse_cart_order_pay_notify(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let health = shop.send(shop.get("/health", None)).await;
    assert_eq!(health.status, 200);

    // Browse: list, search, one product.
    let list = shop.send(shop.get("/products?limit=5", None)).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.body["products"].as_array().unwrap().len(), 5);
    let found = shop.send(shop.get("/products?q=bamboo&limit=100", None)).await;
    let found = found.body["products"].as_array().unwrap().clone();
    assert!(!found.is_empty());
    assert!(found.iter().all(|p| p["name"].as_str().unwrap().contains("Bamboo")));
    let p3 = shop.send(shop.get("/products/3", None)).await;
    assert_eq!(p3.status, 200);
    assert_eq!(p3.body["id"], 3);
    let stock3 = p3.body["stock"].as_i64().unwrap();
    let stock4 = shop.product(4).await["stock"].as_i64().unwrap();

    // Cart.
    let key = shop.customer("carol").await;
    for (product, quantity) in [(3, 2), (4, 1), (5, 1)] {
        let r = shop
            .send(shop.post(
                "/cart/items",
                Some(&key),
                &json!({ "product_id": product, "quantity": quantity }),
            ))
            .await;
        assert_eq!(r.status, 200, "{r:?}");
    }
    let r = shop
        .send(shop.http.delete(format!("{}/cart/items/5", shop.base)).header("x-api-key", &key))
        .await;
    assert_eq!(r.body["lines"].as_array().unwrap().len(), 2);
    let cart = shop.send(shop.get("/cart", Some(&key))).await;
    let total = cart.body["total_cents"].as_i64().unwrap();
    assert!(cart.body["reserved_until_ms"].is_i64(), "{cart:?}");
    // The cart holds its stock.
    let p3 = shop.product(3).await;
    assert_eq!((p3["stock"].as_i64().unwrap(), p3["reserved"].as_i64().unwrap()), (stock3 - 2, 2));

    // Place from the cart and pay at once.
    let placed = shop.place(&key, "order-1", &json!({ "card": "tok_visa" })).await;
    assert_eq!(placed.status, 201, "{placed:?}");
    assert_eq!(placed.body["status"], "awaiting_payment");
    assert_eq!(placed.body["total_cents"], total);
    let order = id(&placed.body);
    let cart = shop.send(shop.get("/cart", Some(&key))).await;
    assert!(cart.body["lines"].as_array().unwrap().is_empty());
    // The order took the cart's reservation over: no second one (reserved or, once the
    // payment went through, sold: the stock is down by two either way).
    assert_eq!(shop.product(3).await["stock"].as_i64().unwrap(), stock3 - 2);

    // Payment succeeds; the order is confirmed: stock stays sold, nothing left reserved.
    let paid = shop.order_becomes(&key, order, "paid").await;
    assert!(paid["charge_id"].as_str().unwrap().starts_with("ch_"));
    let p3 = shop.product(3).await;
    assert_eq!(p3["stock"].as_i64().unwrap(), stock3 - 2);
    assert_eq!(p3["reserved"], 0);
    assert_eq!(shop.product(4).await["stock"].as_i64().unwrap(), stock4 - 1);
    assert_eq!(shop.shop().payments.charges_for(order), 1);

    // The cache saw the change (invalidated on reservation).
    let p3_cached = shop.send(shop.get("/products/3", None)).await;
    assert_eq!(p3_cached.body["stock"].as_i64().unwrap(), stock3 - 2);

    // Notifications recorded and listable.
    let k = eventually("notifications recorded", || async {
        let k = kinds(&shop, &key, order).await;
        (k.len() >= 2).then_some(k)
    })
    .await;
    // Two independent subscriptions record them, so in either order.
    let mut k = k;
    k.sort();
    assert_eq!(k, ["order_placed", "payment_succeeded"]);

    let mine = shop.send(shop.get("/orders", Some(&key))).await;
    assert_eq!(mine.body["orders"].as_array().unwrap().len(), 1);
    assert_eq!(mine.body["orders"][0]["id"], order);
    assert_eq!(mine.body["orders"][0]["lines"].as_array().unwrap().len(), 2);

    // A paid order cannot be cancelled.
    let r = shop.send(shop.post(&format!("/orders/{order}/cancel"), Some(&key), &json!({}))).await;
    assert_eq!(r.status, 409, "{r:?}");
    shop.stop().await;
}

async fn declined_payment_cancels_and_restores_stock(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let key = shop.customer("dave").await;
    let before = shop.product(7).await["stock"].as_i64().unwrap();
    let placed = shop
        .place(
            &key,
            "d-1",
            &json!({ "items": [{ "product_id": 7, "quantity": 3 }], "card": "tok_declined" }),
        )
        .await;
    assert_eq!(placed.status, 201, "{placed:?}");
    let order = id(&placed.body);
    let cancelled = shop.order_becomes(&key, order, "cancelled").await;
    assert_eq!(cancelled["cancel_reason"], "payment_declined");
    let p = shop.product(7).await;
    assert_eq!(p["stock"].as_i64().unwrap(), before);
    assert_eq!(p["reserved"], 0);
    let k = eventually("failure notifications", || async {
        let k = kinds(&shop, &key, order).await;
        (k.len() >= 3).then_some(k)
    })
    .await;
    assert!(k.contains(&"payment_failed".to_owned()), "{k:?}");
    assert!(k.contains(&"order_cancelled".to_owned()), "{k:?}");
    assert_eq!(shop.shop().payments.charges_for(order), 0);
    // Paying a cancelled order is refused.
    let r = shop
        .send(shop.post(
            &format!("/orders/{order}/pay"),
            Some(&key),
            &json!({ "card": "tok_visa" }),
        ))
        .await;
    assert_eq!(r.status, 409);
    shop.stop().await;
}

async fn unpaid_orders_time_out_and_release_stock(db: TestDb) {
    let shop =
        start(&db, |c| c.orders.unpaid_timeout = std::time::Duration::from_secs(30 * 60)).await;
    let key = shop.customer("erin").await;
    let before = shop.product(9).await["stock"].as_i64().unwrap();
    let unpaid = id(&shop
        .place(&key, "e-1", &json!({ "items": [{ "product_id": 9, "quantity": 4 }] }))
        .await
        .body);
    let later_paid = id(&shop
        .place(&key, "e-2", &json!({ "items": [{ "product_id": 9, "quantity": 1 }] }))
        .await
        .body);
    let p = shop.product(9).await;
    assert_eq!(p["stock"].as_i64().unwrap(), before - 5);
    assert_eq!(p["reserved"], 5);

    // Paying later through the API.
    let r = shop
        .send(shop.post(
            &format!("/orders/{later_paid}/pay"),
            Some(&key),
            &json!({ "card": "tok_visa" }),
        ))
        .await;
    assert_eq!(r.status, 202, "{r:?}");
    shop.order_becomes(&key, later_paid, "paid").await;

    // 29 minutes: nothing happens. 31 minutes: the unpaid order is cancelled.
    shop.clock.advance(Duration::from_secs(29 * 60));
    assert_eq!(shop.status().await["timers"]["pending"], 1);
    assert_eq!(shop.order(&key, unpaid).await["status"], "awaiting_payment");
    shop.clock.advance(Duration::from_secs(2 * 60));
    let o = shop.order_becomes(&key, unpaid, "cancelled").await;
    assert_eq!(o["cancel_reason"], "payment_timeout");
    let p = shop.product(9).await;
    assert_eq!(p["stock"].as_i64().unwrap(), before - 1);
    assert_eq!(p["reserved"], 0);
    assert_eq!(shop.status().await["timers"]["pending"], 0);
    shop.stop().await;
}

async fn timers_are_rebuilt_after_a_restart(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let key = shop.customer("fay").await;
    let before = shop.product(11).await["stock"].as_i64().unwrap();
    let order = id(&shop
        .place(&key, "f-1", &json!({ "items": [{ "product_id": 11, "quantity": 2 }] }))
        .await
        .body);
    shop.stop().await;

    let shop = start(&db, |_| {}).await;
    assert_eq!(shop.status().await["timers"]["pending"], 1);
    assert_eq!(shop.product(11).await["reserved"], 2);
    shop.clock.advance(Duration::from_secs(31 * 60));
    shop.order_becomes(&key, order, "cancelled").await;
    assert_eq!(shop.product(11).await["stock"].as_i64().unwrap(), before);
    shop.stop().await;
}

async fn cart_reservations_expire_on_the_timers(db: TestDb) {
    let tweak = |c: &mut reference_shop::Config| {
        c.orders.cart_reservation = std::time::Duration::from_secs(15 * 60)
    };
    let shop = start(&db, tweak).await;
    let r = shop
        .send(shop.admin(reqwest::Method::PATCH, "/admin/products/14").json(&json!({ "stock": 5 })))
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let key = shop.customer("jo").await;
    let add = |product: i64, quantity: u32| {
        shop.send(shop.post(
            "/cart/items",
            Some(&key),
            &json!({ "product_id": product, "quantity": quantity }),
        ))
    };
    assert_eq!(add(14, 3).await.status, 200);
    let p = shop.send(shop.get("/products/14", None)).await;
    assert_eq!((p.body["stock"].as_i64(), p.body["reserved"].as_i64()), (Some(2), Some(3)));
    // Three more would need more than the two left.
    let r = add(14, 6).await;
    assert_eq!(r.status, 409, "{r:?}");
    assert_eq!(r.body["error"]["code"], "out_of_stock");
    assert_eq!(r.body["error"]["available"], 2);

    // A change 14 minutes in extends the reservation: 28 minutes in, the cart still holds.
    shop.clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(add(15, 1).await.status, 200);
    shop.clock.advance(Duration::from_secs(14 * 60));
    let cart = shop.send(shop.get("/cart", Some(&key))).await;
    assert_eq!(cart.body["lines"].as_array().unwrap().len(), 2, "{cart:?}");
    shop.stop().await;

    // After a restart the cart's timer is rebuilt from the store (a fresh clock: the
    // reservation ends 29 minutes after its start).
    let shop = start(&db, tweak).await;
    assert_eq!(shop.status().await["timers"]["pending"], 1);
    shop.clock.advance(Duration::from_secs(14 * 60));
    assert_eq!(shop.product(14).await["reserved"], 3);
    shop.clock.advance(Duration::from_secs(16 * 60));
    eventually("the cart's reservation ends", || async {
        (shop.product(14).await["reserved"] == 0).then_some(())
    })
    .await;
    let cart = shop.send(shop.get("/cart", Some(&key))).await;
    assert!(cart.body["lines"].as_array().unwrap().is_empty(), "{cart:?}");
    assert_eq!(cart.body["reserved_until_ms"], Value::Null);
    assert_eq!(shop.product(14).await["stock"], 5);
    assert_eq!(shop.product(15).await["reserved"], 0);
    let s = shop.status().await;
    assert_eq!(
        (s["timers"]["pending"].as_u64(), s["timers"]["fired"].as_u64()),
        (Some(0), Some(1))
    );
    let metrics =
        shop.http.get(format!("{}/metrics", shop.base)).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("shop_carts_expired_total 1"), "{metrics}");
    // The expiry armed before the restart was told through the outbox, once.
    let notes = cart_notes_once(&shop, &key, 1).await;
    assert_eq!(notes[0]["kind"], "cart_expired");
    shop.stop().await;
}

/// Waits (bounded) until the caller has `n` cart notifications, then checks that they stay
/// `n` while the bus drains; returns them.
async fn cart_notes_once(shop: &TestShop, key: &str, n: usize) -> Vec<Value> {
    let notes = || async {
        let r = shop.send(shop.get("/cart/notifications", Some(key))).await;
        assert_eq!(r.status, 200, "{r:?}");
        r.body["notifications"].as_array().unwrap().clone()
    };
    eventually(&format!("{n} cart notification(s)"), || async {
        let got = notes().await;
        assert!(got.len() <= n, "more cart notifications than expiries: {got:?}");
        (got.len() == n).then_some(())
    })
    .await;
    eventually("the bus is idle", || async {
        let s = shop.status().await;
        let subs = s["queue"]["subscriptions"].as_array().cloned().unwrap_or_default();
        subs.iter().all(|sub| sub["depth"] == 0 && sub["in_flight"] == 0).then_some(())
    })
    .await;
    let got = notes().await;
    assert_eq!(got.len(), n, "{got:?}");
    got
}

async fn an_expired_cart_is_released_and_told_once(db: TestDb) {
    // (A manual-clock sleep also ends when real time covers what is left of it, so a probe
    // deadline close to Amy's would let real time reach hers: the probe is a minute early.
    // The store's own test pins the boundary to the millisecond.)
    let ttl = Duration::from_secs(15 * 60);
    let minute = Duration::from_secs(60);
    let shop = start(&db, |c| c.orders.cart_reservation = ttl).await;
    let (amy, cy) = (shop.customer("amy").await, shop.customer("cy").await);
    let add = |key: &str, product: i64, quantity: u32| {
        shop.send(shop.post(
            "/cart/items",
            Some(key),
            &json!({ "product_id": product, "quantity": quantity }),
        ))
    };
    let (s16, s17) =
        (shop.product(16).await["stock"].clone(), shop.product(17).await["stock"].clone());
    let r = add(&amy, 16, 2).await;
    assert_eq!(r.status, 200, "{r:?}");
    let first_end = r.body["reserved_until_ms"].as_i64().unwrap();

    // Cy's cart is the probe: it ends a minute before Amy's moved end.
    shop.clock.advance(Duration::from_secs(9 * 60));
    assert_eq!(add(&cy, 17, 1).await.status, 200);
    // Amy touches her cart 10 minutes in: it now ends 25 minutes in.
    shop.clock.advance(minute);
    let r = add(&amy, 17, 1).await;
    assert_eq!(r.status, 200, "{r:?}");
    let end = r.body["reserved_until_ms"].as_i64().unwrap();
    assert_eq!(end - first_end, 10 * 60 * 1000);

    // A minute before Amy's end, 9 minutes past her first one: only Cy's cart expired, and
    // Cy was told once.
    shop.clock.advance(ttl - minute);
    cart_notes_once(&shop, &cy, 1).await;
    let s = shop.status().await;
    assert_eq!(
        (s["timers"]["fired"].as_u64(), s["timers"]["pending"].as_u64()),
        (Some(1), Some(1))
    );
    let cart = shop.send(shop.get("/cart", Some(&amy))).await;
    assert_eq!(cart.body["lines"].as_array().unwrap().len(), 2, "{cart:?}");
    assert_eq!(shop.product(16).await["reserved"], 2);
    assert!(cart_notes_once(&shop, &amy, 0).await.is_empty());

    // At her end, Amy's cart expires: its stock comes back and she is told once.
    shop.clock.advance(minute);
    let notes = cart_notes_once(&shop, &amy, 1).await;
    assert_eq!(notes[0]["kind"], "cart_expired");
    let amy_id = shop.shop().customers.authenticate(Some(&amy)).await.unwrap().id;
    assert_eq!(notes[0]["event_id"], format!("cart-{amy_id}-{end}"));
    assert_eq!(shop.product(16).await["stock"], s16);
    assert_eq!(shop.product(16).await["reserved"], 0);
    assert_eq!(shop.product(17).await["stock"], s17);
    let cart = shop.send(shop.get("/cart", Some(&amy))).await;
    assert!(cart.body["lines"].as_array().unwrap().is_empty(), "{cart:?}");

    // Later nothing fires again, and the same event handled again tells nobody twice.
    shop.clock.advance(Duration::from_secs(2 * 3600));
    let again = reference_shop::domain::ShopEvent::CartExpired {
        event_id: notes[0]["event_id"].as_str().unwrap().to_owned(),
        customer_id: amy_id,
        reserved_until_ms: end,
        released: Vec::new(),
    };
    shop.shop().notifications.on_event(again).await.unwrap();
    cart_notes_once(&shop, &amy, 1).await;
    let s = shop.status().await;
    assert_eq!(
        (s["timers"]["fired"].as_u64(), s["timers"]["pending"].as_u64()),
        (Some(2), Some(0))
    );
    shop.stop().await;
}

async fn placement_is_idempotent(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let key = shop.customer("gus").await;
    let before = shop.product(12).await["stock"].as_i64().unwrap();
    let body = json!({ "items": [{ "product_id": 12, "quantity": 2 }], "card": "tok_visa" });
    let first = shop.place(&key, "same-key", &body).await;
    assert_eq!(first.status, 201);
    let again = shop.place(&key, "same-key", &body).await;
    assert_eq!(again.status, 200, "{again:?}");
    assert_eq!(again.headers["idempotent-replayed"], "true");
    assert_eq!(id(&again.body), id(&first.body));
    let other = shop
        .place(&key, "same-key", &json!({ "items": [{ "product_id": 12, "quantity": 3 }] }))
        .await;
    assert_eq!(other.status, 409);
    assert_eq!(other.body["error"]["code"], "idempotency_key_reused");
    // Keys are per customer: another customer may use the same key.
    let key2 = shop.customer("hal").await;
    assert_eq!(shop.place(&key2, "same-key", &body).await.status, 201);
    // Without a key the order is refused.
    let r = shop.send(shop.post("/orders", Some(&key), &body)).await;
    assert_eq!(r.status, 400);
    assert_eq!(r.body["error"]["code"], "idempotency_key_required");
    shop.order_becomes(&key, id(&first.body), "paid").await;
    assert_eq!(shop.product(12).await["stock"].as_i64().unwrap(), before - 4);
    shop.stop().await;
}

async fn concurrent_orders_never_oversell(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let r = shop
        .send(
            shop.admin(reqwest::Method::PATCH, "/admin/products/20").json(&json!({ "stock": 10 })),
        )
        .await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut keys = Vec::new();
    for i in 0..20 {
        keys.push(shop.customer(&format!("buyer{i}")).await);
    }
    let mut tasks = Vec::new();
    for i in 0..100 {
        let (http, base, key) = (shop.http.clone(), shop.base.clone(), keys[i % 20].clone());
        tasks.push(tokio::spawn(async move {
            http.post(format!("{base}/orders"))
                .header("x-api-key", key)
                .header("idempotency-key", format!("rush-{i}"))
                .json(&json!({ "items": [{ "product_id": 20, "quantity": 1 }] }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }));
    }
    let mut created = 0;
    let mut sold_out = 0;
    for t in tasks {
        match t.await.unwrap() {
            201 => created += 1,
            409 => sold_out += 1,
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!((created, sold_out), (10, 90));
    let p = shop.product(20).await;
    assert_eq!(p["stock"], 0);
    assert_eq!(p["reserved"], 10);
    shop.stop().await;
}

async fn shutdown_keeps_acknowledged_orders(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let key = shop.customer("ida").await;
    let handle = std::sync::Arc::clone(shop.shop());
    // Hold a placement in flight (the store is slow), then shut down under it.
    shop.faults(json!({ "store_latency_ms": 600_000 })).await;
    let request = tokio::spawn({
        let (http, base, key) = (shop.http.clone(), shop.base.clone(), key.clone());
        async move {
            let r = http
                .post(format!("{base}/orders"))
                .header("x-api-key", key)
                .header("idempotency-key", "in-flight")
                .json(&json!({ "items": [{ "product_id": 2, "quantity": 1 }], "card": "tok_visa" }))
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.json::<Value>().await.unwrap())
        }
    });
    eventually("the request is in flight", || async {
        (handle.edge.stats().in_flight == 1).then_some(())
    })
    .await;
    let stopping = tokio::spawn(shop.stop());
    // Shutdown waits for the request; let the store answer.
    tokio::task::yield_now().await;
    handle
        .operations
        .set_faults(reference_shop::faults::FaultPatch {
            store_latency_ms: Some(0),
            ..Default::default()
        })
        .unwrap();
    let (status, order) = request.await.unwrap();
    assert_eq!(status, 201, "{order}");
    stopping.await.unwrap();
    drop(handle);

    // The acknowledged order is there after a restart, and its payment completes.
    let shop = start(&db, |_| {}).await;
    shop.order_becomes(&key, order["id"].as_i64().unwrap(), "paid").await;
    shop.stop().await;
}

on_every_backend!(
    browse_cart_order_pay_notify,
    declined_payment_cancels_and_restores_stock,
    unpaid_orders_time_out_and_release_stock,
    timers_are_rebuilt_after_a_restart,
    cart_reservations_expire_on_the_timers,
    an_expired_cart_is_released_and_told_once,
    placement_is_idempotent,
    concurrent_orders_never_oversell,
    shutdown_keeps_acknowledged_orders,
);
