//! `serve`: handler outcomes settle deliveries, panics are contained, shutdown drains with a
//! deadline, consumers compete within their concurrency bounds, heartbeats keep leases.
//! Every test runs on paused tokio time (waits are virtual) and a manual broker clock.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_core::ManualClock;
use levee_queue::broker::{
    AttemptOutcome, BrokerError, DeadLetterReason, Failure, InProcessBroker, Message, ServeConfig,
    Subscription, SubscriptionConfig, serve,
};
use tokio::time::{Instant, sleep};

type Broker = InProcessBroker<u32, ManualClock>;

fn setup(config: SubscriptionConfig) -> (ManualClock, Broker, Subscription<u32, ManualClock>) {
    let clock = ManualClock::new();
    let broker = InProcessBroker::builder().clock(clock.clone()).build();
    let sub = broker.subscribe("t", config).unwrap();
    (clock, broker, sub)
}

fn publish(broker: &Broker, payloads: impl IntoIterator<Item = u32>) {
    for n in payloads {
        broker.try_publish("t", Message::new(n)).unwrap();
    }
}

/// Lets every runnable task run (paused time only moves when all are idle).
async fn settle_down() {
    sleep(Duration::from_millis(1)).await;
}

#[tokio::test(start_paused = true)]
async fn outcomes_settle_deliveries_and_failures_keep_their_reason() {
    let config = SubscriptionConfig::new("s").max_deliveries(1).backoff(vec![]);
    let (_clock, broker, sub) = setup(config);
    let handle = serve(&broker, &sub, ServeConfig::new(), |d| async move {
        match *d.payload() {
            1 => Ok(()),
            2 => Err(Failure::from("provider timed out")),
            _ => Err(Failure::term("poison")),
        }
    })
    .await
    .unwrap();
    publish(&broker, [1, 2, 3]);
    settle_down().await;
    let stats = handle.shutdown().await;
    assert_eq!((stats.received, stats.handled, stats.failed), (3, 1, 2));
    assert_eq!(
        (stats.panicked, stats.cancelled, stats.settle_errors, stats.in_flight),
        (0, 0, 0, 0)
    );

    let s = sub.stats();
    assert_eq!((s.acked, s.nacked, s.terminated, s.in_flight), (1, 1, 1, 0));
    let dead = sub.dead_letters();
    let by_payload: HashMap<u32, _> = dead.iter().map(|l| (*l.payload(), l)).collect();
    let timed_out = by_payload[&2];
    assert_eq!(timed_out.reason, DeadLetterReason::MaxDeliveries { failures: 1 });
    assert_eq!(timed_out.last_reason(), Some("provider timed out"));
    let poison = by_payload[&3];
    assert_eq!(poison.reason, DeadLetterReason::Terminated { reason: "poison".into() });
}

/// A plain `Display` error type works as the handler's error, and `retry_after` sets the
/// redelivery delay on the broker's clock.
#[tokio::test(start_paused = true)]
async fn display_errors_retry_on_the_backoff_and_retry_after_sets_the_delay() {
    let config = SubscriptionConfig::new("s").backoff(vec![Duration::from_secs(60)]);
    let (clock, broker, sub) = setup(config);
    let attempts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&attempts);
    let handle = serve(&broker, &sub, ServeConfig::new(), move |d| {
        let seen = Arc::clone(&seen);
        async move {
            seen.fetch_add(1, Ordering::SeqCst);
            match (*d.payload(), d.attempt()) {
                (1, 1) => Err(Failure::retry_after(Duration::from_secs(2), "busy")),
                (2, 1) => Err(std::io::Error::other("reset").into()),
                _ => Ok(()),
            }
        }
    })
    .await
    .unwrap();
    publish(&broker, [1, 2]);
    settle_down().await;
    assert_eq!(sub.stats().scheduled, 2);
    clock.advance(Duration::from_secs(2));
    sub.tick();
    settle_down().await;
    // Message 1 came back after its 2 s; message 2 waits for the 60 s backoff.
    assert_eq!((sub.stats().acked, sub.stats().scheduled), (1, 1));
    clock.advance(Duration::from_secs(58));
    sub.tick();
    settle_down().await;
    assert_eq!(sub.stats().acked, 2);
    let stats = handle.shutdown().await;
    assert_eq!((stats.handled, stats.failed), (2, 2));
    assert_eq!(attempts.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_is_nacked_and_the_consumer_keeps_running() {
    let config = SubscriptionConfig::new("s").max_deliveries(1).backoff(vec![]);
    let (_clock, broker, sub) = setup(config);
    let handle = serve(&broker, &sub, ServeConfig::new().concurrency(1), |d| {
        // The handler panics in the call for 1 and inside the future for 2.
        assert_ne!(*d.payload(), 1, "bad message");
        async move {
            if *d.payload() == 2 {
                panic!("index out of bounds");
            }
            Ok::<(), Failure>(())
        }
    })
    .await
    .unwrap();
    publish(&broker, [1, 2, 3, 4]);
    settle_down().await;
    let stats = handle.shutdown().await;
    assert_eq!((stats.received, stats.panicked, stats.handled), (4, 2, 2));
    let reasons: Vec<_> = sub
        .dead_letters()
        .iter()
        .map(|l| (*l.payload(), l.last_reason().map(str::to_owned)))
        .collect();
    assert_eq!(reasons.len(), 2);
    assert!(reasons.contains(&(2, Some("panicked: index out of bounds".into()))), "{reasons:?}");
    assert!(reasons.iter().any(|(n, r)| *n == 1 && r.as_deref().unwrap().starts_with("panicked")));
    assert_eq!(sub.stats().acked, 2);
}

/// Shutdown stops receiving at once and waits for running handlers within the deadline.
#[tokio::test(start_paused = true)]
async fn shutdown_drains_running_handlers_and_receives_nothing_more() {
    let (_clock, broker, sub) = setup(SubscriptionConfig::new("s"));
    let config = ServeConfig::new().concurrency(2).drain_timeout(Duration::from_secs(30));
    let handle = serve(&broker, &sub, config, |_d| async {
        sleep(Duration::from_secs(10)).await;
        Ok::<(), Failure>(())
    })
    .await
    .unwrap();
    publish(&broker, [1, 2, 3]);
    settle_down().await;
    assert_eq!(handle.stats().in_flight, 2);
    let start = Instant::now();
    let stats = handle.shutdown().await;
    assert_eq!(start.elapsed(), Duration::from_secs(10) - Duration::from_millis(1));
    assert_eq!((stats.received, stats.handled, stats.cancelled), (2, 2, 0));
    let s = sub.stats();
    assert_eq!((s.acked, s.depth, s.in_flight), (2, 1, 0), "the third was never received");
}

/// Handlers still running at the deadline are cancelled and their messages come straight
/// back, with a reason saying why.
#[tokio::test(start_paused = true)]
async fn shutdown_cancels_handlers_that_outlive_the_deadline() {
    let (_clock, broker, sub) = setup(SubscriptionConfig::new("s").backoff(vec![]));
    let config = ServeConfig::new().drain_timeout(Duration::from_secs(1));
    let handle = serve(&broker, &sub, config, |_d| async {
        sleep(Duration::from_secs(3600)).await;
        Ok::<(), Failure>(())
    })
    .await
    .unwrap();
    publish(&broker, [7]);
    settle_down().await;
    let start = Instant::now();
    let stats = handle.shutdown().await;
    assert_eq!(start.elapsed(), Duration::from_secs(1));
    assert_eq!((stats.received, stats.cancelled, stats.handled, stats.in_flight), (1, 1, 0, 0));
    let s = sub.stats();
    assert_eq!((s.nacked, s.depth, s.in_flight), (1, 1, 0), "ready for redelivery at once");
    // The reason is in the attempt history of the redelivery.
    let d = sub.consumer().try_receive(1).unwrap().remove(0);
    assert_eq!(d.attempt(), 2);
    d.term("inspect").unwrap();
    let history = &sub.dead_letters()[0].history;
    let AttemptOutcome::Nacked { delay, reason: Some(reason) } = &history[0].outcome else {
        panic!("{history:?}");
    };
    assert!(delay.is_zero() && reason.starts_with("cancelled"), "{reason} after {delay:?}");
}

/// N consumers with concurrency c run at most N * c handlers at once, and together handle
/// every message exactly once.
#[tokio::test(start_paused = true)]
async fn consumers_compete_within_their_concurrency() {
    let (_clock, broker, sub) = setup(SubscriptionConfig::new("s"));
    let running = Arc::new(AtomicUsize::new(0));
    let most = Arc::new(AtomicUsize::new(0));
    let handled = Arc::new(Mutex::new(Vec::new()));
    let (r, m, h) = (Arc::clone(&running), Arc::clone(&most), Arc::clone(&handled));
    let config = ServeConfig::new().consumers(3).concurrency(2);
    let handle = serve(&broker, &sub, config, move |d| {
        let (running, most, handled) = (Arc::clone(&r), Arc::clone(&m), Arc::clone(&h));
        async move {
            let now = running.fetch_add(1, Ordering::SeqCst) + 1;
            most.fetch_max(now, Ordering::SeqCst);
            sleep(Duration::from_secs(1)).await;
            handled.lock().unwrap().push(*d.payload());
            running.fetch_sub(1, Ordering::SeqCst);
            Ok::<(), Failure>(())
        }
    })
    .await
    .unwrap();
    publish(&broker, 0..60);
    let start = Instant::now();
    while sub.stats().acked < 60 {
        sleep(Duration::from_millis(100)).await;
    }
    // Six at a time: ten rounds of one second.
    assert!(start.elapsed() <= Duration::from_secs(11), "{:?}", start.elapsed());
    let stats = handle.shutdown().await;
    assert_eq!(most.load(Ordering::SeqCst), 6);
    let mut got = handled.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (0..60).collect::<Vec<_>>());
    assert_eq!((stats.received, stats.handled), (60, 60));
    assert_eq!(sub.stats().redelivered, 0);
}

/// Heartbeats extend the lease of a handler that runs longer than the ack wait; without
/// them its lease expires and the late ack is refused (and counted).
#[tokio::test(start_paused = true)]
async fn heartbeats_keep_a_long_handler_s_lease() {
    for heartbeat in [Some(Duration::from_millis(500)), None] {
        let config =
            SubscriptionConfig::new("s").ack_wait(Duration::from_secs(2)).max_lease_expiries(1);
        let (clock, broker, sub) = setup(config);
        let mut serve_config = ServeConfig::new();
        if let Some(every) = heartbeat {
            serve_config = serve_config.heartbeat(every);
        }
        let (c, s) = (clock.clone(), sub.clone());
        let handle = serve(&broker, &sub, serve_config, move |_d| {
            let (clock, sub) = (c.clone(), s.clone());
            async move {
                // Five seconds of work, the broker's clock moving with tokio's.
                for _ in 0..5 {
                    sleep(Duration::from_secs(1)).await;
                    clock.advance(Duration::from_secs(1));
                    sub.tick();
                }
                Ok::<(), Failure>(())
            }
        })
        .await
        .unwrap();
        publish(&broker, [1]);
        sleep(Duration::from_secs(6)).await;
        let stats = handle.shutdown().await;
        let s = sub.stats();
        if heartbeat.is_some() {
            assert_eq!((s.acked, s.lease_expired, stats.settle_errors), (1, 0, 0));
            assert!(s.extended >= 8, "{s:?}");
        } else {
            // Dead-lettered at its first expiry; the handler's late ack is refused.
            assert_eq!(
                (s.acked, s.lease_expired, s.dead_lettered, stats.settle_errors),
                (0, 1, 1, 1)
            );
        }
        assert_eq!(stats.handled, 1);
    }
}

#[tokio::test(start_paused = true)]
async fn consumers_stop_when_the_broker_closes() {
    let (_clock, broker, sub) = setup(SubscriptionConfig::new("s"));
    let handle =
        serve(&broker, &sub, ServeConfig::new().consumers(2), |_d| async { Ok::<(), Failure>(()) })
            .await
            .unwrap();
    publish(&broker, [1]);
    settle_down().await;
    assert!(!handle.is_finished());
    broker.close();
    settle_down().await;
    assert!(handle.is_finished());
    assert_eq!(handle.shutdown().await.handled, 1);
}

#[tokio::test(start_paused = true)]
async fn bad_settings_and_a_closed_broker_are_errors() {
    let (_clock, broker, sub) = setup(SubscriptionConfig::new("s"));
    let handler = |_d| async { Ok::<(), Failure>(()) };
    let zero = serve(&broker, &sub, ServeConfig::new().concurrency(0), handler).await;
    assert!(matches!(zero, Err(BrokerError::Config(e)) if e.setting == "concurrency"));
    broker.close();
    let closed = serve(&broker, &sub, ServeConfig::new(), handler).await;
    assert!(matches!(closed, Err(BrokerError::Closed)));
}

/// Dropping the handle stops receiving; handlers already running still settle.
#[tokio::test(start_paused = true)]
async fn dropping_the_handle_stops_receiving() {
    let (_clock, broker, sub) = setup(SubscriptionConfig::new("s"));
    let handle = serve(&broker, &sub, ServeConfig::new().concurrency(1), |_d| async {
        sleep(Duration::from_secs(1)).await;
        Ok::<(), Failure>(())
    })
    .await
    .unwrap();
    publish(&broker, [1, 2]);
    settle_down().await;
    drop(handle);
    sleep(Duration::from_secs(5)).await;
    let s = sub.stats();
    assert_eq!((s.acked, s.depth, s.in_flight), (1, 1, 0));
}
