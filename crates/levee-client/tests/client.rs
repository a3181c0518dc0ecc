//! The client against real HTTP servers on 127.0.0.1: balancing, ejection, failover,
//! retries, deadlines and hedging. Latency and breaker waits are on one `ManualClock`
//! under paused tokio time, so every timing is exact and nothing waits for real time.

#![cfg(not(loom))]

mod common;

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{behaviour, ms_since, router, serve, server};
use levee_breaker::{BreakerSettings, OpenWait, SlidingWindow, State};
use levee_client::{Client, DeadlineLayer, Endpoint, Error, TIMEOUT_HEADER};
use levee_core::{Clock, ManualClock};
use levee_policy::{Backoff, Hedge, HedgeDelay, RetryBudget};

/// A breaker that ejects after 2 failures of the last 4 calls, for 5 s, and lets one trial
/// call decide.
fn quick_breaker() -> BreakerSettings {
    BreakerSettings {
        window: SlidingWindow::count(4),
        minimum_calls: 2,
        failure_rate_threshold: 50.0,
        open_wait: OpenWait::fixed(Duration::from_secs(5)),
        half_open_calls: 1,
        ..BreakerSettings::default()
    }
}

/// A breaker that never opens within a test (retry tests count every attempt).
fn patient_breaker() -> BreakerSettings {
    BreakerSettings {
        window: SlidingWindow::count(1000),
        minimum_calls: 1000,
        ..BreakerSettings::default()
    }
}

fn body(response: &http::Response<Bytes>) -> &str {
    std::str::from_utf8(response.body()).unwrap()
}

#[tokio::test(start_paused = true)]
async fn p2c_sends_most_requests_to_the_faster_endpoints() {
    let clock = ManualClock::new();
    let fast1 = server("fast1", &clock, Duration::from_millis(5)).await;
    let fast2 = server("fast2", &clock, Duration::from_millis(5)).await;
    let slow = server("slow", &clock, Duration::from_millis(80)).await;
    let client = Client::builder()
        .endpoints([fast1.endpoint(), slow.endpoint(), fast2.endpoint()])
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..60 {
        assert_eq!(client.get("/item").await.unwrap().status(), 200);
    }
    let (f1, f2, s) = (fast1.behaviour.hits(), fast2.behaviour.hits(), slow.behaviour.hits());
    assert_eq!(f1 + f2 + s, 60);
    // The slow endpoint is found out by its first answer (a peak), then loses every draw
    // against a fast one; it is drawn against itself never.
    assert!(s <= 3, "slow got {s} of 60 (fast {f1} + {f2})");
    assert!(f1 >= 15 && f2 >= 15, "both fast endpoints share the load: {f1} / {f2}");
    let stats = client.stats();
    let slow_stats = stats.iter().find(|s| s.endpoint == slow.endpoint()).unwrap();
    assert!(slow_stats.latency > Duration::from_millis(40), "{:?}", slow_stats.latency);
}

#[tokio::test(start_paused = true)]
async fn a_failing_endpoint_is_ejected_and_comes_back_after_the_open_wait() {
    let clock = ManualClock::new();
    let bad = server("bad", &clock, Duration::ZERO).await;
    let good = server("good", &clock, Duration::ZERO).await;
    bad.behaviour.set_status(500);
    let client = Client::builder()
        .endpoints([bad.endpoint(), good.endpoint()])
        .breaker(quick_breaker())
        .max_attempts(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..30 {
        client.get("/x").await.unwrap();
    }
    let ejected_after = bad.behaviour.hits();
    assert!((2..=4).contains(&ejected_after), "ejected after {ejected_after} failures");
    let stats = client.stats();
    let bad_stats = stats.iter().find(|s| s.endpoint == bad.endpoint()).unwrap();
    assert_eq!(bad_stats.breaker.state, State::Open);
    assert!(bad_stats.is_ejected());

    // Traffic stays away while the breaker is open...
    clock.advance(Duration::from_millis(4_900));
    for _ in 0..10 {
        assert_eq!(body(&client.get("/x").await.unwrap()), "good");
    }
    assert_eq!(bad.behaviour.hits(), ejected_after);

    // ...and once the wait is over and the endpoint healthy, a trial brings it back.
    bad.behaviour.set_status(200);
    clock.advance(Duration::from_millis(200));
    for _ in 0..30 {
        client.get("/x").await.unwrap();
    }
    assert!(bad.behaviour.hits() >= ejected_after + 5, "it serves again: {}", bad.behaviour.hits());
    let back = client.stats();
    assert_eq!(
        back.iter().find(|s| s.endpoint == bad.endpoint()).unwrap().breaker.state,
        State::Closed
    );
}

#[tokio::test(start_paused = true)]
async fn every_primary_down_the_standby_serves_and_traffic_returns_when_they_recover() {
    let clock = ManualClock::new();
    let p1 = server("p1", &clock, Duration::from_millis(1)).await;
    let p2 = server("p2", &clock, Duration::from_millis(1)).await;
    let standby = server("standby", &clock, Duration::from_millis(1)).await;
    let client = Client::builder()
        .endpoints([p1.endpoint(), p2.endpoint(), standby.endpoint().standby()])
        .breaker(quick_breaker())
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..20 {
        assert_ne!(body(&client.get("/x").await.unwrap()), "standby");
    }
    assert_eq!(standby.behaviour.hits(), 0, "primaries healthy: the standby idles");

    // Both primaries fail: once both are ejected, the standby answers everything.
    p1.behaviour.set_status(503);
    p2.behaviour.set_status(503);
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(body(&client.get("/x").await.unwrap()).to_owned());
    }
    let first_standby = answers.iter().position(|a| a == "standby").expect("the standby took over");
    assert!(first_standby <= 4, "failover after {first_standby} calls: {answers:?}");
    assert!(answers[first_standby..].iter().all(|a| a == "standby"), "{answers:?}");
    assert!(client.stats().iter().filter(|s| s.endpoint.priority() == 0).all(|s| s.is_ejected()));

    // They recover; after the open wait their trials pass and traffic goes back to them.
    p1.behaviour.set_status(200);
    p2.behaviour.set_status(200);
    clock.advance(Duration::from_secs(5));
    let mut answers = Vec::new();
    for _ in 0..20 {
        answers.push(body(&client.get("/x").await.unwrap()).to_owned());
    }
    assert!(answers[4..].iter().all(|a| a != "standby"), "traffic returned: {answers:?}");
    assert!(client.stats().iter().all(|s| s.breaker.state == State::Closed));
}

#[tokio::test(start_paused = true)]
async fn unhealthy_endpoints_get_nothing_and_a_watched_list_replaces_the_set() {
    let clock = ManualClock::new();
    let a = server("a", &clock, Duration::ZERO).await;
    let b = server("b", &clock, Duration::ZERO).await;
    let (tx, rx) = tokio::sync::watch::channel(vec![a.endpoint()]);
    let client = Client::builder().watch(rx).clock(clock.clone()).build().unwrap();
    assert_eq!(body(&client.get("/x").await.unwrap()), "a");

    tx.send(vec![a.endpoint(), b.endpoint()]).unwrap();
    assert!(client.set_healthy(&a.endpoint(), false));
    for _ in 0..5 {
        assert_eq!(body(&client.get("/x").await.unwrap()), "b");
    }
    // Every endpoint unhealthy: a typed error, and nothing sent.
    assert!(client.set_healthy(&b.endpoint(), false));
    assert!(matches!(client.get("/x").await, Err(Error::AllEjected { retry_after: None })));
    tx.send(vec![b.endpoint()]).unwrap();
    assert_eq!(body(&client.get("/x").await.unwrap()), "b", "the list's health wins");
    assert_eq!(client.stats().len(), 1);
    tx.send(Vec::new()).unwrap();
    assert!(matches!(client.get("/x").await, Err(Error::NoEndpoints)));
    assert_eq!(a.behaviour.hits() + b.behaviour.hits(), 7);
}

#[tokio::test(start_paused = true)]
async fn only_idempotent_calls_are_retried() {
    let clock = ManualClock::new();
    let one = server("one", &clock, Duration::ZERO).await;
    let two = server("two", &clock, Duration::ZERO).await;
    one.behaviour.set_status(503);
    two.behaviour.set_status(503);
    let client = Client::builder()
        .endpoints([one.endpoint(), two.endpoint()])
        .breaker(patient_breaker())
        .max_attempts(3)
        .backoff(Backoff::constant(Duration::from_millis(10)))
        .clock(clock.clone())
        .build()
        .unwrap();
    let hits = || one.behaviour.hits() + two.behaviour.hits();
    let call = |method: http::Method, key: Option<&str>| {
        let mut request = http::Request::builder().method(method).uri("/orders");
        if let Some(key) = key {
            request = request.header("idempotency-key", key);
        }
        client.send(request.body(Bytes::from_static(b"{}")).unwrap())
    };

    // A GET is retried, on the other endpoint first; the last 503 is the answer.
    let response = call(http::Method::GET, None).await.unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(hits(), 3);
    assert!(one.behaviour.hits() >= 1 && two.behaviour.hits() >= 1, "the retry went elsewhere");
    // A POST is not: it may have been applied.
    assert_eq!(call(http::Method::POST, None).await.unwrap().status(), 503);
    assert_eq!(hits(), 4);
    // A POST with an idempotency key is.
    assert_eq!(call(http::Method::POST, Some("order-1")).await.unwrap().status(), 503);
    assert_eq!(hits(), 7);
    // PUT and DELETE are idempotent.
    call(http::Method::PUT, None).await.unwrap();
    call(http::Method::DELETE, None).await.unwrap();
    assert_eq!(hits(), 13);
}

#[tokio::test(start_paused = true)]
async fn a_post_that_could_not_connect_is_retried_elsewhere() {
    let clock = ManualClock::new();
    let up = server("up", &clock, Duration::ZERO).await;
    // A port nothing listens on (bound, then closed).
    let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
    let down = Endpoint::new(&format!("http://{closed}")).unwrap();
    let client = Client::builder()
        .endpoints([down.clone(), up.endpoint()])
        .breaker(patient_breaker())
        .backoff(Backoff::Immediate)
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..10 {
        let response =
            client.send(http::Request::post("/orders").body(Bytes::new()).unwrap()).await.unwrap();
        assert_eq!(body(&response), "up");
    }
    assert_eq!(up.behaviour.hits(), 10, "each POST reached the live endpoint exactly once");
    let down_stats = client.stats().into_iter().find(|s| s.endpoint == down).unwrap();
    assert!(down_stats.failures >= 1, "refused connections were tried and counted");
}

#[tokio::test(start_paused = true)]
async fn retries_stop_when_the_budget_is_spent() {
    let clock = ManualClock::new();
    let one = server("one", &clock, Duration::ZERO).await;
    one.behaviour.set_status(503);
    // No deposits, a reserve of 1 retry per second over 10 s: 10 retries in all.
    let budget = Arc::new(
        RetryBudget::builder()
            .ratio(0.0)
            .min_per_sec(1)
            .window(Duration::from_secs(10))
            .build_with_clock(clock.clone())
            .unwrap(),
    );
    let client = Client::builder()
        .endpoints([one.endpoint()])
        .breaker(patient_breaker())
        .max_attempts(3)
        .backoff(Backoff::Immediate)
        .retry_budget(budget.clone())
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..10 {
        assert_eq!(client.get("/x").await.unwrap().status(), 503);
    }
    // Five calls got their two retries, then the budget was empty: 10 calls + 10 retries.
    assert_eq!(one.behaviour.hits(), 20);
    assert_eq!(budget.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn the_deadline_travels_in_a_header_and_ends_the_call() {
    let clock = ManualClock::new();
    let slow = server("slow", &clock, Duration::from_secs(5)).await;
    let client = Client::builder()
        .endpoints([slow.endpoint()])
        .timeout(Duration::from_secs(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    let start = clock.now();
    let outcome = client.get("/x").await;
    assert!(matches!(outcome, Err(Error::DeadlineExceeded)), "{outcome:?}");
    assert_eq!(ms_since(&clock, start), 2_000, "ended exactly at the deadline");
    let sent = slow.behaviour.last_timeout.lock().clone().expect("the header went out");
    let sent = levee_client::deadline::parse_timeout(sent.as_bytes()).unwrap();
    assert!(sent <= Duration::from_secs(2) && sent > Duration::from_millis(1_990), "{sent:?}");
    // A hung endpoint's timeout counts against it (the client's own deadline).
    assert_eq!(client.stats()[0].failures, 1);
}

#[tokio::test(start_paused = true)]
async fn each_hop_uses_the_smaller_of_its_timeout_and_what_its_caller_has_left() {
    let clock = ManualClock::new();
    // The backend records the deadline it was given and takes 50 ms.
    let backend = server("backend", &clock, Duration::from_millis(50)).await;
    let to_backend = Client::builder()
        .endpoints([backend.endpoint()])
        .timeout(Duration::from_secs(10))
        .clock(clock.clone())
        .build()
        .unwrap();
    // The front end spends 100 ms, then calls the backend with the client (no deadline
    // passed by hand: it comes from the request being served).
    let front_state = behaviour("front", &clock, Duration::ZERO);
    let front_clock = clock.clone();
    let front_app = axum::Router::new()
        .route(
            "/page",
            axum::routing::get(move || {
                let (client, clock) = (to_backend.clone(), front_clock.clone());
                async move {
                    clock.sleep(Duration::from_millis(100)).await;
                    let answer = client.get("/data").await;
                    match answer {
                        Ok(r) => (http::StatusCode::OK, body(&r).to_owned()),
                        Err(e) => (http::StatusCode::BAD_GATEWAY, e.to_string()),
                    }
                }
            }),
        )
        .layer(DeadlineLayer::new().clock(clock.clone()));
    let front = serve(front_app, front_state).await;
    let caller = Client::builder()
        .endpoints([front.endpoint()])
        .timeout(Duration::from_millis(500))
        .clock(clock.clone())
        .build()
        .unwrap();
    let response = caller.get("/page").await.unwrap();
    assert_eq!((response.status().as_u16(), body(&response)), (200, "backend"));
    let given = backend.behaviour.last_timeout.lock().clone().unwrap();
    let given = levee_client::deadline::parse_timeout(given.as_bytes()).unwrap();
    // 500 ms minus the front end's 100 ms: not the backend client's own 10 s.
    assert!(given <= Duration::from_millis(400) && given > Duration::from_millis(390), "{given:?}");
}

#[tokio::test(start_paused = true)]
async fn the_server_layer_refuses_expired_and_malformed_deadlines_and_stops_late_work() {
    let clock = ManualClock::new();
    let state = behaviour("srv", &clock, Duration::from_secs(3));
    let app = router(state.clone()).layer(DeadlineLayer::new().clock(clock.clone()));
    let srv = serve(app, state).await;
    let plain = Client::builder()
        .endpoints([srv.endpoint()])
        .no_timeout()
        .propagate_deadline(false)
        .max_attempts(1)
        .clock(clock.clone())
        .build()
        .unwrap();
    let with = |value: &'static str| {
        plain.send(
            http::Request::get("/x").header(TIMEOUT_HEADER, value).body(Bytes::new()).unwrap(),
        )
    };
    assert_eq!(with("0n").await.unwrap().status(), 504, "no time left: not even started");
    assert_eq!(with("soon").await.unwrap().status(), 400);
    assert_eq!(srv.behaviour.hits(), 0);
    let start = clock.now();
    assert_eq!(with("1S").await.unwrap().status(), 504);
    assert_eq!(ms_since(&clock, start), 1_000, "answered at the deadline");
    clock.advance(Duration::from_secs(10));
    tokio::task::yield_now().await;
    assert_eq!(srv.behaviour.hits(), 1);
    assert_eq!(
        srv.behaviour.completed.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "the handler was dropped at the deadline"
    );
}

#[tokio::test(start_paused = true)]
async fn a_hedged_read_wins_against_a_slow_endpoint() {
    let clock = ManualClock::new();
    let slow = server("slow", &clock, Duration::from_secs(1)).await;
    let fast = server("fast", &clock, Duration::from_millis(10)).await;
    let client = Client::builder()
        .endpoints([slow.endpoint(), fast.endpoint()])
        .hedge(Hedge::new(1, HedgeDelay::Fixed { delay: Duration::from_millis(50) }).unwrap())
        .clock(clock.clone())
        .build()
        .unwrap();
    for _ in 0..10 {
        let start = clock.now();
        let response = client.get("/item").await.unwrap();
        assert_eq!(body(&response), "fast");
        // Straight to the fast endpoint (10 ms), or to the slow one and hedged after 50 ms.
        assert!(ms_since(&clock, start) <= 60, "took {} ms", ms_since(&clock, start));
    }
    assert!(slow.behaviour.hits() >= 1, "the slow endpoint was raced at least once");
    // Writes are never hedged.
    let started = clock.now();
    let put = http::Request::put("/item").body(Bytes::new()).unwrap();
    client.set_healthy(&fast.endpoint(), false);
    assert_eq!(body(&client.send(put).await.unwrap()), "slow");
    assert_eq!(ms_since(&clock, started), 1_000);
}
