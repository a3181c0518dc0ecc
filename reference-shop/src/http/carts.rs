//! Cart handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::Caller;
use super::extract::{ApiJson, ApiPath};
use crate::api::{ApiError, CartItem, CartNotificationList, CartView, ErrorBody};
use crate::app::Shop;

type Result = std::result::Result<Json<CartView>, ApiError>;

/// `GET /cart`.
#[utoipa::path(
    get,
    path = "/cart",
    operation_id = "getCart",
    tag = "cart",
    security(("api_key" = [])),
    responses((status = 200, description = "The caller's cart", body = CartView))
)]
pub(super) async fn view(State(shop): State<Arc<Shop>>, Caller(c): Caller) -> Result {
    shop.carts.view(c.id).await.map(Json)
}

/// `POST /cart/items`: sets a line's quantity (0 removes it) and reserves the stock.
#[utoipa::path(
    post,
    path = "/cart/items",
    operation_id = "setCartItem",
    tag = "cart",
    security(("api_key" = [])),
    request_body = CartItem,
    responses(
        (status = 200, description = "The cart with the line set", body = CartView),
        (status = 404, description = "No such product (`not_found`)", body = ErrorBody),
        (status = 409, description = "Not enough stock (`out_of_stock`, with `product_id` and `available`)", body = ErrorBody),
        (status = 422, description = "A quantity over `orders.max_quantity` (`invalid_quantity`), or a body that does not fit `CartItem` (`invalid_body`)", body = ErrorBody),
    )
)]
pub(super) async fn set_item(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiJson(item): ApiJson<CartItem>,
) -> Result {
    shop.carts.set_item(c.id, item).await.map(Json)
}

/// `DELETE /cart/items/{product_id}`.
#[utoipa::path(
    delete,
    path = "/cart/items/{product_id}",
    operation_id = "removeCartItem",
    tag = "cart",
    security(("api_key" = [])),
    params(("product_id" = i64, Path, description = "Product id")),
    responses(
        (status = 200, description = "The cart without the line (unchanged if it had none)", body = CartView),
        (status = 422, description = "An id that is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
    )
)]
pub(super) async fn remove_item(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(product_id): ApiPath,
) -> Result {
    shop.carts.remove_item(c.id, product_id).await.map(Json)
}

/// `DELETE /cart`.
#[utoipa::path(
    delete,
    path = "/cart",
    operation_id = "clearCart",
    tag = "cart",
    security(("api_key" = [])),
    responses((status = 200, description = "The empty cart; its reservation is released", body = CartView))
)]
pub(super) async fn clear(State(shop): State<Arc<Shop>>, Caller(c): Caller) -> Result {
    shop.carts.clear(c.id).await.map(Json)
}

/// `GET /cart/notifications`: what the caller was told about their cart.
#[utoipa::path(
    get,
    path = "/cart/notifications",
    operation_id = "getCartNotifications",
    tag = "cart",
    security(("api_key" = [])),
    responses((
        status = 200,
        description = "The caller's cart notifications (`cart_expired`), oldest first",
        body = CartNotificationList
    ))
)]
pub(super) async fn notifications(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
) -> std::result::Result<Json<CartNotificationList>, ApiError> {
    shop.notifications.for_customer(c.id).await.map(Json)
}
