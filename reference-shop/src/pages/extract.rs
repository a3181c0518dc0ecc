//! Extractors whose rejection is an HTML error page (422, saying what was wrong), so a
//! handler gets its form, query or path id or the visitor gets a page, never a JSON body
//! and never a 500.

use axum::extract::{Form, FromRequest, FromRequestParts, Path, Query, Request};
use axum::http::request::Parts;
use axum::response::Response;
use serde::de::DeserializeOwned;

use super::layout::{Area, error_page};
use crate::api::ApiError;

/// The area of the page at `path`: the operator's under `/ops`, else the storefront's.
fn area(path: &str) -> Area {
    if path == "/ops" || path.starts_with("/ops/") { Area::Operator } else { Area::Store }
}

fn refused(path: &str, code: &str, message: String) -> Response {
    error_page(area(path), ApiError::invalid(code, message))
}

/// A posted form (`application/x-www-form-urlencoded`).
pub(super) struct PageForm<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for PageForm<T> {
    type Rejection = Response;

    async fn from_request(req: Request, state: &S) -> Result<Self, Response> {
        let path = req.uri().path().to_owned();
        Form::<T>::from_request(req, state)
            .await
            .map(|Form(v)| Self(v))
            .map_err(|r| refused(&path, "invalid_form", r.body_text()))
    }
}

/// The query string.
pub(super) struct PageQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for PageQuery<T> {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        Query::<T>::from_request_parts(parts, state)
            .await
            .map(|Query(v)| Self(v))
            .map_err(|r| refused(parts.uri.path(), "invalid_query", r.body_text()))
    }
}

/// An id in the path.
pub(super) struct PageId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for PageId {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Response> {
        Path::<i64>::from_request_parts(parts, state)
            .await
            .map(|Path(id)| Self(id))
            .map_err(|r| refused(parts.uri.path(), "invalid_path", r.body_text()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_operator_area_is_under_ops_only() {
        assert_eq!(area("/ops"), Area::Operator);
        assert_eq!(area("/ops/faults"), Area::Operator);
        assert_eq!(area("/opsx"), Area::Store);
        assert_eq!(area("/shop/cart"), Area::Store);
    }
}
