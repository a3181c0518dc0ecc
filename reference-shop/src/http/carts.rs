//! Cart handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::Caller;
use super::extract::{ApiJson, ApiPath};
use crate::api::{ApiError, CartItem, CartView};
use crate::app::Shop;

type Result = std::result::Result<Json<CartView>, ApiError>;

/// `GET /cart`.
pub(super) async fn view(State(shop): State<Arc<Shop>>, Caller(c): Caller) -> Result {
    shop.carts.view(c.id).await.map(Json)
}

/// `POST /cart/items`.
pub(super) async fn set_item(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiJson(item): ApiJson<CartItem>,
) -> Result {
    shop.carts.set_item(c.id, item).await.map(Json)
}

/// `DELETE /cart/items/{product_id}`.
pub(super) async fn remove_item(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(product_id): ApiPath<i64>,
) -> Result {
    shop.carts.remove_item(c.id, product_id).await.map(Json)
}

/// `DELETE /cart`.
pub(super) async fn clear(State(shop): State<Arc<Shop>>, Caller(c): Caller) -> Result {
    shop.carts.clear(c.id).await.map(Json)
}
