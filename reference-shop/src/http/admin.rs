//! Operator endpoints (admin token): the status of every resilience mechanism (the payment
//! pipeline's breaker, retries, retry budget and timeouts among them), fault injection, the
//! dead-letter queue. (Product changes are in [`super::catalog`].)

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::auth::Admin;
use super::extract::ApiJson;
use crate::api::{
    ApiError, DeadLetterList, ErrorBody, LiveSettings, Replay, Replayed, SettingsPatch, ShopStatus,
    StockLedger,
};
use crate::app::Shop;
use crate::faults::{FaultPatch, FaultSettings};

/// `GET /admin/status`.
#[utoipa::path(
    get,
    path = "/admin/status",
    operation_id = "getStatus",
    tag = "operations",
    security(("admin_token" = [])),
    responses((status = 200, description = "What every resilience mechanism has done", body = ShopStatus))
)]
pub(super) async fn status(State(shop): State<Arc<Shop>>, _: Admin) -> Json<ShopStatus> {
    Json(shop.operations.status())
}

/// `GET /admin/faults`.
#[utoipa::path(
    get,
    path = "/admin/faults",
    operation_id = "getFaults",
    tag = "operations",
    security(("admin_token" = [])),
    responses((status = 200, description = "The injected faults now", body = FaultSettings))
)]
pub(super) async fn faults(State(shop): State<Arc<Shop>>, _: Admin) -> Json<FaultSettings> {
    Json(shop.operations.faults())
}

/// `PUT /admin/faults`.
#[utoipa::path(
    put,
    path = "/admin/faults",
    operation_id = "setFaults",
    tag = "operations",
    security(("admin_token" = [])),
    request_body = FaultPatch,
    responses(
        (status = 200, description = "The injected faults after the change", body = FaultSettings),
        (status = 422, description = "A value out of range (`invalid_fault`; nothing changes), or a body that does not fit `FaultPatch` (`invalid_body`)", body = ErrorBody),
    )
)]
pub(super) async fn set_faults(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiJson(patch): ApiJson<FaultPatch>,
) -> Result<Json<FaultSettings>, ApiError> {
    shop.operations.set_faults(patch).map(Json)
}

/// `GET /admin/stock`: every product's units, from one snapshot (the soak's stock check).
#[utoipa::path(
    get,
    path = "/admin/stock",
    operation_id = "getStock",
    tag = "operations",
    security(("admin_token" = [])),
    responses((status = 200, description = "Every product's units: on the shelf, reserved, sold, and who holds the reserved ones", body = StockLedger))
)]
pub(super) async fn stock(
    State(shop): State<Arc<Shop>>,
    _: Admin,
) -> Result<Json<StockLedger>, ApiError> {
    shop.operations.stock_ledger().await.map(Json)
}

/// `GET /admin/dlq`.
#[utoipa::path(
    get,
    path = "/admin/dlq",
    operation_id = "listDeadLetters",
    tag = "operations",
    security(("admin_token" = [])),
    responses((status = 200, description = "Every subscription's dead letters", body = DeadLetterList))
)]
pub(super) async fn dead_letters(State(shop): State<Arc<Shop>>, _: Admin) -> Json<DeadLetterList> {
    Json(shop.operations.dead_letters().await)
}

/// `POST /admin/dlq/replay`.
#[utoipa::path(
    post,
    path = "/admin/dlq/replay",
    operation_id = "replayDeadLetters",
    tag = "operations",
    security(("admin_token" = [])),
    request_body = Replay,
    responses(
        (status = 200, description = "How many dead letters went back to their subscription", body = Replayed),
        (status = 422, description = "A body that does not fit `Replay` (`invalid_body`)", body = ErrorBody),
    )
)]
pub(super) async fn replay(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiJson(replay): ApiJson<Replay>,
) -> Json<Replayed> {
    Json(shop.operations.replay(replay).await)
}

/// `GET /admin/settings`.
#[utoipa::path(
    get,
    path = "/admin/settings",
    operation_id = "getSettings",
    tag = "operations",
    security(("admin_token" = [])),
    responses((status = 200, description = "The live settings: edge limits, payment breaker, caches", body = LiveSettings))
)]
pub(super) async fn settings(State(shop): State<Arc<Shop>>, _: Admin) -> Json<LiveSettings> {
    Json(shop.live.settings())
}

/// `PATCH /admin/settings`.
#[utoipa::path(
    patch,
    path = "/admin/settings",
    operation_id = "changeSettings",
    tag = "operations",
    security(("admin_token" = [])),
    request_body = SettingsPatch,
    responses(
        (status = 200, description = "The live settings after the change; the limiters, the breaker and the caches keep what they learnt", body = LiveSettings),
        (status = 422, description = "A value out of range (`invalid_setting`, naming it; nothing changes), or a body that does not fit `SettingsPatch` (`invalid_body`)", body = ErrorBody),
    )
)]
pub(super) async fn change_settings(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiJson(patch): ApiJson<SettingsPatch>,
) -> Result<Json<LiveSettings>, ApiError> {
    shop.live.apply(patch).map(Json)
}
