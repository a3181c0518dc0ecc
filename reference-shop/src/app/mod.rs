//! Wiring: builds the services from the settings and subscribes them to the bus
//! ([`Shop::build`]); [`RunningShop`] serves HTTP, runs the timers and shuts it all down in
//! order.

mod running;

use std::sync::Arc;

use levee::core::ConfigError;

use crate::bus::EventBus;
use crate::clock::ShopClock;
use crate::config::{Config, SettingError, section};
use crate::domain::{TOPIC_CARTS, TOPIC_ORDERS, TOPIC_PAYMENTS};
use crate::faults::{FaultSettings, Faults};
use crate::guard::PaymentGuard;
use crate::http::{Connections, Edge};
use crate::metrics::{Metrics, ShopCounters};
use crate::provider::{PaymentProvider, Provider, RemoteProvider};
use crate::role::Service;
use crate::services::{
    Carts, Catalog, Customers, Infra, LiveControl, Notifications, Operations, Orders, Payments,
    Reported, SharedPaymentBreaker,
};
use crate::split::{ORDERS_SUBSCRIPTION, PAYMENT_SUBSCRIPTION};
use crate::store::{HoldingCaps, Store, StoreError};
use crate::timeouts::ShopTimers;
use crate::work::Work;

pub use running::RunningShop;

/// The shop: its services, which the HTTP handlers call, and what wires them.
#[derive(Debug)]
pub struct Shop {
    /// Settings.
    pub config: Config,
    /// Sign-up and API keys.
    pub customers: Arc<Customers>,
    /// Products.
    pub catalog: Arc<Catalog>,
    /// Carts.
    pub carts: Arc<Carts>,
    /// Orders.
    pub orders: Arc<Orders>,
    /// Payments.
    pub payments: Arc<Payments>,
    /// Notifications.
    pub notifications: Arc<Notifications>,
    /// Health, status, faults, dead letters.
    pub operations: Arc<Operations>,
    /// The live settings (`/admin/settings`).
    pub live: Arc<LiveControl>,
    /// `/metrics`.
    pub metrics: Metrics,
    /// The edge's limiters (the router layers them on the customer API).
    pub edge: Arc<Edge>,
    /// Connection limits, request deadline, slow-client counters (the listener and the
    /// router use them).
    pub connections: Arc<Connections>,
    /// The fixed work of product reads (`[work]`), when set.
    pub work: Option<Work>,
    /// The payment breaker's link to its peers (`[payment.shared_breaker]`), if on.
    pub shared_breaker: Option<Arc<SharedPaymentBreaker>>,
    infra: Infra,
}

/// Why the shop did not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// Storage could not be opened.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] SettingError),
    /// The `[server.tls]` files cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::config::TlsSettingsError),
    /// The edge's limits are on Redis, failing closed, and Redis does not answer.
    #[error(transparent)]
    Redis(#[from] crate::http::RedisUnreachable),
    /// The event bus refused a subscription.
    #[error("event bus: {0}")]
    Bus(#[from] levee::queue::broker::BrokerError),
    /// The event bus's broker could not be opened (`queue.backend`).
    #[error(transparent)]
    BusOpen(#[from] crate::bus::BusOpenError),
    /// The shared payment breaker could not join its peers (`payment.shared_breaker`).
    #[error("payment.shared_breaker: {0}")]
    SharedBreaker(levee::queue::broker::BrokerError),
}

impl Shop {
    /// Builds the shop on `config`, timed by `clock`: opens (and on first start migrates and
    /// seeds) the store, builds the services and subscribes them to their topics. Does not
    /// listen yet.
    ///
    /// # Errors
    /// Invalid settings or storage failures.
    pub async fn build(config: Config, clock: ShopClock) -> Result<Arc<Self>, StartError> {
        Self::build_as(config, clock, Service::All).await
    }

    /// [`build`](Self::build) for the part `service` of the shop: the same services, but
    /// subscribed only to the events `service` handles, and relaying the outbox only where
    /// `service` does ([`crate::split`]). Split services refuse settings they cannot share
    /// (SQLite, a broker in the process).
    ///
    /// # Errors
    /// As [`build`](Self::build).
    pub async fn build_as(
        config: Config,
        clock: ShopClock,
        service: Service,
    ) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        crate::split::check(&config, service)?;
        let faults = Arc::new(Faults::new(FaultSettings {
            provider_latency_ms: u64::try_from(config.provider.latency.as_millis())
                .unwrap_or(u64::MAX),
            provider_failure_rate: config.provider.failure_rate,
            store_latency_ms: 0,
        }));
        let store =
            Arc::new(Store::open(&config.storage, Arc::clone(&faults), clock.clone()).await?);
        let timers = ShopTimers::new(clock.clone(), config.orders.timer_tick).map_err(|e| {
            SettingError { section: "orders", error: ConfigError { setting: "timer_tick", ..e } }
        })?;
        let bus = EventBus::open(
            &config.queue,
            &config.storage.data_dir,
            clock.clone(),
            Arc::clone(&store),
        )
        .await?;
        let infra = Infra {
            store,
            bus,
            timers: Arc::new(timers),
            clock: clock.clone(),
            counters: ShopCounters::default(),
        };
        let catalog = Arc::new(Catalog::new(&infra, &config.cache.products)?);
        let customers = Arc::new(Customers::new(&infra, &config.cache.customers)?);
        let caps = HoldingCaps::new(&config.limits);
        let carts = Arc::new(Carts::new(&infra, Arc::clone(&catalog), &config.orders, caps));
        let provider = if config.provider.is_remote() {
            let tls = config.server.tls.client(Some("provider"))?;
            Provider::Remote(RemoteProvider::new(&config.provider, tls)?)
        } else {
            Provider::Local(Arc::new(PaymentProvider::new(Arc::clone(&faults))))
        };
        let (guard, shared_breaker) = match &config.payment.shared_breaker {
            Some(shared) => {
                let (guard, joined) = PaymentGuard::with_breaker(
                    &config.payment,
                    &config.protections,
                    clock.clone(),
                    |builder| SharedPaymentBreaker::join(shared, builder),
                )
                .await?;
                (guard, joined.map(Arc::new))
            }
            None => (PaymentGuard::new(&config.payment, &config.protections, clock.clone())?, None),
        };
        let payments = Arc::new(Payments::new(&infra, guard, provider));
        let notifications = Arc::new(Notifications::new(&infra));
        let orders = Arc::new(Orders::new(
            &infra,
            Arc::clone(&catalog),
            Arc::clone(&carts),
            Arc::clone(&payments),
            &config.orders,
            caps,
        ));
        let connections = Arc::new(Connections::new(&config.server.clients, clock.clone())?);
        let edge = Arc::new(
            Edge::new(&config.edge, &config.limits, clock)?.protections(&config.protections),
        );
        crate::http::check_start(edge.rate_limiter(), &config.edge.redis).await?;
        let reported = Reported {
            edge: Arc::clone(&edge),
            connections: Arc::clone(&connections),
            catalog: Arc::clone(&catalog),
            customers: Arc::clone(&customers),
            payments: Arc::clone(&payments),
            shared_breaker: shared_breaker.clone(),
        };
        let operations = Arc::new(Operations::new(&infra, faults, reported, config.health.clone()));
        let live = Arc::new(LiveControl::new(
            Arc::clone(&edge),
            Arc::clone(&catalog),
            Arc::clone(&customers),
            Arc::clone(&payments),
        ));
        let metrics = Metrics::new(&infra.counters, Arc::clone(&operations));
        let work = config.work.as_ref().map(Work::new).transpose().map_err(section("work"))?;
        let shop = Arc::new(Self {
            config,
            customers,
            catalog,
            carts,
            orders,
            payments,
            notifications,
            operations,
            live,
            metrics,
            edge,
            connections,
            work,
            shared_breaker,
            infra,
        });
        shop.subscribe(service).await?;
        // Only now: an event published before its subscriptions exist would reach none.
        if service.relays() {
            shop.infra.bus.start_relay();
        }
        Ok(shop)
    }

    /// The store (the outage comparison looks its orders up after a run).
    pub(crate) fn store(&self) -> &Store {
        &self.infra.store
    }

    /// Subscribes each service `service` runs to the topics it handles.
    async fn subscribe(&self, service: Service) -> Result<(), levee::queue::broker::BrokerError> {
        let bus = &self.infra.bus;
        if !service.consumes_events() {
            bus.expect_no_consumers();
        }
        if service.consumes(PAYMENT_SUBSCRIPTION) {
            let payments = Arc::clone(&self.payments);
            bus.subscribe(TOPIC_ORDERS, PAYMENT_SUBSCRIPTION, move |e| {
                let payments = Arc::clone(&payments);
                async move { payments.on_order_event(e).await }
            })
            .await?;
        }
        if service.consumes(ORDERS_SUBSCRIPTION) {
            let orders = Arc::clone(&self.orders);
            bus.subscribe(TOPIC_PAYMENTS, ORDERS_SUBSCRIPTION, move |e| {
                let orders = Arc::clone(&orders);
                async move { orders.on_payment_event(e).await }
            })
            .await?;
        }
        for topic in [TOPIC_ORDERS, TOPIC_PAYMENTS, TOPIC_CARTS] {
            let name = format!("notification-{topic}");
            if !service.consumes(&name) {
                continue;
            }
            let notifications = Arc::clone(&self.notifications);
            bus.subscribe(topic, &name, move |e| {
                let notifications = Arc::clone(&notifications);
                async move { notifications.on_event(e).await }
            })
            .await?;
        }
        Ok(())
    }

    /// After a start: re-arms the timers of unpaid orders and of carts that hold stock, and
    /// re-drives the payment of unpaid orders with a card. Returns how many unpaid orders
    /// there were.
    ///
    /// # Errors
    /// Store failures.
    pub async fn recover(&self) -> Result<usize, StoreError> {
        let pending = self.orders.recover().await?;
        self.carts.recover().await?;
        Ok(pending)
    }
}
