//! Event delivery between the services: topics, subscriptions that ack or fail each event,
//! redelivery with backoff, and a dead-letter queue an operator lists and replays.
//!
//! Each subscription is a `levee_queue` unbounded channel (landed) drained by a consumer task
//! that runs up to `consumer_concurrency` handlers at once. The topic fan-out, ack/nack,
//! redelivery with backoff and the dead-letter queue around it are a STAND-IN for
//! levee-queue's topics and work queues, which have not landed on main yet. The shop uses only
//! [`EventBus::subscribe`], [`EventBus::publish`], [`EventBus::dead_letters`],
//! [`EventBus::replay`], [`EventBus::stats`] and [`EventBus::drain`].
//!
//! Events live in memory. What makes that safe is the store: every event is re-derived from
//! the orders table after a restart (unpaid orders get their payment re-driven and their timer
//! re-armed), so a lost event delays an order but never loses it.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::FutureExt;
use futures::future::BoxFuture;
use levee_queue::channel::{self, Sender};
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use tokio::sync::{Notify, Semaphore};

use crate::config::QueueConfig;
use crate::domain::ShopEvent;

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

/// An event that failed every delivery.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    /// Id, for replay.
    pub id: u64,
    /// The subscription that failed it.
    pub subscription: String,
    /// The event.
    pub event: ShopEvent,
    /// Deliveries made.
    pub deliveries: u32,
    /// The last handler error.
    pub last_error: String,
}

/// Counters of one subscription.
#[derive(Debug, Clone, Serialize)]
pub struct SubscriptionStats {
    /// Name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// Events waiting (including those waiting for a redelivery).
    pub depth: u64,
    /// Events being handled.
    pub in_flight: u64,
    /// Events handled successfully.
    pub acked: u64,
    /// Redeliveries scheduled.
    pub redelivered: u64,
    /// Events sent to the dead-letter queue.
    pub dead_lettered: u64,
}

/// Counters of the bus.
#[derive(Debug, Clone, Serialize)]
pub struct BusStats {
    /// Events published.
    pub published: u64,
    /// Dead letters held.
    pub dlq_depth: u64,
    /// Per subscription.
    pub subscriptions: Vec<SubscriptionStats>,
}

#[derive(Debug, Clone)]
struct Delivery {
    id: u64,
    event: ShopEvent,
    deliveries: u32,
}

struct Sub {
    name: String,
    topic: &'static str,
    tx: Sender<Delivery>,
    depth: AtomicU64,
    in_flight: AtomicU64,
    acked: AtomicU64,
    redelivered: AtomicU64,
    dead_lettered: AtomicU64,
}

struct Inner {
    config: QueueConfig,
    subs: RwLock<Vec<Arc<Sub>>>,
    dlq: Mutex<Vec<DeadLetter>>,
    next_id: AtomicU64,
    published: AtomicU64,
    idle: Notify,
}

/// The in-process event bus.
#[derive(Clone)]
pub struct EventBus {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus").field("stats", &self.stats()).finish()
    }
}

impl EventBus {
    /// A bus with `config`'s delivery settings.
    #[must_use]
    pub fn new(config: QueueConfig) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                subs: RwLock::new(Vec::new()),
                dlq: Mutex::new(Vec::new()),
                next_id: AtomicU64::new(1),
                published: AtomicU64::new(0),
                idle: Notify::new(),
            }),
        }
    }

    /// Delivers every later event of `topic` to `handler` as subscription `name`.
    pub fn subscribe(&self, topic: &'static str, name: &str, handler: impl Handler) {
        let (tx, rx) = channel::unbounded::<Delivery>();
        let sub = Arc::new(Sub {
            name: name.to_owned(),
            topic,
            tx,
            depth: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            acked: AtomicU64::new(0),
            redelivered: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
        });
        self.inner.subs.write().push(Arc::clone(&sub));
        let handler = Arc::new(handler);
        let inner = Arc::clone(&self.inner);
        let slots = Arc::new(Semaphore::new(inner.config.consumer_concurrency as usize));
        tokio::spawn(async move {
            while let Ok(delivery) = rx.recv_async().await {
                let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
                    return;
                };
                sub.in_flight.fetch_add(1, Ordering::SeqCst);
                sub.depth.fetch_sub(1, Ordering::SeqCst);
                let (sub, handler, inner) =
                    (Arc::clone(&sub), Arc::clone(&handler), Arc::clone(&inner));
                tokio::spawn(async move {
                    let outcome = AssertUnwindSafe(handler.handle(delivery.event.clone()))
                        .catch_unwind()
                        .await
                        .unwrap_or_else(|_| Err("handler panicked".to_owned()));
                    drop(slot);
                    settle(&inner, &sub, delivery, outcome);
                    sub.in_flight.fetch_sub(1, Ordering::SeqCst);
                    inner.idle.notify_waiters();
                });
            }
        });
    }

    /// Publishes `event` on its topic to every subscription.
    pub fn publish(&self, event: ShopEvent) {
        self.inner.published.fetch_add(1, Ordering::Relaxed);
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        for sub in self.inner.subs.read().iter() {
            if sub.topic == event.topic() {
                send(sub, Delivery { id, event: event.clone(), deliveries: 0 });
            }
        }
    }

    /// The dead letters held.
    #[must_use]
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.inner.dlq.lock().clone()
    }

    /// Sends dead letters back to their subscription with a fresh delivery budget: those in
    /// `ids`, or all when `ids` is `None`. Returns how many were replayed.
    pub fn replay(&self, ids: Option<&[u64]>) -> usize {
        let letters: Vec<DeadLetter> = {
            let mut dlq = self.inner.dlq.lock();
            let (take, keep) =
                dlq.drain(..).partition(|d| ids.is_none_or(|ids| ids.contains(&d.id)));
            *dlq = keep;
            take
        };
        let subs = self.inner.subs.read();
        let mut replayed = 0;
        for letter in letters {
            if let Some(sub) = subs.iter().find(|s| s.name == letter.subscription) {
                send(sub, Delivery { id: letter.id, event: letter.event, deliveries: 0 });
                replayed += 1;
            }
        }
        replayed
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> BusStats {
        BusStats {
            published: self.inner.published.load(Ordering::Relaxed),
            dlq_depth: self.inner.dlq.lock().len() as u64,
            subscriptions: self
                .inner
                .subs
                .read()
                .iter()
                .map(|s| SubscriptionStats {
                    name: s.name.clone(),
                    topic: s.topic.to_owned(),
                    depth: s.depth.load(Ordering::SeqCst),
                    in_flight: s.in_flight.load(Ordering::SeqCst),
                    acked: s.acked.load(Ordering::Relaxed),
                    redelivered: s.redelivered.load(Ordering::Relaxed),
                    dead_lettered: s.dead_lettered.load(Ordering::Relaxed),
                })
                .collect(),
        }
    }

    fn busy(&self) -> bool {
        self.inner
            .subs
            .read()
            .iter()
            .any(|s| s.depth.load(Ordering::SeqCst) + s.in_flight.load(Ordering::SeqCst) > 0)
    }

    /// Waits until no event is waiting or being handled, or `grace` has passed. Returns
    /// whether the bus drained.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        loop {
            let idle = self.inner.idle.notified();
            if !self.busy() {
                return true;
            }
            // Redeliveries wake nobody when they are scheduled, so look again now and then.
            let wake = (tokio::time::Instant::now() + Duration::from_millis(50)).min(deadline);
            tokio::select! {
                () = idle => {}
                () = tokio::time::sleep_until(wake) => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return !self.busy();
            }
        }
    }
}

fn send(sub: &Sub, delivery: Delivery) {
    sub.depth.fetch_add(1, Ordering::SeqCst);
    if sub.tx.send(delivery).is_err() {
        sub.depth.fetch_sub(1, Ordering::SeqCst);
    }
}

fn settle(inner: &Arc<Inner>, sub: &Arc<Sub>, mut delivery: Delivery, outcome: Result<(), String>) {
    let Err(error) = outcome else {
        sub.acked.fetch_add(1, Ordering::Relaxed);
        return;
    };
    delivery.deliveries += 1;
    if delivery.deliveries >= inner.config.max_deliveries {
        tracing::warn!(subscription = %sub.name, event = ?delivery.event, %error, "dead-lettered");
        sub.dead_lettered.fetch_add(1, Ordering::Relaxed);
        inner.dlq.lock().push(DeadLetter {
            id: delivery.id,
            subscription: sub.name.clone(),
            event: delivery.event,
            deliveries: delivery.deliveries,
            last_error: error,
        });
        return;
    }
    tracing::debug!(subscription = %sub.name, deliveries = delivery.deliveries, %error, "redelivering");
    sub.redelivered.fetch_add(1, Ordering::Relaxed);
    let base = Duration::from_millis(inner.config.redelivery_backoff_ms);
    let max = Duration::from_millis(inner.config.redelivery_backoff_max_ms);
    let pause = base.saturating_mul(1 << (delivery.deliveries - 1).min(16)).min(max);
    // Counted as waiting from now, so `drain` sees it.
    sub.depth.fetch_add(1, Ordering::SeqCst);
    let sub = Arc::clone(sub);
    tokio::spawn(async move {
        tokio::time::sleep(levee_core::random::jitter(pause, 0.2)).await;
        if sub.tx.send(delivery).is_err() {
            sub.depth.fetch_sub(1, Ordering::SeqCst);
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    fn config() -> QueueConfig {
        QueueConfig {
            max_deliveries: 3,
            redelivery_backoff_ms: 1,
            redelivery_backoff_max_ms: 2,
            consumer_concurrency: 2,
        }
    }

    #[tokio::test]
    async fn failing_events_retry_then_dead_letter_then_replay() {
        let bus = EventBus::new(config());
        let calls = Arc::new(AtomicU32::new(0));
        let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (c, h) = (Arc::clone(&calls), Arc::clone(&healthy));
        bus.subscribe("orders", "payment", move |_e: ShopEvent| -> HandlerResult {
            c.fetch_add(1, Ordering::SeqCst);
            let ok = h.load(Ordering::SeqCst);
            Box::pin(async move { if ok { Ok(()) } else { Err("down".to_owned()) } })
        });
        bus.publish(ShopEvent::OrderPlaced { order_id: 7 });
        bus.publish(ShopEvent::PaymentSucceeded { order_id: 7, charge_id: "c".into() });
        assert!(bus.drain(Duration::from_secs(10)).await);
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let dead = bus.dead_letters();
        assert_eq!(dead.len(), 1);
        assert_eq!(dead[0].deliveries, 3);
        healthy.store(true, Ordering::SeqCst);
        assert_eq!(bus.replay(None), 1);
        assert!(bus.drain(Duration::from_secs(10)).await);
        assert!(bus.dead_letters().is_empty());
        assert_eq!(bus.stats().subscriptions[0].acked, 1);
    }
}
