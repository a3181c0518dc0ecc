//! A started shop: the server listens, the consumers and the timers run; and its graceful
//! shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Shop, StartError};
use crate::clock::ShopClock;
use crate::config::{Config, DEFAULT_ADMIN_TOKEN};
use crate::role::Service;
use crate::store::Backend;
use crate::timeouts::Deadline;

/// A started shop: the server listens and the consumers and timers run.
#[derive(Debug)]
pub struct RunningShop {
    addr: SocketAddr,
    shop: Arc<Shop>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
    timers: JoinHandle<()>,
    /// The sweep of overdue orders and carts (PostgreSQL: replicas may share the store).
    sweep: Option<JoinHandle<()>>,
}

impl RunningShop {
    /// Builds the shop, recovers unpaid orders and held carts, and starts serving on
    /// `config.server.addr`.
    ///
    /// # Errors
    /// Invalid settings, storage failures (another shop holds the data directory, the
    /// directory cannot be written, the database cannot be reached or opened: each names
    /// the path or address and the OS's error), or the address cannot be bound.
    pub async fn start(config: Config, clock: ShopClock) -> Result<Self, StartError> {
        Self::start_as(config, clock, Service::All).await
    }

    /// [`start`](Self::start) for the part `service` of the shop ([`crate::split`]): it
    /// serves only `service`'s routes (and every process's health, metrics and admin routes),
    /// and recovers unpaid orders and held carts only where it runs their timers.
    ///
    /// # Errors
    /// As [`start`](Self::start); split services refuse settings they cannot share.
    pub async fn start_as(
        config: Config,
        clock: ShopClock,
        service: Service,
    ) -> Result<Self, StartError> {
        // The TLS files are read and checked before anything else starts.
        let tls = config.server.tls.server()?;
        let addr = config.server.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| StartError::Bind { addr, source })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind { addr, source })?;
        let shop = Shop::build_as(config, clock, service).await?;
        shop.infra.store.record_addr(addr);
        if shop.config.server.admin_token == DEFAULT_ADMIN_TOKEN {
            tracing::warn!(
                "admin endpoints use the default token `{DEFAULT_ADMIN_TOKEN}`; set SHOP_SERVER__ADMIN_TOKEN"
            );
        }
        let pending = if service.runs_timers() { shop.recover().await? } else { 0 };
        let (stop, stopped) = watch::channel(false);
        let timers = tokio::spawn({
            let (orders, carts) = (Arc::clone(&shop.orders), Arc::clone(&shop.carts));
            Arc::clone(&shop.infra.timers).run(stopped.clone(), move |due| {
                let (orders, carts) = (Arc::clone(&orders), Arc::clone(&carts));
                async move {
                    match due {
                        Deadline::Order(order_id) => orders.on_unpaid_timeout(order_id).await,
                        Deadline::Cart(customer_id) => carts.on_timeout(customer_id).await,
                    }
                }
            })
        });
        // The sweep ends what a dead replica's timers would have: only where timers run.
        let sweep = (service.runs_timers() && shop.infra.store.backend() == Backend::Postgres)
            .then(|| {
                tokio::spawn(crate::sweep::run(
                    Arc::clone(&shop.orders),
                    Arc::clone(&shop.carts),
                    shop.infra.clock.clone(),
                    shop.config.replicas.clone(),
                    stopped.clone(),
                ))
            });
        let app = crate::split::router(Arc::clone(&shop), service)?;
        let server = tokio::spawn({
            let (connections, limits) =
                (Arc::clone(&shop.connections), shop.config.server.clients.clone());
            async move { crate::http::serve(listener, app, connections, &limits, tls, stopped).await }
        });
        let backend = shop.infra.store.backend();
        tracing::info!(%addr, ?backend, pending, %service, "reference shop listening");
        Ok(Self { addr, shop, stop, server, timers, sweep })
    }

    /// The address the server listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The shop (tests call its services).
    #[must_use]
    pub fn shop(&self) -> &Arc<Shop> {
        &self.shop
    }

    /// Graceful shutdown: stop accepting, let in-flight requests finish, let the consumers
    /// drain the events already accepted, stop the timers, close the store. Every order the
    /// shop acknowledged is in the store, and every event it committed is in the outbox or
    /// the broker; what was not delivered within the grace period goes on at the next start.
    pub async fn shutdown(self) {
        let grace = self.shop.config.server.shutdown_grace;
        tracing::info!("shutting down: no new connections");
        let _ = self.stop.send(true);
        let mut server = self.server;
        if tokio::time::timeout(grace, &mut server).await.is_err() {
            tracing::warn!("requests still running after the grace period; dropping them");
            server.abort();
        }
        let drained = self.shop.infra.bus.drain(grace).await;
        if !drained {
            tracing::warn!(
                "events still pending; they stay in the outbox or the broker for the next start"
            );
        }
        let _ = self.timers.await;
        if let Some(sweep) = self.sweep {
            let _ = sweep.await;
        }
        if let Some(shared) = &self.shop.shared_breaker {
            shared.stop().await;
        }
        self.shop.infra.store.close().await;
        tracing::info!(drained, "shut down");
    }
}
