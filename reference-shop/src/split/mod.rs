//! Split mode: each service of the shop as its own process (`serve --service <name>`).
//!
//! The processes share the store (PostgreSQL) and the event bus (NATS JetStream,
//! `queue.backend = "nats"`), so splitting needs no second copy of any service: every process
//! builds the same services ([`Shop::build_as`](crate::app::Shop::build_as)) and then serves
//! only its own routes and runs only its own consumers and timers:
//!
//! | service | routes | consumers | also |
//! |---|---|---|---|
//! | `gateway` | every customer route, forwarded ([`crate::gateway`]); sign-up itself | none | the edge: rate limits, bulkhead, admission, API keys |
//! | `catalog` | `/products`, `/products/{id}` | none | |
//! | `orders` | `/cart`, `/cart/items*`, `/orders`, `/orders/{id}[/pay,/checkout,/cancel]` | `orders` (payment events) | unpaid-order and cart timers, outbox relay |
//! | `payment` | none | `payment` (order events) | calls the payment provider |
//! | `notification` | `/cart/notifications`, `/orders/{id}/notifications` | `notification-orders`, `-payments`, `-carts` | |
//!
//! Every process also serves `/health/*`, `/metrics`, `/openapi.json` and `/admin/*` for
//! itself. Consumers of one subscription in several processes share its messages (JetStream
//! durable consumers), so a service scales by starting it again.
//!
//! A split service refuses to start on SQLite or on a broker inside the process (the durable
//! or in-memory one): those belong to one process, and a second would see other data.

use std::sync::Arc;

use axum::Router;
use levee::core::ConfigError;

use crate::app::{Shop, StartError};
use crate::config::{Config, QueueBackend, SettingError};
use crate::http::{
    assemble, behind_edge, catalog_routes, notification_routes, order_routes, router as all,
};
use crate::role::Service;

/// The payment service's subscription to order events.
pub(crate) const PAYMENT_SUBSCRIPTION: &str = "payment";
/// The orders service's subscription to payment events.
pub(crate) const ORDERS_SUBSCRIPTION: &str = "orders";
/// The prefix of the notification service's subscriptions (`notification-<topic>`).
const NOTIFICATION_PREFIX: &str = "notification-";

impl Service {
    /// True for a part of the shop that runs beside the others (not `all`).
    #[must_use]
    pub fn is_split(self) -> bool {
        matches!(
            self,
            Self::Gateway | Self::Catalog | Self::Orders | Self::Payment | Self::Notification
        )
    }

    /// Whether this process runs the event subscription `name`.
    #[must_use]
    pub fn consumes(self, name: &str) -> bool {
        if name == PAYMENT_SUBSCRIPTION {
            matches!(self, Self::All | Self::Payment)
        } else if name == ORDERS_SUBSCRIPTION {
            matches!(self, Self::All | Self::Orders)
        } else if name.starts_with(NOTIFICATION_PREFIX) {
            matches!(self, Self::All | Self::Notification)
        } else {
            false
        }
    }

    /// Whether this process runs any event subscription.
    #[must_use]
    pub fn consumes_events(self) -> bool {
        matches!(self, Self::All | Self::Orders | Self::Payment | Self::Notification)
    }

    /// Whether this process relays the outbox to the broker.
    #[must_use]
    pub fn relays(self) -> bool {
        matches!(self, Self::All | Self::Orders)
    }

    /// Whether this process owns the unpaid-order and cart timers (and re-arms them at start).
    #[must_use]
    pub fn runs_timers(self) -> bool {
        matches!(self, Self::All | Self::Orders)
    }
}

/// Refuses settings a split `service` cannot run with: SQLite, a broker in the process, and
/// for the gateway, a group without an address.
///
/// # Errors
/// The setting, by its path, and why.
pub fn check(config: &Config, service: Service) -> Result<(), SettingError> {
    if !service.is_split() {
        return Ok(());
    }
    let postgres = config
        .storage
        .database_url
        .as_deref()
        .is_some_and(|url| url.starts_with("postgres://") || url.starts_with("postgresql://"));
    if !postgres {
        return Err(SettingError {
            section: "storage",
            error: ConfigError::new(
                "database_url",
                format!(
                    "the {service} service shares the store with the other services: set a PostgreSQL URL (DATABASE_URL); SQLite is one process's store"
                ),
            ),
        });
    }
    if config.queue.backend != QueueBackend::Nats {
        return Err(SettingError {
            section: "queue",
            error: ConfigError::new(
                "backend",
                format!(
                    "the {service} service shares the event bus with the other services: set `nats` (SHOP_QUEUE__BACKEND=nats); the `{}` broker lives in one process",
                    config.queue.backend.as_str()
                ),
            ),
        });
    }
    if service == Service::Gateway {
        config.gateway.require_groups()?;
    }
    Ok(())
}

/// The HTTP API of `service`: its routes behind the same edge as in the all-in-one shop (a
/// service checks API keys, limits and deadlines itself too; list the gateway in
/// `limits.trusted_proxies` so that its clients, not the gateway, are limited), and the
/// routes every process serves. The storefront's pages are the all-in-one shop's only.
///
/// # Errors
/// The gateway's upstream settings (checked at start already).
pub fn router(shop: Arc<Shop>, service: Service) -> Result<Router, StartError> {
    let routes = match service {
        Service::Gateway => return crate::gateway::router(shop),
        Service::Catalog => catalog_routes(),
        Service::Orders => order_routes(),
        Service::Notification => notification_routes(),
        // No customer routes (and `route_layer` wants some). The provider is no shop service:
        // `serve --service provider` runs `crate::provider::server` instead (main.rs).
        Service::Payment | Service::Provider => return Ok(assemble(shop, Router::new())),
        Service::All => return Ok(all(shop)),
    };
    let api = behind_edge(&shop, routes, shop.edge.rate_limit());
    Ok(assemble(shop, api))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SPLIT: [Service; 5] = [
        Service::Gateway,
        Service::Catalog,
        Service::Orders,
        Service::Payment,
        Service::Notification,
    ];

    #[test]
    fn every_subscription_and_timer_runs_in_exactly_one_split_service() {
        for name in [
            PAYMENT_SUBSCRIPTION,
            ORDERS_SUBSCRIPTION,
            "notification-orders",
            "notification-payments",
            "notification-carts",
        ] {
            let runs: Vec<Service> = SPLIT.into_iter().filter(|s| s.consumes(name)).collect();
            assert_eq!(runs.len(), 1, "{name}: {runs:?}");
            assert!(runs[0].consumes_events());
            assert!(Service::All.consumes(name), "{name}: the all-in-one shop runs everything");
        }
        assert!(!Service::Orders.consumes("unknown"));
        assert_eq!(SPLIT.into_iter().filter(|s| s.relays()).collect::<Vec<_>>(), [Service::Orders]);
        assert_eq!(
            SPLIT.into_iter().filter(|s| s.runs_timers()).collect::<Vec<_>>(),
            [Service::Orders]
        );
        assert!(!Service::All.is_split() && SPLIT.iter().all(|s| s.is_split()));
    }

    #[test]
    fn split_services_refuse_one_process_stores_by_setting() {
        let mut config = Config::default();
        check(&config, Service::All).unwrap();
        let err = check(&config, Service::Catalog).unwrap_err();
        assert_eq!(err.path(), "storage.database_url");
        assert!(err.to_string().contains("catalog service"), "{err}");
        config.storage.database_url = Some("postgres://shop@127.0.0.1/shop".into());
        let err = check(&config, Service::Orders).unwrap_err();
        assert_eq!(err.path(), "queue.backend");
        assert!(err.to_string().contains("`durable` broker"), "{err}");
        config.queue.backend = QueueBackend::Nats;
        check(&config, Service::Orders).unwrap();
        assert_eq!(check(&config, Service::Gateway).unwrap_err().path(), "gateway.catalog");
    }
}
