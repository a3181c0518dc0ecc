//! The HTTP JSON API: routes to the services, nothing more.
//!
//! The listener (`serve`) refuses connections over the limits of `server.clients` and closes
//! those that do not send their headers in time (`connections`). Layers, outermost first:
//! panic catcher (a JSON 500 instead of a dropped connection), body limit, request metrics
//! and tracing; then, for the customer API only, the edge (`edge`): who the request counts
//! against (a known customer's own budget, else the client address's, `identity`);
//! levee-limit's per-client rate limit (429 with `Retry-After`; sign-ups have their own
//! per-address limit); the whole body read within its time (408, `request`); the request
//! deadline (504); levee-limit's bulkhead (503 with `Retry-After`). The other routes read
//! their body the same way. `/health/live`, `/health/ready` (and its alias `/health`),
//! `/metrics` and `/admin` stay reachable while customers are being shed. Handlers take the
//! typed bodies of
//! [`crate::api`] and call one service each
//! (a customer's order notifications ask the orders service whose order it is first).

mod admin;
mod auth;
mod carts;
mod catalog;
mod connections;
mod customers;
mod edge;
mod error;
mod extract;
mod identity;
mod openapi;
mod orders;
mod protocol;
mod redis_edge;
mod request;
mod serve;

use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, patch, post};

pub(crate) use auth::{Admin, has_admin_token, is_admin_token};
pub use connections::{ConnectionPermit, ConnectionStats, Connections, DeadlinePipeline, Refused};
pub(crate) use customers::{behind_edge, signup};
pub use edge::{ClientKey, ClientLimitLayer, Edge, EdgeStats, refused, throttled_body};
pub(crate) use extract::ApiJson;
pub use identity::{Client, ClientAddr, ClientAddrs, identify};
pub use openapi::{document as openapi_document, document_text as openapi_text};
pub use protocol::MAX_HEADER_BYTES;
pub use redis_edge::{
    EdgeKey, EdgeLimiter, RedisEdgeStats, RedisLimitStats, RedisUnreachable, check_start,
};
pub use request::{deadline, read_body};
pub use serve::serve;

use crate::api::{ApiError, Liveness, Readiness, ReadyStatus};
use crate::app::Shop;
use crate::metrics::{HttpLabel, RouteLabel};

/// The whole API.
pub fn router(shop: Arc<Shop>) -> Router {
    let routes = catalog_routes().merge(order_routes()).merge(notification_routes());
    // Layers applied one after the other, not one stack, outermost last (`behind_edge`).
    // Innermost, when enabled: the admission controller, measuring the handlers. Then the
    // rate limit decides before the body is read; the whole body is read before the
    // bulkhead is asked for a slot; the deadline counts from then, the bulkhead's queue
    // included (`request.rs`). No bulkhead and no admission controller with protections off.
    // Outermost: who the request counts against (a known customer, else its address).
    let customer_api = behind_edge(&shop, routes, shop.edge.rate_limit()).merge(signup(&shop));
    let pages = crate::pages::router(&shop);
    assemble(shop, customer_api.merge(pages))
}

/// The catalog service's customer routes.
pub(crate) fn catalog_routes() -> Router<Arc<Shop>> {
    Router::new()
        .route("/products", get(catalog::search))
        .route("/products/{id}", get(catalog::product))
}

/// The orders service's customer routes: carts and orders.
pub(crate) fn order_routes() -> Router<Arc<Shop>> {
    Router::new()
        .route("/cart", get(carts::view).delete(carts::clear))
        .route("/cart/items", post(carts::set_item))
        .route("/cart/items/{product_id}", delete(carts::remove_item))
        .route("/orders", post(orders::place).get(orders::list))
        .route("/orders/{id}", get(orders::get))
        .route("/orders/{id}/pay", post(orders::pay))
        .route("/orders/{id}/checkout", post(orders::checkout))
        .route("/orders/{id}/cancel", post(orders::cancel))
}

/// The notification service's customer routes (what was sent about a cart or an order).
pub(crate) fn notification_routes() -> Router<Arc<Shop>> {
    Router::new()
        .route("/cart/notifications", get(carts::notifications))
        .route("/orders/{id}/notifications", get(orders::notifications))
}

/// `customer_api` with the routes every process serves (health, metrics, OpenAPI, admin),
/// the JSON fallbacks and the outer layers (panic catcher, body limit, metrics, header
/// limits).
pub(crate) fn assemble(shop: Arc<Shop>, customer_api: Router<Arc<Shop>>) -> Router {
    let ops = Router::new()
        .route("/health", get(health))
        .route("/health/ready", get(ready))
        .route("/health/live", get(live))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::serve(&shop.config)))
        .route("/admin/status", get(admin::status))
        .route("/admin/faults", get(admin::faults).put(admin::set_faults))
        .route("/admin/stock", get(admin::stock))
        .route("/admin/dlq", get(admin::dead_letters))
        .route("/admin/dlq/replay", post(admin::replay))
        .route("/admin/settings", get(admin::settings).patch(admin::change_settings))
        .route("/admin/products/{id}", patch(catalog::change))
        .route_layer(middleware::from_fn_with_state(Arc::clone(&shop), read_body));
    let max_body = shop.config.server.max_body_bytes;
    customer_api
        .merge(ops)
        .fallback(|| async { ApiError::not_found("route") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this route",
            )
        })
        .layer(middleware::from_fn(protocol::limit_headers))
        .layer(middleware::from_fn_with_state(Arc::clone(&shop), observe))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| ApiError::internal().into_response(),
        ))
        .with_state(shop)
}

/// Request metrics and a tracing span per request.
async fn observe(State(shop): State<Arc<Shop>>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    // Only the standard methods become label values: a client cannot grow the metrics.
    let method = match req.method().as_str() {
        m @ ("GET" | "POST" | "PUT" | "PATCH" | "DELETE" | "HEAD" | "OPTIONS") => m,
        _ => "OTHER",
    }
    .to_owned();
    let route =
        req.extensions().get::<MatchedPath>().map_or("unmatched", MatchedPath::as_str).to_owned();
    let response = next.run(req).await;
    let status = response.status().as_u16();
    let elapsed = started.elapsed();
    tracing::debug!(%method, %route, status, elapsed_ms = elapsed.as_secs_f64() * 1e3, "request");
    shop.metrics
        .http_latency
        .get_or_create(&RouteLabel { method: method.clone(), route: route.clone() })
        .observe(elapsed.as_secs_f64());
    shop.metrics.http_requests.get_or_create(&HttpLabel { method, route, status }).inc();
    response
}

/// `GET /health/ready`: 200 when the shop can serve, 503 with the reasons otherwise (see
/// [`crate::services::Operations::ready`]).
#[utoipa::path(
    get,
    path = "/health/ready",
    operation_id = "ready",
    tag = "operations",
    responses(
        (status = 200, description = "The shop serves: the store answers, the event consumers run, the edge is not shedding", body = Readiness),
        (status = 503, description = "The shop cannot serve now; `reasons` says why", body = Readiness),
    )
)]
async fn ready(State(shop): State<Arc<Shop>>) -> (StatusCode, axum::Json<Readiness>) {
    let ready = shop.operations.ready().await;
    let status = match ready.status {
        ReadyStatus::Ok => StatusCode::OK,
        ReadyStatus::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
    };
    (status, axum::Json(ready))
}

/// `GET /health`: an alias of `/health/ready`.
#[utoipa::path(
    get,
    path = "/health",
    operation_id = "health",
    tag = "operations",
    responses(
        (status = 200, description = "As `/health/ready`", body = Readiness),
        (status = 503, description = "As `/health/ready`", body = Readiness),
    )
)]
async fn health(state: State<Arc<Shop>>) -> (StatusCode, axum::Json<Readiness>) {
    ready(state).await
}

/// `GET /health/live`: 200 while the process answers.
#[utoipa::path(
    get,
    path = "/health/live",
    operation_id = "live",
    tag = "operations",
    responses((status = 200, description = "The process answers", body = Liveness))
)]
async fn live(State(shop): State<Arc<Shop>>) -> axum::Json<Liveness> {
    axum::Json(shop.operations.live())
}

/// `GET /metrics`: Prometheus metrics in the OpenMetrics text format.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    tag = "operations",
    responses(
        (status = 200, description = "Every metric the shop exports", body = String,
            content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    )
)]
async fn metrics(State(shop): State<Arc<Shop>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        shop.metrics.encode(),
    )
        .into_response()
}
