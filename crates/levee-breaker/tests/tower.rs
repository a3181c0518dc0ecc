//! The tower layer: shared breaker, classification, refusal without reaching the service,
//! cancelled response futures.
#![cfg(not(loom))]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::executor::block_on;
use levee_breaker::{CallError, CircuitBreaker, CircuitBreakerLayer, Outcome, State};
use levee_core::ManualClock;
use tower::{Layer, Service, ServiceExt, service_fn};

fn breaker(clock: &ManualClock) -> Arc<CircuitBreaker<ManualClock>> {
    Arc::new(
        CircuitBreaker::builder()
            .count_window(4)
            .minimum_calls(2)
            .open_wait(Duration::from_secs(5))
            .half_open_calls(1)
            .clock(clock.clone())
            .build()
            .unwrap(),
    )
}

#[test]
fn clones_share_the_breaker_and_refusals_never_reach_the_service() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let reached = Arc::new(AtomicUsize::new(0));
    let counter = reached.clone();
    let inner = service_fn(move |fail: bool| {
        counter.fetch_add(1, Ordering::Relaxed);
        async move { if fail { Err("down") } else { Ok("up") } }
    });
    let svc = CircuitBreakerLayer::new(b.clone()).layer(inner);
    let other = svc.clone();
    assert_eq!(block_on(svc.clone().oneshot(false)), Ok("up"));
    assert_eq!(block_on(other.clone().oneshot(false)), Ok("up"));
    assert_eq!(block_on(other.clone().oneshot(true)), Err(CallError::Inner("down")));
    assert_eq!(b.state(), State::Closed);
    assert_eq!(block_on(svc.clone().oneshot(true)), Err(CallError::Inner("down")));
    assert_eq!(b.state(), State::Open, "two clones fed one breaker: 2 failures of 4");
    let refused = block_on(other.oneshot(false)).unwrap_err();
    assert_eq!(refused.as_open().unwrap().retry_after(), Some(Duration::from_secs(5)));
    assert_eq!(reached.load(Ordering::Relaxed), 4, "the refused call never reached the service");
}

#[test]
fn the_classifier_decides() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    let svc = CircuitBreakerLayer::new(b.clone())
        .classifier(|r: &Result<u16, ()>| match r {
            Ok(code) if *code >= 500 => Outcome::Failure,
            Ok(code) if *code >= 400 => Outcome::Ignored,
            Ok(_) => Outcome::Success,
            Err(()) => Outcome::Failure,
        })
        .layer(service_fn(|code: u16| async move { Ok::<_, ()>(code) }));
    for code in [404, 404, 200, 404] {
        assert_eq!(block_on(svc.clone().oneshot(code)), Ok(code));
    }
    assert_eq!(b.metrics().calls, 1, "404s are ignored");
    block_on(svc.clone().oneshot(503)).unwrap();
    assert_eq!(
        b.state(),
        State::Open,
        "a 503 answer is a failure even though the call returned Ok"
    );
}

#[test]
fn a_dropped_response_future_hands_its_trial_back() {
    let clock = ManualClock::new();
    let b = breaker(&clock);
    b.trip();
    clock.advance(Duration::from_secs(5));
    let mut svc = CircuitBreakerLayer::new(b.clone()).layer(service_fn(|hang: bool| async move {
        if hang {
            futures::future::pending::<()>().await;
        }
        Ok::<_, ()>(())
    }));
    let mut hanging = Box::pin(svc.call(true));
    assert!(hanging.as_mut().now_or_never().is_none());
    assert_eq!(b.metrics().trials_in_flight, 1);
    drop(hanging);
    assert_eq!(b.metrics().trials_in_flight, 0);
    block_on(svc.ready()).unwrap();
    assert_eq!(block_on(svc.call(false)), Ok(()));
    assert_eq!(b.state(), State::Closed);
}
