//! A request, read in full and answered in time: the two middlewares between the listener's
//! header timeout and the handlers.
//!
//! - [`read_body`] reads the whole body (at most `server.max_body_bytes`) within
//!   `server.clients.body_read_timeout` before the request goes on: a body still arriving
//!   holds no bulkhead slot, and a trickling one is answered 408 and its connection closed.
//!   Too large a body is answered 413 before it is read.
//! - [`deadline`] bounds the rest (the bulkhead's queue, the handler) with levee-policy's
//!   timeout on the shop clock, `server.clients.request_timeout`: 504 when it runs out. The
//!   handler's future is dropped then, which the services survive (a store transaction
//!   not committed rolls back; a payment runs on the event bus, not in the request).
//!
//! Both answer with the shop's JSON error body and count what they did
//! ([`Connections`](super::connections::Connections)).

use std::sync::Arc;

use axum::body::{Body, HttpBody};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, LengthLimitError, Limited};
use levee::policy::Error as PolicyError;
use parking_lot::Mutex;

use crate::api::ApiError;
use crate::app::Shop;

/// Reads the request's body within the body read timeout, then passes the request on with
/// the body in memory.
pub async fn read_body(State(shop): State<Arc<Shop>>, req: Request, next: Next) -> Response {
    if req.body().size_hint().exact() == Some(0) {
        return next.run(req).await;
    }
    let server = &shop.config.server;
    let (parts, body) = req.into_parts();
    let read = Limited::new(body, server.max_body_bytes).collect();
    match tokio::time::timeout(server.clients.body_read_timeout, read).await {
        Ok(Ok(body)) => next.run(Request::from_parts(parts, Body::from(body.to_bytes()))).await,
        Ok(Err(e)) if e.is::<LengthLimitError>() => ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("the request body is larger than {} bytes", server.max_body_bytes),
        )
        .into_response(),
        Ok(Err(e)) => ApiError::bad_request(
            "unreadable_body",
            format!("the request body could not be read: {e}"),
        )
        .into_response(),
        Err(_) => {
            shop.connections.body_timed_out();
            let mut answer = ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!(
                    "the request body did not arrive within {} ms",
                    server.clients.body_read_timeout.as_millis()
                ),
            )
            .into_response();
            // The rest of the body is not read: the connection cannot carry another request.
            answer.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            answer
        }
    }
}

/// Serves the request within the request deadline, or answers 504.
pub async fn deadline(State(shop): State<Arc<Shop>>, req: Request, next: Next) -> Response {
    // The pipeline's operation is `Fn` (a retry would call it again); this one has a timeout
    // only, so it is called once and takes the request out.
    let call = Mutex::new(Some((req, next)));
    let served = shop
        .connections
        .deadline()
        .execute(|_| {
            let call = call.lock().take();
            async move {
                match call {
                    Some((req, next)) => Ok(next.run(req).await),
                    None => Err(()),
                }
            }
        })
        .await;
    match served {
        Ok(response) => response,
        Err(PolicyError::Timeout { timeout }) => {
            shop.connections.deadline_exceeded();
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                format!("the request was not served within {} ms", timeout.as_millis()),
            )
            .into_response()
        }
        Err(_) => ApiError::internal().into_response(),
    }
}
