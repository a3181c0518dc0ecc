//! Topics, subscriptions and work queues with acks, redelivery and dead letters.
//!
//! A [`Topic`] fans every message out to each of its [`Subscription`]s (optionally filtered by
//! subject, NATS style); a subscription's [`Consumer`]s compete for its messages, so one
//! subscription is a work queue. Delivery is at least once: a [`Delivery`] is leased to one
//! consumer until its ack deadline and settled with a verb:
//!
//! | verb | meaning | afterwards |
//! |---|---|---|
//! | [`ack`](Delivery::ack) | handled | gone |
//! | [`nack`](Delivery::nack) | handler failed | redelivered after a delay or the backoff schedule; dead-lettered after `max_deliveries` failures; its [`Nack::reason`] kept in the history |
//! | [`in_progress`](Delivery::in_progress) | still working | lease extended |
//! | [`term`](Delivery::term) | can never succeed | dead-lettered now |
//! | *(dropped)* | handler forgot or panicked | a nack, never a loss |
//! | *(lease expired)* | consumer crashed or hung | redelivered at once, counted apart from failures; dead-lettered after `max_lease_expiries` |
//!
//! Also: delayed messages ([`Message::delay`]), ordering keys ([`Message::key`]: one in
//! flight per key, in publish order), deduplication by message id ([`Publish::Duplicate`]),
//! bounded backlogs with an [`Overflow`] policy, a per-consumer in-flight bound, dead-letter
//! queues an operator lists, replays and purges, [`SubscriptionStats`] and [`BrokerEvent`]s.
//!
//! The [`Broker`] trait is the same surface, async, for this broker and adapters for
//! distributed engines; [`conformance::run`] checks any implementation. [`serve`] runs a
//! subscription's consumers with an async handler on any of them: `Ok` acks, `Err` nacks
//! with its reason (or terminates, see [`Failure`]), a panic nacks, and shutdown drains.
//!
//! Time comes from an injected [`Clock`](levee_core::Clock): timers fire and leases expire
//! when a receive (or [`InProcessBroker::tick`]) looks, so a
//! [`ManualClock`](levee_core::ManualClock) makes every timing behaviour deterministic.
//! Delays and backoffs wait in a [`levee_timer::TimingWheel`] with 1 ms ticks (never early,
//! less than 1 ms late); leases, all of one length per subscription, expire from a FIFO.
//!
//! ```
//! use std::time::Duration;
//! use levee_core::ManualClock;
//! use levee_queue::broker::{DeadLetterReason, InProcessBroker, Message, Nack, SubscriptionConfig};
//!
//! let clock = ManualClock::new();
//! let broker = InProcessBroker::<&str>::builder().clock(clock.clone()).build();
//! let payments = broker
//!     .subscribe(
//!         "orders",
//!         SubscriptionConfig::new("payment")
//!             .max_deliveries(2)
//!             .backoff(vec![Duration::from_secs(1)]),
//!     )
//!     .unwrap();
//! let worker = payments.consumer();
//!
//! broker.try_publish("orders", Message::new("order 7").id("order-7")).unwrap();
//! assert!(broker.try_publish("orders", Message::new("order 7").id("order-7")).unwrap().is_duplicate());
//!
//! // The payment provider is down: fail twice, one second apart.
//! let d = worker.try_receive(1).unwrap().remove(0);
//! d.nack(Nack::new().reason("provider unavailable")).unwrap();
//! assert!(worker.try_receive(1).unwrap().is_empty()); // backing off
//! clock.advance(Duration::from_secs(1));
//! let d = worker.try_receive(1).unwrap().remove(0);
//! assert_eq!(d.attempt(), 2);
//! drop(d); // dropped without a verb: a failure too
//!
//! // An operator finds it in the dead-letter queue and replays it once the provider is back.
//! let dead = payments.dead_letters();
//! assert_eq!(dead[0].reason, DeadLetterReason::MaxDeliveries { failures: 2 });
//! assert_eq!(dead[0].history[0].reason(), Some("provider unavailable"));
//! assert_eq!(dead[0].last_reason(), None); // the drop gave none
//! assert_eq!(payments.replay(dead[0].seq()), 1);
//! worker.try_receive(1).unwrap()[0].ack().unwrap();
//! assert_eq!(payments.stats().acked, 1);
//! ```

mod config;
pub mod conformance;
pub(crate) mod core;
mod dead_letter;
pub(crate) mod dedup;
mod delivery;
mod error;
mod event;
mod in_process;
#[cfg_attr(not(feature = "durable"), allow(dead_code))]
pub(crate) mod journal;
pub(crate) mod message;
mod nack;
mod serve;
pub(crate) mod slots;
mod stats;
pub(crate) mod subject;
pub(crate) mod subscription;
mod timers;
mod topic;
mod traits;

pub use config::{Overflow, SubscriptionConfig, TopicConfig};
pub use dead_letter::{AttemptOutcome, AttemptRecord, DeadLetter, DeadLetterReason, Select};
pub use delivery::{Delivery, Receipt};
pub use error::{BatchAckError, BrokerError};
pub use event::BrokerEvent;
#[allow(deprecated)]
pub use in_process::Builder;
pub use in_process::{InProcessBroker, InProcessBrokerBuilder};
pub use message::{Headers, Message, Schedule, StoredMessage};
pub use nack::Nack;
pub use serve::{Failure, ServeConfig, ServeHandle, ServeStats, serve};
pub use stats::{SubscriptionStats, TopicStats};
pub use subject::{SubjectFilter, validate_subject};
pub use subscription::{Consumer, Subscription};
pub use topic::{Publish, PublishError, Topic};
pub use traits::{Broker, BrokerDelivery};
