//! levee's [`Broker`] trait on NATS JetStream.
//!
//! When one process is not enough, the same code that runs on levee's in-process broker runs
//! on JetStream: a single static server binary, Raft-replicated streams, durable pull
//! consumers. Every check of [`levee_queue::broker::conformance`] passes against a real
//! `nats-server` (2.12 or newer: delayed messages use its message schedules).
//!
//! # How levee maps onto JetStream
//!
//! | levee | JetStream |
//! |---|---|
//! | topic | a stream per topic (`<prefix>-T-<topic>`), interest retention: a message lives until every subscription it matched acked it; one matching none is not kept |
//! | subject, filter | the message's subject ends in its levee subject; a filter is the consumer's filter subject |
//! | subscription | a durable pull consumer, explicit acks, its settings in the consumer's metadata (a different `subscribe` of the same name is `SubscriptionMismatch`) |
//! | competing consumers | pull requests on the same durable consumer; `max_in_flight_per_consumer` is counted in each process |
//! | ack / nack / in_progress / term | `+ACK` / `-NAK {"delay":..}` (the nack's reason kept in the failure record) / `+WPI` / `+TERM <reason>`, confirmed by the server (double ack) unless turned off |
//! | `ack_wait` | the consumer's `ack_wait` |
//! | backoff | the delay of the adapter's `-NAK` after the n-th failure (JetStream's own `backoff` would stretch the ack wait of lease expiries instead) |
//! | message id, dedup window | `Nats-Msg-Id` and the stream's duplicate window (`Publish::Duplicate` names the original's sequence) |
//! | `max_backlog` + `Overflow::Reject` / `Wait` | the stream's `max_msgs` with discard-new (the smallest backlog of the topic's subscriptions); `Wait` retries with backoff for up to `full_wait` |
//! | a subscription nobody receives from any more | kept with its backlog (interest retention), unless [`NatsConfig::idle_subscription_expiry`] is set: then the consumer's `inactive_threshold`, and a receive that finds it deleted makes it again, empty |
//! | payload | bytes through a [`Codec`] ([`Json`] by default); headers as NATS headers (`Nats-*` and `Levee-*` names are reserved) |
//!
//! What JetStream does not have is built on its own primitives:
//!
//! - **Failures counted apart from crashes.** JetStream counts deliveries. The adapter writes
//!   each handler failure (nack, dropped delivery) with its history to a KV bucket
//!   (`<prefix>-S-<topic>`) before asking for redelivery; on a redelivery it reads it back, and
//!   every ended attempt it did not record was a lease expiry. So `max_deliveries` and
//!   `max_lease_expiries` hold separately, and the consumer's own `max_deliver` is unlimited.
//!   First deliveries read nothing: the bookkeeping costs only on the failure path.
//! - **Dead letters** go to a dead-letter stream (`<prefix>-Q-<topic>`, a subject per
//!   subscription) as a copy with the reason and history, then the message is terminated;
//!   [`dead_letters`](Broker::dead_letters), [`replay`](Broker::replay) and
//!   [`purge`](Broker::purge) work on that stream (a replay goes back to this subscription
//!   alone, keeping its sequence number and id).
//! - **Delayed messages** are JetStream message schedules (`Nats-Schedule: @at <time>`) in a
//!   delay stream (`<prefix>-D-<topic>`) that the topic stream sources from: nothing waits in
//!   a consumer, however long the delay.
//! - **Ordering keys** (one in flight per key, in publish order): the key is a token of the
//!   subject; a KV cursor per (subscription, key) holds the last sequence settled for good,
//!   and a message is handed out only when a direct get finds it to be the first of its key
//!   after the cursor. Others are parked in the receiving process, their leases kept alive,
//!   until the cursor reaches them. Each keyed delivery costs a KV read and a direct get,
//!   each keyed ack a KV write.
//!
//! Differences that remain, by design: times in dead letters are nanoseconds since the Unix
//! epoch (the servers' clock), not a `levee_core::Clock`; a lease is checked against this
//! process's clock, so a verb sent within a network delay of the deadline may still reach
//! the server; `Overflow::DeadLetterOldest` is refused at `subscribe` (a full stream never
//! drops messages here); header order across different names is not kept (NATS headers are a
//! map); a delayed message's `Publish` sequence is its schedule's, in the delay stream;
//! `Publish::Published`'s count of subscriptions is of those this broker knows (read when it
//! first uses the topic, updated by its own `subscribe` and when the topic is full).
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use levee_nats::NatsBroker;
//! use levee_queue::broker::{Broker, BrokerDelivery, Message, SubscriptionConfig};
//!
//! # async fn example() -> Result<(), levee_queue::broker::BrokerError> {
//! let broker = NatsBroker::<String>::builder("nats://127.0.0.1:4222").connect().await?;
//! let payments = broker
//!     .subscribe("orders", SubscriptionConfig::new("payment").max_deliveries(3))
//!     .await?;
//! let worker = broker.consumer(&payments).await?;
//!
//! broker.publish("orders", Message::new("order 7".to_owned()).id("order-7")).await?;
//! for delivery in broker.receive(&worker, 10, Duration::from_secs(1)).await? {
//!     println!("{} (attempt {})", delivery.payload(), delivery.attempt());
//!     broker.ack(&delivery).await?;
//! }
//! # Ok(())
//! # }
//! ```

mod broker;
mod codec;
mod config;
mod dead_letters;
mod delivery;
mod error;
mod names;
mod record;
mod subscription;

use std::time::Duration;

#[allow(deprecated)]
pub use broker::Builder;
pub use broker::{NatsBroker, NatsBrokerBuilder};
pub use codec::{Codec, Json};
pub use config::{NatsConfig, Storage};
pub use delivery::NatsDelivery;
use levee_queue::broker::{
    Broker, BrokerError, DeadLetter, Message, Nack, Publish, Select, SubscriptionConfig,
};
pub use subscription::{NatsConsumer, NatsSubscription};

impl<T: Send + Sync + 'static, C: Codec<T>> Broker for NatsBroker<T, C> {
    type Payload = T;
    type Subscription = NatsSubscription;
    type Consumer = NatsConsumer;
    type Delivery = NatsDelivery<T>;

    async fn publish(&self, topic: &str, message: Message<T>) -> Result<Publish, BrokerError> {
        self.publish_message(topic, message).await
    }

    async fn subscribe(
        &self,
        topic: &str,
        config: SubscriptionConfig,
    ) -> Result<NatsSubscription, BrokerError> {
        self.subscribe_to(topic, config).await
    }

    async fn consumer(&self, subscription: &NatsSubscription) -> Result<NatsConsumer, BrokerError> {
        self.check_open()?;
        Ok(NatsConsumer {
            sub: std::sync::Arc::clone(&subscription.shared),
            slots: std::sync::Arc::default(),
        })
    }

    async fn receive(
        &self,
        consumer: &NatsConsumer,
        max: usize,
        wait: Duration,
    ) -> Result<Vec<NatsDelivery<T>>, BrokerError> {
        self.receive_from(consumer, max, wait).await
    }

    async fn ack(&self, delivery: &NatsDelivery<T>) -> Result<(), BrokerError> {
        delivery.ack().await
    }

    async fn nack(&self, delivery: &NatsDelivery<T>, nack: Nack) -> Result<(), BrokerError> {
        delivery.nack(nack).await
    }

    async fn in_progress(&self, delivery: &NatsDelivery<T>) -> Result<(), BrokerError> {
        delivery.in_progress().await
    }

    async fn term(&self, delivery: &NatsDelivery<T>, reason: &str) -> Result<(), BrokerError> {
        delivery.term(reason).await
    }

    async fn dead_letters(
        &self,
        subscription: &NatsSubscription,
    ) -> Result<Vec<DeadLetter<T>>, BrokerError> {
        self.list_dead_letters(subscription).await
    }

    async fn replay(
        &self,
        subscription: &NatsSubscription,
        select: Select,
    ) -> Result<usize, BrokerError> {
        self.replay_dead_letters(subscription, &select).await
    }

    async fn purge(
        &self,
        subscription: &NatsSubscription,
        select: Select,
    ) -> Result<usize, BrokerError> {
        self.purge_dead_letters(subscription, &select).await
    }

    async fn close(&self) {
        self.shared.closed.store(true, std::sync::atomic::Ordering::Release);
    }
}

/// What the fuzz targets in `fuzz/` drive: the parsers of names and stored records, which
/// read whatever is in the server (another version, another writer, corruption).
#[cfg(fuzzing)]
pub mod fuzz {
    /// Decodes `input` as a key token, as a delivered subject and as both stored records;
    /// panics on a broken invariant (a parser that panics is a bug too).
    pub fn parsers(input: &[u8]) {
        let text = String::from_utf8_lossy(input);
        // Any string survives the token encoding.
        let token = crate::names::encode_token(&text);
        assert_eq!(crate::names::decode_token(&token).as_deref(), Some(&*text));
        let _ = crate::names::decode_token(&text);
        // A subject of the topic splits back into the parts it was made of.
        let names = crate::names::TopicNames::new("levee", "t").expect("valid");
        if let Some((to, key, subject)) = names.parse(&text) {
            let rebuilt = names.message_subject(to, key, subject);
            assert_eq!(rebuilt, text, "subject does not split back");
        }
        if let Ok(record) = serde_json::from_slice::<crate::record::DeadRecord>(input) {
            let _ = record.user_headers();
        }
        let _ = serde_json::from_slice::<crate::record::FailureState>(input);
    }
}
