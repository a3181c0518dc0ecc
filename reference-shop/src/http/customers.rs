//! Customer handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::extract::ApiJson;
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
