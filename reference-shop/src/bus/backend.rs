//! The brokers the bus runs on, behind one small trait.
//!
//! levee's [`Broker`] trait has `impl Future` methods (not object safe), so the bus is an
//! enum of [`Served`] brokers ([`Backend`]) and every operation is written once, generic over
//! [`ShopBroker`]: the `Broker` trait plus what the admin API reads synchronously (names and
//! counters of a subscription) and how the broker stops.

use std::sync::Arc;

use levee::core::Counter;
use levee::nats::NatsBroker;
use levee::queue::broker::{
    Broker, BrokerError, InProcessBroker, Message, Select, ServeConfig, ServeHandle,
    SubscriptionConfig, SubscriptionStats, TopicConfig, serve,
};
use levee::queue::durable::{Codec, DecodeError, DurableBroker, DurableSubscription};
use parking_lot::Mutex;

use super::dead_letter::DeadLetter;
use crate::clock::ShopClock;
use crate::domain::{ShopEvent, TOPIC_CARTS, TOPIC_ORDERS, TOPIC_PAYMENTS};

/// The in-process broker on the shop clock.
pub(super) type Memory = InProcessBroker<ShopEvent, ShopClock>;
/// The durable broker on the shop clock.
pub(super) type Durable = DurableBroker<ShopEvent, ShopClock>;
/// The NATS broker, payloads as JSON.
pub(super) type Nats = NatsBroker<ShopEvent>;

/// The durable broker stores events as their JSON (the same text the outbox keeps).
impl Codec for ShopEvent {
    fn encode(&self, out: &mut Vec<u8>) {
        // Writing plain data into a Vec cannot fail.
        let _ = serde_json::to_writer(out, self);
    }

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        serde_json::from_slice(bytes).map_err(DecodeError::new)
    }
}

/// A broker the bus can run on.
pub(super) trait ShopBroker:
    Broker<Payload = ShopEvent, Consumer: 'static, Delivery: 'static> + Clone
{
    /// The subscription's name.
    fn name(sub: &Self::Subscription) -> &str;
    /// The subscription's topic.
    fn topic(sub: &Self::Subscription) -> &str;
    /// The subscription's counters, where the broker keeps them in this process.
    fn counters(sub: &Self::Subscription) -> Option<SubscriptionStats>;
    /// Creates `topic` with the default settings (a 2-minute dedup window), or does
    /// nothing if it exists.
    fn ensure_topic(&self, topic: &str) -> impl Future<Output = Result<(), BrokerError>> + Send;
    /// Removes the subscription `name` of `topic` if it holds nothing (no event waiting,
    /// scheduled, in flight or dead), so that it can be created again with other settings.
    /// Returns whether it did; brokers that cannot tell return `false`.
    fn remove_if_empty(
        &self,
        topic: &str,
        name: &str,
    ) -> impl Future<Output = Result<bool, BrokerError>> + Send;
    /// Stops the broker (its log is flushed and released, its connection closed).
    fn stop(&self) -> impl Future<Output = ()> + Send;
}

impl ShopBroker for Memory {
    fn name(sub: &Self::Subscription) -> &str {
        sub.name()
    }
    fn topic(sub: &Self::Subscription) -> &str {
        sub.topic()
    }
    fn counters(sub: &Self::Subscription) -> Option<SubscriptionStats> {
        Some(sub.stats())
    }
    async fn ensure_topic(&self, topic: &str) -> Result<(), BrokerError> {
        self.create_topic(topic, TopicConfig::new()).map(drop)
    }
    async fn remove_if_empty(&self, _topic: &str, _name: &str) -> Result<bool, BrokerError> {
        // Its subscriptions live as long as the process: settings cannot differ.
        Ok(false)
    }
    async fn stop(&self) {
        self.close();
    }
}

impl ShopBroker for Durable {
    fn name(sub: &DurableSubscription<ShopEvent, ShopClock>) -> &str {
        sub.name()
    }
    fn topic(sub: &DurableSubscription<ShopEvent, ShopClock>) -> &str {
        sub.topic()
    }
    fn counters(sub: &DurableSubscription<ShopEvent, ShopClock>) -> Option<SubscriptionStats> {
        Some(sub.stats())
    }
    async fn ensure_topic(&self, topic: &str) -> Result<(), BrokerError> {
        self.create_topic(topic, TopicConfig::new()).await
    }
    async fn remove_if_empty(&self, topic: &str, name: &str) -> Result<bool, BrokerError> {
        let empty = self.subscription(topic, name).is_some_and(|sub| {
            let s = sub.stats();
            s.depth + s.scheduled + s.in_flight + s.dead_letters == 0
        });
        Ok(empty && self.unsubscribe(topic, name).await?)
    }
    async fn stop(&self) {
        // Flushes, fsyncs and releases the directory at once, whatever handles remain.
        self.shutdown();
    }
}

impl ShopBroker for Nats {
    fn name(sub: &Self::Subscription) -> &str {
        sub.name()
    }
    fn topic(sub: &Self::Subscription) -> &str {
        sub.topic()
    }
    fn counters(_sub: &Self::Subscription) -> Option<SubscriptionStats> {
        // JetStream keeps them on the server; the bus reports what its consumers handled.
        None
    }
    async fn ensure_topic(&self, topic: &str) -> Result<(), BrokerError> {
        self.create_topic(topic, TopicConfig::new()).await
    }
    async fn remove_if_empty(&self, _topic: &str, _name: &str) -> Result<bool, BrokerError> {
        // What a JetStream consumer holds is not known here without a server round trip
        // per subscription, and levee-nats has no unsubscribe: the mismatch stands.
        Ok(false)
    }
    async fn stop(&self) {
        Broker::close(self).await;
    }
}

/// One served subscription: its handle, its consumers, and what they handled.
pub(super) struct Served<S> {
    pub(super) sub: Arc<S>,
    pub(super) handle: ServeHandle,
}

/// A broker and the subscriptions the bus serves on it.
pub(super) struct Bus<B: ShopBroker> {
    pub(super) broker: B,
    pub(super) served: Mutex<Vec<Served<B::Subscription>>>,
    pub(super) published: Counter,
}

impl<B: ShopBroker> Bus<B> {
    /// The bus on `broker`, with the shop's topics created.
    pub(super) async fn new(broker: B) -> Result<Self, BrokerError> {
        for topic in [TOPIC_ORDERS, TOPIC_PAYMENTS, TOPIC_CARTS] {
            broker.ensure_topic(topic).await?;
        }
        Ok(Self { broker, served: Mutex::new(Vec::new()), published: Counter::new() })
    }

    pub(super) async fn subscribe<H, Fut>(
        &self,
        topic: &str,
        config: SubscriptionConfig,
        serve_config: ServeConfig,
        handler: H,
    ) -> Result<(), BrokerError>
    where
        H: Fn(ShopEvent) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        use levee::queue::broker::BrokerDelivery;
        let name = config.name.clone();
        let sub = match self.broker.subscribe(topic, config.clone()).await {
            // Created by an earlier run with other settings (`queue.subscription`): they
            // apply once it holds nothing, else the start is refused with the mismatch.
            Err(BrokerError::SubscriptionMismatch { .. })
                if self.broker.remove_if_empty(topic, &name).await? =>
            {
                tracing::info!(subscription = %name, "subscription settings changed; it held nothing, re-created");
                self.broker.subscribe(topic, config).await?
            }
            other => other?,
        };
        let handle = serve(&self.broker, &sub, serve_config, move |d: Arc<B::Delivery>| {
            handler(d.payload().clone())
        })
        .await?;
        self.served.lock().push(Served { sub: Arc::new(sub), handle });
        Ok(())
    }

    pub(super) async fn publish(
        &self,
        id: Option<String>,
        event: ShopEvent,
    ) -> Result<(), BrokerError> {
        let topic = event.topic();
        let key = event.ordering_key();
        let mut message = Message::new(event).key(key);
        if let Some(id) = id {
            message = message.id(id);
        }
        self.broker.publish(topic, message).await?;
        self.published.incr();
        Ok(())
    }

    fn subs(&self) -> Vec<Arc<B::Subscription>> {
        self.served.lock().iter().map(|s| Arc::clone(&s.sub)).collect()
    }

    pub(super) async fn dead_letters(&self) -> Vec<DeadLetter> {
        let mut all = Vec::new();
        for sub in self.subs() {
            match self.broker.dead_letters(&sub).await {
                Ok(dead) => all.extend(dead.iter().map(|d| DeadLetter::of(B::name(&sub), d))),
                Err(e) => {
                    tracing::warn!(subscription = B::name(&sub), error = %e, "dead letters not read");
                }
            }
        }
        all
    }

    pub(super) async fn replay(&self, select: &Select) -> usize {
        let mut replayed = 0;
        for sub in self.subs() {
            match self.broker.replay(&sub, select.clone()).await {
                Ok(n) => replayed += n,
                Err(e) => {
                    tracing::warn!(subscription = B::name(&sub), error = %e, "dead letters not replayed");
                }
            }
        }
        replayed
    }

    /// Each served subscription's name, topic and counters (the broker's, else `None`) and
    /// its consumers' counters.
    pub(super) fn each<R>(
        &self,
        mut f: impl FnMut(&str, &str, Option<SubscriptionStats>, &ServeHandle) -> R,
    ) -> Vec<R> {
        self.served
            .lock()
            .iter()
            .map(|s| f(B::name(&s.sub), B::topic(&s.sub), B::counters(&s.sub), &s.handle))
            .collect()
    }

    pub(super) fn take_served(&self) -> Vec<Served<B::Subscription>> {
        std::mem::take(&mut *self.served.lock())
    }
}

/// The bus's broker, whichever it is.
pub(super) enum Backend {
    Memory(Bus<Memory>),
    Durable(Bus<Durable>),
    Nats(Bus<Nats>),
}

/// Runs `$body` with `$bus` bound to the backend's [`Bus`], whichever broker it has.
macro_rules! on_bus {
    ($backend:expr, $bus:ident => $body:expr) => {
        match $backend {
            $crate::bus::backend::Backend::Memory($bus) => $body,
            $crate::bus::backend::Backend::Durable($bus) => $body,
            $crate::bus::backend::Backend::Nats($bus) => $body,
        }
    };
}
pub(super) use on_bus;
