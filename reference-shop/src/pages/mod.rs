//! Pages people look at: the storefront (`/shop`) and the operator page (`/ops`).
//!
//! Plain server-rendered HTML: forms post to small handlers that call the same services as
//! the JSON handlers ([`crate::http`]) and answer `303 See Other` to the page that shows the
//! result, so a reload never posts twice. No JavaScript, no build step, one small style
//! sheet (`/pages/style.css`). Every value is rendered through maud, which escapes it.
//!
//! - Storefront (`store.rs`): browse and search, a product page, the cart, checkout with a
//!   test card, the order's status. A visitor signs in with a name (a new customer); the
//!   customer's API key is then kept in an `HttpOnly`, `SameSite=Strict` cookie limited to
//!   `/shop`. The storefront is customer traffic: it stands behind the same edge as the JSON
//!   API (per-client rate limit, body read, deadline, bulkhead), and signing in behind the
//!   sign-ups' own per-address limit, as `POST /customers`.
//! - Operator page (`ops.rs`): the payment breaker, the pipeline, the edge's refusals, queue
//!   depth and dead letters with a replay button, the provider fault switches. It takes the
//!   same admin token as `/admin/*`, typed once into a form and kept in an `HttpOnly`,
//!   `SameSite=Strict` cookie limited to `/ops`.
//!
//! The pages are not part of the JSON API: they are not in `/openapi.json`.

mod cookie;
mod extract;
mod layout;
mod ops;
mod store;

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::middleware;
use axum::response::IntoResponse;
use axum::routing::{get, post};

use crate::app::Shop;
use crate::http::{behind_edge, read_body};

/// The storefront and the operator page, to merge into the shop's router.
pub fn router(shop: &Arc<Shop>) -> Router<Arc<Shop>> {
    let storefront = Router::new()
        .route("/shop", get(store::browse))
        .route("/shop/products/{id}", get(store::product))
        .route("/shop/account", get(store::account))
        .route("/shop/account/sign-out", post(store::sign_out))
        .route("/shop/cart", get(store::cart))
        .route("/shop/cart/items", post(store::add_to_cart))
        .route("/shop/cart/remove", post(store::remove_from_cart))
        .route("/shop/checkout", post(store::checkout))
        .route("/shop/orders", get(store::orders))
        .route("/shop/orders/{id}", get(store::order));
    let operator = Router::new()
        .route("/ops", get(ops::show))
        .route("/ops/login", post(ops::login))
        .route("/ops/logout", post(ops::logout))
        .route("/ops/faults", post(ops::set_faults))
        .route("/ops/dlq/replay", post(ops::replay))
        .route_layer(middleware::from_fn_with_state(Arc::clone(shop), read_body));
    // Signing in makes a customer: limited per address as `POST /customers` is.
    let sign_in = Router::new().route("/shop/account/new", post(store::sign_in));
    behind_edge(shop, storefront, shop.edge.rate_limit())
        .merge(behind_edge(shop, sign_in, shop.edge.signup_limit()))
        .merge(operator)
        .route("/pages/style.css", get(style))
}

/// `GET /pages/style.css`: the pages' one style sheet.
async fn style() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=3600"),
        ],
        include_str!("style.css"),
    )
}
