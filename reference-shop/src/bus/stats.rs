//! What the bus has done, for `/admin/status` and `/metrics`.

use serde::Serialize;

/// Counters of one subscription.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SubscriptionStats {
    /// Name.
    pub name: String,
    /// Topic.
    pub topic: String,
    /// Events waiting, including those waiting for a redelivery.
    pub depth: u64,
    /// Events being handled.
    pub in_flight: u64,
    /// Events handled successfully.
    pub acked: u64,
    /// Redeliveries.
    pub redelivered: u64,
    /// Events sent to the dead-letter queue.
    pub dead_lettered: u64,
}

/// Counters of the bus.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct BusStats {
    /// Events published.
    pub published: u64,
    /// Events that could not be published (broker closed or full).
    pub publish_failures: u64,
    /// Dead letters held.
    pub dlq_depth: u64,
    /// Handlers that panicked (their events were redelivered).
    pub handler_panics: u64,
    /// Per subscription.
    pub subscriptions: Vec<SubscriptionStats>,
}
