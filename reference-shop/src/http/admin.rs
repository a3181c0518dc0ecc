//! Operator endpoints (admin token): the status of every resilience mechanism (the payment
//! pipeline's breaker, retries, retry budget and timeouts among them), fault injection, the
//! dead-letter queue. (Product changes are in [`super::catalog`].)

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::Admin;
use super::extract::ApiJson;
use crate::api::{ApiError, DeadLetterList, Replay, Replayed, ShopStatus};
use crate::app::Shop;
use crate::faults::{FaultPatch, FaultSettings};

/// `GET /admin/status`.
pub(super) async fn status(State(shop): State<Arc<Shop>>, _: Admin) -> Json<ShopStatus> {
    Json(shop.operations.status())
}

/// `GET /admin/faults`.
pub(super) async fn faults(State(shop): State<Arc<Shop>>, _: Admin) -> Json<FaultSettings> {
    Json(shop.operations.faults())
}

/// `PUT /admin/faults`.
pub(super) async fn set_faults(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiJson(patch): ApiJson<FaultPatch>,
) -> Result<Json<FaultSettings>, ApiError> {
    shop.operations.set_faults(patch).map(Json)
}

/// `GET /admin/dlq`.
pub(super) async fn dead_letters(State(shop): State<Arc<Shop>>, _: Admin) -> Json<DeadLetterList> {
    Json(shop.operations.dead_letters())
}

/// `POST /admin/dlq/replay`.
pub(super) async fn replay(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiJson(replay): ApiJson<Replay>,
) -> Json<Replayed> {
    Json(shop.operations.replay(replay))
}
