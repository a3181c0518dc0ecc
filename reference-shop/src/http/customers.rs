//! Customer handlers, and the sign-up route with its own per-address limit.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router, middleware};

use super::extract::ApiJson;
use super::{deadline, identify, read_body, throttled_body};
use crate::api::{ApiError, ErrorBody, NewCustomer};
use crate::app::Shop;
use crate::domain::Customer;

/// `POST /customers`: 201 with the customer and its API key.
#[utoipa::path(
    post,
    path = "/customers",
    operation_id = "createCustomer",
    tag = "customers",
    request_body = NewCustomer,
    responses(
        (status = 201, description = "The new customer, with the API key to send as `X-Api-Key`", body = Customer),
        (status = 422, description = "A name that is empty or only spaces, or over 64 characters (`invalid_name`); or a body that does not fit `NewCustomer` (`invalid_body`)", body = ErrorBody),
    )
)]
pub(super) async fn create(
    State(shop): State<Arc<Shop>>,
    ApiJson(body): ApiJson<NewCustomer>,
) -> Result<(StatusCode, Json<Customer>), ApiError> {
    let customer = shop.customers.create(body).await?;
    Ok((StatusCode::CREATED, Json(customer)))
}

/// `POST /customers` with its edge: identified by address (a sign-up has no key yet), limited
/// per address by `limits.signup` (not by `edge.rate`: sign-ups have their own quota), then
/// the body read and the deadline as on the other customer routes, then the shared bulkhead.
pub(crate) fn signup(shop: &Arc<Shop>) -> Router<Arc<Shop>> {
    behind_edge(shop, Router::new().route("/customers", post(create)), shop.edge.signup_limit())
}

/// `routes` behind the customer edge with the per-client `limit`: identified (a known
/// customer, else the address), limited, the body read and the deadline as on the other
/// customer routes, then the shared bulkhead. The storefront's pages (`crate::pages`) use
/// it too.
pub(crate) fn behind_edge(
    shop: &Arc<Shop>,
    routes: Router<Arc<Shop>>,
    limit: super::ClientLimitLayer,
) -> Router<Arc<Shop>> {
    shop.edge
        .behind_bulkhead(shop.edge.admission(routes))
        .route_layer(middleware::from_fn_with_state(Arc::clone(shop), deadline))
        .route_layer(middleware::from_fn_with_state(Arc::clone(shop), read_body))
        .route_layer((middleware::map_response(throttled_body), limit))
        .route_layer(middleware::from_fn_with_state(Arc::clone(shop), identify))
}
