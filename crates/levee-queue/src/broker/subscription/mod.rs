//! A subscription: one [`Core`](super::core::Core) behind a mutex, with an ingress in front
//! where publishers append, waiting and waking around it, and the public handles.
//!
//! One concept per file:
//!
//! - `shared.rs`: [`SubShared`], the state every handle, consumer and delivery points to, and
//!   its lock, which first drains the ingress into the core;
//! - `ingress.rs`: the publishers' side: the ingress, the backlog bound, overflow;
//! - `wait.rs`: receivers and publishers waiting, and who wakes them;
//! - `receive.rs`: leasing messages to a consumer, at once or after a wait;
//! - `settle.rs`: the verbs (ack, nack, term, in-progress, drop) and batch acks;
//! - `handle.rs`: [`Subscription`], the public handle (stats, dead letters, receipts);
//! - `consumer.rs`: [`Consumer`], one of its competing consumers.

mod consumer;
mod handle;
mod ingress;
mod receive;
mod settle;
#[cfg(feature = "durable")]
pub(crate) use settle::stale_error;
mod shared;
mod wait;

pub use consumer::Consumer;
pub(crate) use consumer::Owner;
pub use handle::Subscription;
pub(crate) use ingress::Ingress;
pub(crate) use shared::SubShared;
