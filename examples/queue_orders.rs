//! Order -> payment -> notification on the in-process broker, with retries, a dead-letter
//! queue an operator inspects and replays, and the numbers the broker keeps.
//!
//! `cargo run --release --example queue_orders`
//!
//! The payment provider fails the first attempts of some orders and declines one card for
//! good: failed payments are retried with backoff, the declined one is terminated into the
//! dead-letter queue, and once "fixed" the operator replays it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use levee_queue::broker::{
    DeadLetterReason, InProcessBroker, Message, Nack, Select, SubscriptionConfig,
};

#[derive(Debug, Clone)]
enum Event {
    OrderPlaced { order: u32, cents: u64 },
    PaymentSucceeded { order: u32 },
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_time()
        .build()
        .expect("tokio runtime");
    rt.block_on(run());
}

async fn run() {
    let broker = InProcessBroker::<Event>::new();
    let retries = SubscriptionConfig::new("payment")
        .filter("orders.placed")
        .ack_wait(Duration::from_secs(5))
        .max_deliveries(4)
        .backoff(vec![Duration::from_millis(10), Duration::from_millis(40)]);
    let payments = broker.subscribe("orders", retries).expect("valid settings");
    let notifications = broker
        .subscribe("payments", SubscriptionConfig::new("notification"))
        .expect("valid settings");
    let card_fixed = Arc::new(AtomicBool::new(false));

    // Payment service: two competing workers.
    for worker in 0..2 {
        let (consumer, broker, card_fixed) =
            (payments.consumer(), broker.clone(), card_fixed.clone());
        tokio::spawn(async move {
            while let Ok(batch) = consumer.receive(8).await {
                for d in batch {
                    let Event::OrderPlaced { order, cents } = *d.payload() else {
                        d.term("not an order").expect("owned");
                        continue;
                    };
                    if order == 13 && !card_fixed.load(Ordering::Relaxed) {
                        d.term("card declined").expect("owned");
                    } else if order % 4 == 0 && d.attempt() < 3 {
                        // The provider timed out: retry on the backoff schedule, saying why.
                        d.nack(Nack::new().reason("provider timed out")).expect("owned");
                    } else {
                        let paid = Message::new(Event::PaymentSucceeded { order })
                            .id(format!("paid-{order}"))
                            .subject("payments.succeeded");
                        broker.publish("payments", paid).await.expect("open");
                        println!(
                            "worker {worker}: order {order} paid {cents} cents (attempt {})",
                            d.attempt()
                        );
                        d.ack().expect("owned");
                    }
                }
            }
        });
    }

    // Notification service.
    let notifier = notifications.consumer();
    let notified = tokio::spawn(async move {
        let mut emailed = Vec::new();
        while emailed.len() < 20 {
            let Ok(mut batch) = notifier.receive(16).await else { break };
            for d in &batch {
                if let Event::PaymentSucceeded { order } = d.payload() {
                    emailed.push(*order);
                }
            }
            notifier.ack_all(&mut batch).expect("owned");
        }
        emailed.sort_unstable();
        emailed
    });

    // Order service: 20 orders, each published once even if the client retries.
    for order in 1..=20 {
        for _client_retry in 0..2 {
            let placed =
                Message::new(Event::OrderPlaced { order, cents: 1_000 + u64::from(order) })
                    .id(format!("order-{order}"))
                    .subject("orders.placed")
                    .key(format!("customer-{}", order % 3));
            broker.publish("orders", placed).await.expect("open");
        }
    }

    // The operator watches the dead-letter queue, fixes the card and replays.
    let dead = loop {
        let dead = payments.dead_letters();
        if !dead.is_empty() {
            break dead;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    for letter in &dead {
        let why = match &letter.reason {
            DeadLetterReason::Terminated { reason } => reason.as_str(),
            _ => "retries exhausted",
        };
        println!(
            "operator: order in DLQ (seq {}): {why}, {} attempt(s)",
            letter.seq(),
            letter.attempts
        );
    }
    card_fixed.store(true, Ordering::Relaxed);
    println!("operator: replayed {}", payments.replay(Select::All));

    let emailed = notified.await.expect("notifier");
    let stats = payments.stats();
    let latency = payments.latency();
    println!(
        "\npayment: published {} (duplicates dropped: {}), delivered {}, redelivered {}, acked {}, nacked {}, dead-lettered {}, replayed {}",
        stats.published,
        broker.topic("orders").expect("exists").stats().duplicates,
        stats.delivered,
        stats.redelivered,
        stats.acked,
        stats.nacked,
        stats.dead_lettered,
        stats.replayed
    );
    println!("payment latency ready -> ack: p50 {:?}, p99 {:?}", latency.p50, latency.p99);
    println!("notification: emailed orders {emailed:?}");
    broker.close();
}
