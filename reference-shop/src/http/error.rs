//! Errors as HTTP answers: the status, the JSON error body, and `Retry-After` when the error
//! says when to come back.

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let body = self.into_body();
        let retry_after = body.error.retry_after_secs;
        let mut response = (status, axum::Json(body)).into_response();
        if let Some(secs) = retry_after {
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}
