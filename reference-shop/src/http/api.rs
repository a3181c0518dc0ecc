//! Customer endpoints: customers, products, cart, orders, notifications; and `/health`.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::Caller;
use super::error::{ApiError, ApiJson, ApiPath, ApiQuery};
use crate::app::Shop;
use crate::domain::{Order, OrderStatus};
use crate::services::reasons;
use crate::store::catalog::{CartChange, ProductQuery};
use crate::store::{PlaceOutcome, Transition};

type Result<T> = std::result::Result<T, ApiError>;

pub(super) async fn health(State(shop): State<Arc<Shop>>) -> Response {
    match shop.store.ping().await {
        Ok(()) => Json(json!({ "status": "ok", "database": "ok" })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "degraded", "database": e.to_string() })),
        )
            .into_response(),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NewCustomer {
    name: String,
}

pub(super) async fn create_customer(
    State(shop): State<Arc<Shop>>,
    ApiJson(body): ApiJson<NewCustomer>,
) -> Result<Response> {
    let name = body.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::invalid("invalid_name", "name must have 1 to 64 characters"));
    }
    let customer = shop.store.create_customer(name, shop.clock.now_ms()).await?;
    Ok((StatusCode::CREATED, Json(customer)).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProductParams {
    q: Option<String>,
    category: Option<String>,
    limit: Option<u32>,
    offset: Option<u32>,
}

pub(super) async fn list_products(
    State(shop): State<Arc<Shop>>,
    ApiQuery(p): ApiQuery<ProductParams>,
) -> Result<Response> {
    let limit = p.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", "limit must lie in 1..=100"));
    }
    if p.q.as_ref().is_some_and(|q| q.len() > 100) {
        return Err(ApiError::invalid("invalid_query", "q is at most 100 characters"));
    }
    let offset = p.offset.unwrap_or(0);
    let products = shop
        .store
        .products(&ProductQuery {
            text: p.q.filter(|q| !q.trim().is_empty()),
            category: p.category,
            limit: i64::from(limit),
            offset: i64::from(offset),
        })
        .await?;
    Ok(Json(json!({ "products": products, "limit": limit, "offset": offset })).into_response())
}

pub(super) async fn get_product(
    State(shop): State<Arc<Shop>>,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response> {
    match shop.cache.get(id).await {
        Ok(Some(p)) => Ok(Json(p).into_response()),
        Ok(None) => Err(ApiError::not_found("product")),
        Err(e) => Err(ApiError::unavailable(
            "store_unavailable",
            format!("product could not be read: {e}"),
            1,
        )),
    }
}

async fn cart_json(shop: &Shop, customer_id: i64) -> Result<Response> {
    let cart = shop.store.cart(customer_id).await?;
    let total: i64 = cart.lines.iter().map(|l| l.price_cents * l.quantity).sum();
    Ok(Json(json!({
        "lines": cart.lines,
        "total_cents": total,
        "reserved_until_ms": cart.expires_at_ms,
    }))
    .into_response())
}

pub(super) async fn get_cart(State(shop): State<Arc<Shop>>, Caller(c): Caller) -> Result<Response> {
    cart_json(&shop, c.id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CartItem {
    product_id: i64,
    quantity: u32,
}

pub(super) async fn set_cart_item(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiJson(item): ApiJson<CartItem>,
) -> Result<Response> {
    if item.quantity > shop.config.orders.max_quantity {
        return Err(ApiError::invalid(
            "invalid_quantity",
            format!("quantity must lie in 0..={}", shop.config.orders.max_quantity),
        ));
    }
    match shop.set_cart_item(c.id, item.product_id, i64::from(item.quantity)).await? {
        CartChange::Done { .. } => cart_json(&shop, c.id).await,
        CartChange::UnknownProduct => Err(ApiError::not_found("product")),
        CartChange::OutOfStock { available } => Err(out_of_stock(item.product_id, available)),
    }
}

fn out_of_stock(product_id: i64, available: i64) -> ApiError {
    ApiError::conflict("out_of_stock", format!("product {product_id} has {available} left"))
        .details(json!({ "product_id": product_id, "available": available }))
}

pub(super) async fn remove_cart_item(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(product_id): ApiPath<i64>,
) -> Result<Response> {
    shop.set_cart_item(c.id, product_id, 0).await?;
    cart_json(&shop, c.id).await
}

pub(super) async fn clear_cart(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
) -> Result<Response> {
    shop.clear_cart(c.id).await?;
    cart_json(&shop, c.id).await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PlaceOrder {
    /// Lines; the cart when absent.
    items: Option<Vec<CartItem>>,
    /// Card token to pay at once.
    card: Option<String>,
}

fn check_card(card: &str) -> Result<()> {
    if card.is_empty() || card.len() > 64 || !card.chars().all(|c| c.is_ascii_graphic()) {
        return Err(ApiError::invalid(
            "invalid_card",
            "card must be a token of 1 to 64 printable characters (try tok_visa)",
        ));
    }
    Ok(())
}

pub(super) async fn place_order(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    headers: HeaderMap,
    ApiJson(body): ApiJson<PlaceOrder>,
) -> Result<Response> {
    let key =
        headers.get("idempotency-key").and_then(|v| v.to_str().ok()).map(str::trim).unwrap_or("");
    if key.is_empty() || key.len() > 128 {
        return Err(ApiError::bad_request(
            "idempotency_key_required",
            "send an Idempotency-Key header (1 to 128 characters) so a retried request cannot \
             place the order twice",
        ));
    }
    if let Some(card) = &body.card {
        check_card(card)?;
    }
    let from_cart = body.items.is_none();
    let items: Vec<(i64, u32)> = match body.items {
        Some(items) => items.into_iter().map(|i| (i.product_id, i.quantity)).collect(),
        None => shop
            .store
            .cart(c.id)
            .await?
            .lines
            .into_iter()
            .map(|l| (l.product_id, u32::try_from(l.quantity).unwrap_or(u32::MAX)))
            .collect(),
    };
    if items.is_empty() {
        if from_cart {
            // A retry after the cart was turned into an order: answer with that order.
            if let Some(order) = shop.store.order_by_key(c.id, key).await? {
                return Ok(order_response(StatusCode::OK, &order, true));
            }
        }
        return Err(ApiError::invalid("empty_order", "an order needs at least one item"));
    }
    let limits = &shop.config.orders;
    if items.len() > limits.max_lines {
        return Err(ApiError::invalid(
            "too_many_lines",
            format!("an order has at most {} lines", limits.max_lines),
        ));
    }
    let mut lines = BTreeMap::new();
    for (product_id, quantity) in items {
        if quantity == 0 || quantity > limits.max_quantity {
            return Err(ApiError::invalid(
                "invalid_quantity",
                format!("quantity must lie in 1..={}", limits.max_quantity),
            ));
        }
        if lines.insert(product_id, i64::from(quantity)).is_some() {
            return Err(ApiError::invalid(
                "duplicate_product",
                format!("product {product_id} appears twice"),
            ));
        }
    }
    // From the cart, the order takes the cart's lines (and their reservation) over in the
    // same transaction that records it: nothing to empty afterwards.
    let outcome = shop
        .place_order(c.id, key.to_owned(), lines.into_iter().collect(), body.card, from_cart)
        .await?;
    match outcome {
        PlaceOutcome::Created(order) => Ok(order_response(StatusCode::CREATED, &order, false)),
        PlaceOutcome::Replayed(order) => Ok(order_response(StatusCode::OK, &order, true)),
        PlaceOutcome::KeyReused => Err(ApiError::conflict(
            "idempotency_key_reused",
            "this Idempotency-Key was used for a different order",
        )),
        PlaceOutcome::OutOfStock { product_id, available } => {
            Err(out_of_stock(product_id, available))
        }
        PlaceOutcome::UnknownProduct(id) => {
            Err(ApiError::invalid("unknown_product", format!("product {id} does not exist")))
        }
    }
}

fn order_response(status: StatusCode, order: &Order, replayed: bool) -> Response {
    let mut r = (status, Json(order)).into_response();
    if replayed {
        r.headers_mut().insert("idempotent-replayed", axum::http::HeaderValue::from_static("true"));
    }
    r
}

/// The caller's order, or 404 (also for other customers' orders: their existence is not
/// revealed).
async fn own_order(shop: &Shop, customer_id: i64, id: i64) -> Result<Order> {
    match shop.store.order(id).await? {
        Some(o) if o.customer_id == customer_id => Ok(o),
        _ => Err(ApiError::not_found("order")),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Page {
    limit: Option<u32>,
    offset: Option<u32>,
}

pub(super) async fn list_orders(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiQuery(page): ApiQuery<Page>,
) -> Result<Response> {
    let limit = page.limit.unwrap_or(20);
    if !(1..=100).contains(&limit) {
        return Err(ApiError::invalid("invalid_limit", "limit must lie in 1..=100"));
    }
    let orders =
        shop.store.orders_of(c.id, i64::from(limit), i64::from(page.offset.unwrap_or(0))).await?;
    Ok(Json(json!({ "orders": orders })).into_response())
}

pub(super) async fn get_order(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response> {
    Ok(Json(own_order(&shop, c.id, id).await?).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Pay {
    card: String,
}

pub(super) async fn pay_order(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<i64>,
    ApiJson(pay): ApiJson<Pay>,
) -> Result<Response> {
    check_card(&pay.card)?;
    let order = own_order(&shop, c.id, id).await?;
    match order.status {
        OrderStatus::Paid => return Ok(Json(order).into_response()),
        OrderStatus::Cancelled => {
            return Err(ApiError::conflict("order_cancelled", "the order was cancelled"));
        }
        OrderStatus::AwaitingPayment => {}
    }
    if !shop.pay_order(&order, &pay.card).await? {
        let order = own_order(&shop, c.id, id).await?;
        return match order.status {
            OrderStatus::Paid => Ok(Json(order).into_response()),
            _ => Err(ApiError::conflict("order_cancelled", "the order was cancelled")),
        };
    }
    let order = own_order(&shop, c.id, id).await?;
    Ok((StatusCode::ACCEPTED, Json(order)).into_response())
}

pub(super) async fn cancel_order(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response> {
    own_order(&shop, c.id, id).await?;
    match shop.cancel_order(id, reasons::CUSTOMER).await? {
        Transition::Applied(_) | Transition::Already => {}
        Transition::Conflict(_) => {
            return Err(ApiError::conflict("order_paid", "a paid order cannot be cancelled"));
        }
        Transition::NotFound => return Err(ApiError::not_found("order")),
    }
    Ok(Json(own_order(&shop, c.id, id).await?).into_response())
}

pub(super) async fn order_notifications(
    State(shop): State<Arc<Shop>>,
    Caller(c): Caller,
    ApiPath(id): ApiPath<i64>,
) -> Result<Response> {
    own_order(&shop, c.id, id).await?;
    let notifications = shop.store.notifications(id).await?;
    Ok(Json(json!({ "notifications": notifications })).into_response())
}
