//! Event delivery between the services: a transactional outbox relayed to a broker, whose
//! subscriptions levee-queue's [`serve`](levee::queue::broker::serve) runs with each
//! service's handler.
//!
//! Which broker is `queue.backend`'s choice: levee-queue's durable broker in
//! `<data_dir>/events` (the default: a confirmed event is on disk and survives a crash), its
//! in-process broker (`memory`: fastest, events queued in memory are lost with the process),
//! or NATS JetStream (`nats`, through levee-nats). The same code serves all three
//! (`backend.rs`).
//!
//! Events enter through the store's outbox: each transaction that changes an order or expires
//! a cart writes its event in the same transaction (order placed, payment requested, order
//! cancelled, cart expired), and an
//! event that reports something outside the database (a payment's outcome at the provider)
//! is written on its own ([`EventBus::announce`]). The relay (`relay.rs`) publishes pending
//! rows with their row id as message id (the broker's dedup window drops a re-publish) and
//! deletes them once the broker confirmed them. So a crash at any point loses no event the
//! store committed, and a duplicate is harmless: every handler is idempotent per order and
//! kind (a payment is charged at most once by the provider and only while the order is
//! unpaid, a confirmation or cancellation applies once, a notification is recorded once per
//! order and kind, a cart's notification once per event id).
//!
//! Topics `orders`, `payments` and `carts` fan out to one subscription per service
//! (`payment`, `orders`, `notification-orders`, `notification-payments`,
//! `notification-carts`). A handler's `Ok` acks the delivery; an `Err` nacks it with the
//! error as the reason, and the broker redelivers it on the subscription's backoff until
//! `max_deliveries` failures put it in the subscription's dead-letter queue, which the admin
//! API lists (with the last reason) and replays (with a fresh failure budget); a handler
//! that panics is nacked too. Messages carry the order id (a cart's event
//! `cart-<customer id>`) as their ordering key: one event per order in flight per
//! subscription, in publish order.
//!
//! The in-process and durable brokers take their time from the shop clock, so tests that
//! move a manual clock move backoffs and ack deadlines with it.

mod backend;
mod dead_letter;
mod relay;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use levee::queue::broker::{BrokerError, InProcessBroker, Select};
use levee::queue::durable::DurableSettings;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::clock::ShopClock;
use crate::config::{QueueBackend, QueueConfig, durable_dir};
use crate::domain::ShopEvent;
use crate::store::{Store, StoreError};
use backend::{Backend, Bus, on_bus};

pub use dead_letter::DeadLetter;
pub use stats::{BusStats, SubscriptionStats};

/// Why the bus's broker could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum BusOpenError {
    /// The durable broker's directory could not be opened (locked by another process,
    /// unwritable, or its log damaged).
    #[error("durable event broker in {}: {source}", dir.display())]
    Durable {
        /// The directory (`queue.durable_dir`).
        dir: PathBuf,
        /// Why.
        source: levee::queue::durable::OpenError,
    },
    /// The broker refused to create the shop's topics.
    #[error("event broker: cannot create the topics: {0}")]
    Topics(#[source] BrokerError),
    /// The NATS server could not be reached or refused JetStream.
    #[error("NATS event broker at {url}: {source}")]
    Nats {
        /// `queue.nats_url`.
        url: String,
        /// Why.
        source: BrokerError,
    },
}

/// The event bus. Cheap to clone (clones share everything).
#[derive(Clone)]
pub struct EventBus {
    backend: Arc<Backend>,
    config: QueueConfig,
    /// Where [`announce`](Self::announce) writes (`None`: it publishes directly).
    store: Option<Arc<Store>>,
    publish_failures: Arc<levee::core::Counter>,
    /// Wakes the relay when a transaction wrote to the outbox.
    wake: Arc<Notify>,
    relay: Arc<Mutex<Option<JoinHandle<()>>>>,
    /// Set in a process that runs no consumer by design (a split service such as the
    /// catalog): having none is then no reason to be not ready.
    no_consumers: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for EventBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventBus")
            .field("backend", &self.backend())
            .field("stats", &self.stats())
            .finish()
    }
}

impl EventBus {
    /// The bus `config.backend` names, fed by `store`'s outbox: the durable broker in
    /// `config.durable_dir` (default `<data_dir>/events`), the in-process broker, or NATS at
    /// `config.nats_url`. The relay starts with [`start_relay`](Self::start_relay), once the
    /// services subscribed. Needs a tokio runtime.
    ///
    /// # Errors
    /// The durable broker's directory cannot be opened, or the NATS server cannot be reached.
    pub async fn open(
        config: &QueueConfig,
        data_dir: &Path,
        clock: ShopClock,
        store: Arc<Store>,
    ) -> Result<Self, BusOpenError> {
        let backend = match config.backend {
            QueueBackend::Memory => {
                Backend::Memory(Bus::new(memory_broker(clock)).await.map_err(BusOpenError::Topics)?)
            }
            QueueBackend::Durable => {
                let dir = durable_dir(config.durable_dir.as_deref(), data_dir);
                let broker = levee::queue::durable::DurableBroker::builder(&dir)
                    .settings(DurableSettings::new())
                    .clock(clock)
                    .open()
                    .map_err(|source| BusOpenError::Durable { dir: dir.clone(), source })?;
                let recovery = broker.recovery();
                tracing::info!(dir = %dir.display(), ?recovery, "durable event broker open");
                Backend::Durable(Bus::new(broker).await.map_err(BusOpenError::Topics)?)
            }
            QueueBackend::Nats => {
                let url = config.nats_url.clone();
                let broker = backend::Nats::builder(url.clone())
                    .prefix(config.nats_prefix.clone())
                    .connect()
                    .await
                    .map_err(|source| BusOpenError::Nats { url, source })?;
                Backend::Nats(Bus::new(broker).await.map_err(BusOpenError::Topics)?)
            }
        };
        Ok(Self::with(backend, config, Some(store)))
    }

    /// A bus on the in-process broker without an outbox: [`announce`](Self::announce)
    /// publishes directly. Spawns the broker's driver, so it needs a tokio runtime.
    ///
    /// # Errors
    /// None in practice: the in-process broker always takes the shop's topics.
    pub async fn in_memory(config: &QueueConfig, clock: ShopClock) -> Result<Self, BusOpenError> {
        let bus = Bus::new(memory_broker(clock)).await.map_err(BusOpenError::Topics)?;
        Ok(Self::with(Backend::Memory(bus), config, None))
    }

    fn with(backend: Backend, config: &QueueConfig, store: Option<Arc<Store>>) -> Self {
        Self {
            backend: Arc::new(backend),
            config: config.clone(),
            store,
            publish_failures: Arc::new(levee::core::Counter::new()),
            wake: Arc::new(Notify::new()),
            relay: Arc::new(Mutex::new(None)),
            no_consumers: Arc::new(std::sync::atomic::AtomicBool::new(false)),
        }
    }

    /// Which broker carries the events.
    #[must_use]
    pub fn backend(&self) -> QueueBackend {
        match &*self.backend {
            Backend::Memory(_) => QueueBackend::Memory,
            Backend::Durable(_) => QueueBackend::Durable,
            Backend::Nats(_) => QueueBackend::Nats,
        }
    }

    /// Delivers every later event of `topic` to `handler` as subscription `name`, through
    /// `serve` (`queue.serve` says how many consumers and handlers at once). On the durable
    /// broker and NATS the subscription outlives the process: what it had not handled is
    /// delivered after a restart.
    ///
    /// # Errors
    /// The broker refused the subscription or its consumers (closed, invalid settings, or
    /// settings that differ from those the durable subscription was created with).
    pub async fn subscribe<H, Fut>(
        &self,
        topic: &'static str,
        name: &str,
        handler: H,
    ) -> Result<(), BrokerError>
    where
        H: Fn(ShopEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        let config = self.config.subscription_named(name);
        let serve = self.config.serve.clone();
        on_bus!(&*self.backend, bus => bus.subscribe(topic, config, serve, handler).await)
    }

    /// Starts the outbox relay (once; after the services subscribed, so that no event is
    /// published to a topic before its subscriptions exist). Without a store, nothing.
    pub fn start_relay(&self) {
        let Some(store) = &self.store else { return };
        let mut relay = self.relay.lock();
        if relay.is_none() {
            let task = relay::run(self.clone(), Arc::clone(store), Arc::clone(&self.wake));
            *relay = Some(tokio::spawn(task));
        }
    }

    /// Says that this process runs no consumer by design ([`crate::split`]):
    /// [`consumers_running`](Self::consumers_running) then answers `Ok(0)` rather than
    /// reporting the consumers stopped.
    pub fn expect_no_consumers(&self) {
        self.no_consumers.store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Tells the relay that a committed transaction wrote to the outbox.
    pub fn outbox_written(&self) {
        self.wake.notify_one();
    }

    /// Announces `event`, which reports no change of the shop's own state (a payment's
    /// outcome at the provider): through the outbox, or straight to the broker on a bus
    /// without a store.
    ///
    /// # Errors
    /// The outbox write failed (or, without a store, the broker refused): the caller's own
    /// event is redelivered and announces again.
    pub async fn announce(&self, event: ShopEvent, now_ms: i64) -> Result<(), String> {
        match &self.store {
            Some(store) => {
                store.add_to_outbox(&event, now_ms).await.map_err(|e: StoreError| e.to_string())?;
                self.outbox_written();
                Ok(())
            }
            None => self.publish_as(None, event).await.map_err(|e| {
                self.publish_failures.incr();
                e.to_string()
            }),
        }
    }

    /// Publishes `event` on its topic, keyed by its order, with message id `id`.
    async fn publish_as(&self, id: Option<String>, event: ShopEvent) -> Result<(), BrokerError> {
        on_bus!(&*self.backend, bus => bus.publish(id, event).await)
    }

    fn count_publish_failures(&self, n: u64) {
        if n > 0 {
            self.publish_failures.add(n);
        }
    }

    /// The dead letters of every subscription.
    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        on_bus!(&*self.backend, bus => bus.dead_letters().await)
    }

    /// Sends dead letters back to their subscription with a fresh delivery budget: those in
    /// `ids`, or all when `ids` is `None`. Returns how many were replayed.
    pub async fn replay(&self, ids: Option<&[u64]>) -> usize {
        let select = match ids {
            Some(ids) => Select::Seqs(ids.to_vec()),
            None => Select::All,
        };
        on_bus!(&*self.backend, bus => bus.replay(&select).await)
    }

    /// Counters now. On NATS, whose counters live on the server, a subscription's are its
    /// consumers' in this process: `depth` 0, `acked` handled, `redelivered` failed.
    #[must_use]
    pub fn stats(&self) -> BusStats {
        let (published, subscriptions, panics) = on_bus!(&*self.backend, bus => {
            let mut panics = 0;
            let subs = bus.each(|name, topic, counters, handle| {
                let serve = handle.stats();
                panics += serve.panicked;
                match counters {
                    Some(s) => SubscriptionStats {
                        name: name.to_owned(),
                        topic: topic.to_owned(),
                        depth: (s.depth + s.scheduled) as u64,
                        in_flight: s.in_flight as u64,
                        acked: s.acked,
                        redelivered: s.redelivered,
                        dead_lettered: s.dead_lettered,
                    },
                    None => SubscriptionStats {
                        name: name.to_owned(),
                        topic: topic.to_owned(),
                        depth: 0,
                        in_flight: serve.in_flight,
                        acked: serve.handled,
                        redelivered: serve.failed,
                        dead_lettered: 0,
                    },
                }
            });
            (bus.published.get(), subs, panics)
        });
        let held = on_bus!(&*self.backend, bus => bus.each(|_, _, counters, _| {
            counters.map_or(0, |s| s.dead_letters as u64)
        }));
        BusStats {
            published,
            publish_failures: self.publish_failures.get(),
            dlq_depth: held.iter().sum(),
            handler_panics: panics,
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
        let states = on_bus!(&*self.backend, bus => bus.each(|name, _, _, handle| {
            (name.to_owned(), handle.is_finished())
        }));
        if states.is_empty() && self.no_consumers.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(0);
        }
        let stopped: Vec<String> =
            states.iter().filter(|(_, finished)| *finished).map(|(n, _)| n.clone()).collect();
        if states.is_empty() || !stopped.is_empty() { Err(stopped) } else { Ok(states.len()) }
    }

    /// Whether an event waits or is being handled (on NATS: being handled here).
    fn busy(&self) -> bool {
        let busy = on_bus!(&*self.backend, bus => bus.each(|_, _, counters, handle| match counters {
            Some(s) => s.depth + s.scheduled + s.in_flight > 0,
            None => handle.stats().in_flight > 0,
        }));
        busy.into_iter().any(|b| b)
    }

    /// Whether the outbox still holds events for the relay (`false` without a relay).
    async fn outbox_pending(&self) -> bool {
        let relaying = self.relay.lock().is_some();
        match &self.store {
            Some(store) if relaying => store.outbox_len().await.map_or(true, |n| n > 0),
            _ => false,
        }
    }

    /// Whether every event written before this call has been handled: the outbox is
    /// relayed, then no event waits, is scheduled or is being handled. (In that order: the
    /// relay publishes a row before it deletes it, so a row relayed between the two looks is
    /// seen in the broker. An event a handler writes after the first look may be missed.)
    pub async fn quiet(&self) -> bool {
        !self.outbox_pending().await && !self.busy()
    }

    /// Waits until the outbox is relayed and no event is waiting or being handled, or `grace`
    /// has passed; then stops the relay, every subscription's consumers (each drains its
    /// running handlers for at most `queue.serve.drain_timeout`) and the broker (the durable
    /// one flushes its log and releases its directory). Returns whether the bus drained.
    /// What was left is in the outbox or the durable broker and goes on at the next start.
    pub async fn drain(&self, grace: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + grace;
        let mut drained = self.quiet().await;
        while !drained && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
            drained = self.quiet().await;
        }
        if let Some(relay) = self.relay.lock().take() {
            // Safe at any point: an unconfirmed row stays in the outbox, a confirmed but
            // undeleted one is deduplicated when it is published again.
            relay.abort();
        }
        on_bus!(&*self.backend, bus => {
            for served in bus.take_served() {
                served.handle.shutdown().await;
            }
            backend::ShopBroker::stop(&bus.broker).await;
        });
        drained
    }
}

/// The in-process broker on `clock`, with its driver (which keeps timers, leases and
/// statistics current while nobody receives).
fn memory_broker(clock: ShopClock) -> InProcessBroker<ShopEvent, ShopClock> {
    let broker = InProcessBroker::builder().clock(clock).build();
    tokio::spawn({
        let broker = broker.clone();
        async move { broker.drive(Duration::from_millis(100)).await }
    });
    broker
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::TOPIC_ORDERS;
    use levee::core::ManualClock;
    use parking_lot::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn failing_events_retry_then_dead_letter_then_replay() {
        let mut config = QueueConfig::default();
        config.subscription.max_deliveries = 3;
        config.subscription.backoff = Vec::new();
        config.serve.concurrency = 2;
        let bus =
            EventBus::in_memory(&config, ShopClock::manual(ManualClock::new())).await.unwrap();
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
        bus.announce(ShopEvent::OrderPlaced { order_id: 7 }, 0).await.unwrap();
        bus.announce(ShopEvent::PaymentSucceeded { order_id: 7, charge_id: "c".into() }, 0)
            .await
            .unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while bus.dead_letters().await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no dead letter");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 3);
        let dead = bus.dead_letters().await;
        assert_eq!(dead.len(), 1);
        assert_eq!((dead[0].deliveries, dead[0].last_error.as_str()), (3, "down"));
        // A replay gives a fresh failure budget: three more deliveries, not one.
        assert_eq!(bus.replay(None).await, 1);
        while calls.load(Ordering::SeqCst) < 6 || bus.dead_letters().await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "replayed letter not retried");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(calls.load(Ordering::SeqCst), 6);
        healthy.store(true, Ordering::SeqCst);
        assert_eq!(bus.replay(None).await, 1);
        while bus.stats().subscriptions[0].acked == 0 {
            assert!(tokio::time::Instant::now() < deadline, "replay not handled");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert!(bus.dead_letters().await.is_empty());
        assert!(bus.drain(Duration::from_secs(1)).await);
    }

    #[tokio::test(start_paused = true)]
    async fn readiness_sees_consumers_that_stopped() {
        let clock = ShopClock::manual(ManualClock::new());
        let bus = EventBus::in_memory(&QueueConfig::default(), clock).await.unwrap();
        assert_eq!(bus.consumers_running(), Err(Vec::new()), "nothing served yet");
        for name in ["payment", "orders"] {
            bus.subscribe(TOPIC_ORDERS, name, |_e: ShopEvent| async { Ok(()) }).await.unwrap();
        }
        assert_eq!(bus.consumers_running(), Ok(2));
        // The broker closes under the consumers: they stop, and say which.
        let Backend::Memory(memory) = &*bus.backend else { unreachable!("an in-memory bus") };
        memory.broker.close();
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
        let bus =
            EventBus::in_memory(&config, ShopClock::manual(ManualClock::new())).await.unwrap();
        bus.subscribe(TOPIC_ORDERS, "notification-orders", |_e: ShopEvent| async {
            panic!("template missing")
        })
        .await
        .unwrap();
        bus.announce(ShopEvent::OrderPlaced { order_id: 1 }, 0).await.unwrap();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while bus.dead_letters().await.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "no dead letter");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(bus.dead_letters().await[0].last_error, "panicked: template missing");
        assert_eq!(bus.stats().handler_panics, 1);
        assert!(bus.drain(Duration::from_secs(1)).await);
    }

    /// A store and a durable bus in a fresh data directory.
    async fn durable_shop(dir: &Path, config: &QueueConfig) -> (Arc<Store>, EventBus) {
        let storage = crate::config::StorageConfig {
            data_dir: dir.to_path_buf(),
            seed_products: 0,
            ..crate::config::StorageConfig::default()
        };
        let faults = Arc::new(crate::faults::Faults::new(crate::faults::FaultSettings {
            provider_latency_ms: 0,
            provider_failure_rate: 0.0,
            store_latency_ms: 0,
        }));
        let store = Arc::new(Store::open(&storage, faults, ShopClock::system()).await.unwrap());
        let bus =
            EventBus::open(config, dir, ShopClock::system(), Arc::clone(&store)).await.unwrap();
        assert_eq!(bus.backend(), QueueBackend::Durable);
        (store, bus)
    }

    async fn within_10s(what: &str, mut done: impl AsyncFnMut() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !done().await {
            assert!(tokio::time::Instant::now() < deadline, "{what}: not within 10 s");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_relay_publishes_each_outbox_row_once_even_if_it_was_published_before() {
        let dir = tempfile::tempdir().unwrap();
        let (store, bus) = durable_shop(dir.path(), &QueueConfig::default()).await;
        let seen = Arc::new(Mutex::new(Vec::new()));
        let s = Arc::clone(&seen);
        bus.subscribe(TOPIC_ORDERS, "notification-orders", move |e: ShopEvent| {
            s.lock().push(e);
            async { Ok(()) }
        })
        .await
        .unwrap();
        let events: Vec<ShopEvent> =
            (1..=3).map(|order_id| ShopEvent::OrderPlaced { order_id }).collect();
        for e in &events {
            store.add_to_outbox(e, 0).await.unwrap();
        }
        // A relay that died after the broker confirmed row 1, before it deleted it.
        let first = store.outbox_pending(1).await.unwrap().remove(0);
        bus.publish_as(Some(relay::message_id(first.id)), first.event).await.unwrap();
        bus.start_relay();
        within_10s("the outbox is relayed", async || {
            store.outbox_len().await.unwrap() == 0 && seen.lock().len() >= 3
        })
        .await;
        assert!(bus.drain(Duration::from_secs(5)).await);
        // Row 1 went out twice under one message id: the broker's dedup window kept one.
        // (Events of different orders may be handled in any order.)
        let mut seen = seen.lock().clone();
        seen.sort_by_key(ShopEvent::order_id);
        assert_eq!(seen, events);
        assert_eq!(bus.stats().published, 4, "the first publish and three by the relay");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn changed_settings_recreate_an_empty_durable_subscription_and_refuse_a_holding_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = QueueConfig::default();
        {
            let (store, bus) = durable_shop(dir.path(), &config).await;
            bus.subscribe(TOPIC_ORDERS, "payment", |_e| async { Ok(()) }).await.unwrap();
            bus.drain(Duration::from_secs(1)).await;
            store.close().await;
        }
        // Nothing held: the new settings apply.
        config.subscription.max_deliveries = 3;
        let (store, bus) = durable_shop(dir.path(), &config).await;
        bus.subscribe(TOPIC_ORDERS, "payment", |_e| async { Err("down".to_owned()) })
            .await
            .unwrap();
        // Leave an event behind (its handler fails, so it waits for a redelivery).
        bus.announce(ShopEvent::OrderPlaced { order_id: 1 }, 0).await.unwrap();
        bus.start_relay();
        within_10s("the event is handled", async || bus.stats().subscriptions[0].redelivered > 0)
            .await;
        bus.drain(Duration::ZERO).await;
        store.close().await;
        // It holds an event: other settings are refused, naming the subscription.
        config.subscription.max_deliveries = 4;
        let (_store, bus) = durable_shop(dir.path(), &config).await;
        let refused = bus.subscribe(TOPIC_ORDERS, "payment", |_e| async { Ok(()) }).await;
        assert!(
            matches!(&refused, Err(BrokerError::SubscriptionMismatch { subscription }) if subscription == "payment"),
            "{refused:?}"
        );
        bus.drain(Duration::ZERO).await;
    }
}
