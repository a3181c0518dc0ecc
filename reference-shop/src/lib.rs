//! The levee reference shop: an e-commerce app (catalog, inventory, cart, orders, payment,
//! notification) in one process, showing each levee primitive where a real shop needs it.
//!
//! - Services that own their dependencies ([`services`]), answering in typed bodies
//!   ([`api`]); the HTTP handlers ([`http`]) call services only.
//! - Edge: levee-limit's tower layers, a per-client rate limit and a global bulkhead that
//!   sheds load ([`http::Edge`]).
//! - Product reads and API-key look-ups through levee caches ([`services::Catalog`],
//!   [`services::Customers`]).
//! - Orders as try-confirm-cancel over the store ([`store`], [`services::Orders`]); events
//!   between the services on a queue whose consumers levee-queue's `serve` runs, with
//!   redelivery and a dead-letter queue ([`bus`]).
//! - Payment through a levee-policy pipeline of breaker + timeout + retry ([`guard`]) against
//!   a simulated provider ([`provider`]) whose faults change at run time ([`faults`]);
//!   database contention retried by a levee-policy retry ([`store`]).
//! - Unpaid orders cancelled, and cart reservations ended, by timers ([`timeouts`]).
//! - A storefront and an operator page, plain HTML ([`pages`]).
//! - Split mode: each service as its own process on a shared PostgreSQL and NATS ([`split`]),
//!   behind a gateway that routes through levee's service client ([`gateway`]).
//! - Settings that embed levee's own serde settings types ([`config`]).
//! - `/metrics`, liveness and readiness (`/health/live`, `/health/ready`), an admin API, a data
//!   directory one shop at a time, graceful shutdown ([`app`]), a load generator
//!   ([`loadgen`]), the outage side by side, levee's protections on and off ([`compare`]), and
//!   a soak that checks answers, memory and stock over minutes of faults ([`soak`]).
//!
//! Every primitive comes through the `levee` facade crate, with one feature per primitive
//! (`limit`, `breaker`, `policy`, `timer`, `cache`, `queue`) plus `serde` and `tower`:
//! `levee::prelude::*` for the everyday names, `levee::limit::...`,
//! `levee::queue::broker::...` for the rest. Every one of them takes time from the shop's
//! injected [`ShopClock`].
//!
//! Start it with [`app::RunningShop::start`]; the binary adds settings and signals.
//!
//! ```no_run
//! use reference_shop::{Config, RunningShop, ShopClock};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let mut config = Config::load(None, std::env::vars())?;
//! config.server.addr = "127.0.0.1:0".parse()?;
//! let shop = RunningShop::start(config, ShopClock::system()).await?;
//! println!("listening on http://{}", shop.addr());
//! shop.shutdown().await;
//! # Ok(())
//! # }
//! ```
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod bus;
pub mod certs;
pub mod clock;
pub mod cluster;
pub mod compare;
pub mod config;
pub mod domain;
pub mod faults;
pub mod gateway;
pub mod guard;
pub mod http;
pub mod loadgen;
pub mod metrics;
pub mod pages;
pub mod provider;
pub mod role;
pub mod services;
pub mod soak;
pub mod split;
pub mod store;
pub mod sweep;
pub mod timeouts;
pub mod work;

pub use app::{RunningShop, Shop, StartError};
pub use clock::ShopClock;
pub use config::Config;
