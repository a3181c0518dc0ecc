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
use serde::de::{DeserializeOwned, IgnoredAny};

use crate::api::ApiError;

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
/// (422 `invalid_body`) instead of being served by accident.
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
        refuse_non_object(&bytes)?;
        let axum::Json(v) = axum::Json::<T>::from_bytes(&bytes)?;
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

/// 422 when `body` is well-formed JSON but not an object; syntax errors are left to the
/// parser (400 `malformed_json`, with the line and column).
fn refuse_non_object(body: &[u8]) -> Result<(), ApiError> {
    let first = body.iter().find(|b| !matches!(b, b' ' | b'\t' | b'\n' | b'\r'));
    match first {
        Some(b'{') | None => Ok(()),
        Some(_) if serde_json::from_slice::<IgnoredAny>(body).is_ok() => {
            Err(ApiError::invalid("invalid_body", "the body must be a JSON object"))
        }
        Some(_) => Ok(()),
    }
}

/// `Path<T>` whose rejection is an [`ApiError`]: 422 `invalid_path` for a segment that does
/// not fit its type (an id that is not an integer, or out of range).
#[derive(Debug)]
pub(crate) struct ApiPath<T>(pub T);

impl<S, T> FromRequestParts<S> for ApiPath<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(v)| Self(v))
            .map_err(|r| ApiError::invalid("invalid_path", r.body_text()))
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
        let status = |b: &[u8]| refuse_non_object(b).err().map(|e| e.status().as_u16());
        assert_eq!(status(b" {\"a\":1}"), None);
        assert_eq!(status(b"[\"alice\"]"), Some(422));
        assert_eq!(status(b"null"), Some(422));
        assert_eq!(status(b" 12 "), Some(422));
        // Not JSON at all: the parser's 400 says where.
        assert_eq!(status(b"[1,"), None);
        assert_eq!(status(b""), None);
    }
}
