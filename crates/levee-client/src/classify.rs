//! Which requests may be sent twice, and what a response says about the endpoint.

use http::{HeaderMap, Method, StatusCode};

/// The header that makes a non-idempotent request safe to retry: the server runs a request
/// with a key it has seen once only (the shop's order placement does).
pub const IDEMPOTENCY_KEY: &str = "idempotency-key";

/// True when sending the request twice has the effect of sending it once: the idempotent
/// methods of RFC 9110 (GET, HEAD, OPTIONS, TRACE, PUT, DELETE), or any request that carries
/// an `Idempotency-Key` header. Only these are retried after they may have reached an
/// endpoint (a request that certainly did not, a refused connection, is retried whatever its
/// method).
///
/// ```
/// use http::{HeaderMap, Method};
/// use levee_client::is_idempotent;
///
/// assert!(is_idempotent(&Method::PUT, &HeaderMap::new()));
/// assert!(!is_idempotent(&Method::POST, &HeaderMap::new()));
/// let mut keyed = HeaderMap::new();
/// keyed.insert("idempotency-key", "order-7f3a".parse().unwrap());
/// assert!(is_idempotent(&Method::POST, &keyed));
/// ```
#[must_use]
pub fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE | Method::PUT | Method::DELETE
    ) || headers.contains_key(IDEMPOTENCY_KEY)
}

/// True for the reads that may be hedged (sent to a second endpoint while the first is
/// slow): the safe methods GET, HEAD and OPTIONS. A write is never hedged, key or not: two
/// copies in flight at once would race on the server.
#[must_use]
pub fn is_hedgeable(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// What a response says about the endpoint that sent it.
///
/// ```
/// use bytes::Bytes;
/// use http::StatusCode;
/// use levee_client::{Client, ResponseClass, TransportError, default_classifier};
///
/// # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
/// // This backend answers 429 when it is overloaded: retry elsewhere, as for a 503.
/// let classify = |status: StatusCode| match status {
///     StatusCode::TOO_MANY_REQUESTS => ResponseClass::RetryableFailure,
///     other => default_classifier(other),
/// };
/// assert_eq!(classify(StatusCode::TOO_MANY_REQUESTS), ResponseClass::RetryableFailure);
/// assert_eq!(classify(StatusCode::OK), ResponseClass::Success);
///
/// let busy_once = std::sync::atomic::AtomicBool::new(true);
/// let transport = move |_: &levee_client::Endpoint, _: http::Request<Bytes>| {
///     let busy = busy_once.swap(false, std::sync::atomic::Ordering::Relaxed);
///     let mut response = http::Response::new(Bytes::new());
///     if busy {
///         *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
///     }
///     async move { Ok::<_, TransportError>(response) }
/// };
/// let client = Client::builder()
///     .endpoints(["http://a:80".parse().unwrap(), "http://b:80".parse().unwrap()])
///     .classify(classify)
///     .transport(transport)
///     .build()
///     .unwrap();
/// assert_eq!(client.get("/").await.unwrap().status(), StatusCode::OK); // the 429 was retried
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ResponseClass {
    /// The endpoint served the request (whatever the status says about the request).
    Success,
    /// The endpoint failed: counted by its breaker, not retried.
    Failure,
    /// The endpoint failed in a way another endpoint may not: counted by its breaker, and
    /// retried elsewhere when the request is idempotent.
    RetryableFailure,
}

/// The default classification: 502, 503 and 504 are retryable failures (a gateway or
/// overload answer another replica may not give), every other 5xx a failure, anything else
/// a success (a 404 or a 429 is the request's or the caller's business, not the endpoint's
/// health).
///
/// ```
/// use http::StatusCode;
/// use levee_client::{ResponseClass, default_classifier};
///
/// assert_eq!(default_classifier(StatusCode::SERVICE_UNAVAILABLE), ResponseClass::RetryableFailure);
/// assert_eq!(default_classifier(StatusCode::INTERNAL_SERVER_ERROR), ResponseClass::Failure);
/// assert_eq!(default_classifier(StatusCode::NOT_FOUND), ResponseClass::Success);
/// ```
#[must_use]
pub fn default_classifier(status: StatusCode) -> ResponseClass {
    match status.as_u16() {
        502..=504 => ResponseClass::RetryableFailure,
        500..=599 => ResponseClass::Failure,
        _ => ResponseClass::Success,
    }
}
