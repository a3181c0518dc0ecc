//! What the NATS adapter builds on JetStream beyond the conformance suite: ordering keys
//! across competing consumers, dead-letter histories, undecodable payloads, names and
//! headers, delays. Against the shared server; each test has its own prefix.

mod support;

use std::collections::HashMap;
use std::time::Duration;

use levee_nats::NatsBroker;
use levee_queue::broker::{
    AttemptOutcome, Broker, BrokerDelivery, BrokerError, DeadLetterReason, Headers, Message, Nack,
    Overflow, Select, SubscriptionConfig,
};

const QUIET: Duration = Duration::from_millis(100);

async fn drain<T: serde::Serialize + serde::de::DeserializeOwned + Send + Sync + 'static>(
    b: &NatsBroker<T>,
    c: &levee_nats::NatsConsumer,
) -> Vec<levee_nats::NatsDelivery<T>> {
    let mut out = Vec::new();
    loop {
        let batch = b.receive(c, 100, QUIET).await.unwrap();
        if batch.is_empty() {
            return out;
        }
        out.extend(batch);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ordering_keys_hold_across_competing_consumers() {
    let Some(url) = support::url() else { return };
    let b = support::broker::<(String, u64)>(&url, "keys").await;
    let sub = b.subscribe("t", SubscriptionConfig::new("s")).await.unwrap();
    let (c1, c2) = (b.consumer(&sub).await.unwrap(), b.consumer(&sub).await.unwrap());
    for n in 0..4 {
        for key in ["a", "b", "c"] {
            b.publish("t", Message::new((key.to_owned(), n)).key(key)).await.unwrap();
        }
    }
    let mut seen: HashMap<String, Vec<u64>> = HashMap::new();
    for _round in 0..20 {
        let mut out = b.receive(&c1, 10, QUIET).await.unwrap();
        out.extend(b.receive(&c2, 10, QUIET).await.unwrap());
        if out.is_empty() {
            break;
        }
        let mut in_flight: Vec<&str> = out.iter().map(|d| d.key().unwrap()).collect();
        in_flight.sort_unstable();
        let before = in_flight.len();
        in_flight.dedup();
        assert_eq!(before, in_flight.len(), "two deliveries of one key in flight: {in_flight:?}");
        for d in &out {
            let (key, n) = d.payload().clone();
            assert_eq!(d.key(), Some(key.as_str()));
            seen.entry(key).or_default().push(n);
            b.ack(d).await.unwrap();
        }
    }
    for key in ["a", "b", "c"] {
        assert_eq!(seen[key], [0, 1, 2, 3], "key {key} in publish order, each once");
    }
    assert_eq!(sub.parked(), 0);
    support::remove_streams(&url, &b.config().prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_after_a_failure_and_a_crash_has_both_in_its_history() {
    let Some(url) = support::url() else { return };
    let b = support::broker::<u64>(&url, "history").await;
    let config = SubscriptionConfig::new("s")
        .ack_wait(Duration::from_millis(600))
        .backoff(Vec::new())
        .max_deliveries(5)
        .max_lease_expiries(1);
    let sub = b.subscribe("t", config).await.unwrap();
    let c = b.consumer(&sub).await.unwrap();
    b.publish("t", Message::new(1)).await.unwrap();
    let first = b.receive(&c, 1, QUIET).await.unwrap().remove(0);
    b.nack(&first, Nack::new().reason("provider down")).await.unwrap();
    let second = b.receive(&c, 1, Duration::from_secs(1)).await.unwrap().remove(0);
    assert_eq!((second.attempt(), second.failures()), (2, 1));
    // The consumer "crashes": the lease runs out; the redelivery is dead-lettered instead.
    support::pause(Duration::from_millis(900)).await;
    assert!(b.receive(&c, 1, QUIET).await.unwrap().is_empty());
    let dead = b.dead_letters(&sub).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].reason, DeadLetterReason::MaxLeaseExpiries { expiries: 1 });
    assert_eq!(dead[0].attempts, 2);
    let outcomes: Vec<_> = dead[0].history.iter().map(|r| (r.attempt, r.outcome.clone())).collect();
    assert_eq!(
        outcomes,
        [
            (
                1,
                AttemptOutcome::Nacked {
                    delay: Duration::ZERO,
                    reason: Some("provider down".into())
                }
            ),
            (2, AttemptOutcome::LeaseExpired)
        ]
    );
    assert!(matches!(b.ack(&second).await, Err(BrokerError::LeaseExpired { .. })));
    support::remove_streams(&url, &b.config().prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_undecodable_payload_is_dead_lettered_not_lost() {
    let Some(url) = support::url() else { return };
    let numbers = support::broker::<u64>(&url, "codec").await;
    let prefix = numbers.config().prefix.clone();
    let texts =
        NatsBroker::<String>::builder(url.as_str()).prefix(prefix.clone()).connect().await.unwrap();
    let sub = numbers.subscribe("t", SubscriptionConfig::new("s")).await.unwrap();
    let c = numbers.consumer(&sub).await.unwrap();
    texts.publish("t", Message::new("not a number".to_owned())).await.unwrap();
    assert!(numbers.receive(&c, 1, QUIET).await.unwrap().is_empty(), "never handed out");
    // Read with the payload type it was written in, the dead letter is all there.
    let same = texts.subscribe("t", SubscriptionConfig::new("s")).await.unwrap();
    let dead = texts.dead_letters(&same).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].payload(), "not a number");
    assert!(
        matches!(&dead[0].reason, DeadLetterReason::Terminated { reason } if reason.starts_with("undecodable payload")),
        "{:?}",
        dead[0].reason
    );
    support::remove_streams(&url, &prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_settings_are_typed_errors() {
    let Some(url) = support::url() else { return };
    let b = support::broker::<u64>(&url, "names").await;
    let missing = b.publish("nobody", Message::new(1)).await;
    assert!(matches!(missing, Err(BrokerError::NoSuchTopic { .. })), "{missing:?}");
    for topic in ["a.b", "a b", ""] {
        let r = b.subscribe(topic, SubscriptionConfig::new("s")).await;
        assert!(matches!(r, Err(BrokerError::Config(_))), "topic {topic:?}: {r:?}");
    }
    let r = b.subscribe("t", SubscriptionConfig::new("s.x")).await;
    assert!(matches!(r, Err(BrokerError::Config(_))), "{r:?}");
    let r =
        b.subscribe("t", SubscriptionConfig::new("s").overflow(Overflow::DeadLetterOldest)).await;
    assert!(matches!(r, Err(BrokerError::Config(_))), "{r:?}");

    b.subscribe("t", SubscriptionConfig::new("s")).await.unwrap();
    b.subscribe("t", SubscriptionConfig::new("s")).await.expect("the same settings bind again");
    let r = b.subscribe("t", SubscriptionConfig::new("s").max_deliveries(9)).await;
    assert!(matches!(r, Err(BrokerError::SubscriptionMismatch { .. })), "{r:?}");

    let r = b.publish("t", Message::new(1).header("Nats-Msg-Id", "x")).await;
    assert!(matches!(r, Err(BrokerError::Config(_))), "{r:?}");
    let r = b.publish("t", Message::new(1).subject("a b")).await;
    assert!(matches!(r, Err(BrokerError::InvalidSubject { .. })), "{r:?}");
    support::remove_streams(&url, &b.config().prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_survives_dead_letter_and_replay_whole() {
    let Some(url) = support::url() else { return };
    let b = support::broker::<u64>(&url, "whole").await;
    let sub = b.subscribe("t", SubscriptionConfig::new("s").filter("orders.>")).await.unwrap();
    let other = b.subscribe("t", SubscriptionConfig::new("other")).await.unwrap();
    let c = b.consumer(&sub).await.unwrap();
    let co = b.consumer(&other).await.unwrap();
    let headers: Headers = [("trace", "t-1"), ("tag", "x"), ("tag", "y")].into_iter().collect();
    let message = Message::new(42)
        .id("order-42")
        .subject("orders.placed.eu")
        .key("customer 7/ü")
        .headers(headers.clone());
    let published = b.publish("t", message).await.unwrap();
    let d = b.receive(&c, 1, QUIET).await.unwrap().remove(0);
    let check = |d: &levee_nats::NatsDelivery<u64>| {
        assert_eq!(d.seq(), published.seq());
        assert_eq!(d.message_id(), Some("order-42"));
        assert_eq!(d.subject(), "orders.placed.eu");
        assert_eq!(d.key(), Some("customer 7/ü"));
        assert_eq!(d.headers().get("trace"), Some("t-1"));
        let tags: Vec<_> =
            d.headers().iter().filter(|(n, _)| *n == "tag").map(|(_, v)| v).collect();
        assert_eq!(tags, ["x", "y"]);
    };
    check(&d);
    b.term(&d, "poison").await.unwrap();
    let dead = b.dead_letters(&sub).await.unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!((dead[0].seq(), dead[0].subject()), (published.seq(), "orders.placed.eu"));
    assert_eq!(dead[0].message.message_id(), Some("order-42"));
    assert_eq!(dead[0].message.key(), Some("customer 7/ü"));
    assert_eq!(b.replay(&sub, Select::All).await.unwrap(), 1);
    let again = b.receive(&c, 1, QUIET).await.unwrap().remove(0);
    check(&again);
    b.ack(&again).await.unwrap();
    // The other subscription got the message once, and not the replay.
    let theirs = drain(&b, &co).await;
    assert_eq!(theirs.len(), 1);
    b.ack(&theirs[0]).await.unwrap();
    assert!(b.dead_letters(&sub).await.unwrap().is_empty());
    support::remove_streams(&url, &b.config().prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_message_waits_in_the_server_and_keeps_its_id() {
    let Some(url) = support::url() else { return };
    let b = support::broker::<u64>(&url, "delay").await;
    let sub = b.subscribe("t", SubscriptionConfig::new("s")).await.unwrap();
    let c = b.consumer(&sub).await.unwrap();
    let sent = std::time::Instant::now();
    b.publish("t", Message::new(1).id("later").delay(Duration::from_millis(500))).await.unwrap();
    assert!(b.receive(&c, 1, Duration::from_millis(200)).await.unwrap().is_empty());
    let d = b.receive(&c, 1, Duration::from_secs(3)).await.unwrap().remove(0);
    assert!(sent.elapsed() >= Duration::from_millis(500), "delivered after {:?}", sent.elapsed());
    assert_eq!((d.message_id(), d.attempt()), (Some("later"), 1));
    b.ack(&d).await.unwrap();
    support::remove_streams(&url, &b.config().prefix).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_handlers_on_nats() {
    use levee_queue::broker::{Failure, ServeConfig, serve};

    let Some(url) = support::url() else { return };
    let b = support::broker::<u64>(&url, "serve").await;
    let sub = b.subscribe("t", SubscriptionConfig::new("s")).await.unwrap();
    let config = ServeConfig::new().consumers(2).receive_wait(Duration::from_millis(100));
    let handle = serve(&b, &sub, config, |d| async move {
        if d.payload() % 2 == 1 { Err(Failure::term("odd")) } else { Ok(()) }
    })
    .await
    .unwrap();
    for n in 0..10 {
        b.publish("t", Message::new(n)).await.unwrap();
    }
    let started = std::time::Instant::now();
    while handle.stats().handled + handle.stats().failed < 10 {
        assert!(started.elapsed() < Duration::from_secs(10), "{:?}", handle.stats());
        support::pause(Duration::from_millis(20)).await;
    }
    let stats = handle.shutdown().await;
    assert_eq!((stats.handled, stats.failed, stats.settle_errors), (5, 5, 0));
    let dead = b.dead_letters(&sub).await.unwrap();
    let mut odd: Vec<u64> = dead.iter().map(|l| *l.payload()).collect();
    odd.sort_unstable();
    assert_eq!(odd, [1, 3, 5, 7, 9]);
    assert!(dead.iter().all(|l| l.last_reason() == Some("odd")));
    support::remove_streams(&url, &b.config().prefix).await;
}

/// A replica's own subscription outlives the replica unless it expires: with Interest
/// retention it holds every message published to the topic, until the topic's backlog is full
/// and publishes are refused for everyone. With `idle_subscription_expiry` the server deletes
/// it once nobody has received from it for that long, and a live subscription is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_subscription_expires_and_stops_holding_the_topic() {
    const EXPIRY: Duration = Duration::from_secs(3);
    let Some(url) = support::url() else { return };
    let prefix = support::prefix("idle");
    let b = NatsBroker::<u64>::builder(&url)
        .prefix(prefix.clone())
        .storage(levee_nats::Storage::Memory)
        .request_timeout(Duration::from_secs(2))
        .full_wait(Duration::from_millis(50))
        .idle_subscription_expiry(EXPIRY)
        .connect()
        .await
        .unwrap();
    let gone = b.subscribe("t", SubscriptionConfig::new("gone").max_backlog(5)).await.unwrap();
    let created = std::time::Instant::now();
    let live = b.subscribe("t", SubscriptionConfig::new("live")).await.unwrap();
    let (gone, live) = (b.consumer(&gone).await.unwrap(), b.consumer(&live).await.unwrap());
    for n in 0..5 {
        b.publish("t", Message::new(n)).await.unwrap();
    }
    for d in drain(&b, &live).await {
        b.ack(&d).await.unwrap();
    }
    let full = b.publish("t", Message::new(5)).await;
    // (On a machine so loaded that this took longer than the expiry, `gone` may be gone.)
    if created.elapsed() < EXPIRY - Duration::from_millis(500) {
        assert!(matches!(full, Err(BrokerError::Full { .. })), "`gone` holds the topic: {full:?}");
    }

    // `live` keeps receiving; `gone` is silent. Its expiry frees the topic.
    let freed_after = loop {
        for d in b.receive(&live, 10, Duration::from_millis(200)).await.unwrap() {
            b.ack(&d).await.unwrap();
        }
        if b.publish("t", Message::new(6)).await.is_ok() {
            break created.elapsed();
        }
        assert!(created.elapsed() < EXPIRY * 4, "the idle subscription never expired");
    };
    assert!(freed_after >= EXPIRY, "freed before the expiry: {freed_after:?}");
    let got: Vec<u64> = drain(&b, &live).await.iter().map(|d| *d.payload()).collect();
    assert_eq!(got, [6], "the live subscription was kept and sees what follows");

    // `gone` receives again: it gets a new, empty subscription of the same name (the failed
    // pull that finds it deleted makes it again), and sees what is published after.
    let mut recreated = false;
    for _ in 0..3 {
        match b.receive(&gone, 10, Duration::from_millis(200)).await {
            Ok(out) => {
                assert!(out.is_empty(), "the expired backlog is gone: {out:?}");
                recreated = true;
                break;
            }
            Err(e) => assert!(!matches!(e, BrokerError::Closed), "{e:?}"),
        }
    }
    assert!(recreated, "receiving again made the subscription again");
    b.publish("t", Message::new(7)).await.unwrap();
    let got: Vec<u64> = drain(&b, &gone).await.iter().map(|d| *d.payload()).collect();
    assert_eq!(got, [7]);
    support::remove_streams(&url, &prefix).await;
}
