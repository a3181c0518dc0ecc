//! The catalog's requests and answers.

use serde::{Deserialize, Serialize};

use crate::domain::Product;

/// `GET /products` query: a page of products, filtered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ProductSearch {
    /// Words the name contains (case-insensitive, at most 100 characters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(max_length = 100, nullable = false)]
    pub q: Option<String>,
    /// Exact category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[param(nullable = false)]
    pub category: Option<String>,
    /// Page size, 1 to 100 (default 20).
    #[serde(
        default,
        deserialize_with = "super::integral::opt_u32",
        skip_serializing_if = "Option::is_none"
    )]
    #[param(minimum = 1, maximum = 100, nullable = false)]
    pub limit: Option<u32>,
    /// Products to skip (default 0).
    #[serde(
        default,
        deserialize_with = "super::integral::opt_u32",
        skip_serializing_if = "Option::is_none"
    )]
    #[param(maximum = 4_294_967_295_u64, nullable = false)]
    pub offset: Option<u32>,
}

/// `GET /products` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ProductPage {
    /// The page, by id.
    pub products: Vec<Product>,
    /// The page size used.
    pub limit: u32,
    /// The products skipped.
    pub offset: u32,
}

/// `PATCH /admin/products/{id}` body: what to change (absent fields stay).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ProductChange {
    /// New price in cents, 0 to 100 000 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 100_000_000)]
    pub price_cents: Option<i64>,
    /// New stock, 0 to 1 000 000 000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub stock: Option<i64>,
}
