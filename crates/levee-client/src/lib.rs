//! A resilient HTTP client for calling the replicas of a service: levee's breakers, retry
//! budget and hedging, put together the way a service mesh would.
//!
//! For each call the [`Client`]:
//!
//! 1. **picks an endpoint** in the first priority group (primaries, then standbys, ...) that
//!    has one it may use, by **power of two choices** on a **peak-EWMA** latency estimate
//!    times the requests in flight: two endpoints drawn at random, the cheaper one wins;
//! 2. asks that endpoint's **circuit breaker** (levee-breaker) for a permit: an open breaker
//!    takes the endpoint out of rotation (**outlier ejection**), and when its wait is over a
//!    trial call brings it back; when every primary is ejected or marked unhealthy the
//!    standbys serve, and traffic returns to the primaries as they recover;
//! 3. sends the request with the time left in the **`levee-timeout` header** (gRPC's
//!    `grpc-timeout` grammar; see [`deadline`]): each hop works to the smaller of its own
//!    timeout and what its caller has left; [`DeadlineLayer`] is the server side;
//! 4. **retries** on another endpoint (levee-policy's `Retry` within a `RetryBudget`) what
//!    is safe to send again: a request that never left (a refused connection), or an
//!    idempotent one (GET, HEAD, OPTIONS, PUT, DELETE, or any request with an
//!    `Idempotency-Key`) that failed or got a 502, 503 or 504;
//! 5. **hedges reads** when configured (levee-policy's `Hedge`): a slow GET is also sent to
//!    a second endpoint, and the first answer wins.
//!
//! Endpoints are a fixed list or follow a [`tokio::sync::watch`] channel; errors are typed
//! ([`Error`]); [`Client::stats`] reports each endpoint (in flight, latency estimate, breaker
//! state) for metrics. The transport is hyper (HTTP/1.1 and HTTP/2), plain or with **mutual
//! TLS** ([`tls::TlsConfig`], rustls); `tls::TlsListener` (feature `axum`) serves an axum
//! app behind mutual TLS, and `tls::dev` (feature `dev-certs`) makes a development CA.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//! use bytes::Bytes;
//! use levee_client::{Client, Endpoint, Error, TransportError};
//!
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() {
//! // Two primaries and a standby. The transport here is in-process (any function from an
//! // endpoint and a request to a response will do); by default it is hyper.
//! let endpoints = vec![
//!     Endpoint::new("http://catalog-1:8080").unwrap(),
//!     Endpoint::new("http://catalog-2:8080").unwrap(),
//!     Endpoint::new("http://catalog-standby:8080").unwrap().standby(),
//! ];
//! let down = Arc::new(std::sync::atomic::AtomicBool::new(false));
//! let primaries_down = down.clone();
//! let transport = move |endpoint: &Endpoint, request: http::Request<Bytes>| {
//!     // The deadline went out with the request.
//!     assert!(request.headers().contains_key("levee-timeout"));
//!     let standby = endpoint.authority().host() == "catalog-standby";
//!     let status = if !standby && primaries_down.load(std::sync::atomic::Ordering::Relaxed) { 503 } else { 200 };
//!     let body = Bytes::from(endpoint.authority().host().to_owned());
//!     async move {
//!         let mut response = http::Response::new(body);
//!         *response.status_mut() = http::StatusCode::from_u16(status).unwrap();
//!         Ok::<_, TransportError>(response)
//!     }
//! };
//! let client = Client::builder()
//!     .endpoints(endpoints)
//!     .timeout(Duration::from_secs(2))
//!     .transport(transport)
//!     .build()
//!     .unwrap();
//!
//! let response = client.get("/products/7").await.unwrap();
//! assert!(response.body().starts_with(b"catalog-"));
//! assert_ne!(response.body(), "catalog-standby");
//!
//! // Both primaries fail: their breakers open and the standby takes over.
//! down.store(true, std::sync::atomic::Ordering::Relaxed);
//! let mut last = Bytes::new();
//! for _ in 0..20 {
//!     last = client.get("/products/7").await.unwrap().into_body();
//! }
//! assert_eq!(last, "catalog-standby");
//! assert!(client.stats().iter().filter(|s| s.endpoint.priority() == 0).all(|s| s.is_ejected()));
//! # let _: Option<Error> = None;
//! # }
//! ```
#![forbid(unsafe_code)]

mod ewma;

/// Items left out of the loom build: tokio has no `net` under `--cfg loom`, so the HTTP
/// transport, TLS and server parts cannot compile there; the loom tests need only the
/// lock-free estimator (`ewma`).
macro_rules! not_under_loom {
    ($($item:item)*) => { $( #[cfg(not(loom))] $item )* };
}

not_under_loom! {
    mod balance;
    mod builder;
    mod call;
    mod classify;
    mod client;
    pub mod deadline;
    mod endpoint;
    mod error;
    mod http_transport;
    mod server;
    mod stats;
    pub mod tls;
    mod transport;

    pub use builder::{
        ClientBuilder, ClientSettings, DefaultHttp, TlsFiles, default_endpoint_breaker,
    };
    pub use classify::{
        IDEMPOTENCY_KEY, ResponseClass, default_classifier, is_hedgeable, is_idempotent,
    };
    pub use client::{Client, ResponseFuture};
    pub use deadline::{Deadline, GRPC_TIMEOUT_HEADER, InvalidTimeout, TIMEOUT_HEADER};
    pub use endpoint::{Endpoint, InvalidEndpoint, PRIMARY, STANDBY};
    pub use error::{BoxError, Error, TransportError, TransportErrorKind};
    pub use http_transport::{
        BuildError, DEFAULT_MAX_RESPONSE_BYTES, HttpFuture, HttpTransport, HttpTransportBuilder,
    };
    #[cfg(feature = "axum")]
    pub use server::MissingDeadline;
    pub use server::{DeadlineFuture, DeadlineLayer, DeadlineService};
    pub use stats::EndpointStats;
    pub use transport::Transport;
}

/// The peak-EWMA estimator, reachable from the loom tests only (`--cfg loom`).
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_internals {
    use std::time::Duration;

    /// A peak-EWMA estimate.
    #[derive(Debug)]
    pub struct Estimator(crate::ewma::PeakEwma);

    impl Estimator {
        /// Starts at `default_rtt` at time zero, decaying over `decay`.
        pub fn new(default_rtt: Duration, decay: Duration) -> Self {
            Self(crate::ewma::PeakEwma::new(crate::ewma::EwmaSettings { default_rtt, decay }, 0))
        }
        /// Records a sample at `now`.
        pub fn observe(&self, rtt_ns: u64, now: u64) {
            self.0.observe(rtt_ns, now);
        }
        /// The estimate at `now`.
        pub fn estimate(&self, now: u64) -> f64 {
            self.0.estimate(now)
        }
        /// A request starts.
        pub fn start(&self) {
            self.0.start();
        }
        /// A request ends.
        pub fn finish(&self) {
            self.0.finish();
        }
        /// Requests in flight.
        pub fn in_flight(&self) -> u32 {
            self.0.in_flight()
        }
    }
}
