//! Extractors whose rejections are [`ApiError`]s, so bad input gets a 4xx with the JSON error
//! body that says what is wrong, never a 500 and never a bare status.
//!
//! The same kind of mistake gets the same status wherever it is made: a value that does not
//! fit its type or range is 422 in a body, a query or a path alike; a body that is not JSON
//! at all is 400; a body of another media type is 415, a body over the limit 413.

use axum::body::Bytes;
use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::api::{ApiError, integral};

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        let status = r.status();
        let code = match status {
            StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
            StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
            StatusCode::UNPROCESSABLE_ENTITY => "invalid_body",
            _ => "malformed_json",
        };
        // Rejections are always client errors; keep the status if it is one.
        let status = if status.is_client_error() { status } else { StatusCode::BAD_REQUEST };
        Self::new(status, code, r.body_text())
    }
}

/// A JSON object body whose rejection is an [`ApiError`].
///
/// Unlike `axum::Json`, it refuses a JSON array (or any other value) where the body must be
/// an object: serde lets a struct be written as an array of its fields (`["alice"]` for
/// `{"name": "alice"}`), a form no document describes, so a client that sends one is told
/// (422 `invalid_body`) instead of being served by accident. And it reads a number with a
/// zero fraction (`2.0`, `1e3`) as the integer it equals, as JSON Schema's `integer` does
/// (serde alone refuses `2.0` for a `u32`), so the API accepts what its document allows.
#[derive(Debug)]
pub(crate) struct ApiJson<T>(pub T);

impl<S, T> FromRequest<S> for ApiJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        if !is_json(req.headers()) {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                "expected a request with `Content-Type: application/json`",
            ));
        }
        let bytes = Bytes::from_request(req, state).await.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::new(r.status(), "body_too_large", r.body_text())
            } else {
                ApiError::bad_request("unreadable_body", r.body_text())
            }
        })?;
        let axum::Json(v) = match object_body(&bytes)? {
            None => axum::Json::<T>::from_bytes(&bytes)?,
            Some(rewritten) => axum::Json::<T>::from_bytes(&rewritten)?,
        };
        Ok(Self(v))
    }
}

/// Whether the request says its body is JSON: `application/json` or `application/*+json`,
/// parameters (`; charset=utf-8`) allowed, case-insensitive.
fn is_json(headers: &HeaderMap) -> bool {
    let Some(value) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    essence
        .strip_prefix("application/")
        .is_some_and(|sub| sub == "json" || (sub.ends_with("+json") && !sub.contains('/')))
}

/// Checks that `body` is a JSON object: 400 `malformed_json` (with the line and column) when
/// it is not JSON, 422 `invalid_body` when it is JSON of another kind. `Some` holds the body
/// rewritten with its integral floats as integers; `None` means use `body` as it is.
fn object_body(body: &[u8]) -> Result<Option<Vec<u8>>, ApiError> {
    let mut value: Value = serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "malformed_json",
            format!("failed to parse the request body as JSON: {e}"),
        )
    })?;
    if !value.is_object() {
        return Err(ApiError::invalid("invalid_body", "the body must be a JSON object"));
    }
    if !integral_floats_to_integers(&mut value) {
        return Ok(None);
    }
    Ok(Some(serde_json::to_vec(&value).map_err(|_| ApiError::internal())?))
}

/// Rewrites every float with a zero fraction that an `f64` holds exactly (below 2^53) as
/// that integer; whether any was.
fn integral_floats_to_integers(value: &mut Value) -> bool {
    match value {
        Value::Number(n) if !n.is_i64() && !n.is_u64() => {
            let Some(i) = n.as_f64().and_then(integral::from_f64) else {
                return false;
            };
            *value = Value::from(i);
            true
        }
        Value::Array(items) => {
            items.iter_mut().fold(false, |any, v| integral_floats_to_integers(v) | any)
        }
        Value::Object(fields) => {
            fields.values_mut().fold(false, |any, v| integral_floats_to_integers(v) | any)
        }
        _ => false,
    }
}

/// An integer path segment (an id) whose rejection is an [`ApiError`]: 422 `invalid_path`
/// for a segment that is not an integer in `i64` (`12.0` is 12, as JSON Schema reads it).
#[derive(Debug)]
pub(crate) struct ApiPath(pub i64);

impl<S> FromRequestParts<S> for ApiPath
where
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(text) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|r| ApiError::invalid("invalid_path", r.body_text()))?;
        integral::parse(&text).map(Self).ok_or_else(|| {
            ApiError::invalid("invalid_path", format!("`{text}` is not a 64-bit integer"))
        })
    }
}

/// `Query<T>` whose rejection is an [`ApiError`]: 422 `invalid_query` for a value that does
/// not fit its type or an unknown parameter, like a bad value in a body.
#[derive(Debug)]
pub(crate) struct ApiQuery<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiQuery<T>
where
    S: Send + Sync,
    T: DeserializeOwned,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|r| ApiError::invalid("invalid_query", r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_media_types() {
        let of = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, v.parse().unwrap());
            is_json(&h)
        };
        assert!(of("application/json"));
        assert!(of("Application/JSON; charset=utf-8"));
        assert!(of("application/problem+json"));
        assert!(!of("text/json"));
        assert!(!of("application/jsonx"));
        assert!(!of("application/x/y+json"));
        assert!(!is_json(&HeaderMap::new()));
    }

    #[test]
    fn only_objects_pass() {
        let status = |b: &[u8]| object_body(b).err().map(|e| e.status().as_u16());
        assert_eq!(status(b" {\"a\":1}"), None);
        assert_eq!(status(b"[\"alice\"]"), Some(422));
        assert_eq!(status(b"null"), Some(422));
        assert_eq!(status(b" 12 "), Some(422));
        // Not JSON at all: 400, saying where.
        assert_eq!(status(b"[1,"), Some(400));
        assert_eq!(status(b"{\"a\":"), Some(400));
        assert_eq!(status(b""), Some(400));
    }

    #[test]
    fn integral_floats_become_integers() {
        let rewritten =
            |b: &str| object_body(b.as_bytes()).unwrap().map(|v| String::from_utf8(v).unwrap());
        assert_eq!(rewritten(r#"{"a": 1, "b": [2]}"#), None);
        assert_eq!(
            rewritten(r#"{"q": 59.0, "ids": [1e3, -2.0]}"#).as_deref(),
            Some(r#"{"ids":[1000,-2],"q":59}"#)
        );
        // A fraction, or a float beyond 2^53, stays a float (and is refused where an integer
        // is expected).
        assert_eq!(rewritten(r#"{"q": 1.5, "r": 1e300}"#), None);
    }

    #[test]
    fn integral_floats_near_2_pow_53_are_read_exactly() {
        // Schemathesis sent these; a float parser that may be one unit in the last place off
        // read `2251799813685247.0` as `2251799813685247.25` and refused the body.
        let rewritten =
            |b: &str| object_body(b.as_bytes()).unwrap().map(|v| String::from_utf8(v).unwrap());
        assert_eq!(
            rewritten(r#"{"ids": [2251799813685247.0, 7681122402.0, 9007199254740991.0]}"#)
                .as_deref(),
            Some(r#"{"ids":[2251799813685247,7681122402,9007199254740991]}"#)
        );
    }
}
