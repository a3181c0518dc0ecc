//! The levee primitives' counters, read from one [`ShopStatus`](crate::api::ShopStatus)
//! snapshot at scrape time: the primitives carry no metrics dependency, and `/metrics` and
//! `/admin/status` cannot disagree.

use std::fmt;
use std::sync::Arc;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use crate::bus::SubscriptionStats;
use crate::http::{RedisEdgeStats, RedisLimitStats};
use crate::provider::ProviderEndpointStatus;
use crate::services::{Operations, SharedBreakerStatus};

/// Reads the primitives' counters at scrape time.
#[derive(Debug, Clone)]
pub struct PrimitivesCollector {
    /// Where the snapshot comes from.
    pub operations: Arc<Operations>,
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
        let status = self.operations.status();
        let b = status.breaker;
        gauge(
            &mut e,
            "levee_breaker_state",
            "Payment breaker: 0 closed, 1 open, 2 half-open",
            b.state.as_gauge(),
        )?;
        counter(&mut e, "levee_breaker_opened", "Times the payment breaker opened", b.opened)?;
        counter(
            &mut e,
            "levee_breaker_closed",
            "Times the payment breaker closed again after a successful trial call",
            b.closed,
        )?;
        counter(&mut e, "levee_breaker_rejected", "Calls refused by the open breaker", b.rejected)?;
        let p = status.payment;
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
        if let Some(available) = p.retry_budget_available {
            gauge(
                &mut e,
                "levee_retry_budget_available",
                "Retries the payment retry budget allows now",
                i64::try_from(available).unwrap_or(i64::MAX),
            )?;
        }
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

        if let Some(shared) = &status.shared_breaker {
            shared_breaker(&mut e, shared)?;
        }

        let edge = status.edge;
        labelled(
            &mut e,
            "levee_limiter_rejections",
            "Requests refused at the edge",
            MetricType::Counter,
            &[
                ([("limiter", "rate".to_owned())], edge.rate_limited),
                ([("limiter", "signup".to_owned())], edge.signup_limited),
                ([("limiter", "bulkhead".to_owned())], edge.shed),
                ([("limiter", "admission".to_owned())], edge.admission_shed),
            ],
        )?;
        if let Some(capacity) = edge.admission_capacity {
            gauge(
                &mut e,
                "levee_admission_capacity",
                "Requests in flight the admission controller estimates the shop can serve",
                i64::try_from(capacity).unwrap_or(i64::MAX),
            )?;
        }
        counter(&mut e, "levee_limiter_admitted", "Requests admitted at the edge", edge.admitted)?;
        if let Some(redis) = edge.redis {
            redis_limits(&mut e, &redis)?;
        }
        gauge(
            &mut e,
            "levee_bulkhead_in_flight",
            "Requests being served",
            i64::try_from(edge.in_flight).unwrap_or(0),
        )?;

        let conn = status.connections;
        gauge(
            &mut e,
            "shop_connections_open",
            "HTTP connections open",
            i64::try_from(conn.open).unwrap_or(i64::MAX),
        )?;
        counter(&mut e, "shop_connections_accepted", "HTTP connections accepted", conn.accepted)?;
        labelled(
            &mut e,
            "shop_connections_refused",
            "HTTP connections refused at once: the shop's or one address's limit was reached",
            MetricType::Counter,
            &[
                ([("limit", "total".to_owned())], conn.refused_total),
                ([("limit", "per_address".to_owned())], conn.refused_per_address),
            ],
        )?;
        labelled(
            &mut e,
            "shop_slow_clients_cut",
            "Slow clients cut off: headers or body not read in time, request not served in time",
            MetricType::Counter,
            &[
                ([("timeout", "header_read".to_owned())], conn.header_timeouts),
                ([("timeout", "body_read".to_owned())], conn.body_timeouts),
                ([("timeout", "request".to_owned())], conn.deadlines_exceeded),
            ],
        )?;
        labelled(
            &mut e,
            "shop_tls_handshakes_refused",
            "Connections closed before HTTP because their TLS handshake failed (plaintext, no or an unknown client certificate) or timed out",
            MetricType::Counter,
            &[
                ([("reason", "failed".to_owned())], conn.tls_handshakes_failed),
                ([("reason", "timeout".to_owned())], conn.tls_handshake_timeouts),
            ],
        )?;

        let c = status.cache;
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
        let c = status.customer_cache;
        counter(
            &mut e,
            "levee_customer_cache_hits",
            "API key look-ups answered from the customer cache (known and unknown keys)",
            c.hits,
        )?;
        counter(
            &mut e,
            "levee_customer_cache_loads",
            "API key look-ups that reached the store",
            c.loads,
        )?;

        let b = &status.queue;
        counter(&mut e, "levee_queue_published", "Events published", b.published)?;
        counter(
            &mut e,
            "levee_queue_handler_panics",
            "Event handlers that panicked (their events were redelivered)",
            b.handler_panics,
        )?;
        gauge(
            &mut e,
            "levee_queue_dlq_depth",
            "Dead letters held",
            i64::try_from(b.dlq_depth).unwrap_or(0),
        )?;
        let per = |f: fn(&SubscriptionStats) -> u64| -> Vec<([(&'static str, String); 1], u64)> {
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

        let t = status.timers;
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

        let p = status.provider;
        counter(&mut e, "shop_provider_calls", "Calls the payment provider received", p.calls)?;
        counter(&mut e, "shop_provider_charges", "Distinct charges the provider made", p.charges)?;
        if let Some(endpoints) = &status.provider_endpoints {
            provider_endpoints(&mut e, endpoints)?;
        }
        counter(
            &mut e,
            "shop_store_product_reads",
            "Product reads that reached the database",
            status.store.product_reads,
        )?;
        Ok(())
    }
}

/// The payment breaker's sharing with its peers (`[payment.shared_breaker]`): peers heard,
/// messages sent, received and dropped, probes the peers caused.
fn shared_breaker(e: &mut DescriptorEncoder<'_>, s: &SharedBreakerStatus) -> fmt::Result {
    let row = |kind: &'static str, v: u64| ([("kind", kind.to_owned())], v);
    let gauge_of = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    gauge(
        e,
        "levee_shared_breaker_peers",
        "Peers of the payment breaker whose last report is still trusted",
        gauge_of(s.peers),
    )?;
    gauge(
        e,
        "levee_shared_breaker_peers_open",
        "Peers of the payment breaker whose last report was open",
        gauge_of(s.peers_open),
    )?;
    labelled(
        e,
        "levee_shared_breaker_messages",
        "Breaker reports: sent to the peers, lost before NATS took them, received from peers, dropped (unreadable or stale)",
        MetricType::Counter,
        &[
            row("sent", s.sent),
            row("send_lost", s.send_lost),
            row("received", s.received),
            row("dropped", s.dropped),
        ],
    )?;
    labelled(
        e,
        "levee_shared_breaker_probes",
        "Probes the peers caused: a quorum reported the provider down, or a peer's trial passed",
        MetricType::Counter,
        &[row("quorum_open", s.quorum_probes), row("peer_recovered", s.early_trials)],
    )
}

/// The edge's limits on Redis (`edge.redis.url`): checks, failures, fallbacks and the
/// breaker around Redis, per limit (`limiter="rate"` or `"signup"`).
fn redis_limits(e: &mut DescriptorEncoder<'_>, redis: &RedisEdgeStats) -> fmt::Result {
    type Field = fn(&RedisLimitStats) -> u64;
    let per_limit = |f: Field| {
        [
            ([("limiter", "rate".to_owned())], f(&redis.rate)),
            ([("limiter", "signup".to_owned())], f(&redis.signup)),
        ]
    };
    let counters: [(&str, &str, Field); 4] = [
        ("levee_redis_checks", "Edge limit checks sent to Redis, answered or not", |s| s.checks),
        ("levee_redis_failures", "Edge limit checks Redis failed (errors and timeouts)", |s| {
            s.failures
        }),
        ("levee_redis_timeouts", "Edge limit checks Redis did not answer in time", |s| s.timeouts),
        (
            "levee_redis_fallbacks",
            "Edge limit checks decided by the fail mode without Redis",
            |s| s.fallbacks,
        ),
    ];
    for (name, help, f) in counters {
        labelled(e, name, help, MetricType::Counter, &per_limit(f))?;
    }
    let state = |s: &RedisLimitStats| u64::try_from(s.breaker.as_gauge()).unwrap_or(0);
    labelled(
        e,
        "levee_redis_breaker_state",
        "Breaker around Redis, per edge limit: 0 closed, 1 open, 2 half-open",
        MetricType::Gauge,
        &per_limit(state),
    )
}

/// Each remote provider replica (`provider.urls`), labelled `endpoint="http://host:port"`:
/// its breaker in the shop's client, whether it is ejected, calls in flight, the latency
/// estimate, calls and failures.
fn provider_endpoints(
    e: &mut DescriptorEncoder<'_>,
    endpoints: &[ProviderEndpointStatus],
) -> fmt::Result {
    type Field = fn(&ProviderEndpointStatus) -> u64;
    let metrics: [(&str, &str, MetricType, Field); 6] = [
        (
            "shop_provider_endpoint_breaker_state",
            "Breaker of each provider replica in the shop's client: 0 closed, 1 open, 2 half-open",
            MetricType::Gauge,
            |s| u64::try_from(s.breaker.as_gauge()).unwrap_or(0),
        ),
        (
            "shop_provider_endpoint_ejected",
            "1 while a provider replica is out of rotation (its breaker open)",
            MetricType::Gauge,
            |s| u64::from(s.ejected),
        ),
        (
            "shop_provider_endpoint_in_flight",
            "Calls sent to a provider replica and not answered yet",
            MetricType::Gauge,
            |s| u64::from(s.in_flight),
        ),
        (
            "shop_provider_endpoint_latency_microseconds",
            "Peak-EWMA latency estimate of a provider replica",
            MetricType::Gauge,
            |s| s.latency_us,
        ),
        (
            "shop_provider_endpoint_requests",
            "Calls sent to a provider replica",
            MetricType::Counter,
            |s| s.requests,
        ),
        (
            "shop_provider_endpoint_failures",
            "Calls to a provider replica that failed (error status, transport error, timeout)",
            MetricType::Counter,
            |s| s.failures,
        ),
    ];
    for (name, help, kind, f) in metrics {
        let rows: Vec<_> =
            endpoints.iter().map(|s| ([("endpoint", s.url.clone())], f(s))).collect();
        labelled(e, name, help, kind, &rows)?;
    }
    Ok(())
}
