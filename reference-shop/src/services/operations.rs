//! Operations: health, the status of every resilience mechanism (also what `/metrics`
//! exports), fault injection, and the dead-letter queue.

use std::sync::Arc;

use super::{Catalog, Customers, Infra, Payments};
use crate::api::{
    ApiError, DeadLetterList, Health, HealthStatus, Replay, Replayed, ShopStatus, StoreStatus,
};
use crate::bus::EventBus;
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
}

impl Operations {
    /// Operations over `infra`, changing `faults` and reporting on `edge`, `connections` and
    /// the services.
    #[must_use]
    pub fn new(
        infra: &Infra,
        faults: Arc<Faults>,
        edge: Arc<Edge>,
        connections: Arc<Connections>,
        catalog: Arc<Catalog>,
        customers: Arc<Customers>,
        payments: Arc<Payments>,
    ) -> Self {
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
        }
    }

    /// Whether the shop can serve: the database answers.
    pub async fn health(&self) -> Health {
        match self.store.ping().await {
            Ok(()) => Health { status: HealthStatus::Ok, database: "ok".to_owned() },
            Err(e) => Health { status: HealthStatus::Degraded, database: e.to_string() },
        }
    }

    /// What every resilience mechanism has done, now.
    #[must_use]
    pub fn status(&self) -> ShopStatus {
        ShopStatus {
            breaker: self.payments.breaker_status(),
            payment: self.payments.pipeline_status(),
            edge: self.edge.stats(),
            connections: self.connections.stats(),
            cache: self.catalog.cache_stats(),
            customer_cache: self.customers.cache_stats(),
            queue: self.bus.stats(),
            timers: self.timers.stats(),
            provider: self.payments.provider_stats(),
            faults: self.faults.get(),
            store: StoreStatus {
                backend: format!("{:?}", self.store.backend()).to_lowercase(),
                product_reads: self.store.product_reads(),
            },
        }
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

    /// Every subscription's dead letters.
    #[must_use]
    pub fn dead_letters(&self) -> DeadLetterList {
        DeadLetterList { dead_letters: self.bus.dead_letters() }
    }

    /// Sends dead letters back with a fresh delivery budget: those `replay` names, or all.
    #[must_use]
    pub fn replay(&self, replay: Replay) -> Replayed {
        let replayed = self.bus.replay(replay.ids.as_deref());
        tracing::info!(replayed, "dead letters replayed");
        Replayed { replayed }
    }
}
