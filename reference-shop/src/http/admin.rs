//! Operator endpoints (admin token): status of every resilience mechanism (the payment
//! pipeline's breaker, retries, retry budget and timeouts among them), fault injection,
//! the dead-letter queue, product changes.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::Admin;
use super::error::{ApiError, ApiJson, ApiPath};
use crate::app::Shop;
use crate::faults::FaultPatch;

type Result<T> = std::result::Result<T, ApiError>;

pub(super) async fn status(State(shop): State<Arc<Shop>>, _: Admin) -> Response {
    Json(json!({
        "breaker": shop.guard.breaker_status(),
        "payment": shop.guard.pipeline_status(),
        "edge": shop.edge.stats(),
        "cache": shop.cache.stats(),
        "queue": shop.bus.stats(),
        "timers": shop.timers.stats(),
        "provider": shop.provider.stats(),
        "faults": shop.faults.get(),
        "store": {
            "backend": format!("{:?}", shop.store.backend()).to_lowercase(),
            "product_reads": shop.store.product_reads(),
        },
    }))
    .into_response()
}

pub(super) async fn get_faults(State(shop): State<Arc<Shop>>, _: Admin) -> Response {
    Json(shop.faults.get()).into_response()
}

pub(super) async fn set_faults(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiJson(patch): ApiJson<FaultPatch>,
) -> Result<Response> {
    let settings =
        shop.faults.apply(patch).map_err(|e| ApiError::invalid("invalid_fault", e.to_string()))?;
    tracing::warn!(?settings, "fault injection changed");
    Ok(Json(settings).into_response())
}

pub(super) async fn dead_letters(State(shop): State<Arc<Shop>>, _: Admin) -> Response {
    Json(json!({ "dead_letters": shop.bus.dead_letters() })).into_response()
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Replay {
    ids: Option<Vec<u64>>,
}

pub(super) async fn replay(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiJson(body): ApiJson<Replay>,
) -> Response {
    let ids = body.ids;
    let replayed = shop.bus.replay(ids.as_deref());
    tracing::info!(replayed, "dead letters replayed");
    Json(json!({ "replayed": replayed })).into_response()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ProductChange {
    price_cents: Option<i64>,
    stock: Option<i64>,
}

pub(super) async fn update_product(
    State(shop): State<Arc<Shop>>,
    _: Admin,
    ApiPath(id): ApiPath<i64>,
    ApiJson(change): ApiJson<ProductChange>,
) -> Result<Response> {
    if change.price_cents.is_some_and(|p| !(0..=100_000_000).contains(&p))
        || change.stock.is_some_and(|s| !(0..=1_000_000_000).contains(&s))
    {
        return Err(ApiError::invalid(
            "invalid_product_change",
            "price_cents lies in 0..=100000000 and stock in 0..=1000000000",
        ));
    }
    let product = shop
        .store
        .update_product(id, change.price_cents, change.stock, shop.clock.now_ms())
        .await?
        .ok_or_else(|| ApiError::not_found("product"))?;
    shop.cache.invalidate(id);
    Ok(Json(product).into_response())
}
