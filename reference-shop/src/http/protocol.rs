//! Protocol-level refusals with the JSON error body.
//!
//! hyper refuses a request whose head it cannot parse or buffer (a malformed request line or
//! header, a head over its read buffer of about 400 KiB, more than 100 header fields) with a
//! bare `400`/`431` and closes the connection: no request exists then, so nothing in the
//! router can answer. Every head hyper does parse reaches this layer first, which refuses a
//! header section over [`MAX_HEADER_BYTES`] with `431 headers_too_large` and the error body,
//! so the 431 a client meets in practice (a runaway cookie or token) is one it can read.

use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::api::ApiError;

/// The largest header section the shop reads: names, values and their separators, in bytes
/// (the most common browser and proxy limits are 8 to 64 KiB; hyper's own is about 400 KiB).
pub const MAX_HEADER_BYTES: usize = 32 * 1024;

/// Bytes of `req`'s header section as sent (`name: value\r\n` per field).
fn header_bytes(req: &Request) -> usize {
    req.headers().iter().map(|(name, value)| name.as_str().len() + value.len() + 4).sum()
}

/// The layer's function: 431 with the error body for a header section over the limit.
pub(super) async fn limit_headers(req: Request, next: Next) -> Response {
    let size = header_bytes(&req);
    if size > MAX_HEADER_BYTES {
        return ApiError::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers_too_large",
            format!("the request's header fields take {size} bytes; at most {MAX_HEADER_BYTES}"),
        )
        .into_response();
    }
    next.run(req).await
}
