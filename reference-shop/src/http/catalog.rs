//! Catalog handlers: customers browse, operators change products.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::Admin;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::{ApiError, ErrorBody, ProductChange, ProductPage, ProductSearch};
use crate::app::Shop;
use crate::domain::Product;

type Result<T> = std::result::Result<Json<T>, ApiError>;

/// `GET /products`.
#[utoipa::path(
    get,
    path = "/products",
    operation_id = "searchProducts",
    tag = "catalog",
    params(ProductSearch),
    responses(
        (status = 200, description = "A page of products, by id", body = ProductPage),
        (status = 422, description = "A query value out of range or of the wrong type, or an unknown parameter (`invalid_limit`, `invalid_query`)", body = ErrorBody),
    )
)]
pub(super) async fn search(
    State(shop): State<Arc<Shop>>,
    ApiQuery(search): ApiQuery<ProductSearch>,
) -> Result<ProductPage> {
    shop.catalog.search(search).await.map(Json)
}

/// `GET /products/{id}`.
#[utoipa::path(
    get,
    path = "/products/{id}",
    operation_id = "getProduct",
    tag = "catalog",
    params(("id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The product, with its stock", body = Product),
        (status = 404, description = "No such product (`not_found`)", body = ErrorBody),
        (status = 422, description = "An id that is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
    )
)]
pub(super) async fn product(
    State(shop): State<Arc<Shop>>,
    ApiPath(id): ApiPath,
) -> Result<Product> {
    if let Some(work) = &shop.work {
        work.serve().await;
    }
    shop.catalog.product(id).await.map(Json)
}

/// `PATCH /admin/products/{id}`.
#[utoipa::path(
    patch,
    path = "/admin/products/{id}",
    operation_id = "changeProduct",
    tag = "operations",
    security(("admin_token" = [])),
    params(("id" = i64, Path, description = "Product id")),
    request_body = ProductChange,
    responses(
        (status = 200, description = "The product as changed", body = Product),
        (status = 404, description = "No such product (`not_found`)", body = ErrorBody),
        (status = 422, description = "A price or stock out of range (`invalid_product_change`), a body that does not fit `ProductChange` (`invalid_body`), or an id that is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
    )
)]
pub(super) async fn change(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiPath(id): ApiPath,
    ApiJson(change): ApiJson<ProductChange>,
) -> Result<Product> {
    shop.catalog.change(id, change).await.map(Json)
}
