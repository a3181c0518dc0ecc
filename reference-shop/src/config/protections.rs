//! `[protections]`: one switch that turns levee's protections of the shop off, for the
//! outage side by side (`reference-shop outage-compare`): the same shop, the same code, built
//! without its guards.

use serde::{Deserialize, Serialize};

/// Whether levee's protections guard the shop.
///
/// With `enabled = false` the shop is what a plausible naive shop would be: the payment
/// pipeline ([`crate::guard`]) has no stage at all (no overall or attempt timeout, no retry or
/// retry budget, no circuit breaker: one provider call, as long as the provider takes), and
/// the edge has no bulkhead (nothing is shed). Everything else stays as configured: the pool
/// sizes, the queue's consumers and redeliveries, the provider's own latency, the per-client
/// rate limit and the HTTP hygiene of `server.clients` (read timeouts, the request deadline,
/// connection limits), which any server has.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProtectionsConfig {
    /// `true` (the default): the payment pipeline and the edge's bulkhead run as configured.
    /// `false`: neither runs.
    pub enabled: bool,
}

impl Default for ProtectionsConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

impl ProtectionsConfig {
    /// Protections off.
    #[must_use]
    pub fn off() -> Self {
        Self { enabled: false }
    }
}
