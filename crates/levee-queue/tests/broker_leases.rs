//! Leases at the edges of long uptime: a verb that arrives after its lease expired (or after
//! its delivery was settled through a receipt) gets the precise answer however many
//! deliveries have reused the broker's slots since, and a delivery handle never sees
//! `NotInFlight`.

use std::time::Duration;

use levee_core::ManualClock;
use levee_queue::broker::{
    BrokerError, Delivery, InProcessBroker, Message, Nack, Subscription, SubscriptionConfig,
};

const ACK_WAIT: Duration = Duration::from_secs(1);

fn setup() -> (ManualClock, InProcessBroker<u32, ManualClock>, Subscription<u32, ManualClock>) {
    let clock = ManualClock::new();
    let broker = InProcessBroker::builder().clock(clock.clone()).build();
    let config =
        SubscriptionConfig::new("s").ack_wait(ACK_WAIT).backoff(vec![]).max_lease_expiries(1);
    let sub = broker.subscribe("t", config).unwrap();
    (clock, broker, sub)
}

/// Lets `rounds` batches of `width` deliveries expire, so every freed slot is handed out (and
/// expires) over and over: far more expiries than any fixed-size memory of expired tokens.
fn churn(
    clock: &ManualClock,
    broker: &InProcessBroker<u32, ManualClock>,
    sub: &Subscription<u32, ManualClock>,
    rounds: usize,
    width: usize,
) {
    let consumer = sub.consumer();
    for _ in 0..rounds {
        for n in 0..width {
            broker.try_publish("t", Message::new(n as u32)).unwrap();
        }
        let batch = consumer.try_receive(width).unwrap();
        assert_eq!(batch.len(), width);
        clock.advance(ACK_WAIT * 2);
        sub.tick();
        // Late handles of the churn itself also learn that their lease expired.
        for d in batch {
            assert!(matches!(d.ack(), Err(BrokerError::LeaseExpired { .. })));
        }
    }
}

fn receive(sub: &Subscription<u32, ManualClock>, n: usize) -> Vec<Delivery<u32, ManualClock>> {
    sub.consumer().try_receive(n).unwrap()
}

#[test]
fn every_verb_on_an_expired_lease_says_lease_expired_after_thousands_of_expiries() {
    let (clock, broker, sub) = setup();
    for n in 0..4 {
        broker.try_publish("t", Message::new(n)).unwrap();
    }
    let late = receive(&sub, 4);
    clock.advance(ACK_WAIT * 2);
    sub.tick();
    churn(&clock, &broker, &sub, 600, 4);
    assert!(sub.stats().lease_expired > 2_000);

    let seqs: Vec<u64> = late.iter().map(Delivery::seq).collect();
    let answers = [
        late[0].ack(),
        late[1].nack(Nack::new().reason("late")),
        late[2].term("late"),
        late[3].in_progress().map(drop),
    ];
    for (seq, answer) in seqs.iter().zip(answers) {
        assert_eq!(answer, Err(BrokerError::LeaseExpired { seq: *seq }));
    }
    // A second in_progress is still precise: the handle has not settled anything.
    assert_eq!(late[3].in_progress(), Err(BrokerError::LeaseExpired { seq: seqs[3] }));
    drop(late);
    assert_eq!(sub.stats().in_flight, 0);
}

#[test]
fn a_delivery_settled_through_its_receipt_says_already_settled_after_slot_reuse() {
    let (clock, broker, sub) = setup();
    broker.try_publish("t", Message::new(7)).unwrap();
    let d = receive(&sub, 1).remove(0);
    sub.ack(d.receipt()).unwrap();
    churn(&clock, &broker, &sub, 300, 4);
    assert_eq!(d.ack(), Err(BrokerError::AlreadySettled { seq: d.seq() }));
    assert_eq!(d.in_progress(), Err(BrokerError::AlreadySettled { seq: d.seq() }));
    // And the receipt itself, presented again while its delivery is alive.
    assert_eq!(sub.ack(d.receipt()), Err(BrokerError::AlreadySettled { seq: d.seq() }));
    assert_eq!(sub.stats().acked, 1);
}

#[test]
fn a_receipt_whose_delivery_expired_says_lease_expired_after_slot_reuse() {
    let (clock, broker, sub) = setup();
    broker.try_publish("t", Message::new(7)).unwrap();
    let d = receive(&sub, 1).remove(0);
    let receipt = d.receipt();
    clock.advance(ACK_WAIT * 2);
    sub.tick();
    churn(&clock, &broker, &sub, 300, 4);
    assert_eq!(sub.nack(receipt, Nack::new()), Err(BrokerError::LeaseExpired { seq: d.seq() }));
    assert_eq!(d.ack(), Err(BrokerError::LeaseExpired { seq: d.seq() }));
}

/// A receipt outliving its delivery handle is the one case the broker cannot answer
/// precisely once the slot is reused: it says `NotInFlight`, as `Subscription::ack` documents.
#[test]
fn a_receipt_outliving_its_delivery_says_not_in_flight_once_the_slot_is_reused() {
    let (clock, broker, sub) = setup();
    broker.try_publish("t", Message::new(7)).unwrap();
    let d = receive(&sub, 1).remove(0);
    let (receipt, seq) = (d.receipt(), d.seq());
    d.ack().unwrap();
    drop(d);
    // Before reuse the freed slot still remembers.
    assert_eq!(sub.ack(receipt), Err(BrokerError::AlreadySettled { seq }));
    churn(&clock, &broker, &sub, 2, 4);
    assert_eq!(sub.ack(receipt), Err(BrokerError::NotInFlight { seq }));
}
