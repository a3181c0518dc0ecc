//! Messages on their way in ([`Message`]) and as the broker keeps them ([`StoredMessage`]).

use std::sync::Arc;
use std::time::Duration;

/// Key-value headers of a message, in the order they were added.
///
/// Empty headers allocate nothing.
///
/// ```
/// use levee_queue::broker::{Headers, Message};
///
/// let mut headers = Headers::new();
/// headers.insert("trace-id", "4bf92f35");
/// let message = Message::new("order 7").headers(headers).header("tenant", "acme");
/// assert_eq!(message.header_map().get("trace-id"), Some("4bf92f35"));
/// assert_eq!(message.header_map().len(), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    #[must_use]
    pub const fn new() -> Self {
        Self(Vec::new())
    }

    /// Adds a header (a name may appear more than once).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }

    /// The first value of `name`, if any.
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }

    /// Every `(name, value)` pair in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// Number of headers.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True when there is no header.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Headers {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        Self(iter.into_iter().map(|(n, v)| (n.into(), v.into())).collect())
    }
}

/// When a published message becomes deliverable.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::{Message, Schedule};
///
/// assert_eq!(Message::new(()).schedule(), Schedule::Now);
/// assert_eq!(Message::new(()).delay(Duration::from_secs(5)).schedule(), Schedule::Delay(Duration::from_secs(5)));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Schedule {
    /// As soon as it is published.
    #[default]
    Now,
    /// This long after it is published.
    Delay(Duration),
    /// Not before this reading of the broker's clock (nanoseconds).
    NotBefore(u64),
}

/// A message to publish: a payload plus optional id, subject, ordering key, headers and
/// schedule.
///
/// ```
/// use std::time::Duration;
/// use levee_queue::broker::Message;
///
/// let msg = Message::new("order 17 placed")
///     .id("order-17")                 // deduplication id
///     .subject("orders.placed")       // matched against subscription filters
///     .key("customer-3")              // same key: delivered in order, one at a time
///     .header("trace-id", "abc")
///     .delay(Duration::from_secs(5)); // not deliverable for 5 s
/// assert_eq!(msg.message_id(), Some("order-17"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message<T> {
    pub(crate) payload: T,
    /// Everything optional, boxed: a plain message is its payload plus one null pointer, and
    /// allocates nothing beyond the payload.
    pub(crate) meta: Option<Box<Meta>>,
}

/// The optional parts of a [`Message`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) id: Option<String>,
    pub(crate) subject: Option<String>,
    /// Shared with the subscription's per-key bookkeeping, hence an `Arc` from the start.
    pub(crate) key: Option<Arc<str>>,
    pub(crate) headers: Headers,
    pub(crate) schedule: Schedule,
}

static NO_HEADERS: Headers = Headers::new();

impl<T> Message<T> {
    /// A message carrying `payload`, deliverable now, with no id, key or header; its subject
    /// is the topic's name.
    pub const fn new(payload: T) -> Self {
        Self { payload, meta: None }
    }

    fn meta(&mut self) -> &mut Meta {
        self.meta.get_or_insert_with(Box::default)
    }

    /// Sets the deduplication id: a second message with the same id on the same topic within
    /// the topic's dedup window is not delivered again (publish says `Duplicate`).
    #[must_use]
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.meta().id = Some(id.into());
        self
    }

    /// Sets the subject (dot-separated tokens such as `orders.placed`) that subscription
    /// filters match against. Defaults to the topic's name.
    #[must_use]
    pub fn subject(mut self, subject: impl Into<String>) -> Self {
        self.meta().subject = Some(subject.into());
        self
    }

    /// Sets the ordering key: messages with the same key are delivered in publish order, one
    /// in flight at a time per subscription; different keys proceed in parallel.
    #[must_use]
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.meta().key = Some(Arc::from(key.into()));
        self
    }

    /// Adds a header.
    #[must_use]
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.meta().headers.insert(name, value);
        self
    }

    /// Replaces all headers.
    #[must_use]
    pub fn headers(mut self, headers: Headers) -> Self {
        self.meta().headers = headers;
        self
    }

    /// Delivers the message no sooner than `delay` after it is published.
    #[must_use]
    pub fn delay(mut self, delay: Duration) -> Self {
        self.meta().schedule = Schedule::Delay(delay);
        self
    }

    /// Delivers the message no sooner than `nanos` on the broker's clock.
    #[must_use]
    pub fn not_before(mut self, nanos: u64) -> Self {
        self.meta().schedule = Schedule::NotBefore(nanos);
        self
    }

    /// The deduplication id, if set.
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.meta.as_ref()?.id.as_deref()
    }

    /// The subject, if set.
    #[must_use]
    pub fn subject_ref(&self) -> Option<&str> {
        self.meta.as_ref()?.subject.as_deref()
    }

    /// The ordering key, if set.
    #[must_use]
    pub fn key_ref(&self) -> Option<&str> {
        self.meta.as_ref()?.key.as_deref()
    }

    /// The headers (empty if none were added).
    #[must_use]
    pub fn header_map(&self) -> Headers {
        self.meta.as_ref().map(|m| m.headers.clone()).unwrap_or_default()
    }

    /// The payload.
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// The schedule.
    #[must_use]
    pub fn schedule(&self) -> Schedule {
        self.meta.as_ref().map_or(Schedule::Now, |m| m.schedule)
    }

    /// Gives the payload back.
    pub fn into_payload(self) -> T {
        self.payload
    }
}

/// A published message as the broker keeps it: immutable, shared by every subscription it
/// was routed to (the payload is stored once however many subscriptions receive it).
///
/// A message published without id, subject, key or headers is one allocation of 48 bytes
/// plus the payload; those optional parts live in the box the [`Message`] already had.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
///
/// # tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap().block_on(async {
/// let broker = InProcessBroker::<String>::new();
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("billing")).unwrap();
/// broker.publish("orders", Message::new("order 7".to_string()).key("customer-3")).await.unwrap();
///
/// let batch = sub.consumer().try_receive(1).unwrap();
/// let stored = batch[0].message(); // an Arc<StoredMessage<String>>, shared by every subscription
/// assert_eq!(stored.payload(), "order 7");
/// assert_eq!(stored.key(), Some("customer-3"));
/// assert_eq!(stored.seq(), batch[0].seq());
/// # });
/// ```
#[derive(Debug)]
pub struct StoredMessage<T> {
    pub(crate) seq: u64,
    pub(crate) published_at: u64,
    pub(crate) ready_at: u64,
    pub(crate) meta: Option<Box<Meta>>,
    pub(crate) payload: T,
}

impl<T> StoredMessage<T> {
    /// A stored message made from `message`, as a broker that keeps messages elsewhere (a
    /// networked engine) rebuilds it: `seq` in its topic, published and first deliverable at
    /// those readings of the broker's clock (nanoseconds).
    #[must_use]
    pub fn new(seq: u64, published_at: u64, ready_at: u64, message: Message<T>) -> Self {
        Self { seq, published_at, ready_at, meta: message.meta, payload: message.payload }
    }

    /// When a subscription may deliver it: `ready_at`, or `0` (at once) when it was
    /// published without a delay. The publisher stamps `ready_at` from its own clock read,
    /// and the thread that moves it into a subscription may hold an earlier reading; compared
    /// with that reading, an undelayed message would look a few nanoseconds early and wait
    /// for a timer instead of being delivered.
    #[inline]
    pub(crate) fn due(&self) -> u64 {
        if self.ready_at <= self.published_at { 0 } else { self.ready_at }
    }

    /// The sequence number the topic gave the message: unique within the topic, increasing
    /// in publish order.
    #[must_use]
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// The deduplication id it was published with, if any.
    #[must_use]
    pub fn message_id(&self) -> Option<&str> {
        self.meta.as_ref()?.id.as_deref()
    }

    /// The subject it was published with; `None` means the topic's name.
    #[must_use]
    pub fn subject(&self) -> Option<&str> {
        self.meta.as_ref()?.subject.as_deref()
    }

    /// The ordering key, if any.
    #[must_use]
    pub fn key(&self) -> Option<&str> {
        self.meta.as_ref()?.key.as_deref()
    }

    pub(crate) fn key_arc(&self) -> Option<&Arc<str>> {
        self.meta.as_ref()?.key.as_ref()
    }

    /// The headers.
    #[must_use]
    pub fn headers(&self) -> &Headers {
        self.meta.as_ref().map_or(&NO_HEADERS, |m| &m.headers)
    }

    /// The payload.
    #[must_use]
    pub fn payload(&self) -> &T {
        &self.payload
    }

    /// When it was published, on the broker's clock (nanoseconds).
    #[must_use]
    pub fn published_at(&self) -> u64 {
        self.published_at
    }

    /// When it first became deliverable (publish time, or later for a delayed message).
    #[must_use]
    pub fn ready_at(&self) -> u64 {
        self.ready_at
    }
}
