//! Liveness and readiness over real HTTP: `/health/live` answers 200 whatever the shop's
//! state; `/health/ready` (and its alias `/health`) answers 503 with the reasons while the
//! bulkhead is full or shed recently, and while the store does not answer in time, and 200
//! again once that is over. Time is the shop's manual clock: the store timeout and the shed
//! window pass when the test moves it.

mod common;

use std::time::Duration;

use common::{Resp, TestDb, TestShop, eventually, start};
use levee::limit::BulkheadSettings;
use serde_json::{Value, json};

const STORE_TIMEOUT: Duration = Duration::from_millis(500);
const SHED_WINDOW: Duration = Duration::from_secs(5);

async fn health_shop(db: &TestDb, max_concurrent: usize) -> TestShop {
    start(db, |c| {
        c.edge.bulkhead = BulkheadSettings::new(max_concurrent);
        c.health.store_timeout = STORE_TIMEOUT;
        c.health.shed_window = SHED_WINDOW;
    })
    .await
}

async fn live(shop: &TestShop) -> Resp {
    shop.send(shop.get("/health/live", None)).await
}

/// `/health/ready` while the store is held: the check waits for the store timeout on the
/// shop clock, so move the clock until it answers.
async fn ready_moving_the_clock(shop: &TestShop) -> Resp {
    let probe = tokio::spawn(shop.get("/health/ready", None).send());
    eventually("the readiness check gives up on the store", || async {
        shop.clock.advance(STORE_TIMEOUT);
        probe.is_finished().then_some(())
    })
    .await;
    let r = probe.await.unwrap().unwrap();
    let status = r.status().as_u16();
    Resp { status, headers: r.headers().clone(), body: r.json().await.unwrap() }
}

fn reasons_of(r: &Resp) -> Vec<String> {
    r.body["reasons"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_and_its_alias_say_ok_with_every_check() {
    let db = TestDb::sqlite();
    let shop = health_shop(&db, 4).await;
    for path in ["/health/ready", "/health"] {
        let r = shop.send(shop.get(path, None)).await;
        assert_eq!(r.status, 200, "{path}: {r:?}");
        assert_eq!(r.body["status"], "ok");
        assert_eq!(r.body["database"], "ok");
        for check in ["store", "bus", "edge"] {
            assert_eq!(r.body["checks"][check], json!({ "ok": true, "detail": "ok" }), "{check}");
        }
        assert_eq!(r.body["reasons"], json!([]));
    }
    let r = live(&shop).await;
    assert_eq!((r.status, &r.body), (200, &json!({ "status": "ok" })));
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_goes_503_while_the_bulkhead_sheds_and_live_stays_200() {
    let db = TestDb::sqlite();
    let shop = health_shop(&db, 1).await;
    // One slow customer request holds the only bulkhead slot.
    shop.faults(json!({ "store_latency_ms": 600_000 })).await;
    let slow = tokio::spawn(shop.get("/products/1", Some("demo-alice")).send());
    eventually("the slow request holds the bulkhead", || async {
        (shop.shop().edge.stats().in_flight == 1).then_some(())
    })
    .await;
    let r = ready_moving_the_clock(&shop).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body["status"], "unavailable");
    assert_eq!(r.body["checks"]["edge"]["ok"], false);
    let reasons = reasons_of(&r);
    assert!(
        reasons.iter().any(|r| r.starts_with("edge: shedding: 1 of 1 requests in flight")),
        "{reasons:?}"
    );
    // The store is held too (that is what holds the request): the check says so.
    assert!(reasons.iter().any(|r| r.starts_with("store: no answer within 500 ms")), "{reasons:?}");
    assert_eq!(live(&shop).await.status, 200, "live does not depend on load or the store");

    // A second customer is shed.
    let shed = shop.send(shop.get("/products/2", Some("demo-bob"))).await;
    assert_eq!(shed.status, 503, "{shed:?}");
    shop.faults(json!({ "store_latency_ms": 0 })).await;
    assert_eq!(slow.await.unwrap().unwrap().status(), 200);

    // The slot is free, but the shop shed a request moments ago: still not ready.
    let r = shop.send(shop.get("/health/ready", None)).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(r.body["checks"]["store"]["ok"], true);
    let reasons = reasons_of(&r);
    assert_eq!(reasons.len(), 1, "{reasons:?}");
    assert!(reasons[0].starts_with("edge: shedding: the bulkhead refused requests"), "{reasons:?}");
    assert_eq!(live(&shop).await.status, 200);
    // Ready again once the shed window has passed without another refusal.
    shop.clock.advance(SHED_WINDOW);
    let r = shop.send(shop.get("/health", None)).await;
    assert_eq!((r.status, &r.body["reasons"]), (200, &json!([])), "{r:?}");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ready_goes_503_while_the_store_does_not_answer() {
    let db = TestDb::sqlite();
    let shop = health_shop(&db, 16).await;
    shop.faults(json!({ "store_latency_ms": 600_000 })).await;
    let r = ready_moving_the_clock(&shop).await;
    assert_eq!(r.status, 503, "{r:?}");
    assert_eq!(
        r.body["checks"]["store"],
        json!({ "ok": false, "detail": "no answer within 500 ms (health.store_timeout)" })
    );
    assert_eq!(reasons_of(&r), ["store: no answer within 500 ms (health.store_timeout)"]);
    assert_eq!(r.body["checks"]["bus"]["ok"], true);
    assert_eq!(r.body["checks"]["edge"]["ok"], true);
    let l = live(&shop).await;
    assert_eq!((l.status, &l.body), (200, &json!({ "status": "ok" })));
    shop.faults(json!({ "store_latency_ms": 0 })).await;
    let r = shop.send(shop.get("/health/ready", None)).await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.body["status"], Value::from("ok"));
    shop.stop().await;
}
