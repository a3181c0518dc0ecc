//! Order handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use super::auth::Caller;
use super::extract::{ApiJson, ApiPath, ApiQuery};
use crate::api::{
    ApiError, Checkout, ErrorBody, NotificationList, OrderList, Page, Pay, PlaceOrder,
};
use crate::app::Shop;
use crate::domain::Order;

/// `POST /orders` (header `Idempotency-Key`): 201 with a new order; 200 with
/// `Idempotent-Replayed: true` for the order an earlier request with the same key placed.
#[utoipa::path(
    post,
    path = "/orders",
    operation_id = "placeOrder",
    tag = "orders",
    security(("api_key" = [])),
    params(
        ("Idempotency-Key" = String, Header, min_length = 1, max_length = 128, pattern = "^[ -~]*[!-~][ -~]*$",
            description = "1 to 128 visible ASCII characters: a retried request with the same key and body answers the same order"),
    ),
    request_body = PlaceOrder,
    responses(
        (status = 201, description = "The order: stock reserved, awaiting payment", body = Order),
        (status = 200, description = "The order an earlier request with this key placed", body = Order,
            headers(("Idempotent-Replayed" = String, description = "`true`"))),
        (status = 400, description = "No `Idempotency-Key` (`idempotency_key_required`), or a body that is not JSON (`malformed_json`)", body = ErrorBody),
        (status = 404, description = "A line names no product (`unknown_product`)", body = ErrorBody),
        (status = 409, description = "Not enough stock (`out_of_stock`, with `product_id` and `available`), or the key was used for another order (`idempotency_key_reused`)", body = ErrorBody),
        (status = 422, description = "No lines (`empty_order`, also for an empty cart), too many lines, a bad quantity, a product twice (`duplicate_product`), a bad card, or a body that does not fit `PlaceOrder` (`invalid_body`)", body = ErrorBody),
    )
)]
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
#[utoipa::path(
    get,
    path = "/orders",
    operation_id = "listOrders",
    tag = "orders",
    security(("api_key" = [])),
    params(Page),
    responses(
        (status = 200, description = "The caller's orders, newest first", body = OrderList),
        (status = 422, description = "A query value out of range or of the wrong type, or an unknown parameter (`invalid_limit`, `invalid_query`)", body = ErrorBody),
    )
)]
pub(super) async fn list(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Json<OrderList>, ApiError> {
    shop.orders.list(c.id, page).await.map(Json)
}

/// `GET /orders/{id}`.
#[utoipa::path(
    get,
    path = "/orders/{id}",
    operation_id = "getOrder",
    tag = "orders",
    security(("api_key" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 404, description = "No such order of the caller's (`not_found`)", body = ErrorBody),
        (status = 422, description = "An id that is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
    )
)]
pub(super) async fn get(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath,
) -> Result<Json<Order>, ApiError> {
    shop.orders.get(c.id, id).await.map(Json)
}

/// `POST /orders/{id}/pay`: 202 when a payment started, 200 when the order was paid already.
#[utoipa::path(
    post,
    path = "/orders/{id}/pay",
    operation_id = "payOrder",
    tag = "orders",
    security(("api_key" = [])),
    params(("id" = i64, Path, description = "Order id")),
    request_body = Pay,
    responses(
        (status = 202, description = "A payment started; the order's status tells how it ends", body = Order),
        (status = 200, description = "The order was paid already", body = Order),
        (status = 404, description = "No such order of the caller's (`not_found`)", body = ErrorBody),
        (status = 409, description = "The order was cancelled (`order_cancelled`)", body = ErrorBody),
        (status = 422, description = "A bad card (`invalid_card`), a body that does not fit `Pay` (`invalid_body`), or an id that is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
    )
)]
pub(super) async fn pay(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath,
    ApiJson(pay): ApiJson<Pay>,
) -> Result<(StatusCode, Json<Order>), ApiError> {
    let outcome = shop.orders.pay(c.id, id, pay).await?;
    let status = if outcome.started { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(outcome.order)))
}

/// `POST /orders/{id}/checkout`: pays the order while the caller waits. 200 paid; 402
/// declined (the order is cancelled); 202 with `Retry-After` when the provider gave no answer
/// within the checkout's deadline (or the breaker refused at once): the payment goes on
/// behind the queue.
#[utoipa::path(
    post,
    path = "/orders/{id}/checkout",
    operation_id = "checkoutOrder",
    tag = "orders",
    security(("api_key" = [])),
    params(("id" = i64, Path, description = "Order id")),
    request_body = Pay,
    responses(
        (status = 200, description = "Paid: the card was charged (now, or before)", body = Order),
        (status = 202, description = "Payment pending: the provider did not answer within the checkout's deadline, or is known to be down; the order awaits payment (its `payment_error` says why) and the shop goes on trying behind its queue. Look at the order again after `Retry-After`", body = Order,
            headers(("Retry-After" = u64, description = "Seconds until the order is worth looking at again"),
                    ("Location" = String, description = "The order: `/orders/{id}`"))),
        (status = 402, description = "The card was declined (`payment_declined`): the order is cancelled and its stock released", body = ErrorBody),
        (status = 404, description = "No such order of the caller's (`not_found`)", body = ErrorBody),
        (status = 409, description = "The order was cancelled (`order_cancelled`)", body = ErrorBody),
        (status = 422, description = "A bad card (`invalid_card`), a body that does not fit `Pay` (`invalid_body`), or an id that is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
    )
)]
pub(super) async fn checkout(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath,
    ApiJson(pay): ApiJson<Pay>,
) -> Result<Response, ApiError> {
    match shop.orders.checkout(c.id, id, pay).await? {
        Checkout::Paid(order) => Ok((StatusCode::OK, Json(order)).into_response()),
        Checkout::Pending { order, retry_after_secs } => {
            let headers = [
                (header::RETRY_AFTER, HeaderValue::from(retry_after_secs)),
                (header::LOCATION, location(order.id)),
            ];
            Ok((StatusCode::ACCEPTED, headers, Json(order)).into_response())
        }
    }
}

fn location(id: i64) -> HeaderValue {
    HeaderValue::try_from(format!("/orders/{id}"))
        .unwrap_or_else(|_| HeaderValue::from_static("/orders"))
}

/// `POST /orders/{id}/cancel`.
#[utoipa::path(
    post,
    path = "/orders/{id}/cancel",
    operation_id = "cancelOrder",
    tag = "orders",
    security(("api_key" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order, cancelled (also when it was already); its stock is released", body = Order),
        (status = 404, description = "No such order of the caller's (`not_found`)", body = ErrorBody),
        (status = 409, description = "The order is paid (`order_paid`)", body = ErrorBody),
        (status = 422, description = "An id that is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
    )
)]
pub(super) async fn cancel(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath,
) -> Result<Json<Order>, ApiError> {
    shop.orders.cancel(c.id, id).await.map(Json)
}

/// `GET /orders/{id}/notifications`: the caller's order's notifications.
#[utoipa::path(
    get,
    path = "/orders/{id}/notifications",
    operation_id = "listOrderNotifications",
    tag = "orders",
    security(("api_key" = [])),
    params(("id" = i64, Path, description = "Order id")),
    responses(
        (status = 200, description = "What the customer was told about the order, oldest first", body = NotificationList),
        (status = 404, description = "No such order of the caller's (`not_found`)", body = ErrorBody),
        (status = 422, description = "An id that is not a 64-bit integer (`invalid_path`)", body = ErrorBody),
    )
)]
pub(super) async fn notifications(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath,
) -> Result<Json<NotificationList>, ApiError> {
    let order = shop.orders.get(c.id, id).await?;
    shop.notifications.for_order(order.id).await.map(Json)
}
