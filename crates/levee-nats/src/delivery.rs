//! A delivered message and the verbs that settle it.
//!
//! Every verb first takes the delivery's `settled` flag (a second verb is `AlreadySettled`)
//! and checks the lease against this process's clock (a verb after the deadline is
//! `LeaseExpired`: JetStream would apply a late ack to the *redelivered* copy, so the adapter
//! does not send it). If the server does not answer, the flag is given back so the verb can
//! be retried.
//!
//! Failures (a nack, or a delivery dropped without a verb) are written to the KV bucket
//! before JetStream is told to redeliver, so the next delivery, in any process, counts them.
//! Dead-lettering copies the message with its reason and history into the dead-letter
//! stream (deduplicated by subscription, sequence and attempt, so a retry is safe), moves
//! the key's cursor, then terminates the message in JetStream (`+TERM <reason>`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_nats::HeaderMap;
use bytes::Bytes;
use levee_queue::broker::{
    AttemptOutcome, AttemptRecord, BrokerDelivery, BrokerError, DeadLetterReason, Headers, Nack,
};

use crate::broker::{Stored, store, unix_nanos};
use crate::error::nats;
use crate::names::state_key;
use crate::record::{DeadRecord, FailureState, MessageFacts};
use crate::subscription::{ACK, Slots, SubShared};

/// Header of a dead letter's copy holding its [`DeadRecord`].
pub(crate) const H_DEAD: &str = "Levee-Dead-Letter";

/// The message as it arrived, for dead-lettering and replay.
pub(crate) struct Source {
    pub(crate) stream_seq: u64,
    pub(crate) seq: u64,
    pub(crate) subject: String,
    pub(crate) key: Option<String>,
    pub(crate) key_token: String,
    pub(crate) message_id: Option<String>,
    pub(crate) headers: Headers,
    pub(crate) payload: Bytes,
    pub(crate) published_at: u64,
}

/// Everything a verb needs; shared with the task a dropped delivery spawns.
pub(crate) struct Lease {
    sub: Arc<SubShared>,
    /// JetStream's ack subject of this delivery (a reference-counted clone of the message's).
    reply: async_nats::Subject,
    pub(crate) source: Source,
    attempt: u32,
    failures: u32,
    history: Vec<AttemptRecord>,
    had_state: bool,
    delivered_at: u64,
    /// Lease deadline, nanoseconds after `sub.epoch`.
    deadline: AtomicU64,
    settled: AtomicBool,
}

impl Lease {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        sub: Arc<SubShared>,
        reply: async_nats::Subject,
        source: Source,
        attempt: u32,
        failures: u32,
        history: Vec<AttemptRecord>,
        had_state: bool,
        delivered_at: u64,
    ) -> Self {
        let deadline = sub.now().saturating_add(sub.ack_wait_nanos());
        Self {
            sub,
            reply,
            source,
            attempt,
            failures,
            history,
            had_state,
            delivered_at,
            deadline: AtomicU64::new(deadline),
            settled: AtomicBool::new(false),
        }
    }

    /// Takes the right to settle: `AlreadySettled` after another verb, `LeaseExpired` past
    /// the deadline.
    fn take(&self) -> Result<(), BrokerError> {
        let seq = self.source.seq;
        if self.settled.swap(true, Ordering::AcqRel) {
            return Err(BrokerError::AlreadySettled { seq });
        }
        if self.sub.now() > self.deadline.load(Ordering::Acquire) {
            return Err(BrokerError::LeaseExpired { seq });
        }
        Ok(())
    }

    /// Gives the right back after a verb the server did not confirm.
    fn give_back<R>(&self, result: Result<R, BrokerError>) -> Result<R, BrokerError> {
        if result.is_err() {
            self.settled.store(false, Ordering::Release);
        }
        result
    }

    async fn forget_state(&self) {
        if self.had_state {
            // Best effort: a leftover record only describes a message that is gone.
            let key = state_key(&self.sub.config.name, self.source.stream_seq);
            if let Err(e) = self.sub.topic.state.purge(key).await {
                tracing::debug!(error = %e, "levee-nats: could not remove a delivery's state");
            }
        }
    }

    async fn ack(&self) -> Result<(), BrokerError> {
        if self.source.key.is_some() {
            self.sub.advance_cursor(&self.source.key_token, self.source.stream_seq).await?;
        }
        self.sub.verb(&self.reply, ACK).await?;
        self.forget_state().await;
        Ok(())
    }

    /// A handler failure (`None`: dropped without a verb): dead-letters at `max_deliveries`,
    /// otherwise records it and asks for redelivery after `delay` or the backoff.
    async fn fail(&self, nack: Option<Nack>) -> Result<(), BrokerError> {
        let failures = self.failures + 1;
        let (delay, outcome) = match nack {
            None => (self.sub.config.backoff_for(failures), AttemptOutcome::Dropped),
            Some(Nack { delay, reason, .. }) => {
                let delay = delay.unwrap_or_else(|| self.sub.config.backoff_for(failures));
                (delay, AttemptOutcome::Nacked { delay, reason })
            }
        };
        let record = AttemptRecord {
            attempt: self.attempt,
            delivered_at: self.delivered_at,
            ended_at: unix_nanos(),
            outcome,
        };
        if failures >= self.sub.config.max_deliveries {
            return self
                .dead_letter(DeadLetterReason::MaxDeliveries { failures }, Some(record))
                .await;
        }
        let mut history = self.history.clone();
        history.push(record);
        let state = serde_json::to_vec(&FailureState { failures, history })
            .map_err(|e| BrokerError::Codec { reason: e.to_string() })?;
        let key = state_key(&self.sub.config.name, self.source.stream_seq);
        self.sub
            .topic
            .state
            .put(key, state.into())
            .await
            .map_err(|e| nats("record failure", &e))?;
        let nak = if delay.is_zero() {
            "-NAK".to_owned()
        } else {
            format!("-NAK {{\"delay\":{}}}", delay.as_nanos())
        };
        self.sub.verb(&self.reply, nak).await
    }

    /// Copies the message into the dead-letter stream, then terminates it.
    pub(crate) async fn dead_letter(
        &self,
        reason: DeadLetterReason,
        last: Option<AttemptRecord>,
    ) -> Result<(), BrokerError> {
        let mut history = self.history.clone();
        history.extend(last);
        let s = &self.source;
        let facts = MessageFacts {
            seq: s.seq,
            subject: &s.subject,
            key: s.key.as_deref(),
            message_id: s.message_id.as_deref(),
            headers: &s.headers,
            published_at: s.published_at,
        };
        let why = match &reason {
            DeadLetterReason::Terminated { reason } => reason.replace(['\r', '\n'], " "),
            other => format!("{other:?}"),
        };
        let record = DeadRecord::new(&facts, reason, history, self.attempt, unix_nanos());
        let json = serde_json::to_string(&record)
            .map_err(|e| BrokerError::Codec { reason: e.to_string() })?;
        let mut headers = HeaderMap::new();
        headers.insert(H_DEAD, json.as_str());
        let dedup = format!("{}.{}.{}", self.sub.config.name, s.stream_seq, self.attempt);
        headers.insert(async_nats::header::NATS_MESSAGE_ID, dedup.as_str());
        let subject = self.sub.topic.names.dlq_subject(&self.sub.config.name);
        let (client, timeout) = (&self.sub.client, self.sub.request_timeout);
        if let Stored::Full = store(client, timeout, subject, headers, s.payload.clone()).await? {
            // The dead-letter stream discards its oldest; full means a server limit.
            return Err(BrokerError::Backend {
                reason: "dead-letter stream refused the copy".into(),
            });
        }
        if s.key.is_some() {
            self.sub.advance_cursor(&s.key_token, s.stream_seq).await?;
        }
        self.sub.verb(&self.reply, format!("+TERM {why}")).await?;
        self.forget_state().await;
        Ok(())
    }

    async fn extend(&self) -> Result<(), BrokerError> {
        let seq = self.source.seq;
        if self.settled.load(Ordering::Acquire) {
            return Err(BrokerError::AlreadySettled { seq });
        }
        if self.sub.now() > self.deadline.load(Ordering::Acquire) {
            return Err(BrokerError::LeaseExpired { seq });
        }
        let sent_at = self.sub.now();
        self.sub.verb(&self.reply, &b"+WPI"[..]).await?;
        self.deadline
            .fetch_max(sent_at.saturating_add(self.sub.ack_wait_nanos()), Ordering::AcqRel);
        Ok(())
    }
}

/// A message leased from a NATS subscription; settle it through the broker's verbs.
///
/// Dropped without a verb it counts as a handler failure, as in-process: the drop sends the
/// nack from a spawned task (or, outside a tokio runtime, leaves the lease to expire).
///
/// ```no_run
/// use std::time::Duration;
/// use levee_nats::{NatsBroker, NatsDelivery};
/// use levee_queue::broker::{Broker, BrokerDelivery, Message, Nack, SubscriptionConfig};
///
/// # async fn example() -> Result<(), levee_queue::broker::BrokerError> {
/// let broker = NatsBroker::<String>::builder("nats://127.0.0.1:4222").connect().await?;
/// let sub = broker.subscribe("orders", SubscriptionConfig::new("payment")).await?;
/// let worker = broker.consumer(&sub).await?;
/// broker.publish("orders", Message::new("order 7".to_owned())).await?;
///
/// let batch: Vec<NatsDelivery<String>> = broker.receive(&worker, 1, Duration::from_secs(1)).await?;
/// let delivery = &batch[0];
/// println!("#{} (stream seq {})", delivery.seq(), delivery.stream_sequence());
/// if delivery.failures() < 2 {
///     broker.nack(delivery, Nack::new().reason("provider timed out")).await?; // kept in its history
/// } else {
///     broker.term(delivery, "gave up").await?;
/// }
/// # Ok(())
/// # }
/// ```
pub struct NatsDelivery<T> {
    lease: Arc<Lease>,
    slots: Arc<Slots>,
    payload: T,
}

impl<T> std::fmt::Debug for NatsDelivery<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsDelivery")
            .field("seq", &self.lease.source.seq)
            .field("attempt", &self.lease.attempt)
            .field("subject", &self.lease.source.subject)
            .finish_non_exhaustive()
    }
}

impl<T> NatsDelivery<T> {
    pub(crate) fn new(lease: Lease, slots: Arc<Slots>, payload: T) -> Self {
        Self { lease: Arc::new(lease), slots, payload }
    }

    /// The message's sequence number in the topic stream (JetStream's own; a replayed dead
    /// letter keeps its original's).
    #[must_use]
    pub fn stream_sequence(&self) -> u64 {
        self.lease.source.stream_seq
    }

    /// When it was published (nanoseconds since the Unix epoch, the server's clock).
    #[must_use]
    pub fn published_at(&self) -> u64 {
        self.lease.source.published_at
    }

    /// Handler failures before this delivery.
    #[must_use]
    pub fn failures(&self) -> u32 {
        self.lease.failures
    }

    /// Takes the right to settle; an expired lease is out of this consumer's hands.
    fn take(&self) -> Result<(), BrokerError> {
        let taken = self.lease.take();
        if let Err(BrokerError::LeaseExpired { .. }) = taken {
            self.slots.release();
        }
        taken
    }

    fn settled_with<R>(&self, result: Result<R, BrokerError>) -> Result<R, BrokerError> {
        if result.is_ok() {
            self.slots.release();
        }
        self.lease.give_back(result)
    }

    pub(crate) async fn ack(&self) -> Result<(), BrokerError> {
        self.take()?;
        let result = self.lease.ack().await;
        self.settled_with(result)
    }

    pub(crate) async fn nack(&self, nack: Nack) -> Result<(), BrokerError> {
        self.take()?;
        let result = self.lease.fail(Some(nack)).await;
        self.settled_with(result)
    }

    pub(crate) async fn term(&self, reason: &str) -> Result<(), BrokerError> {
        self.take()?;
        let record = AttemptRecord {
            attempt: self.lease.attempt,
            delivered_at: self.lease.delivered_at,
            ended_at: unix_nanos(),
            outcome: AttemptOutcome::Terminated { reason: reason.to_owned() },
        };
        let why = DeadLetterReason::Terminated { reason: reason.to_owned() };
        let result = self.lease.dead_letter(why, Some(record)).await;
        self.settled_with(result)
    }

    pub(crate) async fn in_progress(&self) -> Result<(), BrokerError> {
        self.lease.extend().await
    }
}

impl<T> Drop for NatsDelivery<T> {
    fn drop(&mut self) {
        if self.lease.settled.swap(true, Ordering::AcqRel) {
            return;
        }
        self.slots.release();
        if self.lease.sub.now() > self.lease.deadline.load(Ordering::Acquire) {
            return; // expired: already handed on
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else { return };
        let lease = Arc::clone(&self.lease);
        runtime.spawn(async move {
            if let Err(e) = lease.fail(None).await {
                // The lease will run out and the message come back: delayed, never lost.
                tracing::debug!(error = %e, "levee-nats: nack of a dropped delivery failed");
            }
        });
    }
}

impl<T: Send + Sync> BrokerDelivery for NatsDelivery<T> {
    type Payload = T;

    fn seq(&self) -> u64 {
        self.lease.source.seq
    }
    fn message_id(&self) -> Option<&str> {
        self.lease.source.message_id.as_deref()
    }
    fn payload(&self) -> &T {
        &self.payload
    }
    fn headers(&self) -> &Headers {
        &self.lease.source.headers
    }
    fn subject(&self) -> &str {
        &self.lease.source.subject
    }
    fn key(&self) -> Option<&str> {
        self.lease.source.key.as_deref()
    }
    fn attempt(&self) -> u32 {
        self.lease.attempt
    }
}
