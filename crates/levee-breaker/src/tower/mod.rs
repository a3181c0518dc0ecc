//! tower middleware: a [`CircuitBreakerLayer`] in front of a service.
//!
//! The service asks the breaker for a permit on every `call`: a refused call fails at once
//! with [`CallError::Open`](crate::CallError::Open) and never reaches the inner service. The
//! inner service's result is classified (by default `Ok` success, `Err` failure) and
//! recorded when the response future completes; a response future dropped before that
//! records nothing and hands a half-open trial permit back.

mod future;
mod layer;
mod service;

pub use future::ResponseFuture;
pub use layer::CircuitBreakerLayer;
pub use service::CircuitBreakerService;
