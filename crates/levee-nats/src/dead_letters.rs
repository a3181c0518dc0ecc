//! Dead letters: each subscription's subject of the topic's dead-letter stream.
//!
//! A dead letter is a copy of the message (its payload as the body) whose
//! `Levee-Dead-Letter` header holds the [`DeadRecord`]: the levee sequence, subject, key, id,
//! headers, reason and attempt history. The stream keeps the newest `max_dead_letters` per
//! subscription (JetStream's per-subject limit, oldest dropped first).
//!
//! Listing walks the subject with direct gets. Replaying publishes the message back into the
//! topic on a subject only this subscription consumes (`<to>` = `@<sub>`, so other
//! subscriptions do not see it twice), with its original sequence and id in headers and a
//! deduplication id naming the dead letter (a retried replay is not delivered twice), then
//! deletes the dead letter. Purging deletes them.

use std::sync::Arc;

use async_nats::HeaderMap;
use async_nats::jetstream::stream::DirectGetErrorKind;
use levee_queue::broker::{BrokerError, DeadLetter, Message, Select, StoredMessage};

use crate::broker::{H_MSG_ID, H_SEQ, NatsBroker, Stored, user_headers};
use crate::codec::Codec;
use crate::delivery::H_DEAD;
use crate::error::nats;
use crate::names::key_token;
use crate::record::DeadRecord;
use crate::subscription::NatsSubscription;

/// One dead letter as stored.
struct Entry {
    dlq_seq: u64,
    record: DeadRecord,
    payload: bytes::Bytes,
}

impl<T: Send + Sync + 'static, C: Codec<T>> NatsBroker<T, C> {
    /// Every dead letter of `sub`, oldest first, as stored (entries without a readable
    /// record, which levee did not write, are skipped).
    async fn entries(&self, sub: &NatsSubscription) -> Result<Vec<Entry>, BrokerError> {
        let topic = &sub.shared.topic;
        let subject = topic.names.dlq_subject(sub.name());
        let mut out = Vec::new();
        let mut from = 1;
        loop {
            let m = match topic.dlq.direct_get_next_for_subject(subject.as_str(), Some(from)).await
            {
                Ok(m) => m,
                Err(e) if e.kind() == DirectGetErrorKind::NotFound => return Ok(out),
                Err(e) => return Err(nats("read dead letters", &e)),
            };
            from = m.sequence + 1;
            let record = m
                .headers
                .get(H_DEAD)
                .and_then(|v| serde_json::from_str::<DeadRecord>(v.as_str()).ok());
            match record {
                Some(record) => out.push(Entry { dlq_seq: m.sequence, record, payload: m.payload }),
                None => {
                    tracing::warn!(seq = m.sequence, "levee-nats: dead letter without a record")
                }
            }
        }
    }

    pub(crate) async fn list_dead_letters(
        &self,
        sub: &NatsSubscription,
    ) -> Result<Vec<DeadLetter<T>>, BrokerError> {
        let topic: Arc<str> = Arc::from(sub.topic());
        let mut out = Vec::new();
        for entry in self.entries(sub).await? {
            let r = &entry.record;
            let payload = match self.shared.codec.decode(&entry.payload) {
                Ok(p) => p,
                Err(e) => {
                    // Kept in the stream (replay and purge still reach it), but a `DeadLetter<T>`
                    // needs a payload.
                    tracing::warn!(seq = r.seq, error = %e, "levee-nats: undecodable dead letter");
                    continue;
                }
            };
            let mut message =
                Message::new(payload).subject(r.subject.clone()).headers(r.user_headers());
            if let Some(id) = &r.message_id {
                message = message.id(id.clone());
            }
            if let Some(key) = &r.key {
                message = message.key(key.clone());
            }
            out.push(DeadLetter {
                message: Arc::new(StoredMessage::new(
                    r.seq,
                    r.published_at,
                    r.published_at,
                    message,
                )),
                topic: Arc::clone(&topic),
                reason: r.reason.clone(),
                history: r.history.clone(),
                attempts: r.attempts,
                dead_lettered_at: r.dead_lettered_at,
            });
        }
        Ok(out)
    }

    pub(crate) async fn replay_dead_letters(
        &self,
        sub: &NatsSubscription,
        select: &Select,
    ) -> Result<usize, BrokerError> {
        self.check_open()?;
        let names = &sub.shared.topic.names;
        let mut replayed = 0;
        for entry in self.entries(sub).await? {
            let r = &entry.record;
            if !select.contains(r.seq) {
                continue;
            }
            let mut headers: HeaderMap =
                user_headers(r.headers.iter().map(|(n, v)| (n.as_str(), v.as_str())))?;
            headers.insert(H_SEQ, r.seq.to_string().as_str());
            if let Some(id) = &r.message_id {
                headers.insert(H_MSG_ID, id.as_str());
            }
            let dedup = format!("levee-replay.{}.{}", sub.name(), entry.dlq_seq);
            headers.insert(async_nats::header::NATS_MESSAGE_ID, dedup.as_str());
            let subject =
                names.message_subject(Some(sub.name()), &key_token(r.key.as_deref()), &r.subject);
            match self.store(subject, headers, entry.payload.clone()).await? {
                Stored::Accepted { .. } => {}
                Stored::Full => {
                    return Err(BrokerError::Full {
                        subscription: sub.name().to_owned(),
                        capacity: sub.config().max_backlog,
                    });
                }
            }
            sub.shared
                .topic
                .dlq
                .delete_message(entry.dlq_seq)
                .await
                .map_err(|e| nats("remove replayed dead letter", &e))?;
            replayed += 1;
        }
        Ok(replayed)
    }

    pub(crate) async fn purge_dead_letters(
        &self,
        sub: &NatsSubscription,
        select: &Select,
    ) -> Result<usize, BrokerError> {
        let topic = &sub.shared.topic;
        if *select == Select::All {
            let subject = topic.names.dlq_subject(sub.name());
            let purged = topic
                .dlq
                .purge()
                .filter(subject)
                .await
                .map_err(|e| nats("purge dead letters", &e))?;
            return Ok(usize::try_from(purged.purged).unwrap_or(usize::MAX));
        }
        let mut purged = 0;
        for entry in self.entries(sub).await? {
            if select.contains(entry.record.seq) {
                topic
                    .dlq
                    .delete_message(entry.dlq_seq)
                    .await
                    .map_err(|e| nats("purge dead letter", &e))?;
                purged += 1;
            }
        }
        Ok(purged)
    }
}
