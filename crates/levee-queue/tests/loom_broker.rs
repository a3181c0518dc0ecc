//! Concurrency checks of the broker's settle paths. Plain `cargo test` runs each body once;
//! under `RUSTFLAGS="--cfg loom" cargo test --release` loom explores every interleaving of the
//! subscription lock.

use std::time::Duration;

use levee_core::sync::{model, thread};
use levee_core::{Clock, ManualClock};
use levee_queue::broker::{BrokerError, InProcessBroker, Message, SubscriptionConfig};

fn setup() -> (ManualClock, InProcessBroker<u32, ManualClock>) {
    let clock = ManualClock::new();
    let broker = InProcessBroker::builder().clock(clock.clone()).build();
    (clock, broker)
}

fn config() -> SubscriptionConfig {
    SubscriptionConfig::new("s").ack_wait(Duration::from_secs(1)).backoff(vec![])
}

/// An ack racing the lease expiry: exactly one of them wins, and the message is either acked
/// or back in the queue, never both and never neither.
#[test]
fn ack_racing_lease_expiry_settles_once() {
    model(|| {
        let (clock, broker) = setup();
        let sub = broker.subscribe("t", config()).unwrap();
        let consumer = sub.consumer();
        broker.try_publish("t", Message::new(1)).unwrap();
        let d = consumer.try_receive(1).unwrap().remove(0);
        clock.advance(Duration::from_secs(2));
        let ticker = {
            let sub = sub.clone();
            thread::spawn(move || sub.tick())
        };
        let acked = d.ack();
        ticker.join().unwrap();
        let stats = sub.stats();
        match acked {
            Ok(()) => assert_eq!((stats.acked, stats.lease_expired, stats.depth), (1, 0, 0)),
            Err(BrokerError::LeaseExpired { .. }) => {
                assert_eq!((stats.acked, stats.lease_expired, stats.depth), (0, 1, 1));
            }
            Err(e) => panic!("unexpected {e:?}"),
        }
        assert_eq!(stats.in_flight, 0);
    });
}

/// Two consumers receive while a publisher publishes one message: exactly one consumer gets
/// it, at most once.
#[test]
fn competing_receivers_never_share_a_message() {
    model(|| {
        let (_clock, broker) = setup();
        let sub = broker.subscribe("t", config()).unwrap();
        let receivers: Vec<_> = (0..2)
            .map(|_| {
                let consumer = sub.consumer();
                thread::spawn(move || {
                    let got = consumer.try_receive(1).unwrap();
                    let n = got.len();
                    for d in got {
                        d.ack().unwrap();
                    }
                    n
                })
            })
            .collect();
        broker.try_publish("t", Message::new(1)).unwrap();
        let received: usize = receivers.into_iter().map(|r| r.join().unwrap()).sum();
        let stats = sub.stats();
        assert!(received <= 1);
        assert_eq!(stats.acked as usize, received);
        assert_eq!(stats.depth, 1 - received, "not received means still queued");
    });
}

/// A delivery dropped on one thread while another acks a second one: both settle, the
/// dropped one comes back.
#[test]
fn drop_and_ack_on_two_threads() {
    model(|| {
        let (_clock, broker) = setup();
        let sub = broker.subscribe("t", config()).unwrap();
        let consumer = sub.consumer();
        broker.try_publish("t", Message::new(1)).unwrap();
        broker.try_publish("t", Message::new(2)).unwrap();
        let mut batch = consumer.try_receive(2).unwrap();
        let second = batch.pop().unwrap();
        let first = batch.pop().unwrap();
        let dropper = thread::spawn(move || drop(first));
        second.ack().unwrap();
        dropper.join().unwrap();
        let stats = sub.stats();
        assert_eq!((stats.acked, stats.nacked, stats.depth, stats.in_flight), (1, 1, 1, 0));
    });
}

/// Two consumers receive while time moves between their clock readings: whichever gets the
/// lock first, every lease whose deadline has passed is expired by the next tick, and none
/// before its deadline.
#[test]
fn leases_expire_on_time_when_receives_race() {
    model(|| {
        let (clock, broker) = setup();
        let sub = broker.subscribe("t", config()).unwrap();
        broker.try_publish("t", Message::new(1)).unwrap();
        broker.try_publish("t", Message::new(2)).unwrap();
        let late = {
            let (consumer, clock) = (sub.consumer(), clock.clone());
            thread::spawn(move || {
                clock.advance(Duration::from_millis(500));
                consumer.try_receive(1).unwrap()
            })
        };
        let mut deliveries = sub.consumer().try_receive(1).unwrap();
        deliveries.extend(late.join().unwrap());
        assert_eq!(deliveries.len(), 2);
        // One second after the start: the lease granted at 0 (if any) is due, the one granted
        // at 500 ms is not.
        clock.advance(Duration::from_secs(1) - Duration::from_millis(500));
        sub.tick();
        for d in &deliveries {
            let due = d.initial_deadline() <= clock.now();
            assert_eq!(d.deadline().is_none(), due, "deadline {}", d.initial_deadline());
        }
    });
}
