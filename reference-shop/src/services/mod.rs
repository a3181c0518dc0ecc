//! The shop's services. Each owns its dependencies, given to its constructor (the shared
//! [`Infra`], and the other services it calls), and answers in the typed bodies of
//! [`crate::api`]; the HTTP handlers call services only, never the store, the bus or a cache.
//! The services talk to each other by direct calls where an answer is needed at once (orders
//! ask the carts for their lines and the payments for a refund) and by events on the bus
//! otherwise (an order placed is paid by the payments service, a payment's outcome settles the
//! order, both are told to the customer by the notifications service), as they would across
//! processes.
//!
//! | service | owns | answers |
//! |---|---|---|
//! | [`Customers`] | customer look-up by API key through a levee cache | `POST /customers`, authentication |
//! | [`Catalog`] | the product cache (coalescing reads, invalidated on change) | `/products`, `PATCH /admin/products/{id}` |
//! | [`Carts`] | cart reservations and their timers | `/cart`, cart expiry |
//! | [`Orders`] | try-confirm-cancel, unpaid-order timers | `/orders`, payment outcomes |
//! | [`Payments`] | the breaker + timeout + retry pipeline, the provider | `OrderPlaced`, refunds, the checkout's charge |
//! | [`Notifications`] | what customers are told | every event, `/orders/{id}/notifications` |
//! | [`Operations`] | readiness, faults, the dead-letter queue, the status of every mechanism | `/health/*`, `/admin/*` |
//! | [`SharedPaymentBreaker`] | the payment breaker's link to its peers on NATS | `[payment.shared_breaker]` |
//! | [`LiveControl`] | nothing: it changes the others' levee primitives in place | `/admin/settings` |

mod cache_stats;
mod carts;
mod catalog;
mod customers;
mod infra;
mod live_control;
mod notifications;
mod operations;
mod orders;
mod payments;
mod shared_breaker;

pub use cache_stats::CacheStats;
pub use carts::Carts;
pub use catalog::Catalog;
pub use customers::Customers;
pub use infra::Infra;
pub use live_control::LiveControl;
pub use notifications::Notifications;
pub use operations::{Operations, Reported};
pub use orders::{Orders, reasons};
pub use payments::{Payments, Settlement};
pub use shared_breaker::{PeerStatus, SharedBreakerStatus, SharedPaymentBreaker};
