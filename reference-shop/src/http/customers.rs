//! Customer handlers.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::extract::ApiJson;
use crate::api::{ApiError, NewCustomer};
use crate::app::Shop;
use crate::domain::Customer;

/// `POST /customers`: 201 with the customer and its API key.
pub(super) async fn create(
    State(shop): State<Arc<Shop>>,
    ApiJson(body): ApiJson<NewCustomer>,
) -> Result<(StatusCode, Json<Customer>), ApiError> {
    let customer = shop.customers.create(body).await?;
    Ok((StatusCode::CREATED, Json(customer)))
}
