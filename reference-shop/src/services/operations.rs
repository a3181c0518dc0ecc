//! Operations: readiness, the status of every resilience mechanism (also what `/metrics`
//! exports), fault injection, and the dead-letter queue.
//!
//! Readiness answers "should a load balancer send customers here now?": no while the store
//! does not answer within `health.store_timeout` (on the shop clock), while an event
//! subscription's consumers are stopped, or while the edge sheds: the bulkhead is full, or
//! it shed a request within `health.shed_window`. The bulkhead counts its refusals but not
//! when they happened, so each check compares the count with the one the previous check saw
//! and remembers the time it rose: "shed recently" is exact to the probing interval.

use std::sync::Arc;

use levee::core::Clock;
use parking_lot::Mutex;

use super::{Catalog, Customers, Infra, Payments, SharedPaymentBreaker};
use crate::api::{
    ApiError, Check, DeadLetterList, Liveness, Readiness, ReadyChecks, ReadyStatus, Replay,
    Replayed, ShopStatus, StockLedger, StoreStatus,
};
use crate::bus::EventBus;
use crate::clock::ShopClock;
use crate::config::HealthConfig;
use crate::faults::{FaultPatch, FaultSettings, Faults};
use crate::http::{Connections, Edge};
use crate::store::Store;
use crate::timeouts::ShopTimers;

/// The operations service: what operators and monitoring ask.
#[derive(Debug)]
pub struct Operations {
    store: Arc<Store>,
    bus: EventBus,
    timers: Arc<ShopTimers>,
    faults: Arc<Faults>,
    edge: Arc<Edge>,
    connections: Arc<Connections>,
    catalog: Arc<Catalog>,
    customers: Arc<Customers>,
    payments: Arc<Payments>,
    shared_breaker: Option<Arc<SharedPaymentBreaker>>,
    clock: ShopClock,
    health: HealthConfig,
    shed: Mutex<ShedSeen>,
}

/// The bulkhead's refusal count as the last readiness check saw it, and when it last rose.
#[derive(Debug, Default)]
struct ShedSeen {
    count: u64,
    rose_at: Option<u64>,
}

fn nanos(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// What the operations service reports on besides the infrastructure: the edge, the
/// listener's connections and the services with counters of their own.
#[derive(Debug)]
pub struct Reported {
    /// The edge (rate limit, bulkhead).
    pub edge: Arc<Edge>,
    /// The listener's connections.
    pub connections: Arc<Connections>,
    /// The catalog (its cache).
    pub catalog: Arc<Catalog>,
    /// The customers (their cache).
    pub customers: Arc<Customers>,
    /// The payments (breaker, retries).
    pub payments: Arc<Payments>,
    /// The payment breaker's link to its peers (`[payment.shared_breaker]`), if on.
    pub shared_breaker: Option<Arc<SharedPaymentBreaker>>,
}

impl Operations {
    /// Operations over `infra`, changing `faults` and reporting on `reported`; readiness as
    /// `health` says.
    #[must_use]
    pub fn new(
        infra: &Infra,
        faults: Arc<Faults>,
        reported: Reported,
        health: HealthConfig,
    ) -> Self {
        let Reported { edge, connections, catalog, customers, payments, shared_breaker } = reported;
        Self {
            store: Arc::clone(&infra.store),
            bus: infra.bus.clone(),
            timers: Arc::clone(&infra.timers),
            faults,
            edge,
            connections,
            catalog,
            customers,
            payments,
            shared_breaker,
            clock: infra.clock.clone(),
            health,
            shed: Mutex::new(ShedSeen::default()),
        }
    }

    /// Liveness: the process answers. Nothing else is checked, so that an orchestrator does
    /// not restart a shop that is only overloaded or waiting for its database.
    #[must_use]
    pub fn live(&self) -> Liveness {
        Liveness { status: ReadyStatus::Ok }
    }

    /// Readiness: the store answers, the event consumers run, and the edge is not shedding.
    pub async fn ready(&self) -> Readiness {
        let timeout = self.health.store_timeout;
        let store = tokio::select! {
            answer = self.store.ping() => match answer {
                Ok(()) => Check::pass(),
                Err(e) => Check::fail(e.to_string()),
            },
            () = self.clock.sleep(timeout) => {
                Check::fail(format!("no answer within {} ms (health.store_timeout)", timeout.as_millis()))
            }
        };
        let bus = match self.bus.consumers_running() {
            Ok(_) => Check::pass(),
            Err(stopped) if stopped.is_empty() => {
                Check::fail("no event consumers run (shutting down)")
            }
            Err(stopped) => Check::fail(format!("consumers stopped: {}", stopped.join(", "))),
        };
        Readiness::of(ReadyChecks { store, bus, edge: self.edge_check() })
    }

    /// Whether the bulkhead is full or shed a request within the shed window.
    fn edge_check(&self) -> Check {
        let stats = self.edge.stats();
        let now = self.clock.now();
        let window = self.health.shed_window;
        let recently = {
            let mut seen = self.shed.lock();
            if stats.shed > seen.count {
                seen.count = stats.shed;
                seen.rose_at = Some(now);
            }
            seen.rose_at.filter(|&at| now.saturating_sub(at) < nanos(window))
        };
        if stats.in_flight >= stats.max_concurrent {
            Check::fail(format!(
                "shedding: {} of {} requests in flight (edge.bulkhead is full)",
                stats.in_flight, stats.max_concurrent
            ))
        } else if let Some(at) = recently {
            Check::fail(format!(
                "shedding: the bulkhead refused requests {} ms ago ({} in all; ready again {} ms after the last, health.shed_window)",
                now.saturating_sub(at) / 1_000_000,
                stats.shed,
                window.as_millis()
            ))
        } else {
            Check::pass()
        }
    }

    /// What every resilience mechanism has done, now.
    #[must_use]
    pub fn status(&self) -> ShopStatus {
        ShopStatus {
            breaker: self.payments.breaker_status(),
            payment: self.payments.pipeline_status(),
            shared_breaker: self.shared_breaker.as_ref().map(|s| s.status()),
            edge: self.edge.stats(),
            connections: self.connections.stats(),
            cache: self.catalog.cache_stats(),
            customer_cache: self.customers.cache_stats(),
            queue: self.bus.stats(),
            timers: self.timers.stats(),
            provider: self.payments.provider_stats(),
            provider_endpoints: self.payments.provider_endpoints(),
            faults: self.faults.get(),
            store: StoreStatus {
                backend: format!("{:?}", self.store.backend()).to_lowercase(),
                product_reads: self.store.product_reads(),
            },
        }
    }

    /// Whether every event written so far has been handled (see [`EventBus::quiet`]).
    pub async fn events_quiet(&self) -> bool {
        self.bus.quiet().await
    }

    /// The injected faults now.
    #[must_use]
    pub fn faults(&self) -> FaultSettings {
        self.faults.get()
    }

    /// Changes the injected faults.
    ///
    /// # Errors
    /// 422 for a value out of range; nothing changes then.
    pub fn set_faults(&self, patch: FaultPatch) -> Result<FaultSettings, ApiError> {
        let settings = self
            .faults
            .apply(patch)
            .map_err(|e| ApiError::invalid("invalid_fault", e.to_string()))?;
        tracing::warn!(?settings, "fault injection changed");
        Ok(settings)
    }

    /// Where every unit of every product is (`GET /admin/stock`), from one snapshot.
    ///
    /// # Errors
    /// 503 when the store fails.
    pub async fn stock_ledger(&self) -> Result<StockLedger, ApiError> {
        Ok(StockLedger { products: self.store.stock_ledger().await? })
    }

    /// Every subscription's dead letters.
    pub async fn dead_letters(&self) -> DeadLetterList {
        DeadLetterList { dead_letters: self.bus.dead_letters().await }
    }

    /// Sends dead letters back with a fresh delivery budget: those `replay` names, or all.
    pub async fn replay(&self, replay: Replay) -> Replayed {
        let replayed = self.bus.replay(replay.ids.as_deref()).await;
        tracing::info!(replayed, "dead letters replayed");
        Replayed { replayed }
    }
}
