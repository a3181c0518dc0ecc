//! Event delivery between the services, on levee-queue's in-process broker and its `serve`.
//!
//! Topics `orders` and `payments` fan out to one subscription per service (`payment`,
//! `orders`, `notification-orders`, `notification-payments`); each subscription is a work
//! queue whose consumers levee-queue's [`serve`] runs with the service's handler. A handler's
//! `Ok` acks the delivery; an `Err` nacks it with the error as the reason, and the broker
//! redelivers it on the subscription's backoff until `max_deliveries` failures put it in the
//! subscription's dead-letter queue, which the admin API lists (with the last reason) and
//! replays (with a fresh failure budget); a handler that panics is nacked too. Messages carry
//! the order id as their ordering key: one event per order in flight per subscription, in
//! publish order.
//!
//! The broker takes its time from the shop clock, so tests that move a manual clock move
//! backoffs and ack deadlines with it.
//!
//! Events live in memory. What makes that safe is the store: every event is re-derived from
//! the orders table after a restart (unpaid orders get their payment re-driven and their timer
//! re-armed), so a lost event delays an order but never loses it.

mod dead_letter;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use levee::queue::broker::{InProcessBroker, Message, Select, ServeHandle, Subscription, serve};
use parking_lot::Mutex;

use crate::clock::ShopClock;
use crate::config::QueueConfig;
use crate::domain::{ShopEvent, TOPIC_ORDERS, TOPIC_PAYMENTS};

pub use dead_letter::DeadLetter;
pub use stats::{BusStats, SubscriptionStats};

/// The event bus.
#[derive(Clone)]
pub struct EventBus {
    broker: InProcessBroker<ShopEvent, ShopClock>,
    config: QueueConfig,
    publish_failures: Arc<levee::core::Counter>,
    /// Each subscription's running consumers, by subscription name.
    running: Arc<Mutex<Vec<(String, ServeHandle)>>>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("stats", &self.stats()).finish()
    }
}

impl EventBus {
    /// A bus with `config`'s delivery settings on `clock`. Spawns the broker's driver (which
    /// keeps timers, leases and statistics current while nobody receives), so it needs a
    /// tokio runtime.
    #[must_use]
    pub fn new(config: &QueueConfig, clock: ShopClock) -> Self {
        let broker = InProcessBroker::builder().clock(clock).build();
        tokio::spawn({
            let broker = broker.clone();
            async move { broker.drive(Duration::from_millis(100)).await }
        });
        Self {
            broker,
            config: config.clone(),
            publish_failures: Arc::new(levee::core::Counter::new()),
            running: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Delivers every later event of `topic` to `handler` as subscription `name`, through
    /// `serve` (`queue.serve` says how many consumers and handlers at once).
    ///
    /// # Errors
    /// The broker refused the subscription or its consumers (closed, or invalid settings).
    pub async fn subscribe<H, Fut>(
        &self,
        topic: &'static str,
        name: &str,
        handler: H,
    ) -> Result<(), levee::queue::broker::BrokerError>
    where
        H: Fn(ShopEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let subscription = self.broker.subscribe(topic, self.config.subscription_named(name))?;
        let handle = serve(&self.broker, &subscription, self.config.serve.clone(), move |d| {
            handler(d.payload().clone())
        })
        .await?;
        self.running.lock().push((name.to_owned(), handle));
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
        self.subscriptions()
            .iter()
            .flat_map(|sub| {
                sub.dead_letters().iter().map(|d| DeadLetter::of(sub.name(), d)).collect::<Vec<_>>()
            })
            .collect()
    }

    /// Sends dead letters back to their subscription with a fresh delivery budget: those in
    /// `ids`, or all when `ids` is `None`. Returns how many were replayed.
    pub fn replay(&self, ids: Option<&[u64]>) -> usize {
        let select = match ids {
            Some(ids) => Select::Seqs(ids.to_vec()),
            None => Select::All,
        };
        self.subscriptions().iter().map(|sub| sub.replay(select.clone())).sum()
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
            handler_panics: self.running.lock().iter().map(|(_, h)| h.stats().panicked).sum(),
            subscriptions,
        }
    }

    /// Whether the consumers run: `Ok` with how many subscriptions are served, or the names
    /// of the subscriptions whose consumers stopped (or `Err` with none when the bus was
    /// drained and nothing is served any more).
    ///
    /// # Errors
    /// The subscriptions whose consumers stopped.
    pub fn consumers_running(&self) -> Result<usize, Vec<String>> {
        let running = self.running.lock();
        let stopped: Vec<String> =
            running.iter().filter(|(_, h)| h.is_finished()).map(|(n, _)| n.clone()).collect();
        if running.is_empty() || !stopped.is_empty() { Err(stopped) } else { Ok(running.len()) }
    }

    fn busy(&self) -> bool {
        self.subscriptions().iter().any(|sub| {
            let s = sub.stats();
            s.depth + s.scheduled + s.in_flight > 0
        })
    }

    /// Waits until no event is waiting or being handled, or `grace` has passed; then stops
    /// every subscription's consumers (each drains its running handlers for at most
    /// `queue.serve.drain_timeout`) and closes the broker. Returns whether the bus drained.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        let mut drained = !self.busy();
        while !drained && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drained = !self.busy();
        }
        let running = std::mem::take(&mut *self.running.lock());
        for (_, handle) in running {
            handle.shutdown().await;
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

    #[tokio::test(start_paused = true)]
    async fn failing_events_retry_then_dead_letter_then_replay() {
        let mut config = QueueConfig::default();
        config.subscription.max_deliveries = 3;
        config.subscription.backoff = Vec::new();
        config.serve.concurrency = 2;
        let bus = EventBus::new(&config, ShopClock::manual(ManualClock::new()));
        let calls = Arc::new(AtomicU32::new(0));
        let healthy = Arc::new(AtomicBool::new(false));
        let (c, h) = (Arc::clone(&calls), Arc::clone(&healthy));
        bus.subscribe(TOPIC_ORDERS, "payment", move |_e: ShopEvent| {
            c.fetch_add(1, Ordering::SeqCst);
            let ok = h.load(Ordering::SeqCst);
            async move { if ok { Ok(()) } else { Err("down".to_owned()) } }
        })
        .await
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

    #[tokio::test(start_paused = true)]
    async fn readiness_sees_consumers_that_stopped() {
        let bus = EventBus::new(&QueueConfig::default(), ShopClock::manual(ManualClock::new()));
        assert_eq!(bus.consumers_running(), Err(Vec::new()), "nothing served yet");
        for name in ["payment", "orders"] {
            bus.subscribe(TOPIC_ORDERS, name, |_e: ShopEvent| async { Ok(()) }).await.unwrap();
        }
        assert_eq!(bus.consumers_running(), Ok(2));
        // The broker closes under the consumers: they stop, and say which.
        bus.broker.close();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while bus.consumers_running().is_ok() {
            assert!(tokio::time::Instant::now() < deadline, "consumers still running");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let mut stopped = bus.consumers_running().unwrap_err();
        while stopped.len() < 2 {
            assert!(tokio::time::Instant::now() < deadline, "consumers still running");
            tokio::time::sleep(Duration::from_millis(1)).await;
            stopped = bus.consumers_running().unwrap_err();
        }
        stopped.sort();
        assert_eq!(stopped, ["orders", "payment"]);
        bus.drain(Duration::ZERO).await;
        assert_eq!(bus.consumers_running(), Err(Vec::new()), "drained: nothing served");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_handler_is_nacked_with_its_message() {
        let mut config = QueueConfig::default();
        config.subscription.max_deliveries = 1;
        let bus = EventBus::new(&config, ShopClock::manual(ManualClock::new()));
        bus.subscribe(TOPIC_ORDERS, "notification-orders", |_e: ShopEvent| async {
            panic!("template missing")
        })
        .await
        .unwrap();
        bus.publish(ShopEvent::OrderPlaced { order_id: 1 });
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while bus.dead_letters().is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no dead letter");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(bus.dead_letters()[0].last_error, "panicked: template missing");
        assert_eq!(bus.stats().handler_panics, 1);
        assert!(bus.drain(Duration::from_secs(1)).await);
    }
}
