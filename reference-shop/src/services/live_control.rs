//! Live settings (issue 22.1): an operator changes the edge's limits, the payment breaker and
//! the caches while the shop runs (`/admin/settings`). Each change goes through the levee
//! primitive's own `reconfigure`/`set_*`, so nothing it has learnt is lost: a client keeps
//! the requests it owes (paid back at the new rate), the breaker keeps its state and window,
//! the caches keep their entries (evicted down to a smaller capacity, their deadlines brought
//! forward to a shorter time to live).

use std::hash::Hash;
use std::sync::Arc;

use levee::cache::Cache;
use levee::core::ConfigError;
use parking_lot::Mutex;

use super::{Catalog, Customers, Payments};
use crate::api::{
    ApiError, CacheLive, CachePatch, CachesLive, LiveSettings, PaymentLive, SettingsPatch,
};
use crate::clock::ShopClock;
use crate::http::Edge;

/// Reads and changes the live settings.
#[derive(Debug)]
pub struct LiveControl {
    edge: Arc<Edge>,
    catalog: Arc<Catalog>,
    customers: Arc<Customers>,
    payments: Arc<Payments>,
    /// One change at a time, so that a change is checked against the settings it replaces.
    change: Mutex<()>,
}

impl LiveControl {
    /// Control over these services' live settings.
    #[must_use]
    pub fn new(
        edge: Arc<Edge>,
        catalog: Arc<Catalog>,
        customers: Arc<Customers>,
        payments: Arc<Payments>,
    ) -> Self {
        Self { edge, catalog, customers, payments, change: Mutex::new(()) }
    }

    /// The live settings now.
    #[must_use]
    pub fn settings(&self) -> LiveSettings {
        LiveSettings {
            edge: self.edge.live(),
            payment: PaymentLive { breaker: self.payments.breaker_settings() },
            cache: CachesLive {
                products: live(self.catalog.cache()),
                customers: live(self.customers.cache()),
            },
        }
    }

    /// Applies `patch`: every value is checked first, so a refused patch changes nothing.
    ///
    /// # Errors
    /// 422 `invalid_setting` naming the first value out of range; 422 `setting_not_live`
    /// for a rate limit that runs on Redis (`edge.redis.url`).
    pub fn apply(&self, patch: SettingsPatch) -> Result<LiveSettings, ApiError> {
        let _change = self.change.lock();
        if let Some(edge) = &patch.edge {
            for (section, quota) in [("edge.rate", edge.rate), ("edge.signup", edge.signup)] {
                if let Some(quota) = quota {
                    quota.gcra().map_err(|e| invalid(section, &e))?;
                }
            }
            if edge.max_concurrent == Some(0) {
                return Err(invalid("edge", &ConfigError::new("max_concurrent", AT_LEAST_ONE)));
            }
            // A limit on Redis is every shop's: one replica cannot change it alone.
            if let Some((setting, why)) = self.edge.fixed(edge) {
                return Err(ApiError::invalid(
                    "setting_not_live",
                    format!("`{setting}` cannot change while the shop runs: it {why}"),
                ));
            }
        }
        let caches = patch.cache.unwrap_or_default();
        for (section, cache) in
            [("cache.products", caches.products), ("cache.customers", caches.customers)]
        {
            if let Some(cache) = cache {
                check(&cache).map_err(|e| invalid(section, &e))?;
            }
        }
        // The breaker checks its settings itself and changes nothing when it refuses, so it
        // goes first: everything after it cannot fail.
        if let Some(breaker) = patch.payment.and_then(|p| p.breaker) {
            self.payments
                .reconfigure_breaker(breaker)
                .map_err(|e| invalid("payment.breaker", &e))?;
        }
        if let Some(edge) = &patch.edge {
            self.edge.reconfigure(edge);
        }
        if let Some(cache) = caches.products {
            apply(self.catalog.cache(), cache);
        }
        if let Some(cache) = caches.customers {
            apply(self.customers.cache(), cache);
        }
        let settings = self.settings();
        tracing::warn!(?settings, "live settings changed");
        Ok(settings)
    }
}

const AT_LEAST_ONE: &str = "must be at least 1";

/// The 422 answer naming `section`'s setting.
fn invalid(section: &str, error: &ConfigError) -> ApiError {
    // levee names a quota's fields `quota.count`, ...: here the section is the quota.
    let setting = error.setting.strip_prefix("quota.").unwrap_or(error.setting);
    ApiError::invalid(
        "invalid_setting",
        format!("invalid setting `{section}.{setting}`: {}", error.reason),
    )
}

fn live<K, V>(cache: &Cache<K, V, ShopClock>) -> CacheLive
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    CacheLive { max_capacity: cache.max_capacity(), time_to_live: cache.time_to_live() }
}

/// The checks after which `apply` cannot fail.
fn check(patch: &CachePatch) -> Result<(), ConfigError> {
    if patch.max_capacity == Some(0) {
        return Err(ConfigError::new("max_capacity", AT_LEAST_ONE));
    }
    if let Some(ttl) = patch.time_to_live {
        ConfigError::require_positive("time_to_live", ttl)?;
    }
    Ok(())
}

fn apply<K, V>(cache: &Cache<K, V, ShopClock>, patch: CachePatch)
where
    K: Hash + Eq + Clone + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    if let Some(capacity) = patch.max_capacity {
        cache.set_max_capacity(capacity);
    }
    if let Some(ttl) = patch.time_to_live {
        // Checked positive above, and a TTL that is set never conflicts with the cache's
        // other settings (only removing one could): this cannot fail.
        if let Err(error) = cache.set_time_to_live(Some(ttl)) {
            tracing::error!(%error, "time to live refused after its check");
        }
    }
}
