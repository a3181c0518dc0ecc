//! In-process messaging for levee: topics, subscriptions and work queues with acks,
//! redelivery and dead letters ([`broker`]).
//!
//! ```
//! use levee_queue::broker::{InProcessBroker, Message, SubscriptionConfig};
//!
//! let broker = InProcessBroker::<u32>::new();
//! let sub = broker.subscribe("jobs", SubscriptionConfig::new("workers")).unwrap();
//! let worker = sub.consumer();
//! broker.try_publish("jobs", Message::new(42)).unwrap();
//! for delivery in worker.try_receive(16).unwrap() {
//!     assert_eq!(*delivery.payload(), 42);
//!     delivery.ack().unwrap();
//! }
//! ```
#![forbid(unsafe_code)]

pub mod broker;

pub use broker::{Broker, BrokerError, InProcessBroker, Message, SubscriptionConfig};
