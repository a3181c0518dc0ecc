//! Live settings (issue 22.1): what an operator may change while the shop runs, without a
//! restart and without losing what the mechanisms have learnt (each client's rate-limit
//! debt, the breaker's window and state, the cached entries).

use std::time::Duration;

use levee::breaker::BreakerSettings;
use levee::limit::Quota;
use serde::{Deserialize, Serialize};

/// `GET`/`PATCH /admin/settings` answer: the live settings now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct LiveSettings {
    /// The edge's limits.
    pub edge: EdgeLive,
    /// The payment pipeline's breaker.
    pub payment: PaymentLive,
    /// The caches.
    pub cache: CachesLive,
}

/// The edge's live limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EdgeLive {
    /// Each client's rate (`edge.rate`): `{"count": 100, "period": "1s", "burst": 200}`.
    #[schema(value_type = Object)]
    pub rate: Quota,
    /// Sign-ups per address (`limits.signup`).
    #[schema(value_type = Object)]
    pub signup: Quota,
    /// Requests served at once (`edge.bulkhead.max_concurrent`).
    pub max_concurrent: usize,
}

/// The payment pipeline's live settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PaymentLive {
    /// The breaker (`payment.breaker`, levee-breaker's `BreakerSettings`).
    #[schema(value_type = Object)]
    pub breaker: BreakerSettings,
}

/// The caches' live settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CachesLive {
    /// Products by id (`cache.products`).
    pub products: CacheLive,
    /// Customers by API key (`cache.customers`).
    pub customers: CacheLive,
}

/// One cache's live settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CacheLive {
    /// Entries kept at most.
    pub max_capacity: u64,
    /// How long an entry lives (`"300s"`); `null`: no age limit.
    #[serde(with = "levee::core::serde_duration::option")]
    #[schema(value_type = Option<String>, example = "300s")]
    pub time_to_live: Option<Duration>,
}

/// `PATCH /admin/settings` body: the settings to change; any part may be left out. Every
/// value is checked before any is applied, so a refused patch changes nothing.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SettingsPatch {
    /// The edge's limits.
    #[serde(default)]
    pub edge: Option<EdgePatch>,
    /// The payment breaker.
    #[serde(default)]
    pub payment: Option<PaymentPatch>,
    /// The caches.
    #[serde(default)]
    pub cache: Option<CachesPatch>,
}

/// Changes to the edge's limits.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EdgePatch {
    /// A new per-client rate; each client keeps the requests it owes, paid back at the new
    /// rate (levee-limit's `KeyedRateLimiter::reconfigure`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub rate: Option<Quota>,
    /// A new sign-up rate per address, by the same rule.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub signup: Option<Quota>,
    /// A new concurrency limit (at least 1); requests in flight finish, and none is admitted
    /// until fewer than the new limit are in flight.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_concurrent: Option<usize>,
}

/// Changes to the payment pipeline.
#[derive(Debug, Clone, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentPatch {
    /// New breaker settings, whole; the breaker keeps its state and its window
    /// (levee-breaker's `CircuitBreaker::reconfigure`).
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    pub breaker: Option<BreakerSettings>,
}

/// Changes to the caches.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CachesPatch {
    /// The product cache.
    #[serde(default)]
    pub products: Option<CachePatch>,
    /// The customer cache.
    #[serde(default)]
    pub customers: Option<CachePatch>,
}

/// Changes to one cache.
#[derive(Debug, Clone, Copy, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CachePatch {
    /// A new capacity (at least 1); the cache evicts down to it at once.
    #[serde(default)]
    #[schema(minimum = 1)]
    pub max_capacity: Option<u64>,
    /// A new time to live (`"30s"`); entries already stored live no longer than it from
    /// now. Leave it out to keep the time to live.
    #[serde(default, with = "levee::core::serde_duration::option")]
    #[schema(value_type = Option<String>, example = "30s")]
    pub time_to_live: Option<Duration>,
}
