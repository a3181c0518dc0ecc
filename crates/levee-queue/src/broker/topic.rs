//! Topics: where messages are published and fanned out to subscriptions.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use levee_core::sync::{Mutex, MutexGuard, RwLock};
use levee_core::{Clock, Counter, EventHook, FastClock, nanos};

use super::config::{Overflow, TopicConfig};
use super::dedup::Dedup;
use super::error::BrokerError;
use super::event::BrokerEvent;
use super::message::{Message, Schedule, StoredMessage};
use super::stats::TopicStats;
use super::subject::validate_subject;
use super::subscription::{Ingress, SubShared, Subscription};

/// What a publish did.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, Publish, SubscriptionConfig};
///
/// let broker = InProcessBroker::<u8>::new();
/// broker.subscribe("t", SubscriptionConfig::new("s")).unwrap();
/// let first = broker.try_publish("t", Message::new(1).id("m-1")).unwrap();
/// assert!(matches!(first, Publish::Published { .. }));
/// let again = broker.try_publish("t", Message::new(1).id("m-1")).unwrap();
/// assert_eq!(again, Publish::Duplicate { seq: first.seq() });
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Publish {
    /// The message was accepted as `seq` and routed to this many subscriptions (zero when
    /// none matched: a topic keeps nothing for subscriptions that do not exist yet).
    Published {
        /// Its sequence number in the topic.
        seq: u64,
        /// Subscriptions it was routed to.
        subscriptions: usize,
    },
    /// A message with the same id was published within the dedup window; this one was not
    /// delivered again.
    Duplicate {
        /// The sequence number of the original.
        seq: u64,
    },
}

impl Publish {
    /// The sequence number of the message (the original's for a duplicate).
    #[must_use]
    pub fn seq(&self) -> u64 {
        match *self {
            Self::Published { seq, .. } | Self::Duplicate { seq } => seq,
        }
    }

    /// True for [`Publish::Duplicate`].
    #[must_use]
    pub fn is_duplicate(&self) -> bool {
        matches!(self, Self::Duplicate { .. })
    }
}

/// A refused publish: the error, and the message handed back.
///
/// ```
/// use levee_queue::broker::{BrokerError, InProcessBroker, Message};
///
/// let broker = InProcessBroker::<String>::new();
/// broker.close();
/// let refused = broker.try_publish("t", Message::new("keep me".to_string())).unwrap_err();
/// assert!(matches!(refused.error, BrokerError::Closed));
/// assert_eq!(refused.into_message().into_payload(), "keep me"); // nothing is lost
/// ```
#[derive(Debug)]
pub struct PublishError<T> {
    /// Why.
    pub error: BrokerError,
    /// The message, unchanged.
    pub message: Message<T>,
}

impl<T> PublishError<T> {
    /// The message back.
    pub fn into_message(self) -> Message<T> {
        self.message
    }
}

impl<T> std::fmt::Display for PublishError<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.error.fmt(f)
    }
}

impl<T: std::fmt::Debug> std::error::Error for PublishError<T> {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.error)
    }
}

impl<T> From<PublishError<T>> for BrokerError {
    fn from(e: PublishError<T>) -> Self {
        e.error
    }
}

pub(crate) struct TopicShared<T, C> {
    pub(crate) name: Arc<str>,
    pub(crate) config: TopicConfig,
    pub(crate) subs: RwLock<Vec<Arc<SubShared<T, C>>>>,
    dedup: Mutex<Dedup>,
    seq: AtomicU64,
    duplicates: Counter,
    unrouted: Counter,
    clock: C,
    closed: Arc<AtomicBool>,
    hook: EventHook<BrokerEvent>,
}

/// A failed attempt, with the full subscription when that was the reason.
struct Refused<T, C> {
    error: BrokerError,
    message: Message<T>,
    full: Option<Arc<SubShared<T, C>>>,
}

impl<T, C: Clock> TopicShared<T, C> {
    pub(crate) fn new(
        name: Arc<str>,
        config: TopicConfig,
        clock: C,
        closed: Arc<AtomicBool>,
        hook: EventHook<BrokerEvent>,
    ) -> Self {
        let dedup = Dedup::new(nanos(config.dedup_window), config.dedup_capacity);
        Self {
            name,
            config,
            subs: RwLock::new(Vec::new()),
            dedup: Mutex::new(dedup),
            seq: AtomicU64::new(1),
            duplicates: Counter::new(),
            unrouted: Counter::new(),
            clock,
            closed,
            hook,
        }
    }

    pub(crate) fn stats(&self) -> TopicStats {
        TopicStats {
            // Sequence numbers start at 1 and are taken only by accepted messages.
            published: self.seq.load(Ordering::Relaxed) - 1,
            duplicates: self.duplicates.get(),
            unrouted: self.unrouted.get(),
            subscriptions: self.subs.read().len(),
        }
    }

    fn try_publish_inner(&self, message: Message<T>) -> Result<Publish, Refused<T, C>> {
        let refuse = |error, message| Err(Refused { error, message, full: None });
        if self.closed.load(Ordering::Acquire) {
            return refuse(BrokerError::Closed, message);
        }
        if let Some(subject) = message.subject_ref()
            && let Err(e) = validate_subject(subject)
        {
            return refuse(e, message);
        }
        let now = self.clock.now();
        // Deduplication holds its lock across the publish, so two publishes of one id cannot
        // both pass the check. Lock order: dedup, then subscriptions in list order.
        let mut dedup = match message.message_id() {
            Some(id) => {
                let mut dedup = self.dedup.lock();
                if dedup.enabled() {
                    if let Some(seq) = dedup.check(id, now) {
                        self.duplicates.incr();
                        let (topic, message_id) = (Arc::clone(&self.name), id.to_owned());
                        drop(dedup);
                        self.hook.emit(|| BrokerEvent::Duplicate {
                            topic,
                            message_id,
                            original_seq: seq,
                        });
                        return Ok(Publish::Duplicate { seq });
                    }
                    Some(dedup)
                } else {
                    None
                }
            }
            None => None,
        };

        let subject: &str = message.subject_ref().unwrap_or(&self.name);
        let subs = self.subs.read();
        let mut targets = Targets::new();
        // Lock every target's ingress in list order and check them all before changing any,
        // so a fan-out publish lands everywhere or nowhere.
        loop {
            let mut full = None;
            for sub in subs.iter().filter(|s| s.filter.as_ref().is_none_or(|f| f.matches(subject)))
            {
                let ingress = sub.lock_ingress();
                if !sub.has_room(&ingress) {
                    full = Some(sub);
                    break;
                }
                targets.push(Target { sub, ingress: Some(ingress) });
            }
            let Some(sub) = full else { break };
            targets.clear();
            // The oldest ready message makes room (this takes the core lock, so no ingress
            // lock may be held here); then the whole check starts again.
            if sub.overflow == Overflow::DeadLetterOldest && sub.make_room() {
                continue;
            }
            sub.count_rejected();
            let error =
                BrokerError::Full { subscription: sub.name.to_string(), capacity: sub.max_backlog };
            return Err(Refused { error, message, full: Some(Arc::clone(sub)) });
        }

        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let ready_at = match message.schedule() {
            Schedule::Now => now,
            Schedule::Delay(d) => now.saturating_add(nanos(d)),
            Schedule::NotBefore(at) => at.max(now),
        };
        let Message { payload, meta } = message;
        let stored = Arc::new(StoredMessage { seq, published_at: now, ready_at, meta, payload });
        if let (Some(dedup), Some(id)) = (dedup.as_mut(), stored.message_id()) {
            dedup.record(id, seq, now);
        }
        // Every target but the last gets a clone; the last takes the original.
        let mut stored = Some(stored);
        let mut remaining = targets.len;
        targets.for_each(|t| {
            remaining -= 1;
            let msg = if remaining == 0 { stored.take() } else { stored.clone() };
            if let (Some(ingress), Some(msg)) = (t.ingress.as_mut(), msg) {
                ingress.queue.push(msg);
            }
        });
        drop(dedup);
        let routed = targets.len;
        targets.unlock_and_wake();
        drop(subs);
        if routed == 0 {
            self.unrouted.incr();
        }
        Ok(Publish::Published { seq, subscriptions: routed })
    }

    pub(crate) fn try_publish(&self, message: Message<T>) -> Result<Publish, PublishError<T>> {
        self.try_publish_inner(message)
            .map_err(|r| PublishError { error: r.error, message: r.message })
    }

    pub(crate) async fn publish(
        &self,
        mut message: Message<T>,
    ) -> Result<Publish, PublishError<T>> {
        loop {
            match self.try_publish_inner(message) {
                Ok(p) => return Ok(p),
                Err(Refused { message: m, full: Some(sub), .. })
                    if sub.overflow == Overflow::Wait =>
                {
                    sub.wait_for_space().await;
                    message = m;
                }
                Err(r) => return Err(PublishError { error: r.error, message: r.message }),
            }
        }
    }
}

/// One subscription a publish goes to, its ingress locked.
struct Target<'a, T, C> {
    sub: &'a Arc<SubShared<T, C>>,
    ingress: Option<MutexGuard<'a, Ingress<T>>>,
}

/// The locked targets of a publish: the first few inline, so the common publish (one to a
/// handful of subscriptions) allocates nothing here.
struct Targets<'a, T, C> {
    inline: [Option<Target<'a, T, C>>; 4],
    spill: Vec<Target<'a, T, C>>,
    len: usize,
}

impl<'a, T, C: Clock> Targets<'a, T, C> {
    fn new() -> Self {
        Self { inline: [const { None }; 4], spill: Vec::new(), len: 0 }
    }

    fn push(&mut self, target: Target<'a, T, C>) {
        match self.inline.get_mut(self.len) {
            Some(slot) => *slot = Some(target),
            None => self.spill.push(target),
        }
        self.len += 1;
    }

    fn for_each(&mut self, mut f: impl FnMut(&mut Target<'a, T, C>)) {
        self.inline.iter_mut().flatten().chain(self.spill.iter_mut()).for_each(&mut f);
    }

    /// Releases every lock.
    fn clear(&mut self) {
        self.inline = [const { None }; 4];
        self.spill.clear();
        self.len = 0;
    }

    /// Releases every lock, then wakes each target's waiting receivers.
    fn unlock_and_wake(mut self) {
        self.for_each(|t| t.ingress = None);
        self.for_each(|t| t.sub.wake_receivers());
    }
}

/// A handle for publishing to one topic without looking it up by name each time.
///
/// ```
/// use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig, TopicConfig};
///
/// let broker = InProcessBroker::<u8>::new();
/// let topic = broker.create_topic("metrics", TopicConfig::new()).unwrap();
/// broker.subscribe("metrics", SubscriptionConfig::new("store")).unwrap();
/// topic.try_publish(Message::new(1)).unwrap(); // no lookup by name on this path
/// assert_eq!(topic.stats().published, 1);
/// ```
pub struct Topic<T, C: Clock = FastClock> {
    pub(crate) shared: Arc<TopicShared<T, C>>,
}

impl<T, C: Clock> Clone for Topic<T, C> {
    fn clone(&self) -> Self {
        Self { shared: Arc::clone(&self.shared) }
    }
}

impl<T, C: Clock> std::fmt::Debug for Topic<T, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Topic").field("name", &self.shared.name).finish_non_exhaustive()
    }
}

impl<T, C: Clock> Topic<T, C> {
    /// The topic's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Its settings.
    #[must_use]
    pub fn config(&self) -> &TopicConfig {
        &self.shared.config
    }

    /// Publishes without waiting.
    ///
    /// # Errors
    /// [`BrokerError::Closed`], [`BrokerError::InvalidSubject`], or [`BrokerError::Full`]
    /// when a subscription's backlog is full (whatever its overflow policy, since this call
    /// cannot wait); the message comes back in the error.
    pub fn try_publish(&self, message: Message<T>) -> Result<Publish, PublishError<T>> {
        self.shared.try_publish(message)
    }

    /// Publishes, waiting for room in subscriptions whose policy is [`Overflow::Wait`].
    ///
    /// Cancel-safe: dropping the future before it completes publishes nothing.
    ///
    /// # Errors
    /// As [`try_publish`](Self::try_publish), except that `Full` only comes from
    /// subscriptions with another policy.
    pub async fn publish(&self, message: Message<T>) -> Result<Publish, PublishError<T>> {
        self.shared.publish(message).await
    }

    /// The topic's counters.
    #[must_use]
    pub fn stats(&self) -> TopicStats {
        self.shared.stats()
    }

    /// Its subscriptions, in creation order.
    #[must_use]
    pub fn subscriptions(&self) -> Vec<Subscription<T, C>> {
        self.shared.subs.read().iter().map(|s| Subscription { shared: Arc::clone(s) }).collect()
    }
}
