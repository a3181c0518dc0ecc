//! Behaviours of the in-process broker beyond the conformance suite: events, overflow
//! policies, waiting publishers and receivers, receipts, dead-letter bounds, latency, and a
//! multi-threaded run that must lose and duplicate nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use levee_core::{Clock, ManualClock};
use levee_queue::broker::{
    AttemptOutcome, BrokerError, BrokerEvent, DeadLetterReason, InProcessBroker, Message, Nack,
    Overflow, Publish, Select, SubscriptionConfig, TopicConfig,
};
use tokio::time::sleep;

type Broker = InProcessBroker<u32, ManualClock>;

fn broker() -> (ManualClock, Broker) {
    let clock = ManualClock::new();
    (clock.clone(), InProcessBroker::builder().clock(clock).build())
}

fn listening() -> (ManualClock, Broker, Arc<Mutex<Vec<BrokerEvent>>>) {
    let clock = ManualClock::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&events);
    let broker = InProcessBroker::builder()
        .clock(clock.clone())
        .listener(move |e: &BrokerEvent| sink.lock().unwrap().push(e.clone()))
        .build();
    (clock, broker, events)
}

fn no_backoff(name: &str) -> SubscriptionConfig {
    SubscriptionConfig::new(name).backoff(vec![])
}

#[test]
fn listeners_hear_every_notable_event() {
    let (clock, broker, events) = listening();
    let sub = broker
        .subscribe("t", no_backoff("s").max_deliveries(1).max_backlog(2).overflow(Overflow::Reject))
        .unwrap();
    let c = sub.consumer();
    broker.try_publish("t", Message::new(1).id("a")).unwrap();
    assert!(broker.try_publish("t", Message::new(1).id("a")).unwrap().is_duplicate());
    broker.try_publish("t", Message::new(2)).unwrap();
    assert!(broker.try_publish("t", Message::new(3)).is_err());
    let batch = c.try_receive(2).unwrap();
    batch[0].nack(Nack::new()).unwrap(); // max_deliveries 1: dead-lettered
    clock.advance(Duration::from_secs(31));
    sub.tick(); // lease of the second expires
    assert_eq!(sub.replay(Select::All), 1);
    assert_eq!(sub.purge(Select::All), 0);
    broker.close();

    let events = events.lock().unwrap();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| match e {
            BrokerEvent::Duplicate { .. } => "duplicate",
            BrokerEvent::Rejected { .. } => "rejected",
            BrokerEvent::Nacked { .. } => "nacked",
            BrokerEvent::DeadLettered { .. } => "dead_lettered",
            BrokerEvent::LeaseExpired { .. } => "lease_expired",
            BrokerEvent::Replayed { .. } => "replayed",
            BrokerEvent::Closed => "closed",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["duplicate", "rejected", "nacked", "dead_lettered", "lease_expired", "replayed", "closed"]
    );
    drop(batch);
}

#[test]
fn overflow_dead_letters_the_oldest_waiting_message() {
    let (_clock, broker) = broker();
    let sub = broker
        .subscribe("t", no_backoff("s").max_backlog(2).overflow(Overflow::DeadLetterOldest))
        .unwrap();
    let c = sub.consumer();
    for n in 1..=3 {
        broker.try_publish("t", Message::new(n)).unwrap();
    }
    let dead = sub.dead_letters();
    assert_eq!(dead.len(), 1);
    assert_eq!((*dead[0].payload(), &dead[0].reason), (1, &DeadLetterReason::Overflow));
    // With everything in flight there is nothing to move out: the publish is refused.
    let batch = c.try_receive(2).unwrap();
    let err = broker.try_publish("t", Message::new(4)).unwrap_err();
    assert!(matches!(err.error, BrokerError::Full { capacity: 2, .. }), "{err:?}");
    assert_eq!(*err.message.payload(), 4, "the message comes back");
    let stats = sub.stats();
    assert_eq!((stats.overflowed, stats.rejected, stats.in_flight), (1, 1, 2));
    drop(batch);
}

#[test]
fn fan_out_is_all_or_nothing() {
    let (_clock, broker) = broker();
    let roomy = broker.subscribe("t", no_backoff("roomy")).unwrap();
    let tight = broker
        .subscribe("t", no_backoff("tight").max_backlog(1).overflow(Overflow::Reject))
        .unwrap();
    broker.try_publish("t", Message::new(1)).unwrap();
    assert!(broker.try_publish("t", Message::new(2)).is_err());
    assert_eq!(
        roomy.stats().published,
        1,
        "the roomy subscription did not get the refused message"
    );
    assert_eq!(tight.stats().published, 1);
    assert_eq!(broker.topic("t").unwrap().stats().published, 1);
}

#[test]
fn receipts_settle_through_their_own_subscription_only() {
    let (_clock, broker) = broker();
    let a = broker.subscribe("t", no_backoff("a")).unwrap();
    let b = broker.subscribe("t", no_backoff("b")).unwrap();
    broker.try_publish("t", Message::new(1)).unwrap();
    let d = a.consumer().try_receive(1).unwrap().remove(0);
    let receipt = d.receipt();
    assert!(matches!(b.ack(receipt), Err(BrokerError::WrongSubscription { .. })));
    a.ack(receipt).unwrap();
    assert!(matches!(a.ack(receipt), Err(BrokerError::AlreadySettled { .. })));
    assert!(matches!(d.ack(), Err(BrokerError::AlreadySettled { .. })));
    drop(d); // settled elsewhere: dropping does nothing
    assert_eq!(a.stats().acked, 1);
    assert_eq!(a.stats().nacked, 0);
}

#[test]
fn lease_expiry_and_handler_failure_are_counted_apart() {
    let (clock, broker) = broker();
    let sub = broker
        .subscribe(
            "t",
            no_backoff("s")
                .ack_wait(Duration::from_secs(1))
                .max_deliveries(2)
                .max_lease_expiries(2),
        )
        .unwrap();
    let c = sub.consumer();
    broker.try_publish("t", Message::new(1)).unwrap();
    let crashed = c.try_receive(1).unwrap().remove(0);
    clock.advance(Duration::from_secs(2));
    let d = c.try_receive(1).unwrap().remove(0);
    assert_eq!(d.attempt(), 2);
    let late = crashed.ack();
    assert!(matches!(late, Err(BrokerError::LeaseExpired { seq: 1 })), "{late:?}");
    d.nack(Nack::new()).unwrap();
    let d = c.try_receive(1).unwrap().remove(0);
    d.nack(Nack::new()).unwrap(); // second handler failure: dead
    let stats = sub.stats();
    assert_eq!((stats.lease_expired, stats.nacked, stats.dead_lettered), (1, 2, 1));
    let dead = &sub.dead_letters()[0];
    assert_eq!(dead.reason, DeadLetterReason::MaxDeliveries { failures: 2 });
    let outcomes: Vec<_> = dead.history.iter().map(|h| h.outcome.clone()).collect();
    assert_eq!(
        outcomes,
        [
            AttemptOutcome::LeaseExpired,
            AttemptOutcome::Nacked { delay: Duration::ZERO, reason: None },
            AttemptOutcome::Nacked { delay: Duration::ZERO, reason: None },
        ]
    );
    assert_eq!(dead.attempts, 3);
    assert_eq!(dead.subject(), "t");
}

#[test]
fn backoff_schedule_spaces_redeliveries() {
    let (clock, broker) = broker();
    let schedule = vec![Duration::from_millis(100), Duration::from_millis(400)];
    let sub = broker
        .subscribe("t", SubscriptionConfig::new("s").backoff(schedule).max_deliveries(10))
        .unwrap();
    let c = sub.consumer();
    broker.try_publish("t", Message::new(1)).unwrap();
    for wait_ms in [100, 400, 400] {
        let d = c.try_receive(1).unwrap().remove(0);
        drop(d); // dropped without a verb: backoff applies like a nack
        clock.advance(Duration::from_millis(wait_ms - 1));
        assert!(c.try_receive(1).unwrap().is_empty(), "too early after {} ms", wait_ms - 1);
        clock.advance(Duration::from_millis(1));
    }
    let d = c.try_receive(1).unwrap().remove(0);
    assert_eq!(d.attempt(), 4);
    assert_eq!(sub.stats().dropped, 3);
}

#[test]
fn in_progress_moves_the_deadline() {
    let (clock, broker) = broker();
    let sub = broker.subscribe("t", no_backoff("s").ack_wait(Duration::from_secs(10))).unwrap();
    let c = sub.consumer();
    broker.try_publish("t", Message::new(1)).unwrap();
    let d = c.try_receive(1).unwrap().remove(0);
    assert_eq!(d.deadline(), Some(10_000_000_000));
    clock.advance(Duration::from_secs(8));
    assert_eq!(d.in_progress().unwrap(), 18_000_000_000);
    assert_eq!(d.deadline(), Some(18_000_000_000));
    clock.advance(Duration::from_secs(9));
    assert!(c.try_receive(1).unwrap().is_empty(), "extended lease still held");
    d.ack().unwrap();
    assert_eq!(d.deadline(), None);
    assert!(matches!(d.in_progress(), Err(BrokerError::AlreadySettled { .. })));
    assert_eq!(sub.stats().extended, 1);
}

#[test]
fn not_before_is_an_absolute_time_never_early_and_less_than_a_tick_late() {
    let (clock, broker) = broker();
    let sub = broker.subscribe("t", no_backoff("s")).unwrap();
    let c = sub.consumer();
    broker.try_publish("t", Message::new(1).not_before(5_000_000)).unwrap();
    broker.try_publish("t", Message::new(2).not_before(7_500_000)).unwrap();
    assert_eq!(sub.stats().scheduled, 2);
    clock.set(4_999_999);
    assert!(c.try_receive(1).unwrap().is_empty());
    clock.set(5_000_000);
    let first = c.try_receive(1).unwrap().remove(0);
    assert_eq!(first.message().ready_at(), 5_000_000);
    first.ack().unwrap();
    // Timers tick every millisecond: a deadline between ticks fires at the next one.
    clock.set(7_499_999);
    assert!(c.try_receive(1).unwrap().is_empty(), "never early");
    clock.set(7_500_000);
    let late = c.try_receive(1).unwrap();
    clock.set(8_000_000);
    let on_tick = c.try_receive(1).unwrap();
    assert_eq!(late.len() + on_tick.len(), 1, "due by the next tick");
}

#[test]
fn dead_letter_queue_is_bounded_and_counts_what_it_drops() {
    let (_clock, broker) = broker();
    let sub = broker.subscribe("t", no_backoff("s").max_dead_letters(2)).unwrap();
    let c = sub.consumer();
    for n in 1..=3 {
        broker.try_publish("t", Message::new(n)).unwrap();
    }
    for d in c.try_receive(3).unwrap() {
        d.term("bad").unwrap();
    }
    let dead: Vec<u32> = sub.dead_letters().iter().map(|d| *d.payload()).collect();
    assert_eq!(dead, [2, 3]);
    assert_eq!(sub.stats().dead_letters_dropped, 1);
}

#[test]
fn batch_ack_settles_each_delivery_once() {
    let (_clock, broker) = broker();
    let sub = broker.subscribe("t", no_backoff("s")).unwrap();
    let other = broker.subscribe("t", no_backoff("other")).unwrap();
    let c = sub.consumer();
    for n in 1..=3 {
        broker.try_publish("t", Message::new(n)).unwrap();
    }
    let mut batch = c.try_receive(3).unwrap();
    batch[0].ack().unwrap();
    batch.extend(other.consumer().try_receive(1).unwrap());
    let err = c.ack_all(&mut batch).unwrap_err();
    assert_eq!(err.acked, 3, "two of this subscription and one of the other");
    assert_eq!(err.failed.len(), 1);
    assert!(matches!(err.failed[0].1, BrokerError::AlreadySettled { seq: 1 }));
    assert!(batch.is_empty());
    assert_eq!((sub.stats().acked, other.stats().acked), (3, 1));
}

#[test]
fn bad_input_is_a_typed_error() {
    let (_clock, broker) = broker();
    assert!(matches!(
        broker.try_publish("nope", Message::new(1)).unwrap_err().error,
        BrokerError::NoSuchTopic { .. }
    ));
    broker.subscribe("t", no_backoff("s")).unwrap();
    let bad_subject = broker.try_publish("t", Message::new(1).subject("a..b")).unwrap_err();
    assert!(matches!(bad_subject.error, BrokerError::InvalidSubject { .. }));
    assert!(matches!(
        broker.subscribe("t", no_backoff("s").max_deliveries(9)),
        Err(BrokerError::SubscriptionMismatch { .. })
    ));
    assert_eq!(broker.subscribe("t", no_backoff("s")).unwrap().name(), "s", "same settings bind");
    assert!(broker.create_topic("u", TopicConfig::new().dedup_capacity(0)).is_err());
    assert!(broker.create_topic("", TopicConfig::new()).is_err());
    let c = broker.subscription("t", "s").unwrap().consumer();
    assert!(matches!(c.try_receive(0), Err(BrokerError::Config(_))));
    assert!(broker.unsubscribe("t", "s"));
    assert!(!broker.unsubscribe("t", "s"));
    let routed = broker.try_publish("t", Message::new(1)).unwrap();
    assert_eq!(routed, Publish::Published { seq: 1, subscriptions: 0 });
    assert_eq!(broker.topic("t").unwrap().stats().unrouted, 1);
}

#[test]
fn latency_is_measured_from_ready_to_ack() {
    let (clock, broker) = broker();
    let sub = broker.subscribe("t", no_backoff("s")).unwrap();
    let c = sub.consumer();
    broker.try_publish("t", Message::new(1)).unwrap();
    broker.try_publish("t", Message::new(2).delay(Duration::from_millis(50))).unwrap();
    clock.advance(Duration::from_millis(60));
    let mut batch = c.try_receive(2).unwrap();
    clock.advance(Duration::from_millis(5));
    c.ack_all(&mut batch).unwrap();
    let l = sub.latency();
    assert_eq!(l.count, 2);
    // hdrhistogram keeps 3 significant digits.
    let near = |d: Duration, ms: f64| (d.as_secs_f64() * 1e3 - ms).abs() < ms * 1e-3;
    assert!(near(l.min, 15.0), "delayed message counted from the end of its delay: {l:?}");
    assert!(near(l.max, 65.0), "{l:?}");
}

#[tokio::test(start_paused = true)]
async fn a_full_backlog_makes_the_publisher_wait() {
    let (_clock, broker) = broker();
    let sub = broker.subscribe("t", no_backoff("s").max_backlog(1)).unwrap();
    let c = sub.consumer();
    broker.publish("t", Message::new(1)).await.unwrap();
    let publisher = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.publish("t", Message::new(2)).await.map(|p| p.seq()) })
    };
    tokio::task::yield_now().await;
    assert!(!publisher.is_finished(), "publisher waits for room");
    assert!(matches!(
        broker.try_publish("t", Message::new(3)).unwrap_err().error,
        BrokerError::Full { .. }
    ));
    c.try_receive(1).unwrap()[0].ack().unwrap();
    assert_eq!(publisher.await.unwrap().unwrap(), 2);
    assert_eq!(*c.try_receive(1).unwrap()[0].payload(), 2);
}

#[tokio::test(start_paused = true)]
async fn close_wakes_waiting_receivers_and_publishers() {
    let (_clock, broker) = broker();
    let sub = broker.subscribe("t", no_backoff("s").max_backlog(1)).unwrap();
    broker.try_publish("t", Message::new(1)).unwrap();
    let c = sub.consumer();
    let held = c.try_receive(1).unwrap();
    let receiver = tokio::spawn(async move { c.receive(1).await.map(|v| v.len()) });
    let publisher = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.publish("t", Message::new(2)).await.map_err(|e| e.error) })
    };
    tokio::task::yield_now().await;
    assert!(!receiver.is_finished() && !publisher.is_finished());
    broker.close();
    assert_eq!(receiver.await.unwrap(), Err(BrokerError::Closed));
    assert_eq!(publisher.await.unwrap(), Err(BrokerError::Closed));
    held[0].ack().unwrap(); // work already out still settles
}

#[tokio::test(start_paused = true)]
async fn a_waiting_receiver_gets_a_delayed_message_when_time_comes() {
    let (clock, broker) = broker();
    let sub = broker.subscribe("t", no_backoff("s")).unwrap();
    let c = sub.consumer();
    broker.try_publish("t", Message::new(7).delay(Duration::from_secs(3))).unwrap();
    let receiver = tokio::spawn(async move { c.receive(1).await.map(|v| *v[0].payload()) });
    tokio::task::yield_now().await;
    assert!(!receiver.is_finished());
    clock.advance(Duration::from_secs(3));
    broker.tick();
    assert_eq!(receiver.await.unwrap(), Ok(7));
}

#[tokio::test(start_paused = true)]
async fn receive_timeout_returns_empty() {
    let (_clock, broker) = broker();
    let c = broker.subscribe("t", no_backoff("s")).unwrap().consumer();
    assert!(c.receive_timeout(4, Duration::from_millis(50)).await.unwrap().is_empty());
}

/// Four publishers and three consumers on real threads that ack, nack or drop at random: in
/// the end every message is acked exactly once.
#[test]
fn concurrent_publishers_and_consumers_lose_and_duplicate_nothing() {
    const PER_PUBLISHER: u32 = 5_000;
    let broker: InProcessBroker<u32> = InProcessBroker::new();
    let sub = broker
        .subscribe(
            "t",
            no_backoff("s").max_deliveries(1_000).max_backlog(256).max_in_flight_per_consumer(16),
        )
        .unwrap();
    let acked = Mutex::new(HashMap::<u32, u32>::new());
    let total = 4 * PER_PUBLISHER;
    std::thread::scope(|s| {
        for p in 0..4 {
            let topic = broker.topic("t").unwrap();
            s.spawn(move || {
                for i in 0..PER_PUBLISHER {
                    let mut msg = Message::new(p * PER_PUBLISHER + i);
                    if i % 7 == 0 {
                        msg = msg.key(format!("k{}", i % 5));
                    }
                    loop {
                        match topic.try_publish(msg) {
                            Ok(_) => break,
                            Err(e) => {
                                msg = e.message;
                                std::thread::yield_now();
                            }
                        }
                    }
                }
            });
        }
        for _ in 0..3 {
            let (c, acked) = (sub.consumer(), &acked);
            s.spawn(move || {
                let mut roll = 0u32;
                loop {
                    let batch = c.try_receive(8).unwrap();
                    if batch.is_empty() {
                        if acked.lock().unwrap().len() as u32 == total {
                            return;
                        }
                        std::thread::yield_now();
                    }
                    for d in batch {
                        roll = roll.wrapping_mul(1_103_515_245).wrapping_add(12_345);
                        match roll >> 28 {
                            0 => d.nack(Nack::new()).unwrap(),
                            1 => drop(d),
                            _ => {
                                let n = *d.payload();
                                d.ack().unwrap();
                                *acked.lock().unwrap().entry(n).or_default() += 1;
                            }
                        }
                    }
                }
            });
        }
    });
    let acked = acked.into_inner().unwrap();
    assert_eq!(acked.len() as u32, total, "every message acked");
    assert!(acked.values().all(|&n| n == 1), "none acked twice");
    let stats = sub.stats();
    assert_eq!(stats.acked, u64::from(total));
    assert_eq!(stats.held(), 0);
    assert_eq!(stats.dead_lettered, 0);
}

#[test]
fn clock_is_the_injected_one() {
    let (clock, broker) = broker();
    clock.advance(Duration::from_secs(1));
    assert_eq!(broker.clock().now(), 1_000_000_000);
}

#[tokio::test(start_paused = true)]
async fn the_driver_expires_leases_nobody_receives_and_stops_on_close() {
    let (clock, broker) = broker();
    let sub = broker
        .subscribe("t", no_backoff("s").ack_wait(Duration::from_secs(1)).max_lease_expiries(1))
        .unwrap();
    broker.try_publish("t", Message::new(1)).unwrap();
    let crashed = sub.consumer().try_receive(1).unwrap();
    let driver = {
        let broker = broker.clone();
        tokio::spawn(async move { broker.drive(Duration::from_millis(100)).await })
    };
    clock.advance(Duration::from_secs(2));
    sleep(Duration::from_millis(250)).await;
    let stats = sub.stats();
    assert_eq!((stats.lease_expired, stats.dead_letters, stats.in_flight), (1, 1, 0));
    assert_eq!(broker.subscriptions().len(), 1);
    broker.close();
    driver.await.unwrap();
    drop(crashed);
}

/// Publishers racing consumers into a small backlog that dead-letters its oldest message:
/// every accepted message is acked or dead-lettered (reason Overflow), and the bound holds.
#[test]
fn concurrent_overflow_to_dead_letters_conserves_messages() {
    const PER_PUBLISHER: u32 = 3_000;
    let broker: InProcessBroker<u32> = InProcessBroker::new();
    let sub = broker
        .subscribe(
            "t",
            no_backoff("s")
                .max_backlog(8)
                .overflow(Overflow::DeadLetterOldest)
                .max_dead_letters(1_000_000),
        )
        .unwrap();
    let done = std::sync::atomic::AtomicBool::new(false);
    let acked = std::sync::atomic::AtomicU64::new(0);
    let accepted = std::sync::atomic::AtomicU64::new(0);
    std::thread::scope(|s| {
        let publishers: Vec<_> = (0..2)
            .map(|p| {
                let (topic, accepted) = (broker.topic("t").unwrap(), &accepted);
                s.spawn(move || {
                    for i in 0..PER_PUBLISHER {
                        if topic.try_publish(Message::new(p * PER_PUBLISHER + i)).is_ok() {
                            accepted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                })
            })
            .collect();
        let (c, done_ref, acked_ref) = (sub.consumer(), &done, &acked);
        let consumer = s.spawn(move || {
            let mut batch = Vec::new();
            loop {
                let finished = done_ref.load(std::sync::atomic::Ordering::Acquire);
                c.try_receive_into(4, &mut batch).unwrap();
                if batch.is_empty() && finished {
                    return;
                }
                let n = c.ack_all(&mut batch).unwrap();
                acked_ref.fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                std::thread::yield_now();
            }
        });
        for p in publishers {
            p.join().unwrap();
        }
        done.store(true, std::sync::atomic::Ordering::Release);
        consumer.join().unwrap();
    });
    let stats = sub.stats();
    let accepted = accepted.into_inner();
    assert_eq!(stats.published, accepted);
    assert_eq!(stats.acked, acked.into_inner());
    assert_eq!(stats.acked + stats.dead_lettered, accepted, "{stats:?}");
    assert_eq!(stats.overflowed, stats.dead_lettered);
    assert_eq!(stats.held(), 0);
}
