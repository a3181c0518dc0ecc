//! `/metrics` through the `prometheus-client` crate.
//!
//! What the shop counts itself (HTTP requests and latency, orders, payments) are ordinary
//! metrics; what the resilience primitives count (payment pipeline, breaker, limiters, cache,
//! queue, timers) is
//! read from their snapshots at scrape time by [`PrimitivesCollector`], so the primitives
//! carry no metrics dependency.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::bus::EventBus;
use crate::cache::ProductCache;
use crate::edge::Edge;
use crate::guard::PaymentGuard;
use crate::provider::PaymentProvider;
use crate::store::Store;
use crate::timeouts::ShopTimers;

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

/// The shop's own metrics and the registry that serves them.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP requests by route and status.
    pub http_requests: Family<HttpLabel, Counter>,
    /// HTTP latency by route.
    pub http_latency: Family<RouteLabel, Histogram>,
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

fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.000_25, 2.0, 16))
}

impl Metrics {
    /// Registers everything, including the primitives' snapshots.
    #[must_use]
    pub fn new(primitives: PrimitivesCollector) -> Self {
        let mut registry = Registry::default();
        let m = Self {
            registry: Registry::default(),
            http_requests: Family::default(),
            http_latency: Family::new_with_constructor(latency_histogram as fn() -> Histogram),
            orders_placed: Counter::default(),
            orders_out_of_stock: Counter::default(),
            orders_paid: Counter::default(),
            orders_cancelled: Counter::default(),
            payments: Family::default(),
            notifications: Counter::default(),
            carts_expired: Counter::default(),
        };
        registry.register("http_requests", "HTTP requests", m.http_requests.clone());
        registry.register(
            "http_request_duration_seconds",
            "HTTP request latency",
            m.http_latency.clone(),
        );
        registry.register("shop_orders_placed", "Orders placed", m.orders_placed.clone());
        registry.register(
            "shop_orders_out_of_stock",
            "Orders refused for lack of stock",
            m.orders_out_of_stock.clone(),
        );
        registry.register("shop_orders_paid", "Orders paid", m.orders_paid.clone());
        registry.register(
            "shop_orders_cancelled",
            "Orders cancelled (customer, decline or unpaid timeout)",
            m.orders_cancelled.clone(),
        );
        registry.register("shop_payments", "Payment attempts by outcome", m.payments.clone());
        registry.register("shop_notifications", "Notifications recorded", m.notifications.clone());
        registry.register(
            "shop_carts_expired",
            "Carts whose reservation ended: lines removed, stock released",
            m.carts_expired.clone(),
        );
        registry.register_collector(Box::new(primitives));
        Self { registry, ..m }
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

/// Reads the primitives' counters at scrape time.
#[derive(Debug, Clone)]
pub struct PrimitivesCollector {
    /// Edge limiters.
    pub edge: Arc<Edge>,
    /// Product cache.
    pub cache: Arc<ProductCache>,
    /// Payment pipeline (breaker, retry, timeouts).
    pub guard: Arc<PaymentGuard>,
    /// Event bus.
    pub bus: EventBus,
    /// Unpaid-order and cart-reservation timers.
    pub timers: Arc<ShopTimers>,
    /// Payment provider.
    pub provider: Arc<PaymentProvider>,
    /// Store.
    pub store: Arc<Store>,
}

fn counter(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: u64) -> fmt::Result {
    let c = ConstCounter::new(v);
    c.encode(e.encode_descriptor(name, help, None, c.metric_type())?)
}

fn gauge(e: &mut DescriptorEncoder<'_>, name: &str, help: &str, v: i64) -> fmt::Result {
    let g = ConstGauge::new(v);
    g.encode(e.encode_descriptor(name, help, None, g.metric_type())?)
}

fn labelled(
    e: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    kind: MetricType,
    rows: &[([(&'static str, String); 1], u64)],
) -> fmt::Result {
    let mut me = e.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in rows {
        let child = me.encode_family(labels)?;
        match kind {
            MetricType::Counter => ConstCounter::new(*v).encode(child)?,
            _ => ConstGauge::new(i64::try_from(*v).unwrap_or(i64::MAX)).encode(child)?,
        }
    }
    Ok(())
}

impl Collector for PrimitivesCollector {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> fmt::Result {
        let b = self.guard.breaker_status();
        gauge(
            &mut e,
            "levee_breaker_state",
            "Payment breaker: 0 closed, 1 open, 2 half-open",
            b.state.as_gauge(),
        )?;
        counter(&mut e, "levee_breaker_opened", "Times the payment breaker opened", b.opened)?;
        counter(&mut e, "levee_breaker_rejected", "Calls refused by the open breaker", b.rejected)?;
        let p = self.guard.pipeline_status();
        counter(
            &mut e,
            "levee_payment_calls",
            "Provider calls made through the pipeline",
            p.calls,
        )?;
        counter(
            &mut e,
            "levee_payment_failures",
            "Provider calls that failed or timed out",
            p.failures,
        )?;
        counter(&mut e, "levee_retry_attempts", "Retries of provider calls", p.retries)?;
        counter(
            &mut e,
            "levee_retry_exhausted",
            "Payments whose every attempt failed",
            p.retries_exhausted,
        )?;
        counter(
            &mut e,
            "levee_retry_abandoned",
            "Retries not made: the wait (an open breaker's retry-after) passed the deadline",
            p.retries_abandoned,
        )?;
        counter(
            &mut e,
            "levee_retry_budget_exhausted",
            "Retries not made: the retry budget was spent",
            p.retry_budget_exhausted,
        )?;
        gauge(
            &mut e,
            "levee_retry_budget_available",
            "Retries the payment retry budget allows now",
            i64::try_from(p.retry_budget_available).unwrap_or(i64::MAX),
        )?;
        labelled(
            &mut e,
            "levee_timeouts",
            "Payment timeouts: per provider call (attempt) or per payment (overall)",
            MetricType::Counter,
            &[
                ([("scope", "attempt".to_owned())], p.attempt_timeouts),
                ([("scope", "overall".to_owned())], p.overall_timeouts),
            ],
        )?;

        let edge = self.edge.stats();
        labelled(
            &mut e,
            "levee_limiter_rejections",
            "Requests refused at the edge",
            MetricType::Counter,
            &[
                ([("limiter", "rate".to_owned())], edge.rate_limited),
                ([("limiter", "bulkhead".to_owned())], edge.shed),
            ],
        )?;
        counter(&mut e, "levee_limiter_admitted", "Requests admitted at the edge", edge.admitted)?;
        gauge(
            &mut e,
            "levee_bulkhead_in_flight",
            "Requests being served",
            i64::try_from(edge.in_flight).unwrap_or(0),
        )?;

        let c = self.cache.stats();
        counter(&mut e, "levee_cache_hits", "Product reads answered from the cache", c.hits)?;
        counter(
            &mut e,
            "levee_cache_misses",
            "Product reads that found nothing usable in memory",
            c.misses,
        )?;
        counter(&mut e, "levee_cache_loads", "Store reads the cache started", c.loads)?;
        counter(
            &mut e,
            "levee_cache_coalesced",
            "Product reads that joined a load under way",
            c.coalesced,
        )?;
        counter(
            &mut e,
            "levee_cache_invalidations",
            "Cache entries dropped on change",
            c.invalidations,
        )?;
        gauge(
            &mut e,
            "levee_cache_entries",
            "Products cached",
            i64::try_from(c.entries).unwrap_or(0),
        )?;

        let b = self.bus.stats();
        counter(&mut e, "levee_queue_published", "Events published", b.published)?;
        gauge(
            &mut e,
            "levee_queue_dlq_depth",
            "Dead letters held",
            i64::try_from(b.dlq_depth).unwrap_or(0),
        )?;
        let per = |f: fn(&crate::bus::SubscriptionStats) -> u64| -> Vec<([(&'static str, String); 1], u64)> {
            b.subscriptions.iter().map(|s| ([("subscription", s.name.clone())], f(s))).collect()
        };
        labelled(
            &mut e,
            "levee_queue_depth",
            "Events waiting per subscription",
            MetricType::Gauge,
            &per(|s| s.depth),
        )?;
        labelled(
            &mut e,
            "levee_queue_in_flight",
            "Events being handled per subscription",
            MetricType::Gauge,
            &per(|s| s.in_flight),
        )?;
        labelled(
            &mut e,
            "levee_queue_acked",
            "Events handled per subscription",
            MetricType::Counter,
            &per(|s| s.acked),
        )?;
        labelled(
            &mut e,
            "levee_queue_redelivered",
            "Redeliveries per subscription",
            MetricType::Counter,
            &per(|s| s.redelivered),
        )?;
        labelled(
            &mut e,
            "levee_queue_dead_lettered",
            "Events dead-lettered per subscription",
            MetricType::Counter,
            &per(|s| s.dead_lettered),
        )?;

        let t = self.timers.stats();
        gauge(
            &mut e,
            "levee_timers_pending",
            "Timers waiting (unpaid orders and cart reservations)",
            i64::try_from(t.pending).unwrap_or(0),
        )?;
        counter(
            &mut e,
            "levee_timers_fired",
            "Timers fired (unpaid orders and cart reservations)",
            t.fired,
        )?;

        let p = self.provider.stats();
        counter(&mut e, "shop_provider_calls", "Calls the payment provider received", p.calls)?;
        counter(&mut e, "shop_provider_charges", "Distinct charges the provider made", p.charges)?;
        counter(
            &mut e,
            "shop_store_product_reads",
            "Product reads that reached the database",
            self.store.product_reads(),
        )?;
        Ok(())
    }
}
