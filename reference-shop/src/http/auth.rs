//! Who is calling: customers by API key (`X-Api-Key`), operators by admin token
//! (`X-Admin-Token`). Either may also come as `Authorization: Bearer ...`.

use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

use crate::api::ApiError;
use crate::app::Shop;
use crate::domain::Customer;

/// The caller's API key, if any (also the rate limit's key).
pub(crate) fn api_key(headers: &HeaderMap) -> Option<&str> {
    header(headers, "x-api-key")
}

fn header<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .or_else(|| {
            headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
        })
        .map(str::trim)
        .filter(|k| !k.is_empty() && k.len() <= 200)
}

/// An authenticated customer (the customers service knows the key).
#[derive(Debug, Clone)]
pub(crate) struct Caller(pub Customer);

impl FromRequestParts<Arc<Shop>> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shop: &Arc<Shop>) -> Result<Self, ApiError> {
        // The edge (`identity`) verified the key already: no second look-up.
        if let Some(caller) = parts.extensions.get::<Self>() {
            return Ok(caller.clone());
        }
        shop.customers.authenticate(api_key(&parts.headers)).await.map(Self)
    }
}

/// An operator holding the admin token.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Admin;

impl FromRequestParts<Arc<Shop>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, shop: &Arc<Shop>) -> Result<Self, ApiError> {
        let given = header(&parts.headers, "x-admin-token").unwrap_or("");
        if is_admin_token(shop, given) {
            Ok(Self)
        } else {
            Err(ApiError::unauthorized(
                "admin_token_required",
                "admin endpoints need the X-Admin-Token header",
            ))
        }
    }
}

/// Whether `given` is the shop's admin token, compared in constant time (the token is a
/// secret). The operator page's session cookie is checked with it too (`crate::pages`).
pub(crate) fn is_admin_token(shop: &Shop, given: &str) -> bool {
    token_matches(&shop.config.server.admin_token, given)
}

/// Whether `headers` carry `expected` as the admin token (`X-Admin-Token` or a bearer
/// token), compared in constant time: the provider process's admin endpoints.
pub(crate) fn has_admin_token(headers: &HeaderMap, expected: &str) -> bool {
    token_matches(expected, header(headers, "x-admin-token").unwrap_or(""))
}

fn token_matches(expected: &str, given: &str) -> bool {
    let expected = expected.as_bytes();
    given.len() == expected.len()
        && given.bytes().zip(expected).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0
}
