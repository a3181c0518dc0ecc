//! Subscriptions (durable pull consumers), their competing consumers, and receiving.
//!
//! A receive is one JetStream pull request with `no_wait` and `expires`: the server answers
//! as soon as it has any message (up to the batch size) or when `wait` runs out, which is
//! exactly "wait up to `wait`, take up to `max`". Each delivered message is then *admitted*:
//!
//! 1. A redelivery (JetStream's delivered count above 1) reads the message's failure record
//!    from the KV bucket. Failures are what the adapter itself recorded (nacks and dropped
//!    deliveries); every other ended attempt was a lease expiry, so
//!    `expiries = delivered - 1 - failures`. At `max_lease_expiries` the message is
//!    dead-lettered instead of handed out.
//! 2. A message with an ordering key is handed out only if it is the key's head: the first
//!    message of that key after the key's cursor (KV `c.<sub>.<key>`, the last sequence
//!    settled for good), found with a direct get by subject. Otherwise it is *parked* in this
//!    process, its lease kept alive with in-progress by a keeper task, and released on a
//!    later receive once the cursor reaches it.
//! 3. The payload is decoded; one that cannot be is dead-lettered.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::PullConsumer};
use futures::StreamExt;
use levee_core::ConfigError;
use levee_queue::broker::{
    AttemptOutcome, AttemptRecord, BrokerError, DeadLetterReason, Overflow, SubjectFilter,
    SubscriptionConfig, TopicConfig,
};
use tokio::sync::Notify;

use crate::broker::{
    H_MSG_ID, H_SEQ, META_CONFIG, NatsBroker, TopicHandle, levee_headers, unix_nanos,
};
use crate::codec::Codec;
use crate::delivery::{Lease, NatsDelivery, Source};
use crate::error::nats;
use crate::names::{cursor_key, decode_token, state_key};
use crate::record::FailureState;

/// A subscription on a NATS topic: a durable JetStream pull consumer. Cheap to clone.
///
/// ```no_run
/// use levee_nats::{NatsBroker, NatsSubscription};
/// use levee_queue::broker::{Broker, SubscriptionConfig};
///
/// # async fn example() -> Result<(), levee_queue::broker::BrokerError> {
/// let broker = NatsBroker::<String>::builder("nats://127.0.0.1:4222").connect().await?;
/// // A durable JetStream pull consumer: subscribing again with the same settings binds to it.
/// let sub: NatsSubscription = broker.subscribe("orders", SubscriptionConfig::new("payment")).await?;
/// assert_eq!((sub.topic(), sub.name()), ("orders", "payment"));
/// let dead = broker.dead_letters(&sub).await?;
/// println!("{} dead letters, {} parked behind their key", dead.len(), sub.parked());
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct NatsSubscription {
    pub(crate) shared: Arc<SubShared>,
}

impl std::fmt::Debug for NatsSubscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsSubscription")
            .field("topic", &self.shared.topic.names.topic)
            .field("name", &self.shared.config.name)
            .finish_non_exhaustive()
    }
}

impl NatsSubscription {
    /// The subscription's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.shared.config.name
    }

    /// The topic's name.
    #[must_use]
    pub fn topic(&self) -> &str {
        &self.shared.topic.names.topic
    }

    /// The settings it was created with.
    #[must_use]
    pub fn config(&self) -> &SubscriptionConfig {
        &self.shared.config
    }

    /// Messages of this subscription parked in this process behind their ordering key's
    /// head (fetched, not handed out).
    #[must_use]
    pub fn parked(&self) -> usize {
        self.shared.lock_parked().values().map(BTreeMap::len).sum()
    }
}

/// One competing consumer of a [`NatsSubscription`]: its own in-flight count against
/// `max_in_flight_per_consumer`.
///
/// ```no_run
/// use std::time::Duration;
/// use levee_nats::{NatsBroker, NatsConsumer};
/// use levee_queue::broker::{Broker, SubscriptionConfig};
///
/// # async fn example() -> Result<(), levee_queue::broker::BrokerError> {
/// let broker = NatsBroker::<String>::builder("nats://127.0.0.1:4222").connect().await?;
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("payment")).await?;
/// // Two workers compete for the subscription's messages.
/// let (a, b): (NatsConsumer, NatsConsumer) = (broker.consumer(&sub).await?, broker.consumer(&sub).await?);
/// let batch = broker.receive(&a, 10, Duration::from_secs(1)).await?;
/// assert_eq!(a.in_flight(), batch.len());
/// assert_eq!(b.in_flight(), 0);
/// # Ok(())
/// # }
/// ```
pub struct NatsConsumer {
    pub(crate) sub: Arc<SubShared>,
    pub(crate) slots: Arc<Slots>,
}

impl std::fmt::Debug for NatsConsumer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsConsumer")
            .field("subscription", &self.sub.config.name)
            .field("in_flight", &self.slots.in_flight.load(Ordering::Relaxed))
            .finish()
    }
}

impl NatsConsumer {
    /// Deliveries this consumer holds and has not settled.
    #[must_use]
    pub fn in_flight(&self) -> usize {
        self.slots.in_flight.load(Ordering::Acquire)
    }
}

/// A consumer's in-flight count; settling wakes a receive waiting for room.
#[derive(Debug, Default)]
pub(crate) struct Slots {
    pub(crate) in_flight: AtomicUsize,
    pub(crate) freed: Notify,
}

impl Slots {
    pub(crate) fn release(&self) {
        self.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.freed.notify_waiters();
    }
}

/// The body of an ack.
pub(crate) const ACK: &[u8] = b"+ACK";

/// Messages parked behind their key's head: key token -> stream sequence -> message.
type Parked = BTreeMap<String, BTreeMap<u64, Box<jetstream::Message>>>;

pub(crate) struct SubShared {
    pub(crate) topic: Arc<TopicHandle>,
    pub(crate) config: SubscriptionConfig,
    /// The JetStream consumer; replaced when the server deleted it (idle expiry, or by hand)
    /// and [`NatsBroker::recreate_consumer`] made it again.
    consumer: Mutex<Arc<PullConsumer>>,
    pub(crate) client: async_nats::Client,
    pub(crate) confirm_acks: bool,
    pub(crate) request_timeout: Duration,
    /// Where leases are measured from.
    pub(crate) epoch: Instant,
    parked: Mutex<Parked>,
    keeper: Mutex<Option<tokio::task::AbortHandle>>,
}

impl Drop for SubShared {
    fn drop(&mut self) {
        if let Some(keeper) = self.keeper.get_mut().ok().and_then(Option::take) {
            keeper.abort();
        }
    }
}

impl SubShared {
    fn lock_parked(&self) -> std::sync::MutexGuard<'_, Parked> {
        self.parked.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_consumer(&self) -> std::sync::MutexGuard<'_, Arc<PullConsumer>> {
        self.consumer.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub(crate) fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    pub(crate) fn ack_wait_nanos(&self) -> u64 {
        u64::try_from(self.config.ack_wait.as_nanos()).unwrap_or(u64::MAX)
    }

    /// Sends a verb (`+ACK`, `-NAK ...`, `+WPI`, `+TERM ...`) for a delivery: confirmed by the
    /// server when `confirm_acks`, else fire-and-forget.
    pub(crate) async fn verb(
        &self,
        reply: &async_nats::Subject,
        body: impl Into<bytes::Bytes>,
    ) -> Result<(), BrokerError> {
        let body = body.into();
        if self.confirm_acks {
            let request =
                async_nats::Request::new().payload(body).timeout(Some(self.request_timeout));
            self.client
                .send_request(reply.clone(), request)
                .await
                .map(drop)
                .map_err(|e| nats("acknowledge", &e))
        } else {
            self.client.publish(reply.clone(), body).await.map_err(|e| nats("acknowledge", &e))
        }
    }

    /// The cursor of `key_token` (0 when none) and the stream sequence of the key's head.
    pub(crate) async fn head(&self, key_token: &str) -> Result<(u64, Option<u64>), BrokerError> {
        let names = &self.topic.names;
        let cursor = match self.topic.state.get(cursor_key(&self.config.name, key_token)).await {
            Ok(Some(bytes)) => {
                std::str::from_utf8(&bytes).ok().and_then(|s| s.parse().ok()).unwrap_or(0)
            }
            Ok(None) => 0,
            Err(e) => return Err(nats("read ordering cursor", &e)),
        };
        let mut head = None;
        for subject in
            names.key_subjects(&self.config.name, key_token, self.config.filter.as_deref())
        {
            match self.topic.stream.direct_get_next_for_subject(subject, Some(cursor + 1)).await {
                Ok(m) => head = Some(head.map_or(m.sequence, |h: u64| h.min(m.sequence))),
                Err(e) if e.kind() == jetstream::stream::DirectGetErrorKind::NotFound => {}
                Err(e) => return Err(nats("find the key's head", &e)),
            }
        }
        Ok((cursor, head))
    }

    /// Moves the cursor of `key_token` to `seq`: the next message of that key may go out.
    pub(crate) async fn advance_cursor(
        &self,
        key_token: &str,
        seq: u64,
    ) -> Result<(), BrokerError> {
        self.topic
            .state
            .put(cursor_key(&self.config.name, key_token), seq.to_string().into())
            .await
            .map(drop)
            .map_err(|e| nats("move ordering cursor", &e))
    }

    fn spawn_keeper(self: &Arc<Self>) {
        let weak: Weak<Self> = Arc::downgrade(self);
        let period = (self.config.ack_wait / 3).max(Duration::from_millis(1));
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let task = runtime.spawn(async move {
            loop {
                tokio::time::sleep(period).await;
                let Some(sub) = weak.upgrade() else { return };
                let replies: Vec<async_nats::Subject> = sub
                    .lock_parked()
                    .values()
                    .flat_map(BTreeMap::values)
                    .filter_map(|m| m.reply.clone())
                    .collect();
                for reply in replies {
                    // Fire-and-forget: a lost one is retried next period, and a lease that
                    // lapses anyway only brings the message back.
                    let _ = sub.client.publish(reply, bytes::Bytes::from_static(b"+WPI")).await;
                }
            }
        });
        *self.keeper.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(task.abort_handle());
    }
}

/// What admitting a fetched message came to.
enum Admit<T> {
    Deliver(NatsDelivery<T>),
    Park(String, u64, Box<jetstream::Message>),
    Done,
}

impl<T: Send + Sync + 'static, C: Codec<T>> NatsBroker<T, C> {
    pub(crate) async fn subscribe_to(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> Result<NatsSubscription, BrokerError> {
        self.check_open()?;
        config.validate()?;
        crate::names::check_name("subscription", &config.name)?;
        if let Some(filter) = &config.filter {
            SubjectFilter::new(filter)?;
        }
        if config.overflow == Overflow::DeadLetterOldest {
            return Err(BrokerError::Config(ConfigError::new(
                "overflow",
                "dead_letter_oldest is not available on NATS: a full JetStream stream refuses \
                 new messages (Reject or Wait) and levee never lets it drop old ones",
            )));
        }
        let handle = self.ensure_topic(topic, &TopicConfig::default()).await?;
        let consumer: PullConsumer = match handle.stream.get_consumer(&config.name).await {
            Ok(existing) => {
                let mut existing: PullConsumer = existing;
                let info = existing.info().await.map_err(|e| nats("read subscription", &e))?;
                let same = info
                    .config
                    .metadata
                    .get(META_CONFIG)
                    .and_then(|json| serde_json::from_str::<SubscriptionConfig>(json).ok())
                    .is_some_and(|c| c == config);
                if !same {
                    return Err(BrokerError::SubscriptionMismatch { subscription: config.name });
                }
                existing
            }
            Err(_) => self.create_consumer(&handle, &config).await?,
        };
        self.bound_topic(&handle, &config).await?;
        handle.add_route(&config);
        let shared = Arc::new(SubShared {
            topic: Arc::clone(&handle),
            config,
            consumer: Mutex::new(Arc::new(consumer)),
            client: self.shared.client.clone(),
            confirm_acks: self.shared.config.confirm_acks,
            request_timeout: self.shared.config.request_timeout,
            epoch: Instant::now(),
            parked: Mutex::new(BTreeMap::new()),
            keeper: Mutex::new(None),
        });
        shared.spawn_keeper();
        Ok(NatsSubscription { shared })
    }

    /// Creates the JetStream consumer behind subscription `config` on `handle`'s topic.
    async fn create_consumer(
        &self,
        handle: &TopicHandle,
        config: &SubscriptionConfig,
    ) -> Result<PullConsumer, BrokerError> {
        let stored = serde_json::to_string(config)
            .map_err(|e| BrokerError::Codec { reason: e.to_string() })?;
        handle
            .stream
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some(config.name.clone()),
                filter_subjects: handle
                    .names
                    .consumer_filters(&config.name, config.filter.as_deref()),
                // A subscription sees what is published after it exists (as in-process).
                deliver_policy: jetstream::consumer::DeliverPolicy::New,
                ack_policy: jetstream::consumer::AckPolicy::Explicit,
                ack_wait: config.ack_wait,
                // levee counts handler failures and lease expiries apart (JetStream's one
                // count mixes them), so the adapter enforces both limits itself.
                max_deliver: -1,
                max_ack_pending: self.shared.config.max_ack_pending,
                inactive_threshold: self.shared.config.idle_subscription_expiry.unwrap_or_default(),
                metadata: [(META_CONFIG.to_owned(), stored)].into_iter().collect(),
                ..Default::default()
            })
            .await
            .map_err(|e| nats("create subscription", &e))
    }

    /// After a failed pull: if the server no longer has `sub`'s consumer (it expired while
    /// nobody received, or an operator deleted it), makes it again, empty, so the next
    /// receive works. Any other failure is left to the caller's error.
    async fn recreate_consumer(&self, sub: &SubShared) {
        if sub
            .topic
            .stream
            .get_consumer::<jetstream::consumer::pull::Config>(&sub.config.name)
            .await
            .is_ok()
        {
            return;
        }
        // Unreachable server: the next receive fails and comes back here.
        if let Ok(consumer) = self.create_consumer(&sub.topic, &sub.config).await {
            *sub.lock_consumer() = Arc::new(consumer);
            tracing::warn!(
                subscription = %sub.config.name,
                "levee-nats: the server had deleted this subscription (idle expiry?); made it again, empty"
            );
        }
    }

    /// Lowers the topic stream's message limit to this subscription's `max_backlog`, and the
    /// dead-letter stream's per-subscription limit to its `max_dead_letters`, if larger.
    async fn bound_topic(
        &self,
        handle: &TopicHandle,
        config: &SubscriptionConfig,
    ) -> Result<(), BrokerError> {
        let js = &self.shared.js;
        let backlog = i64::try_from(config.max_backlog).unwrap_or(i64::MAX);
        let mut info = handle.stream.get_info().await.map_err(|e| nats("read topic", &e))?;
        if info.config.max_messages < 0 || info.config.max_messages > backlog {
            info.config.max_messages = backlog;
            js.update_stream(info.config).await.map_err(|e| nats("bound topic", &e))?;
        }
        let dead = i64::try_from(config.max_dead_letters).unwrap_or(i64::MAX);
        let mut info = handle.dlq.get_info().await.map_err(|e| nats("read dead letters", &e))?;
        if info.config.max_messages_per_subject != dead {
            info.config.max_messages_per_subject = info.config.max_messages_per_subject.max(dead);
            js.update_stream(info.config).await.map_err(|e| nats("bound dead letters", &e))?;
        }
        Ok(())
    }

    pub(crate) async fn receive_from(
        &self,
        consumer: &NatsConsumer,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<NatsDelivery<T>>, BrokerError> {
        self.check_open()?;
        if max == 0 {
            return Err(BrokerError::Config(ConfigError::new("max", "must be at least 1")));
        }
        let sub = &consumer.sub;
        let deadline = tokio::time::Instant::now() + wait;
        let mut out = Vec::new();
        loop {
            // Registered before the count is read, so a settle in between still wakes it.
            let freed = consumer.slots.freed.notified();
            tokio::pin!(freed);
            freed.as_mut().enable();
            let room = sub.config.max_in_flight_per_consumer.saturating_sub(consumer.in_flight());
            let want = max.min(room);
            if want == 0 {
                // At the in-flight bound: wait for a settle to make room.
                if tokio::time::timeout_at(deadline, freed).await.is_err() {
                    return Ok(out);
                }
                continue;
            }
            self.release_parked(consumer, want, &mut out).await?;
            if out.is_empty() {
                let remaining = deadline.saturating_duration_since(tokio::time::Instant::now());
                let fetched = match self.fetch(sub, want, remaining).await {
                    Ok(fetched) => fetched,
                    Err(error) => {
                        self.recreate_consumer(sub).await;
                        return Err(error);
                    }
                };
                for message in fetched {
                    match self.admit(consumer, message, false).await? {
                        Admit::Deliver(d) => out.push(d),
                        Admit::Park(key, seq, m) => {
                            sub.lock_parked().entry(key).or_default().insert(seq, m);
                        }
                        Admit::Done => {}
                    }
                }
            }
            if !out.is_empty() || tokio::time::Instant::now() >= deadline {
                return Ok(out);
            }
        }
    }

    /// One pull request: up to `n` messages, answered as soon as any is there or after `wait`.
    async fn fetch(
        &self,
        sub: &SubShared,
        n: usize,
        wait: Duration,
    ) -> Result<Vec<jetstream::Message>, BrokerError> {
        let consumer = Arc::clone(&*sub.lock_consumer());
        let mut request = consumer.fetch().max_messages(n);
        if wait >= Duration::from_millis(1) {
            request = request.expires(wait);
        }
        let limit = wait + sub.request_timeout;
        let pull = async {
            let mut batch = request.messages().await.map_err(|e| nats("receive", &e))?;
            let mut got = Vec::with_capacity(n);
            while let Some(message) = batch.next().await {
                got.push(message.map_err(|e| crate::error::boxed("receive", &*e))?);
            }
            Ok(got)
        };
        tokio::time::timeout(limit, pull)
            .await
            .unwrap_or_else(|_| Err(crate::error::timed_out("receive", limit)))
    }

    /// Hands out parked messages whose key's cursor reached them.
    async fn release_parked(
        &self,
        consumer: &NatsConsumer,
        want: usize,
        out: &mut Vec<NatsDelivery<T>>,
    ) -> Result<(), BrokerError> {
        let sub = &consumer.sub;
        let keys: Vec<String> = sub.lock_parked().keys().cloned().collect();
        for key in keys {
            if out.len() >= want {
                break;
            }
            let (cursor, head) = sub.head(&key).await?;
            let (stale, released) = {
                let mut parked = sub.lock_parked();
                let Some(queue) = parked.get_mut(&key) else { continue };
                let keep = queue.split_off(&(cursor + 1));
                let stale = std::mem::replace(queue, keep);
                let released = head.and_then(|h| queue.remove(&h));
                if queue.is_empty() {
                    parked.remove(&key);
                }
                (stale, released)
            };
            for message in stale.into_values() {
                // Settled for good already (a redelivery raced the cursor): nothing to do.
                if let Some(reply) = &message.reply {
                    sub.verb(reply, ACK).await?;
                }
            }
            if let Some(message) = released {
                match self.admit(consumer, *message, true).await? {
                    Admit::Deliver(d) => out.push(d),
                    Admit::Park(key, seq, m) => {
                        sub.lock_parked().entry(key).or_default().insert(seq, m);
                    }
                    Admit::Done => {}
                }
            }
        }
        Ok(())
    }

    /// Decides what to do with a fetched message (see the module docs).
    async fn admit(
        &self,
        consumer: &NatsConsumer,
        message: jetstream::Message,
        head_checked: bool,
    ) -> Result<Admit<T>, BrokerError> {
        let sub = &consumer.sub;
        let info = message.info().map_err(|e| BrokerError::Backend {
            reason: format!("delivery without JetStream metadata: {e}"),
        })?;
        let stream_seq = info.stream_sequence;
        let delivered = u32::try_from(info.delivered).unwrap_or(u32::MAX).max(1);
        let published_at = u64::try_from(info.published.unix_timestamp_nanos()).unwrap_or(0);
        let Some(reply) = message.reply.clone() else {
            return Err(BrokerError::Backend { reason: "delivery without a reply subject".into() });
        };
        let Some((_, key_token, subject)) = sub.topic.names.parse(message.subject.as_str()) else {
            // Not a levee message (someone published raw to the topic's subjects): settle it
            // as undeliverable rather than wedge the subscription.
            sub.verb(&reply, &b"+TERM not a levee message"[..]).await?;
            return Ok(Admit::Done);
        };
        let key_token = key_token.to_owned();
        let subject = subject.to_owned();
        let key = if key_token == "_" { None } else { decode_token(&key_token[1..]) };
        if key.is_some() && !head_checked {
            let (cursor, head) = sub.head(&key_token).await?;
            if stream_seq <= cursor {
                sub.verb(&reply, ACK).await?;
                return Ok(Admit::Done);
            }
            if head.is_some_and(|h| h != stream_seq) {
                return Ok(Admit::Park(key_token, stream_seq, Box::new(message)));
            }
        }
        let headers = message.headers.as_ref();
        let seq = headers
            .and_then(|h| h.get(H_SEQ))
            .and_then(|v| v.as_str().parse().ok())
            .unwrap_or(stream_seq);
        // A replay's own `Nats-Msg-Id` is the replay's; a delayed message loses JetStream's
        // when its schedule fires. Both carry the original id in `Levee-Msg-Id`.
        let replayed = headers.is_some_and(|h| h.get(H_SEQ).is_some());
        let message_id = headers
            .and_then(|h| match h.get(H_MSG_ID) {
                Some(id) => Some(id),
                None if replayed => None,
                None => h.get(async_nats::header::NATS_MESSAGE_ID),
            })
            .map(|v| v.as_str().to_owned());
        let (state, had_state) = if delivered > 1 {
            match sub.topic.state.get(state_key(&sub.config.name, stream_seq)).await {
                Ok(Some(bytes)) => {
                    (serde_json::from_slice::<FailureState>(&bytes).unwrap_or_default(), true)
                }
                Ok(None) => (FailureState::default(), false),
                Err(e) => return Err(nats("read delivery state", &e)),
            }
        } else {
            (FailureState::default(), false)
        };
        let now = unix_nanos();
        let mut history = state.history.clone();
        let expiries = delivered.saturating_sub(1).saturating_sub(state.failures);
        // The attempts that ended without a verb the adapter saw were lease expiries.
        for attempt in 1..delivered {
            if !history.iter().any(|r| r.attempt == attempt) {
                history.push(AttemptRecord {
                    attempt,
                    delivered_at: now,
                    ended_at: now,
                    outcome: AttemptOutcome::LeaseExpired,
                });
            }
        }
        history.sort_by_key(|r| r.attempt);
        let expired = expiries >= sub.config.max_lease_expiries;
        let failed = state.failures >= sub.config.max_deliveries;
        // Dead-lettered here, this delivery is never handed out: it is not an attempt.
        let attempts = if expired || failed { delivered - 1 } else { delivered };
        let lease = Lease::new(
            Arc::clone(sub),
            reply,
            Source {
                stream_seq,
                seq,
                subject,
                key,
                key_token,
                message_id,
                headers: levee_headers(message.headers.as_ref()),
                payload: message.payload.clone(),
                published_at,
            },
            attempts,
            state.failures,
            history,
            had_state,
            now,
        );
        if expired {
            lease.dead_letter(DeadLetterReason::MaxLeaseExpiries { expiries }, None).await?;
            return Ok(Admit::Done);
        }
        if failed {
            // Recorded, but the dead-lettering did not finish (a crash in between): finish it.
            lease
                .dead_letter(DeadLetterReason::MaxDeliveries { failures: state.failures }, None)
                .await?;
            return Ok(Admit::Done);
        }
        match self.shared.codec.decode(&message.payload) {
            Ok(payload) => {
                consumer.slots.in_flight.fetch_add(1, Ordering::AcqRel);
                Ok(Admit::Deliver(NatsDelivery::new(lease, Arc::clone(&consumer.slots), payload)))
            }
            Err(e) => {
                let reason = format!("undecodable payload: {e}");
                lease.dead_letter(DeadLetterReason::Terminated { reason }, None).await?;
                Ok(Admit::Done)
            }
        }
    }
}
