//! The catalog: product search, product reads through the coalescing cache, and product
//! changes (admin).
//!
//! A burst of reads of one product makes one store read (levee-cache's single flight, which
//! keeps going when the first reader gives up); a change of stock or price invalidates the
//! entry, beating any load already under way, so the next read sees the change.

use std::sync::Arc;

use levee::cache::{Cache, CacheSettings};

use super::{CacheStats, Infra};
use crate::api::{ApiError, ProductChange, ProductPage, ProductSearch};
use crate::clock::ShopClock;
use crate::config::{SettingError, section};
use crate::domain::Product;
use crate::store::Store;
use crate::store::catalog::ProductQuery;

/// Largest page of a search.
const MAX_PAGE: u32 = 100;

/// The catalog service.
pub struct Catalog {
    store: Arc<Store>,
    clock: ShopClock,
    /// Products by id (`None`: no such product, remembered too).
    products: Cache<i64, Option<Product>, ShopClock>,
}

impl std::fmt::Debug for Catalog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Catalog").field("cache", &self.cache_stats()).finish()
    }
}

impl Catalog {
    /// The cache, for its live settings (`LiveControl`).
    pub(crate) fn cache(&self) -> &Cache<i64, Option<Product>, ShopClock> {
        &self.products
    }

    /// The catalog over `infra`'s store, its product cache built from `cache`.
    ///
    /// # Errors
    /// A cache setting out of range, named (`cache.products.time_to_live`, ...).
    pub fn new(infra: &Infra, cache: &CacheSettings) -> Result<Self, SettingError> {
        let products =
            cache.build_with_clock(infra.clock.clone()).map_err(section("cache.products"))?;
        Ok(Self { store: Arc::clone(&infra.store), clock: infra.clock.clone(), products })
    }

    /// A page of products, by id, filtered by name text and category.
    ///
    /// # Errors
    /// 422 for a page size outside 1..=100 or a search text over 100 characters; store
    /// failures.
    pub async fn search(&self, search: ProductSearch) -> Result<ProductPage, ApiError> {
        let limit = search.limit.unwrap_or(20);
        if !(1..=MAX_PAGE).contains(&limit) {
            return Err(ApiError::invalid("invalid_limit", "limit must lie in 1..=100"));
        }
        if search.q.as_ref().is_some_and(|q| q.chars().count() > 100) {
            return Err(ApiError::invalid("invalid_query", "q is at most 100 characters"));
        }
        let offset = search.offset.unwrap_or(0);
        let products = self
            .store
            .products(&ProductQuery {
                text: search.q.filter(|q| !q.trim().is_empty()),
                category: search.category,
                limit: i64::from(limit),
                offset: i64::from(offset),
            })
            .await?;
        Ok(ProductPage { products, limit, offset })
    }

    /// One product, from memory or from one store read shared by every concurrent caller.
    ///
    /// # Errors
    /// 404 for no such product; 503 when the store read failed (every caller that joined it
    /// sees the same error; errors are not cached).
    pub async fn product(&self, id: i64) -> Result<Product, ApiError> {
        let store = Arc::clone(&self.store);
        match self.products.try_get_with_async(id, async move { store.product(id).await }).await {
            Ok(Some(p)) => Ok(p),
            Ok(None) => Err(ApiError::not_found("product")),
            Err(e) => Err(ApiError::unavailable(
                "store_unavailable",
                format!("product could not be read: {e}"),
                1,
            )),
        }
    }

    /// Changes a product's price and/or stock (admin), and drops its cache entry.
    ///
    /// # Errors
    /// 422 for a price outside 0..=100 000 000 or a stock outside 0..=1 000 000 000; 404 for
    /// no such product; store failures.
    pub async fn change(&self, id: i64, change: ProductChange) -> Result<Product, ApiError> {
        if change.price_cents.is_some_and(|p| !(0..=100_000_000).contains(&p))
            || change.stock.is_some_and(|s| !(0..=1_000_000_000).contains(&s))
        {
            return Err(ApiError::invalid(
                "invalid_product_change",
                "price_cents lies in 0..=100000000 and stock in 0..=1000000000",
            ));
        }
        let product = self
            .store
            .update_product(id, change.price_cents, change.stock, self.clock.now_ms())
            .await?
            .ok_or_else(|| ApiError::not_found("product"))?;
        self.stock_changed([id]);
        Ok(product)
    }

    /// The stock (or price) of `products` changed: their cache entries, and any load under
    /// way, are dropped.
    pub fn stock_changed(&self, products: impl IntoIterator<Item = i64>) {
        for id in products {
            self.products.invalidate(&id);
        }
    }

    /// A product as the store has it now, past the cache (for tests and tools).
    ///
    /// # Errors
    /// Store failures.
    pub async fn product_uncached(&self, id: i64) -> Result<Option<Product>, ApiError> {
        Ok(self.store.product(id).await?)
    }

    /// The product cache's counters.
    #[must_use]
    pub fn cache_stats(&self) -> CacheStats {
        CacheStats::of(&self.products)
    }

    /// Product reads that reached the store (the cache's misses, and uncached reads).
    #[must_use]
    pub fn product_reads(&self) -> u64 {
        self.store.product_reads()
    }
}
