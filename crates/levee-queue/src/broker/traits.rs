//! The `Broker` trait: what the shop (and the conformance suite) needs from a message broker,
//! so the in-process broker and adapters for real engines (NATS JetStream, RabbitMQ, Kafka
//! share groups, ...) are interchangeable.

use std::future::Future;
use std::time::Duration;

use levee_core::Clock;

use super::config::SubscriptionConfig;
use super::dead_letter::{DeadLetter, Select};
use super::delivery::Delivery;
use super::error::BrokerError;
use super::in_process::InProcessBroker;
use super::message::{Headers, Message};
use super::nack::Nack;
use super::subscription::{Consumer, Subscription};
use super::topic::Publish;

/// A delivered message as any broker presents it.
///
/// ```
/// use levee_queue::broker::{BrokerDelivery, InProcessBroker, Message, SubscriptionConfig};
///
/// /// Works on a delivery of any broker: in-process, durable, NATS.
/// fn describe<D: BrokerDelivery<Payload = String>>(d: &D) -> String {
///     format!("#{} attempt {}: {}", d.seq(), d.attempt(), d.payload())
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let broker = InProcessBroker::<String>::new();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("billing")).unwrap();
/// broker.publish("orders", Message::new("order 1".to_string())).await.unwrap();
/// let batch = sub.consumer().try_receive(1).unwrap();
/// assert_eq!(describe(&batch[0]), "#1 attempt 1: order 1");
/// # });
/// ```
pub trait BrokerDelivery: Send + Sync {
    /// The payload type.
    type Payload;

    /// The message's sequence number in its topic (stream sequence in JetStream).
    fn seq(&self) -> u64;
    /// The deduplication id it was published with, if any.
    fn message_id(&self) -> Option<&str>;
    /// The payload.
    fn payload(&self) -> &Self::Payload;
    /// The headers.
    fn headers(&self) -> &Headers;
    /// The subject.
    fn subject(&self) -> &str;
    /// The ordering key, if any.
    fn key(&self) -> Option<&str>;
    /// Which delivery of this message this is: 1 the first time.
    fn attempt(&self) -> u32;
}

/// A message broker: topics with fan-out subscriptions whose consumers compete, with
/// at-least-once delivery settled by ack / nack / in-progress / term, dead letters, delays,
/// ordering keys and deduplication.
///
/// Every method is async so that network-backed brokers fit; the in-process broker's are
/// ready at once except where it waits (a receive with nothing to take, a publish into a full
/// backlog whose policy is to wait). Check an implementation with
/// [`conformance::run`](super::conformance::run).
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{Broker, BrokerError, InProcessBroker, Message, SubscriptionConfig};
///
/// /// Code written against the trait runs on any broker (swap in a durable or NATS one).
/// async fn handle_one<B: Broker<Payload = u32>>(broker: &B) -> Result<Option<u32>, BrokerError> {
///     let sub = broker.subscribe("orders", SubscriptionConfig::new("billing")).await?;
///     let consumer = broker.consumer(&sub).await?;
///     let Some(delivery) = broker.receive(&consumer, 1, Duration::ZERO).await?.pop() else {
///         return Ok(None);
///     };
///     let amount = *levee_queue::broker::BrokerDelivery::payload(&delivery);
///     broker.ack(&delivery).await?;
///     Ok(Some(amount))
/// }
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let broker = InProcessBroker::<u32>::new();
/// broker.subscribe("orders", SubscriptionConfig::new("billing")).unwrap();
/// Broker::publish(&broker, "orders", Message::new(1_250)).await.unwrap();
/// assert_eq!(handle_one(&broker).await, Ok(Some(1_250)));
/// assert_eq!(handle_one(&broker).await, Ok(None)); // acked: gone
/// # });
/// ```
pub trait Broker: Send + Sync + 'static {
    /// What messages carry. (An adapter for a network broker serialises it.)
    type Payload: Send + Sync + 'static;
    /// A handle to one subscription.
    type Subscription: Send + Sync;
    /// One competing consumer of a subscription.
    type Consumer: Send + Sync;
    /// A leased message.
    type Delivery: BrokerDelivery<Payload = Self::Payload>;

    /// Publishes `message` to `topic`.
    fn publish(
        &self,
        topic: &str,
        message: Message<Self::Payload>,
    ) -> impl Future<Output = Result<Publish, BrokerError>> + Send;

    /// Creates (or binds to) the subscription `config.name` on `topic`.
    fn subscribe(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> impl Future<Output = Result<Self::Subscription, BrokerError>> + Send;

    /// A new consumer of `subscription`.
    fn consumer(
        &self,
        subscription: &Self::Subscription,
    ) -> impl Future<Output = Result<Self::Consumer, BrokerError>> + Send;

    /// Waits up to `wait` for messages and takes up to `max` (possibly none).
    ///
    /// Should be cancel-safe: [`serve`](super::serve) drops a pending receive when it shuts
    /// down, and a dropped receive should take nothing (an engine that cannot promise that
    /// redelivers what it took once the ack wait passes).
    fn receive(
        &self,
        consumer: &Self::Consumer,
        max: usize,
        wait: Duration,
    ) -> impl Future<Output = Result<Vec<Self::Delivery>, BrokerError>> + Send;

    /// The message is handled.
    ///
    /// # Errors
    /// [`BrokerError::AlreadySettled`] when the delivery was settled before,
    /// [`BrokerError::LeaseExpired`] when its lease ran out and the message was handed on
    /// (an engine that cannot tell the two apart returns one of them); the same for every
    /// verb below. A networked broker may also fail with its own transport errors.
    fn ack(
        &self,
        delivery: &Self::Delivery,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// The handler failed: redeliver after `nack.delay` (`None`: the subscription's
    /// backoff), and keep `nack.reason` in the message's attempt history, so the dead letter
    /// shows it ([`DeadLetter::last_reason`]).
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    fn nack(
        &self,
        delivery: &Self::Delivery,
        nack: Nack,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Still working: extend the lease.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    fn in_progress(
        &self,
        delivery: &Self::Delivery,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// Dead-letter now, with `reason`.
    ///
    /// # Errors
    /// As [`ack`](Self::ack).
    fn term(
        &self,
        delivery: &Self::Delivery,
        reason: &str,
    ) -> impl Future<Output = Result<(), BrokerError>> + Send;

    /// The subscription's dead letters, oldest first.
    fn dead_letters(
        &self,
        subscription: &Self::Subscription,
    ) -> impl Future<Output = Result<Vec<DeadLetter<Self::Payload>>, BrokerError>> + Send;

    /// Puts dead letters back for delivery; returns how many.
    fn replay(
        &self,
        subscription: &Self::Subscription,
        select: Select,
    ) -> impl Future<Output = Result<usize, BrokerError>> + Send;

    /// Deletes dead letters; returns how many.
    fn purge(
        &self,
        subscription: &Self::Subscription,
        select: Select,
    ) -> impl Future<Output = Result<usize, BrokerError>> + Send;

    /// Stops accepting publishes and receives.
    fn close(&self) -> impl Future<Output = ()> + Send;
}

impl<T: Send + Sync + 'static, C: Clock + Clone> BrokerDelivery for Delivery<T, C> {
    type Payload = T;

    fn seq(&self) -> u64 {
        Delivery::seq(self)
    }
    fn message_id(&self) -> Option<&str> {
        Delivery::message_id(self)
    }
    fn payload(&self) -> &T {
        Delivery::payload(self)
    }
    fn headers(&self) -> &Headers {
        Delivery::headers(self)
    }
    fn subject(&self) -> &str {
        Delivery::subject(self)
    }
    fn key(&self) -> Option<&str> {
        Delivery::key(self)
    }
    fn attempt(&self) -> u32 {
        Delivery::attempt(self)
    }
}

impl<T: Send + Sync + 'static, C: Clock + Clone> Broker for InProcessBroker<T, C> {
    type Payload = T;
    type Subscription = Subscription<T, C>;
    type Consumer = Consumer<T, C>;
    type Delivery = Delivery<T, C>;

    async fn publish(&self, topic: &str, message: Message<T>) -> Result<Publish, BrokerError> {
        InProcessBroker::publish(self, topic, message).await.map_err(BrokerError::from)
    }

    async fn subscribe(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> Result<Self::Subscription, BrokerError> {
        InProcessBroker::subscribe(self, topic, config)
    }

    async fn consumer(
        &self,
        subscription: &Self::Subscription,
    ) -> Result<Self::Consumer, BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        Ok(subscription.consumer())
    }

    async fn receive(
        &self,
        consumer: &Self::Consumer,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<Self::Delivery>, BrokerError> {
        consumer.receive_timeout(max, wait).await
    }

    async fn ack(&self, delivery: &Self::Delivery) -> Result<(), BrokerError> {
        delivery.ack()
    }

    async fn nack(&self, delivery: &Self::Delivery, nack: Nack) -> Result<(), BrokerError> {
        delivery.nack(nack)
    }

    async fn in_progress(&self, delivery: &Self::Delivery) -> Result<(), BrokerError> {
        delivery.in_progress().map(drop)
    }

    async fn term(&self, delivery: &Self::Delivery, reason: &str) -> Result<(), BrokerError> {
        delivery.term(reason)
    }

    async fn dead_letters(
        &self,
        subscription: &Self::Subscription,
    ) -> Result<Vec<DeadLetter<T>>, BrokerError> {
        Ok(subscription.dead_letters())
    }

    async fn replay(
        &self,
        subscription: &Self::Subscription,
        select: Select,
    ) -> Result<usize, BrokerError> {
        Ok(subscription.replay(select))
    }

    async fn purge(
        &self,
        subscription: &Self::Subscription,
        select: Select,
    ) -> Result<usize, BrokerError> {
        Ok(subscription.purge(select))
    }

    async fn close(&self) {
        InProcessBroker::close(self);
    }
}
