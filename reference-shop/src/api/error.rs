//! The one error every operation answers with: a status and the JSON error body
//! `{"error": {"code": .., "message": .., ...}}`.

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;

/// The error body every error answer carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// What went wrong: a stable machine-readable code, a message for people, and the details
/// some errors carry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorDetail {
    /// Stable code (`out_of_stock`, `rate_limited`, `invalid_body`, ...).
    pub code: String,
    /// What happened and what to do about it.
    pub message: String,
    /// With 429 and 503: seconds to wait before retrying (also the `Retry-After` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_secs: Option<u64>,
    /// With `out_of_stock`: the product that ran short.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_id: Option<i64>,
    /// With `out_of_stock`: the units still available.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub available: Option<i64>,
    /// With `reservation_cap`: what the customer holds and the cap it would exceed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<Box<HoldingDetail>>,
}

/// With `reservation_cap`: the cap a change would exceed, what the customer holds now, and
/// what the change asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldingDetail {
    /// The cap: `max_reserved_units` or `max_unpaid_orders` (settings `limits.*`).
    pub cap: String,
    /// Its value.
    pub limit: i64,
    /// Units the customer holds reserved now, in their cart and unpaid orders.
    pub held_units: i64,
    /// Unpaid orders the customer has now.
    pub held_unpaid_orders: i64,
    /// What the refused change asked for in the cap's unit (units, or one order).
    pub requested: i64,
}

/// An error answer: its status and its body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    status: StatusCode,
    detail: ErrorDetail,
}

impl ApiError {
    /// An error with `status`, a stable machine-readable `code` and a message.
    pub fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        let detail = ErrorDetail {
            code: code.to_owned(),
            message: message.into(),
            retry_after_secs: None,
            product_id: None,
            available: None,
            holding: None,
        };
        Self { status, detail }
    }

    /// 400: the request is malformed.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401: who is calling is not known.
    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 422: well-formed but not acceptable.
    pub fn invalid(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 404.
    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("{what} not found"))
    }

    /// 409.
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 409 `out_of_stock`, with the product and what is left.
    pub fn out_of_stock(product_id: i64, available: i64) -> Self {
        let mut e =
            Self::conflict("out_of_stock", format!("product {product_id} has {available} left"));
        e.detail.product_id = Some(product_id);
        e.detail.available = Some(available);
        e
    }

    /// 409 `reservation_cap`: the change would take the customer over a cap on what they may
    /// hold reserved; the body names the cap and the holding.
    pub fn over_cap(over: &crate::store::OverCap) -> Self {
        let crate::store::OverCap { cap, limit, held, requested } = *over;
        let what = match cap {
            crate::store::Cap::MaxReservedUnits => format!(
                "you hold {} units reserved (cart and unpaid orders) and ask for {requested} \
                 more; at most {limit} may be held",
                held.units
            ),
            crate::store::Cap::MaxUnpaidOrders => format!(
                "you have {} unpaid orders; at most {limit} may be unpaid at once",
                held.unpaid_orders
            ),
        };
        let mut e = Self::conflict(
            "reservation_cap",
            format!("{what} ({}): pay or cancel an order, or empty the cart, first", cap.as_str()),
        );
        e.detail.holding = Some(Box::new(HoldingDetail {
            cap: cap.as_str().to_owned(),
            limit,
            held_units: held.units,
            held_unpaid_orders: held.unpaid_orders,
            requested,
        }));
        e
    }

    /// 503 with `Retry-After`.
    pub fn unavailable(code: &str, message: impl Into<String>, retry_secs: u64) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message).retry_after(retry_secs)
    }

    /// 500, without details (they go to the log).
    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error")
    }

    /// Adds `Retry-After` (whole seconds, at least 1; [`retry_after_secs`] rounds a wait).
    #[must_use]
    pub fn retry_after(mut self, secs: u64) -> Self {
        self.detail.retry_after_secs = Some(secs.max(1));
        self
    }

    /// The status.
    #[must_use]
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The body.
    #[must_use]
    pub fn body(&self) -> ErrorBody {
        ErrorBody { error: self.detail.clone() }
    }

    /// The body, without a copy.
    #[must_use]
    pub fn into_body(self) -> ErrorBody {
        ErrorBody { error: self.detail }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        Self::from_store(&e)
    }
}

impl ApiError {
    /// The answer to a store failure: 503 when the database is busy or unreachable (worth a
    /// retry), 500 otherwise (logged).
    pub fn from_store(e: &StoreError) -> Self {
        if e.is_unavailable() {
            tracing::warn!(error = %e, "store unavailable");
            Self::unavailable("store_unavailable", "the database is busy, try again", 1)
        } else {
            tracing::error!(error = %e, "store failure");
            Self::internal()
        }
    }
}

/// A wait as `Retry-After` says it: whole seconds, rounded up, at least 1.
#[must_use]
pub fn retry_after_secs(wait: std::time::Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_secs(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_secs(Duration::from_millis(9_001)), 10);
    }
}
