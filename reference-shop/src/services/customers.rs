//! Customers: sign-up, and who an API key belongs to.
//!
//! Every customer request looks its API key up; the look-up goes through a levee cache
//! (`cache.customers`), so a burst of requests with one key makes one store read, a known key
//! is answered from memory until its time to live, and an unknown key is remembered as unknown
//! for the cache's `negative_ttl` (made-up keys do not each cost a store read).

use std::sync::Arc;

use levee::cache::{Cache, CacheSettings};

use super::{CacheStats, Infra};
use crate::api::{ApiError, NewCustomer};
use crate::clock::ShopClock;
use crate::config::{SettingError, section};
use crate::domain::Customer;
use crate::store::{Store, StoreError};

/// Why a key look-up found no customer. Only `Unknown` is remembered by the cache.
#[derive(Debug)]
enum Lookup {
    /// No customer has this key.
    Unknown,
    /// The store failed.
    Store(StoreError),
}

/// API keys longer than this are refused without a look-up.
const MAX_KEY_LEN: usize = 200;

/// The customer service.
pub struct Customers {
    store: Arc<Store>,
    clock: ShopClock,
    by_key: Cache<String, Customer, ShopClock>,
}

impl std::fmt::Debug for Customers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Customers").field("cache", &self.cache_stats()).finish()
    }
}

impl Customers {
    /// The cache, for its live settings (`LiveControl`).
    pub(crate) fn cache(&self) -> &Cache<String, Customer, ShopClock> {
        &self.by_key
    }

    /// Customers over `infra`'s store, looked up through a cache built from `cache`.
    ///
    /// # Errors
    /// A cache setting out of range, named (`cache.customers.negative_ttl`, ...).
    pub fn new(infra: &Infra, cache: &CacheSettings) -> Result<Self, SettingError> {
        let by_key = cache
            .builder()
            .cache_errors_if(|e: &Lookup| matches!(e, Lookup::Unknown))
            .clock(infra.clock.clone())
            .build()
            .map_err(section("cache.customers"))?;
        Ok(Self { store: Arc::clone(&infra.store), clock: infra.clock.clone(), by_key })
    }

    /// Creates a customer with a fresh API key.
    ///
    /// # Errors
    /// 422 for a name longer than 64 characters or empty once surrounding spaces, tabs and
    /// line breaks are dropped (the document's `maxLength` and `pattern`); store failures.
    pub async fn create(&self, body: NewCustomer) -> Result<Customer, ApiError> {
        let name = body.name.trim_matches([' ', '\t', '\n', '\r']);
        if name.is_empty() || body.name.chars().count() > 64 {
            return Err(ApiError::invalid("invalid_name", "name must have 1 to 64 characters"));
        }
        Ok(self.store.create_customer(name, self.clock.now_ms()).await?)
    }

    /// The customer `api_key` belongs to.
    ///
    /// # Errors
    /// 401 `missing_api_key` without a key, `invalid_api_key` for a key nobody has; store
    /// failures.
    pub async fn authenticate(&self, api_key: Option<&str>) -> Result<Customer, ApiError> {
        let Some(key) = api_key.filter(|k| !k.is_empty() && k.len() <= MAX_KEY_LEN) else {
            return Err(ApiError::unauthorized(
                "missing_api_key",
                "send your API key in the X-Api-Key header (POST /customers creates one)",
            ));
        };
        let store = Arc::clone(&self.store);
        let owned = key.to_owned();
        let found = self
            .by_key
            .try_get_with_async(key.to_owned(), async move {
                match store.customer_by_key(&owned).await {
                    Ok(Some(c)) => Ok(c),
                    Ok(None) => Err(Lookup::Unknown),
                    Err(e) => Err(Lookup::Store(e)),
                }
            })
            .await;
        match found {
            Ok(customer) => Ok(customer),
            Err(e) => match &*e {
                Lookup::Unknown => {
                    Err(ApiError::unauthorized("invalid_api_key", "unknown API key"))
                }
                Lookup::Store(e) => Err(ApiError::from_store(e)),
            },
        }
    }

    /// Whether the cache can answer for `api_key` without a store read.
    #[must_use]
    pub fn is_cached(&self, api_key: &str) -> bool {
        self.by_key.contains_key(api_key)
    }

    /// The customer cache's counters.
    #[must_use]
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats::of(&self.by_key)
    }
}
