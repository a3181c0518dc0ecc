//! Event delivery between the services, on levee-queue's in-process broker.
//!
//! Topics `orders` and `payments` fan out to one subscription per service (`payment`,
//! `orders`, `notification-orders`, `notification-payments`); each subscription is a work
//! queue that `consumer_concurrency` consumers drain. A handler's `Ok` acks the delivery; an
//! `Err` nacks it, and the broker redelivers it on the backoff schedule until `max_deliveries`
//! failures put it in the subscription's dead-letter queue, which the admin API lists (with
//! the last handler error, remembered here) and replays (with a fresh failure budget). Messages carry the order id as their ordering key: one
//! event per order in flight per subscription, in publish order.
//!
//! The broker takes its time from the shop clock, so tests that move a manual clock move
//! backoffs and ack deadlines with it.
//!
//! Events live in memory. What makes that safe is the store: every event is re-derived from
//! the orders table after a restart (unpaid orders get their payment re-driven and their timer
//! re-armed), so a lost event delays an order but never loses it.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use levee::queue::broker::{
    DeadLetterReason, InProcessBroker, Message, Nack, Select, Subscription, SubscriptionConfig,
};
use parking_lot::Mutex;
use serde::Serialize;

use crate::clock::ShopClock;
use crate::config::QueueConfig;
use crate::domain::{ShopEvent, TOPIC_ORDERS, TOPIC_PAYMENTS};

/// What a handler returns: `Err` asks for a redelivery.
pub type HandlerResult = BoxFuture<'static, Result<(), String>>;

/// Handles the events of one subscription.
pub trait Handler: Send + Sync + 'static {
    /// Handles one event; `Err` means "try again later".
    fn handle(&self, event: ShopEvent) -> HandlerResult;
}

impl<F> Handler for F
where
    F: Fn(ShopEvent) -> HandlerResult + Send + Sync + 'static,
{
    fn handle(&self, event: ShopEvent) -> HandlerResult {
        self(event)
    }
}

/// An event that failed every delivery, as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// The message's sequence number, for replay.
    pub id: u64,
    /// The subscription that failed it.
    pub subscription: String,
    /// The event.
    pub event: ShopEvent,
    /// Deliveries made.
    pub deliveries: u32,
    /// Why it was given up (the last handler error).
    pub last_error: String,
}

/// Counters of one subscription.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionStats {
    /// Name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// Events waiting, including those waiting for a redelivery.
    pub depth: u64,
    /// Events being handled.
    pub in_flight: u64,
    /// Events handled successfully.
    pub acked: u64,
    /// Redeliveries.
    pub redelivered: u64,
    /// Events sent to the dead-letter queue.
    pub dead_lettered: u64,
}

/// Counters of the bus.
#[derive(Debug, Clone, Serialize)]
pub struct BusStats {
    /// Events published.
    pub published: u64,
    /// Events that could not be published (broker closed or full).
    pub publish_failures: u64,
    /// Dead letters held.
    pub dlq_depth: u64,
    /// Per subscription.
    pub subscriptions: Vec<SubscriptionStats>,
}

/// The event bus.
#[derive(Clone)]
pub struct EventBus {
    broker: InProcessBroker<ShopEvent, ShopClock>,
    config: QueueConfig,
    publish_failures: Arc<levee::core::Counter>,
    last_errors: Arc<Mutex<HashMap<(String, u64), String>>>,
}

/// Handler errors remembered for the dead-letter listing at most (older ones are forgotten).
const MAX_REMEMBERED_ERRORS: usize = 10_000;

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("stats", &self.stats()).finish()
    }
}

/// The redelivery delays: `base`, doubling, capped at `max`; empty (at once) when `base` is 0.
fn backoff_schedule(config: &QueueConfig) -> Vec<Duration> {
    let max = config.redelivery_backoff_max_ms.max(config.redelivery_backoff_ms);
    let mut schedule = Vec::new();
    let mut ms = config.redelivery_backoff_ms;
    while ms > 0 && schedule.len() < 16 {
        schedule.push(Duration::from_millis(ms.min(max)));
        if ms >= max {
            break;
        }
        ms = ms.saturating_mul(2);
    }
    schedule
}

impl EventBus {
    /// A bus with `config`'s delivery settings on `clock`. Spawns the broker's driver (which
    /// keeps timers, leases and statistics current while nobody receives), so it needs a
    /// tokio runtime.
    #[must_use]
    pub fn new(config: QueueConfig, clock: ShopClock) -> Self {
        let broker = InProcessBroker::builder().clock(clock).build();
        tokio::spawn({
            let broker = broker.clone();
            async move { broker.drive(Duration::from_millis(100)).await }
        });
        Self {
            broker,
            config,
            publish_failures: Arc::new(levee::core::Counter::new()),
            last_errors: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Delivers every later event of `topic` to `handler` as subscription `name`.
    ///
    /// # Errors
    /// The broker refused the subscription (closed, or invalid settings).
    pub fn subscribe(
        &self,
        topic: &'static str,
        name: &str,
        handler: impl Handler,
    ) -> Result<(), levee::queue::broker::BrokerError> {
        let subscription = self.broker.subscribe(
            topic,
            SubscriptionConfig::new(name)
                .max_deliveries(self.config.max_deliveries)
                .backoff(backoff_schedule(&self.config))
                .ack_wait(Duration::from_secs(self.config.ack_wait_secs)),
        )?;
        let handler = Arc::new(handler);
        for _ in 0..self.config.consumer_concurrency {
            let consumer = subscription.consumer();
            let handler = Arc::clone(&handler);
            let last_errors = Arc::clone(&self.last_errors);
            tokio::spawn(async move {
                // Ends when the broker closes.
                while let Ok(batch) = consumer.receive(1).await {
                    for delivery in batch {
                        let outcome = AssertUnwindSafe(handler.handle(delivery.payload().clone()))
                            .catch_unwind()
                            .await
                            .unwrap_or_else(|_| Err("handler panicked".to_owned()));
                        let key = (delivery.subscription().to_owned(), delivery.seq());
                        // A settle error means the lease ran out meanwhile and the message
                        // went back to the queue: the redelivery will settle it.
                        let _ = match outcome {
                            Ok(()) => {
                                last_errors.lock().remove(&key);
                                delivery.ack()
                            }
                            Err(error) => {
                                tracing::debug!(subscription = %key.0, attempt = delivery.attempt(), %error, "handler failed; nack");
                                let mut errors = last_errors.lock();
                                if errors.len() >= MAX_REMEMBERED_ERRORS {
                                    errors.clear();
                                }
                                errors.insert(key, error);
                                drop(errors);
                                delivery.nack(Nack::new())
                            }
                        };
                    }
                }
            });
        }
        Ok(())
    }

    /// Publishes `event` on its topic, keyed by its order.
    pub fn publish(&self, event: ShopEvent) {
        let topic = event.topic();
        let key = event.order_id().to_string();
        if let Err(e) = self.broker.try_publish(topic, Message::new(event).key(key)) {
            self.publish_failures.incr();
            tracing::error!(topic, error = %e, "event not published; it is re-driven from the store at the next start");
        }
    }

    fn subscriptions(&self) -> Vec<Subscription<ShopEvent, ShopClock>> {
        self.broker.subscriptions()
    }

    /// The dead letters of every subscription.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        let errors = self.last_errors.lock();
        self.subscriptions()
            .iter()
            .flat_map(|sub| {
                sub.dead_letters().into_iter().map(|d| DeadLetter {
                    id: d.seq(),
                    subscription: sub.name().to_owned(),
                    event: d.payload().clone(),
                    deliveries: d.attempts,
                    last_error: match &d.reason {
                        DeadLetterReason::Terminated { reason } => reason.clone(),
                        other => errors
                            .get(&(sub.name().to_owned(), d.seq()))
                            .cloned()
                            .unwrap_or_else(|| format!("{other:?}")),
                    },
                })
            })
            .collect()
    }

    /// Sends dead letters back to their subscription with a fresh delivery budget: those in
    /// `ids`, or all when `ids` is `None`. Returns how many were replayed.
    pub fn replay(&self, ids: Option<&[u64]>) -> usize {
        self.subscriptions()
            .iter()
            .map(|sub| {
                sub.replay(match ids {
                    Some(ids) => Select::Seqs(ids.to_vec()),
                    None => Select::All,
                })
            })
            .sum()
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> BusStats {
        let subs = self.subscriptions();
        let mut dlq_depth = 0;
        let subscriptions = subs
            .iter()
            .map(|sub| {
                let s = sub.stats();
                dlq_depth += s.dead_letters as u64;
                SubscriptionStats {
                    name: sub.name().to_owned(),
                    topic: sub.topic().to_owned(),
                    depth: (s.depth + s.scheduled) as u64,
                    in_flight: s.in_flight as u64,
                    acked: s.acked,
                    redelivered: s.redelivered,
                    dead_lettered: s.dead_lettered,
                }
            })
            .collect();
        BusStats {
            published: [TOPIC_ORDERS, TOPIC_PAYMENTS]
                .iter()
                .filter_map(|t| self.broker.topic(t))
                .map(|t| t.stats().published)
                .sum(),
            publish_failures: self.publish_failures.get(),
            dlq_depth,
            subscriptions,
        }
    }

    fn busy(&self) -> bool {
        self.subscriptions().iter().any(|sub| {
            let s = sub.stats();
            s.depth + s.scheduled + s.in_flight > 0
        })
    }

    /// Waits until no event is waiting or being handled, or `grace` has passed, then closes
    /// the broker (the consumers stop). Returns whether the bus drained.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        let mut drained = !self.busy();
        while !drained && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drained = !self.busy();
        }
        self.broker.close();
        drained
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee::core::ManualClock;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let c = QueueConfig {
            redelivery_backoff_ms: 500,
            redelivery_backoff_max_ms: 3000,
            ..QueueConfig::default()
        };
        let ms: Vec<u64> = backoff_schedule(&c).iter().map(|d| d.as_millis() as u64).collect();
        assert_eq!(ms, [500, 1000, 2000, 3000]);
        let c = QueueConfig { redelivery_backoff_ms: 0, ..QueueConfig::default() };
        assert!(backoff_schedule(&c).is_empty());
    }

    #[tokio::test]
    async fn failing_events_retry_then_dead_letter_then_replay() {
        let bus = EventBus::new(
            QueueConfig {
                max_deliveries: 3,
                redelivery_backoff_ms: 0,
                consumer_concurrency: 2,
                ..QueueConfig::default()
            },
            ShopClock::manual(ManualClock::new()),
        );
        let calls = Arc::new(AtomicU32::new(0));
        let healthy = Arc::new(AtomicBool::new(false));
        let (c, h) = (Arc::clone(&calls), Arc::clone(&healthy));
        bus.subscribe(TOPIC_ORDERS, "payment", move |_e: ShopEvent| -> HandlerResult {
            c.fetch_add(1, Ordering::SeqCst);
            let ok = h.load(Ordering::SeqCst);
            Box::pin(async move { if ok { Ok(()) } else { Err("down".to_owned()) } })
        })
        .unwrap();
        bus.publish(ShopEvent::OrderPlaced { order_id: 7 });
        bus.publish(ShopEvent::PaymentSucceeded { order_id: 7, charge_id: "c".into() });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while bus.dead_letters().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no dead letter");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let dead = bus.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].deliveries, dead[0].last_error.as_str()), (3, "down"));
        // A replay gives a fresh failure budget: three more deliveries, not one.
        assert_eq!(bus.replay(None), 1);
        while calls.load(Ordering::SeqCst) < 6 || bus.dead_letters().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "replayed letter not retried");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        healthy.store(true, Ordering::SeqCst);
        assert_eq!(bus.replay(None), 1);
        while bus.stats().subscriptions[0].acked == 0 {
            assert!(tokio::time::Instant::now() < deadline, "replay not handled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(bus.dead_letters().is_empty());
        assert!(bus.drain(Duration::from_secs(1)).await);
    }
}
