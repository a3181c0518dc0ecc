//! Wiring: builds every part from the settings, starts the HTTP server and the background
//! tasks, and shuts them down in order.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::bus::EventBus;
use crate::cache::ProductCache;
use crate::clock::ShopClock;
use crate::config::{Config, DEFAULT_ADMIN_TOKEN};
use crate::domain::Customer;
use crate::edge::Edge;
use crate::faults::{FaultSettings, Faults};
use crate::guard::PaymentGuard;
use crate::metrics::{Metrics, PrimitivesCollector};
use crate::provider::PaymentProvider;
use crate::store::{Store, StoreError};
use crate::timeouts::{Deadline, ShopTimers};

/// Everything the handlers and consumers share.
#[derive(Debug)]
pub struct Shop {
    /// Settings.
    pub config: Config,
    /// Time.
    pub clock: ShopClock,
    /// Storage.
    pub store: Arc<Store>,
    /// Injected faults.
    pub faults: Arc<Faults>,
    /// Product cache.
    pub cache: Arc<ProductCache>,
    /// Edge rate limit and bulkhead.
    pub edge: Arc<Edge>,
    /// Breaker + timeout + retry pipeline for the payment provider.
    pub guard: Arc<PaymentGuard>,
    /// The simulated payment provider.
    pub provider: Arc<PaymentProvider>,
    /// Event bus.
    pub bus: EventBus,
    /// Unpaid-order and cart-reservation timers.
    pub timers: Arc<ShopTimers>,
    /// Metrics.
    pub metrics: Metrics,
    customers: RwLock<HashMap<String, Customer>>,
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
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] levee::core::ConfigError),
    /// The event bus refused a subscription.
    #[error("event bus: {0}")]
    Bus(#[from] levee::queue::broker::BrokerError),
}

impl Shop {
    /// Builds the shop on `config`, timed by `clock`: opens (and on first start migrates and
    /// seeds) the store and subscribes the services. Does not listen yet.
    ///
    /// # Errors
    /// Invalid settings or storage failures.
    pub async fn build(config: Config, clock: ShopClock) -> Result<Arc<Self>, StartError> {
        config.validate()?;
        let faults = Arc::new(Faults::new(FaultSettings {
            provider_latency_ms: config.provider.latency_ms,
            provider_failure_rate: config.provider.failure_rate,
            store_latency_ms: 0,
        }));
        let store = Arc::new(Store::open(&config.storage, Arc::clone(&faults)).await?);
        let cache = Arc::new(ProductCache::new(
            Arc::clone(&store),
            clock.clone(),
            config.cache.capacity,
            Duration::from_secs(config.cache.ttl_secs),
        )?);
        let edge = Arc::new(Edge::new(&config.edge, clock.clone())?);
        let guard = Arc::new(PaymentGuard::new(&config.payment, clock.clone())?);
        let provider = Arc::new(PaymentProvider::new(Arc::clone(&faults)));
        let bus = EventBus::new(config.queue.clone(), clock.clone());
        let timer_resolution = Duration::from_millis(config.orders.timer_tick_ms);
        let timers = Arc::new(ShopTimers::new(clock.clone(), timer_resolution)?);
        let metrics = Metrics::new(PrimitivesCollector {
            edge: Arc::clone(&edge),
            cache: Arc::clone(&cache),
            guard: Arc::clone(&guard),
            bus: bus.clone(),
            timers: Arc::clone(&timers),
            provider: Arc::clone(&provider),
            store: Arc::clone(&store),
        });
        let shop = Arc::new(Self {
            config,
            clock,
            store,
            faults,
            cache,
            edge,
            guard,
            provider,
            bus,
            timers,
            metrics,
            customers: RwLock::new(HashMap::new()),
        });
        shop.wire()?;
        Ok(shop)
    }

    /// The customer an API key belongs to (remembered after the first look-up).
    ///
    /// # Errors
    /// Database failures.
    pub async fn customer(&self, api_key: &str) -> Result<Option<Customer>, StoreError> {
        if let Some(c) = self.customers.read().get(api_key) {
            return Ok(Some(c.clone()));
        }
        let found = self.store.customer_by_key(api_key).await?;
        if let Some(c) = &found {
            let mut known = self.customers.write();
            if known.len() < 100_000 {
                known.insert(api_key.to_owned(), c.clone());
            }
        }
        Ok(found)
    }
}

/// A started shop: the server listens and the consumers and timers run.
#[derive(Debug)]
pub struct RunningShop {
    addr: SocketAddr,
    shop: Arc<Shop>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    timers: JoinHandle<()>,
}

impl RunningShop {
    /// Builds the shop, recovers unpaid orders and held carts, and starts serving on
    /// `config.server.addr`.
    ///
    /// # Errors
    /// Invalid settings, storage failures, or the address cannot be bound.
    pub async fn start(config: Config, clock: ShopClock) -> Result<Self, StartError> {
        let addr = config.server.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let shop = Shop::build(config, clock).await?;
        if shop.config.server.admin_token == DEFAULT_ADMIN_TOKEN {
            tracing::warn!(
                "admin endpoints use the default token `{DEFAULT_ADMIN_TOKEN}`; set SHOP_SERVER__ADMIN_TOKEN"
            );
        }
        let pending = shop.recover().await?;
        let (stop, stopped) = watch::channel(false);
        let timers = tokio::spawn({
            let shop = Arc::clone(&shop);
            Arc::clone(&shop.timers).run(stopped.clone(), move |due| {
                let shop = Arc::clone(&shop);
                async move {
                    match due {
                        Deadline::Order(order_id) => shop.on_unpaid_timeout(order_id).await,
                        Deadline::Cart(customer_id) => shop.on_cart_timeout(customer_id).await,
                    }
                }
            })
        });
        let app = crate::http::router(Arc::clone(&shop));
        let mut stopped_http = stopped;
        let server = tokio::spawn(async move {
            let result =
                axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
                    .with_graceful_shutdown(async move {
                        let _ = stopped_http.wait_for(|s| *s).await;
                    })
                    .await;
            if let Err(e) = result {
                tracing::error!(error = %e, "server failed");
            }
        });
        tracing::info!(%addr, backend = ?shop.store.backend(), pending, "reference shop listening");
        Ok(Self { addr, shop, stop, server, timers })
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shared state (tests inspect it).
    #[must_use]
    pub fn shop(&self) -> &Arc<Shop> {
        &self.shop
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish, let the consumers
    /// drain the events already accepted, stop the timers, close the store. Every order the
    /// shop acknowledged is in the store; events still undelivered after the grace period are
    /// re-derived from it on the next start.
    pub async fn shutdown(self) {
        let grace = Duration::from_secs(self.shop.config.server.shutdown_grace_secs);
        tracing::info!("shutting down: no new connections");
        let _ = self.stop.send(true);
        let mut server = self.server;
        if tokio::time::timeout(grace, &mut server).await.is_err() {
            tracing::warn!("requests still running after the grace period; dropping them");
            server.abort();
        }
        let drained = self.shop.bus.drain(grace).await;
        if !drained {
            tracing::warn!(
                "events still pending; they are re-driven from the store at the next start"
            );
        }
        let _ = self.timers.await;
        self.shop.store.close().await;
        tracing::info!(drained, "shut down");
    }
}
