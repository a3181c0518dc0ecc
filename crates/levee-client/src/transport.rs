//! What carries one attempt to one endpoint.

use std::future::Future;

use bytes::Bytes;

use crate::Endpoint;
use crate::error::TransportError;

/// Sends one request to one endpoint and reads the whole response.
///
/// The client hands each attempt's request with its URI already absolute (the endpoint's
/// scheme and authority, the caller's path and query) and its deadline header written. The
/// transport neither retries nor times out: the client does both around it.
///
/// [`HttpTransport`](crate::HttpTransport) (hyper, plain or mutual TLS) is the one for real
/// endpoints. Any `Fn(&Endpoint, Request<Bytes>) -> impl Future<Output = Result<Response<Bytes>,
/// TransportError>>` is a transport too, which is how tests and benchmarks put in-process
/// endpoints behind a client:
///
/// ```
/// use bytes::Bytes;
/// use levee_client::{Client, Endpoint, TransportError};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let echo = |endpoint: &Endpoint, request: http::Request<Bytes>| {
///     let body = Bytes::from(format!("{} {}", endpoint, request.uri().path()));
///     async move { Ok::<_, TransportError>(http::Response::new(body)) }
/// };
/// let client = Client::builder()
///     .endpoints(["http://a:80".parse().unwrap()])
///     .transport(echo)
///     .build()
///     .unwrap();
/// let response = client.get("/ping").await.unwrap();
/// assert_eq!(response.body(), "http://a:80 /ping");
/// # }
/// ```
pub trait Transport: Send + Sync + 'static {
    /// The response future.
    type Future: Future<Output = Result<http::Response<Bytes>, TransportError>> + Send + 'static;

    /// Sends `request` to `endpoint`.
    fn send(&self, endpoint: &Endpoint, request: http::Request<Bytes>) -> Self::Future;
}

impl<F, Fut> Transport for F
where
    F: Fn(&Endpoint, http::Request<Bytes>) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<http::Response<Bytes>, TransportError>> + Send + 'static,
{
    type Future = Fut;

    #[inline]
    fn send(&self, endpoint: &Endpoint, request: http::Request<Bytes>) -> Fut {
        self(endpoint, request)
    }
}
