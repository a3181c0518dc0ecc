//! Catalog handlers: customers browse, operators change products.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::Admin;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::{ApiError, ProductChange, ProductPage, ProductSearch};
use crate::app::Shop;
use crate::domain::Product;

type Result<T> = std::result::Result<Json<T>, ApiError>;

/// `GET /products`.
pub(super) async fn search(
    State(shop): State<Arc<Shop>>,
    ApiQuery(search): ApiQuery<ProductSearch>,
) -> Result<ProductPage> {
    shop.catalog.search(search).await.map(Json)
}

/// `GET /products/{id}`.
pub(super) async fn product(
    State(shop): State<Arc<Shop>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Product> {
    shop.catalog.product(id).await.map(Json)
}

/// `PATCH /admin/products/{id}`.
pub(super) async fn change(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(change): ApiJson<ProductChange>,
) -> Result<Product> {
    shop.catalog.change(id, change).await.map(Json)
}
