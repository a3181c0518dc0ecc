//! A request, read in full and answered in time: the two middlewares between the listener's
//! header timeout and the handlers.
//!
//! - [`read_body`] reads the whole body (at most `server.max_body_bytes`) within
//!   `server.clients.body_read_timeout` before the request goes on: a body still arriving
//!   holds no bulkhead slot, and a trickling one is answered 408 and its connection closed.
//!   Too large a body is answered 413 before it is read.
//! - [`deadline`] bounds the rest (the bulkhead's queue, the handler) with levee-policy's
//!   timeout on the shop clock, `server.clients.request_timeout` or the caller's
//!   `levee-timeout` if shorter: 504 when it runs out. The
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
use levee::client::Deadline;
use levee::core::Clock;
use levee::policy::ErrorKind;
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
///
/// The deadline is the smaller of `server.clients.request_timeout` and the time the caller
/// says it has left (`levee-timeout` or `grpc-timeout`, as levee's service client sends it:
/// the gateway in split mode), so a hop never works for a caller that stopped waiting. A
/// malformed timeout header is answered 400. The handler finds the deadline in the request's
/// extensions (a [`Deadline`] on the shop clock) to send on what is left.
pub async fn deadline(State(shop): State<Arc<Shop>>, mut req: Request, next: Next) -> Response {
    let given = match levee::client::deadline::timeout_from_headers(req.headers()) {
        Ok(given) => given,
        Err(e) => {
            return ApiError::bad_request("invalid_timeout", format!("{e}")).into_response();
        }
    };
    let pipeline = shop.connections.deadline();
    let clock = pipeline.clock().clone();
    let own = shop.config.server.clients.request_timeout;
    // The caller's time, when it is the shorter: it bounds the call, not the pipeline's.
    let shorter = given.filter(|&given| given < own);
    let budget = shorter.unwrap_or(own);
    req.extensions_mut().insert(Deadline::after(Arc::new(clock.clone()), budget));
    // The pipeline's operation is `Fn` (a retry would call it again); this one has a timeout
    // only, so it is called once and takes the request out.
    let call = Mutex::new(Some((req, next)));
    let served = pipeline.execute(|_| {
        let call = call.lock().take();
        async move {
            match call {
                Some((req, next)) => Ok(next.run(req).await),
                None => Err(()),
            }
        }
    });
    let served = match shorter {
        Some(left) => tokio::select! {
            served = served => served.map_err(|e| e.kind()),
            () = clock.sleep(left) => Err(ErrorKind::Timeout),
        },
        None => served.await.map_err(|e| e.kind()),
    };
    match served {
        Ok(response) => response,
        Err(ErrorKind::Timeout) => {
            shop.connections.deadline_exceeded();
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "deadline_exceeded",
                format!("the request was not served within {} ms", budget.as_millis()),
            )
            .into_response()
        }
        Err(_) => ApiError::internal().into_response(),
    }
}
