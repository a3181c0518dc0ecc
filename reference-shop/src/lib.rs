//! The levee reference shop: an e-commerce app (catalog, inventory, cart, orders, payment,
//! notification) in one process, showing each levee primitive where a real shop needs it.
//!
//! - Edge: per-client rate limit and a global bulkhead that sheds load ([`edge`]).
//! - Product reads through a coalescing cache ([`cache`]).
//! - Orders as try-confirm-cancel over the store ([`store`], [`services`]); events between
//!   the services on a queue with redelivery and a dead-letter queue ([`bus`]).
//! - Payment through a levee-policy pipeline of breaker + timeout + retry ([`guard`]) against
//!   a simulated provider ([`provider`]) whose faults change at run time ([`faults`]).
//! - Unpaid orders cancelled, and cart reservations ended, by timers ([`timeouts`]).
//! - `/metrics`, `/health`, an admin API, graceful shutdown ([`app`]), a load generator
//!   ([`loadgen`]).
//!
//! Every primitive comes through the `levee` facade crate, with one feature per primitive
//! (`limit`, `breaker`, `policy`, `timer`, `cache`, `queue`): `levee::prelude::*` for the
//! everyday names, `levee::limit::...`, `levee::queue::broker::...` for the rest.
//!
//! Start it with [`app::RunningShop::start`]; the binary adds settings and signals.
#![forbid(unsafe_code)]

pub mod app;
pub mod bus;
pub mod cache;
pub mod clock;
pub mod config;
pub mod domain;
pub mod edge;
pub mod faults;
pub mod guard;
pub mod http;
pub mod loadgen;
pub mod metrics;
pub mod provider;
pub mod services;
pub mod store;
pub mod timeouts;

pub use app::{RunningShop, Shop, StartError};
pub use clock::ShopClock;
pub use config::Config;
