//! `/metrics` through the `prometheus-client` crate.
//!
//! What the shop counts itself (HTTP requests and latency, orders, payments) are ordinary
//! metrics ([`ShopCounters`], incremented by the services); what the resilience primitives
//! count (payment pipeline, breaker, limiters, caches, queue, timers) is read from their
//! snapshots at scrape time ([`PrimitivesCollector`]).

mod collector;

use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

pub use collector::PrimitivesCollector;

use crate::services::Operations;

/// Labels of an HTTP request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabel {
    /// Method.
    pub method: String,
    /// Matched route (`/orders/{id}`), not the raw path.
    pub route: String,
    /// Status code.
    pub status: u16,
}

/// Labels of an HTTP latency observation.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteLabel {
    /// Method.
    pub method: String,
    /// Matched route.
    pub route: String,
}

/// A payment outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    /// `succeeded`, `declined` or `retry`.
    pub outcome: &'static str,
}

/// What the services count; clones share the counters.
#[derive(Debug, Clone, Default)]
pub struct ShopCounters {
    /// Orders placed.
    pub orders_placed: Counter,
    /// Orders refused for lack of stock.
    pub orders_out_of_stock: Counter,
    /// Orders paid (confirmed).
    pub orders_paid: Counter,
    /// Orders cancelled.
    pub orders_cancelled: Counter,
    /// Payment attempts by outcome.
    pub payments: Family<OutcomeLabel, Counter>,
    /// Notifications recorded.
    pub notifications: Counter,
    /// Carts whose reservation ended (lines removed, stock released).
    pub carts_expired: Counter,
}

/// The registry `/metrics` serves, and the HTTP metrics the request middleware records.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route and status.
    pub http_requests: Family<HttpLabel, Counter>,
    /// HTTP latency by route.
    pub http_latency: Family<RouteLabel, Histogram>,
}

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    /// Registers the HTTP metrics, the services' `counters`, and the primitives' snapshots
    /// read through `operations`.
    #[must_use]
    pub fn new(counters: &ShopCounters, operations: Arc<Operations>) -> Self {
        let mut registry = Registry::default();
        let http_requests = Family::<HttpLabel, Counter>::default();
        let http_latency =
            Family::<RouteLabel, Histogram>::new_with_constructor(latency_histogram as fn() -> _);
        registry.register("http_requests", "HTTP requests", http_requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            http_latency.clone(),
        );
        let c = counters.clone();
        registry.register("shop_orders_placed", "Orders placed", c.orders_placed);
        registry.register(
            "shop_orders_out_of_stock",
            "Orders refused for lack of stock",
            c.orders_out_of_stock,
        );
        registry.register("shop_orders_paid", "Orders paid", c.orders_paid);
        registry.register(
            "shop_orders_cancelled",
            "Orders cancelled (customer, decline or unpaid timeout)",
            c.orders_cancelled,
        );
        registry.register("shop_payments", "Payment attempts by outcome", c.payments);
        registry.register("shop_notifications", "Notifications recorded", c.notifications);
        registry.register(
            "shop_carts_expired",
            "Carts whose reservation ended: lines removed, stock released",
            c.carts_expired,
        );
        registry.register_collector(Box::new(PrimitivesCollector { operations }));
        Self { registry, http_requests, http_latency }
    }

    /// The OpenMetrics text of every metric.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
