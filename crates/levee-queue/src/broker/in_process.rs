//! The in-process broker: topics by name, subscriptions, and shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use levee_core::sync::RwLock;
use levee_core::{Clock, ConfigError, EventHook, FastClock, Listener};

use super::config::{SubscriptionConfig, TopicConfig};
use super::error::BrokerError;
use super::event::BrokerEvent;
use super::message::Message;
use super::subject::SubjectFilter;
use super::subscription::{SubShared, Subscription};
use super::topic::{Publish, PublishError, Topic, TopicShared};

type TopicMap<T, C> = HashMap<Arc<str>, Arc<TopicShared<T, C>>>;

struct Inner<T, C> {
    clock: C,
    topics: RwLock<TopicMap<T, C>>,
    topic_defaults: TopicConfig,
    closed: Arc<AtomicBool>,
    hook: EventHook<BrokerEvent>,
    next_subscription: AtomicU64,
}

/// A broker that lives in this process: topics fan messages out to subscriptions, whose
/// consumers compete for them, with acks, lease deadlines, retries with backoff, dead
/// letters, delayed messages, ordering keys, deduplication and bounded backlogs.
///
/// Cheap to clone (clones share everything). Generic over the payload `T` (stored once per
/// message, shared by every subscription, never cloned by the broker) and the clock `C`.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
///
/// let broker = InProcessBroker::<String>::new();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("payment")).unwrap();
/// let consumer = sub.consumer();
///
/// broker.try_publish("orders", Message::new("order 1".to_string())).unwrap();
/// let batch = consumer.try_receive(10).unwrap();
/// assert_eq!(batch[0].payload(), "order 1");
/// batch[0].ack().unwrap();
/// assert_eq!(sub.stats().acked, 1);
/// ```
pub struct InProcessBroker<T, C: Clock = FastClock> {
    inner: Arc<Inner<T, C>>,
}

impl<T, C: Clock> Clone for InProcessBroker<T, C> {
    fn clone(&self) -> Self {
        Self { inner: Arc::clone(&self.inner) }
    }
}

impl<T, C: Clock> std::fmt::Debug for InProcessBroker<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBroker")
            .field("topics", &self.inner.topics.read().len())
            .field("closed", &self.inner.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl<T> Default for InProcessBroker<T, FastClock> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> InProcessBroker<T, FastClock> {
    /// A broker on the [`FastClock`] with default topic settings.
    #[must_use]
    pub fn new() -> Self {
        Self::builder().build()
    }

    /// A builder, to choose the clock, listeners and topic defaults.
    #[must_use]
    pub fn builder() -> InProcessBrokerBuilder<T, FastClock> {
        InProcessBrokerBuilder {
            clock: FastClock,
            topic_defaults: TopicConfig::default(),
            hook: EventHook::none(),
            _t: std::marker::PhantomData,
        }
    }
}

/// Builds an [`InProcessBroker`].
///
/// ```
/// use levee_core::ManualClock;
/// use levee_queue::broker::{BrokerEvent, InProcessBroker, TopicConfig};
///
/// let broker = InProcessBroker::<String>::builder()
///     .clock(ManualClock::new())
///     .topic_defaults(TopicConfig::new())
///     .listener(|e: &BrokerEvent| println!("{e:?}"))
///     .build();
/// assert!(broker.topics().is_empty());
/// ```
pub struct InProcessBrokerBuilder<T, C> {
    clock: C,
    topic_defaults: TopicConfig,
    hook: EventHook<BrokerEvent>,
    _t: std::marker::PhantomData<fn() -> T>,
}

/// The former name of [`InProcessBrokerBuilder`].
///
/// ```
/// #[allow(deprecated)]
/// use levee_queue::broker::{Builder, InProcessBroker};
///
/// #[allow(deprecated)]
/// let builder: Builder<u8, _> = InProcessBroker::<u8>::builder(); // prefer InProcessBrokerBuilder
/// assert!(builder.build().topics().is_empty());
/// ```
#[deprecated(
    since = "0.1.0",
    note = "renamed to `InProcessBrokerBuilder` (levee's `XBuilder` convention)"
)]
pub type Builder<T, C> = InProcessBrokerBuilder<T, C>;

impl<T, C> std::fmt::Debug for InProcessBrokerBuilder<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessBrokerBuilder")
            .field("topic_defaults", &self.topic_defaults)
            .finish_non_exhaustive()
    }
}

impl<T, C: Clock + Clone> InProcessBrokerBuilder<T, C> {
    /// Takes time from `clock` (a [`ManualClock`](levee_core::ManualClock) in tests).
    #[must_use]
    pub fn clock<C2: Clock + Clone>(self, clock: C2) -> InProcessBrokerBuilder<T, C2> {
        InProcessBrokerBuilder {
            clock,
            topic_defaults: self.topic_defaults,
            hook: self.hook,
            _t: std::marker::PhantomData,
        }
    }

    /// Adds a listener for [`BrokerEvent`]s.
    #[must_use]
    pub fn listener(mut self, listener: impl Listener<BrokerEvent> + 'static) -> Self {
        self.hook = self.hook.with(listener);
        self
    }

    /// Settings for topics created implicitly by `subscribe`.
    #[must_use]
    pub fn topic_defaults(mut self, config: TopicConfig) -> Self {
        self.topic_defaults = config;
        self
    }

    /// Builds the broker.
    ///
    /// # Errors
    /// A [`ConfigError`] when the topic defaults are invalid.
    pub fn try_build(self) -> Result<InProcessBroker<T, C>, ConfigError> {
        self.topic_defaults.validate()?;
        Ok(self.build())
    }

    /// Builds the broker; invalid topic defaults surface when a topic is created from them.
    #[must_use]
    pub fn build(self) -> InProcessBroker<T, C> {
        InProcessBroker {
            inner: Arc::new(Inner {
                clock: self.clock,
                topics: RwLock::new(HashMap::new()),
                topic_defaults: self.topic_defaults,
                closed: Arc::new(AtomicBool::new(false)),
                hook: self.hook,
                next_subscription: AtomicU64::new(1),
            }),
        }
    }
}

impl<T, C: Clock + Clone> InProcessBroker<T, C> {
    /// The broker's clock.
    #[must_use]
    pub fn clock(&self) -> &C {
        &self.inner.clock
    }

    fn topic_shared(&self, name: &str) -> Option<Arc<TopicShared<T, C>>> {
        self.inner.topics.read().get(name).cloned()
    }

    /// Creates topic `name` with `config`, or returns it if it exists with the same settings.
    ///
    /// # Errors
    /// [`BrokerError::Closed`]; [`BrokerError::Config`] for invalid settings, an empty name,
    /// or a topic that exists with other settings.
    pub fn create_topic(
        &self,
        name: &str,
        config: TopicConfig,
    ) -> Result<Topic<T, C>, BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        if name.is_empty() {
            return Err(ConfigError::new("topic", "must not be empty").into());
        }
        config.validate()?;
        let mut topics = self.inner.topics.write();
        if let Some(existing) = topics.get(name) {
            if existing.config != config {
                return Err(ConfigError::new(
                    "topic",
                    format!("`{name}` exists with other settings"),
                )
                .into());
            }
            return Ok(Topic { shared: Arc::clone(existing) });
        }
        let name: Arc<str> = name.into();
        let shared = Arc::new(TopicShared::new(
            Arc::clone(&name),
            config,
            self.inner.clock.clone(),
            Arc::clone(&self.inner.closed),
            self.inner.hook.clone(),
        ));
        topics.insert(name, Arc::clone(&shared));
        Ok(Topic { shared })
    }

    /// The topic called `name`, if it exists.
    #[must_use]
    pub fn topic(&self, name: &str) -> Option<Topic<T, C>> {
        self.topic_shared(name).map(|shared| Topic { shared })
    }

    /// Names of every topic.
    #[must_use]
    pub fn topics(&self) -> Vec<String> {
        self.inner.topics.read().keys().map(|k| k.to_string()).collect()
    }

    /// Subscribes to `topic` (created with the default settings if missing). Subscribing
    /// again with the same name and settings returns the existing subscription: it is durable
    /// for the broker's life, and new consumers join it.
    ///
    /// # Errors
    /// [`BrokerError::Closed`]; [`BrokerError::Config`] for a setting out of range;
    /// [`BrokerError::InvalidFilter`]; [`BrokerError::SubscriptionMismatch`] when the name is
    /// taken with other settings.
    pub fn subscribe(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> Result<Subscription<T, C>, BrokerError> {
        if self.is_closed() {
            return Err(BrokerError::Closed);
        }
        config.validate()?;
        let filter = config.filter.as_deref().map(SubjectFilter::new).transpose()?;
        let topic = match self.topic_shared(topic) {
            Some(t) => t,
            None => match self.create_topic(topic, self.inner.topic_defaults.clone()) {
                Ok(t) => t.shared,
                // Another thread created it with explicit settings meanwhile: use that one.
                Err(e) => self.topic_shared(topic).ok_or(e)?,
            },
        };
        let mut subs = topic.subs.write();
        if let Some(existing) = subs.iter().find(|s| *s.name == *config.name) {
            if existing.config() != config {
                return Err(BrokerError::SubscriptionMismatch { subscription: config.name });
            }
            return Ok(Subscription { shared: Arc::clone(existing) });
        }
        let id = self.inner.next_subscription.fetch_add(1, Ordering::Relaxed);
        let shared = Arc::new(SubShared::new(
            id,
            Arc::clone(&topic.name),
            config,
            filter,
            self.inner.clock.clone(),
            self.inner.hook.clone(),
            Arc::clone(&self.inner.closed),
        ));
        subs.push(Arc::clone(&shared));
        Ok(Subscription { shared })
    }

    /// Every subscription of every topic (for metrics exporters and operator tools).
    #[must_use]
    pub fn subscriptions(&self) -> Vec<Subscription<T, C>> {
        self.all_subscriptions().into_iter().map(|shared| Subscription { shared }).collect()
    }

    /// The subscription `name` of `topic`, if it exists.
    #[must_use]
    pub fn subscription(&self, topic: &str, name: &str) -> Option<Subscription<T, C>> {
        let topic = self.topic_shared(topic)?;
        let subs = topic.subs.read();
        subs.iter().find(|s| &*s.name == name).map(|s| Subscription { shared: Arc::clone(s) })
    }

    /// Removes subscription `name` from `topic`: it gets no new message and the messages it
    /// still held are discarded with it (they were for this subscription alone); deliveries
    /// already out can still be settled. Returns whether it existed.
    pub fn unsubscribe(&self, topic: &str, name: &str) -> bool {
        let Some(topic) = self.topic_shared(topic) else { return false };
        let mut subs = topic.subs.write();
        let before = subs.len();
        subs.retain(|s| &*s.name != name);
        before != subs.len()
    }

    /// Publishes to `topic` without waiting.
    ///
    /// # Errors
    /// [`BrokerError::NoSuchTopic`], and everything [`Topic::try_publish`] returns; the
    /// message comes back in the error.
    pub fn try_publish(
        &self,
        topic: &str,
        message: Message<T>,
    ) -> Result<Publish, PublishError<T>> {
        match self.topic_shared(topic) {
            Some(t) => t.try_publish(message),
            None => Err(PublishError { error: self.no_topic(topic), message }),
        }
    }

    /// Publishes to `topic`, waiting for backlog room where the policy says so.
    ///
    /// # Errors
    /// As [`try_publish`](Self::try_publish), see [`Topic::publish`].
    pub async fn publish(
        &self,
        topic: &str,
        message: Message<T>,
    ) -> Result<Publish, PublishError<T>> {
        match self.topic_shared(topic) {
            Some(t) => t.publish(message).await,
            None => Err(PublishError { error: self.no_topic(topic), message }),
        }
    }

    fn no_topic(&self, topic: &str) -> BrokerError {
        if self.is_closed() {
            BrokerError::Closed
        } else {
            BrokerError::NoSuchTopic { topic: topic.into() }
        }
    }

    /// Applies due timers and expired leases in every subscription, and wakes whoever waits.
    /// Receives do this for their own subscription; a test that moves a manual clock calls
    /// this to let waiting receivers see the new time.
    pub fn tick(&self) {
        for sub in self.all_subscriptions() {
            sub.tick();
        }
    }

    /// Calls [`tick`](Self::tick) every `period` (tokio time) until the broker is closed.
    ///
    /// Receivers apply timers and lease expiries themselves; run this (spawned) when
    /// statistics and dead-letter queues must stay current even while no consumer receives,
    /// for example after every consumer of a subscription crashed.
    ///
    /// # Panics
    /// Outside a tokio runtime with time enabled.
    pub async fn drive(&self, period: Duration) {
        let mut interval = tokio::time::interval(period.max(Duration::from_millis(1)));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !self.is_closed() {
            interval.tick().await;
            self.tick();
        }
    }

    fn all_subscriptions(&self) -> Vec<Arc<SubShared<T, C>>> {
        let topics: Vec<_> = self.inner.topics.read().values().cloned().collect();
        topics.iter().flat_map(|t| t.subs.read().clone()).collect()
    }

    /// Closes the broker: publishes and receives fail with [`BrokerError::Closed`] from now on
    /// and waiting ones wake up; deliveries already out can still be settled.
    pub fn close(&self) {
        if !self.inner.closed.swap(true, Ordering::AcqRel) {
            self.inner.hook.emit(|| BrokerEvent::Closed);
        }
        for sub in self.all_subscriptions() {
            sub.wake_all();
        }
    }

    /// True once [`close`](Self::close) was called.
    #[must_use]
    pub fn is_closed(&self) -> bool {
        self.inner.closed.load(Ordering::Acquire)
    }
}
