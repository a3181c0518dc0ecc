//! Order handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::{ApiError, NotificationList, OrderList, Page, Pay, PlaceOrder};
use crate::app::Shop;
use crate::domain::Order;

/// `POST /orders` (header `Idempotency-Key`): 201 with a new order; 200 with
/// `Idempotent-Replayed: true` for the order an earlier request with the same key placed.
pub(super) async fn place(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PlaceOrder>,
) -> Result<Response, ApiError> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
    let placed = shop.orders.place(c.id, key, body).await?;
    if placed.replayed {
        let replayed = [("idempotent-replayed", HeaderValue::from_static("true"))];
        Ok((StatusCode::OK, replayed, Json(placed.order)).into_response())
    } else {
        Ok((StatusCode::CREATED, Json(placed.order)).into_response())
    }
}

/// `GET /orders`.
pub(super) async fn list(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<OrderList>, ApiError> {
    shop.orders.list(c.id, page).await.map(Json)
}

/// `GET /orders/{id}`.
pub(super) async fn get(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Order>, ApiError> {
    shop.orders.get(c.id, id).await.map(Json)
}

/// `POST /orders/{id}/pay`: 202 when a payment started, 200 when the order was paid already.
pub(super) async fn pay(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(pay): ApiJson<Pay>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let outcome = shop.orders.pay(c.id, id, pay).await?;
    let status = if outcome.started { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(outcome.order)))
}

/// `POST /orders/{id}/cancel`.
pub(super) async fn cancel(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<Order>, ApiError> {
    shop.orders.cancel(c.id, id).await.map(Json)
}

/// `GET /orders/{id}/notifications`: the caller's order's notifications.
pub(super) async fn notifications(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Json<NotificationList>, ApiError> {
    let order = shop.orders.get(c.id, id).await?;
    shop.notifications.for_order(order.id).await.map(Json)
}
