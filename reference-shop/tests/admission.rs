//! Adaptive load shedding at the edge (`[edge.admission]`), over real HTTP on 127.0.0.1: the
//! shop measures its own capacity from the requests it serves and sheds what is over it
//! with the bulkhead's 503, while the bulkhead itself is far from full.

mod common;

use std::time::Duration;

use common::{TestDb, eventually, start};
use levee::limit::AdmissionSettings;
use serde_json::json;

/// Requests in flight through the admission controller.
fn admitted_in_flight(shop: &common::TestShop) -> usize {
    shop.shop().edge.admission_controller().expect("admission is on").in_flight()
}

/// Starts `n` product searches that stay in the store until its injected latency is lifted,
/// and waits until the controller counts them in flight.
async fn hold(shop: &common::TestShop, n: usize) -> Vec<tokio::task::JoinHandle<u16>> {
    let before = admitted_in_flight(shop);
    let held = (0..n)
        .map(|_| {
            let (http, base) = (shop.http.clone(), shop.base.clone());
            tokio::spawn(async move {
                http.get(format!("{base}/products?limit=1")).send().await.unwrap().status().as_u16()
            })
        })
        .collect();
    eventually("the slow searches are admitted", || async {
        (admitted_in_flight(shop) == before + n).then_some(())
    })
    .await;
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_sheds_what_is_over_the_capacity_it_measured() {
    let db = TestDb::sqlite();
    // 100 ms buckets over 1 s, the estimate as it is (no headroom). The bulkhead stays at
    // the tests' 10,000 slots: every 503 here is the admission controller's.
    let shop = start(&db, |c| {
        c.edge.admission =
            Some(AdmissionSettings::new().window(Duration::from_secs(1), 10).headroom(1.0));
    })
    .await;

    // Measure: two searches held 100 ms (shop clock) complete in bucket 1: 20/s x 100 ms.
    shop.faults(json!({ "store_latency_ms": 600_000 })).await;
    let held = hold(&shop, 2).await;
    shop.clock.advance(Duration::from_millis(100));
    shop.faults(json!({ "store_latency_ms": 0 })).await;
    for h in held {
        assert_eq!(h.await.unwrap(), 200);
    }
    shop.clock.advance(Duration::from_millis(100)); // bucket 1 closes
    let controller = shop.shop().edge.admission_controller().unwrap();
    assert_eq!(controller.capacity(), Some(2), "{:?}", controller.stats());

    // Overload: two requests in flight fill the capacity; the next ones are shed at once
    // with the bulkhead's answer.
    shop.faults(json!({ "store_latency_ms": 600_000 })).await;
    let held = hold(&shop, 2).await;
    for _ in 0..3 {
        // Without an API key: a key look-up would wait in the slow store before the edge.
        let r = shop.send(shop.get("/products/1", None)).await;
        assert_eq!(r.status, 503, "{r:?}");
        assert_eq!(r.headers["retry-after"], "1");
        assert_eq!(r.body["error"]["code"], "overloaded");
    }
    // Sign-ups go through it too.
    let r = shop.send(shop.post("/customers", None, &json!({ "name": "zoe" }))).await;
    assert_eq!(r.status, 503, "{r:?}");
    let status = shop.status().await;
    assert_eq!(status["edge"]["shed"], 0, "the bulkhead shed nothing");

    // Once the held requests complete there is room again.
    shop.faults(json!({ "store_latency_ms": 0 })).await;
    for h in held {
        assert_eq!(h.await.unwrap(), 200);
    }
    assert_eq!(shop.send(shop.get("/products/1", None)).await.status, 200);
    let stats = controller.stats();
    assert_eq!((stats.shed, stats.in_flight), (4, 0), "{stats:?}");

    // Operators see the same figures in /admin/status and /metrics (the shedding alert
    // counts the admission controller's refusals with the bulkhead's).
    let status = shop.status().await;
    assert_eq!(status["edge"]["admission_shed"], 4, "{status}");
    assert_eq!(status["edge"]["admission_capacity"], 2, "{status}");
    let metrics =
        shop.http.get(format!("{}/metrics", shop.base)).send().await.unwrap().text().await.unwrap();
    for line in
        ["levee_limiter_rejections_total{limiter=\"admission\"} 4", "levee_admission_capacity 2"]
    {
        assert!(metrics.lines().any(|l| l == line), "no `{line}` in:\n{metrics}");
    }
    shop.stop().await;
}

#[test]
fn admission_is_off_by_default_and_read_from_its_section() {
    let config = reference_shop::config::Config::default();
    assert!(config.edge.admission.is_none());
    let parsed: reference_shop::config::Config =
        toml::from_str("[edge.admission]\nwindow = \"2s\"\nbuckets = 20\n").unwrap();
    assert_eq!(
        parsed.edge.admission,
        Some(AdmissionSettings::new().window(Duration::from_secs(2), 20))
    );
    // Checked with the rest of the settings, named by its section.
    let bad: reference_shop::config::Config =
        toml::from_str("[edge.admission]\ncpu_threshold = 0.8\n").unwrap();
    let err = bad.validate().unwrap_err().to_string();
    assert!(err.contains("edge.admission") && err.contains("cpu_threshold"), "{err}");
}
