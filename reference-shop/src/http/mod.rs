//! The HTTP JSON API.
//!
//! Layers, outermost first: panic catcher (a JSON 500 instead of a dropped connection), body
//! limit, request metrics and tracing; then, for the customer API only, the edge: the
//! per-client rate limit (429) and the bulkhead (503), both with `Retry-After`. `/health`,
//! `/metrics` and `/admin` stay reachable while customers are being shed.

mod admin;
mod api;
mod auth;
mod error;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::Router;
use axum::extract::{ConnectInfo, DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

pub use error::ApiError;

use crate::app::Shop;
use crate::metrics::{HttpLabel, RouteLabel};

/// The whole API.
pub fn router(shop: Arc<Shop>) -> Router {
    let customer_api = Router::new()
        .route("/customers", post(api::create_customer))
        .route("/products", get(api::list_products))
        .route("/products/{id}", get(api::get_product))
        .route("/cart", get(api::get_cart).delete(api::clear_cart))
        .route("/cart/items", post(api::set_cart_item))
        .route("/cart/items/{product_id}", axum::routing::delete(api::remove_cart_item))
        .route("/orders", post(api::place_order).get(api::list_orders))
        .route("/orders/{id}", get(api::get_order))
        .route("/orders/{id}/pay", post(api::pay_order))
        .route("/orders/{id}/cancel", post(api::cancel_order))
        .route("/orders/{id}/notifications", get(api::order_notifications))
        .layer(middleware::from_fn_with_state(Arc::clone(&shop), edge));
    let ops = Router::new()
        .route("/health", get(api::health))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi))
        .route("/admin/status", get(admin::status))
        .route("/admin/faults", get(admin::get_faults).put(admin::set_faults))
        .route("/admin/dlq", get(admin::dead_letters))
        .route("/admin/dlq/replay", post(admin::replay))
        .route("/admin/products/{id}", axum::routing::patch(admin::update_product));
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
        .layer(middleware::from_fn_with_state(Arc::clone(&shop), observe))
        .layer(DefaultBodyLimit::max(max_body))
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            |_: Box<dyn std::any::Any + Send>| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
                    .into_response()
            },
        ))
        .with_state(shop)
}

/// Per-client rate limit, then the bulkhead.
async fn edge(State(shop): State<Arc<Shop>>, req: Request, next: Next) -> Response {
    let client = match auth::api_key(req.headers()) {
        Some(key) => format!("key:{key}"),
        None => req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or_else(|| "addr:unknown".to_owned(), |c| format!("addr:{}", c.0.ip())),
    };
    if let Err(wait) = shop.edge.check_rate(&client) {
        let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
        return ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limited",
            format!("too many requests; retry in {} ms", wait.as_millis()),
        )
        .retry_after(secs)
        .into_response();
    }
    let Some(_slot) = shop.edge.try_enter() else {
        return ApiError::unavailable(
            "overloaded",
            "the shop is at capacity; request shed, retry shortly",
            1,
        )
        .into_response();
    };
    next.run(req).await
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

async fn metrics(State(shop): State<Arc<Shop>>) -> Response {
    (
        [(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")],
        shop.metrics.encode(),
    )
        .into_response()
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], include_str!("../../openapi.json"))
        .into_response()
}
