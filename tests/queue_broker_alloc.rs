//! Backs the broker's allocation claim: a plain message (no id, subject, key or header) costs
//! one allocation from publish to ack (its 48-byte stored form, payload inline), once the
//! subscription's buffers have grown to the working size.

use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
use levee_workspace::CountingAllocator;

#[global_allocator]
static ALLOC: CountingAllocator = CountingAllocator::new();

#[test]
fn one_allocation_per_message_from_publish_to_ack() {
    let broker = InProcessBroker::<u64>::new();
    let sub = broker.subscribe("t", SubscriptionConfig::new("s")).unwrap();
    let topic = broker.topic("t").unwrap();
    let consumer = sub.consumer();
    let mut batch = Vec::with_capacity(64);
    let mut round = |base: u64| {
        for i in 0..64 {
            topic.try_publish(Message::new(base + i)).unwrap();
        }
        consumer.try_receive_into(64, &mut batch).unwrap();
        consumer.ack_all(&mut batch).unwrap();
    };
    for r in 0..100 {
        round(r * 64); // warm-up: buffers reach their working size
    }
    let before = ALLOC.allocations();
    for r in 100..1100 {
        round(r * 64);
    }
    let per_message = (ALLOC.allocations() - before) as f64 / (1000.0 * 64.0);
    assert!(per_message <= 1.01, "{per_message:.3} allocations per message");
    assert_eq!(sub.stats().acked, 1100 * 64);
}
