//! Operations: the status of every resilience mechanism, the dead-letter queue.

use serde::{Deserialize, Serialize};

use crate::bus::{BusStats, DeadLetter};
use crate::faults::FaultSettings;
use crate::guard::{BreakerStatus, PipelineStatus};
use crate::http::{ConnectionStats, EdgeStats};
use crate::provider::{ProviderEndpointStatus, ProviderStats};
use crate::services::{CacheStats, SharedBreakerStatus};
use crate::timeouts::TimerStats;

/// The store, as `/admin/status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct StoreStatus {
    /// `sqlite` or `postgres`.
    pub backend: String,
    /// Product reads that reached the database (the product cache's misses).
    pub product_reads: u64,
}

/// `GET /admin/status` answer: what every resilience mechanism has done. `/metrics` exports
/// the same snapshot.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ShopStatus {
    /// The payment breaker.
    pub breaker: BreakerStatus,
    /// The payment pipeline: calls, retries, retry budget, timeouts.
    pub payment: PipelineStatus,
    /// The payment breaker's sharing with the other replicas (`[payment.shared_breaker]`);
    /// `null` when off.
    #[schema(required = true)]
    pub shared_breaker: Option<SharedBreakerStatus>,
    /// The edge: rate-limited and shed requests, requests in flight.
    pub edge: EdgeStats,
    /// Connections: open, refused by the limits, closed by the read timeouts.
    pub connections: ConnectionStats,
    /// The product cache.
    pub cache: CacheStats,
    /// The customer cache (API key look-ups).
    pub customer_cache: CacheStats,
    /// The event bus.
    pub queue: BusStats,
    /// Unpaid-order and cart timers.
    pub timers: TimerStats,
    /// The simulated payment provider in this process (all zero when the shop calls remote
    /// providers: see `provider_endpoints`).
    pub provider: ProviderStats,
    /// Each remote provider replica (`provider.urls`) as the shop's client sees it: its
    /// breaker, whether it is ejected, calls in flight, latency estimate; `null` with the
    /// in-process provider.
    #[schema(required = true)]
    pub provider_endpoints: Option<Vec<ProviderEndpointStatus>>,
    /// Injected faults.
    pub faults: FaultSettings,
    /// The store.
    pub store: StoreStatus,
}

/// `GET /admin/dlq` answer.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DeadLetterList {
    /// Every subscription's dead letters.
    pub dead_letters: Vec<DeadLetter>,
}

/// `POST /admin/dlq/replay` body.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Replay {
    /// The dead letters to replay (their `id`s); all when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ids: Option<Vec<u64>>,
}

/// `POST /admin/dlq/replay` answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Replayed {
    /// Dead letters sent back to their subscription.
    pub replayed: usize,
}
