//! The edge, on levee-limit's tower layers: a per-client rate limit
//! ([`KeyedRateLimitLayer`], GCRA per client; idle clients reclaim themselves) keyed by API key
//! or, without one, by the client's address from axum's `ConnectInfo`; then a global
//! [`BulkheadLayer`] that sheds load at once instead of queueing (unless `edge.bulkhead` gives
//! it a queue). Both take time from the shop clock.
//!
//! Each layer is applied to the customer routes on its own, the rate limit outside, so a
//! request over its rate is refused before it asks the bulkhead for a slot; each layer's
//! refusal ([`LimitError`]) becomes an answer through one mapping, [`refused`]: 429 with
//! `Retry-After` (the limiter's own wait, rounded up to whole seconds) for the rate limit, 503
//! with `Retry-After: 1` for the bulkhead, both with the shop's JSON error body.

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request};
use axum::http::StatusCode;
use levee::limit::tower::{BulkheadLayer, KeyedRateLimitLayer, LimitError};
use levee::limit::{Bulkhead, KeyedRateLimiter};
use serde::Serialize;

use super::auth::api_key;
use crate::api::ApiError;
use crate::clock::ShopClock;
use crate::config::{EdgeConfig, SettingError, section};

/// Who a request counts against: its API key, or its address without one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Client {
    /// The `X-Api-Key` (or bearer token) sent.
    ApiKey(Box<str>),
    /// The peer address, when no key was sent.
    Addr(IpAddr),
    /// Neither (a request that did not come through the listener, as in unit tests).
    Unknown,
}

impl Client {
    /// The client `req` comes from.
    #[must_use]
    pub fn of(req: &Request) -> Self {
        if let Some(key) = api_key(req.headers()) {
            return Self::ApiKey(key.into());
        }
        req.extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map_or(Self::Unknown, |c| Self::Addr(c.0.ip()))
    }
}

/// How the rate-limit layer keys a request.
pub type ClientKey = fn(&Request) -> Client;

/// Counters of the edge, for `/admin/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct EdgeStats {
    /// Requests refused by the per-client rate limit (429).
    pub rate_limited: u64,
    /// Requests shed by the bulkhead (503).
    pub shed: u64,
    /// Requests admitted by the bulkhead.
    pub admitted: u64,
    /// Requests being served now.
    pub in_flight: u64,
    /// Bulkhead size.
    pub max_concurrent: u64,
    /// Clients the rate limiter tracks.
    pub tracked_clients: u64,
}

/// The edge's limiters, shared by every connection.
#[derive(Debug)]
pub struct Edge {
    rate: Arc<KeyedRateLimiter<Client, ShopClock>>,
    bulkhead: Arc<Bulkhead<ShopClock>>,
}

impl Edge {
    /// An edge with `config`'s limits, timed by `clock`.
    ///
    /// # Errors
    /// A limit out of range, named by its path (`edge.rate.count`, ...).
    pub fn new(config: &EdgeConfig, clock: ShopClock) -> Result<Self, SettingError> {
        let rate = KeyedRateLimiter::builder(config.rate)
            .clock(clock.clone())
            .build()
            .map_err(section("edge.rate"))?;
        let bulkhead = config
            .bulkhead
            .builder()
            .count_acquired(true)
            .clock(clock)
            .build()
            .map_err(section("edge.bulkhead"))?;
        Ok(Self { rate: Arc::new(rate), bulkhead: Arc::new(bulkhead) })
    }

    /// The per-client rate limit as a tower layer.
    #[must_use]
    pub fn rate_limit(
        &self,
    ) -> KeyedRateLimitLayer<KeyedRateLimiter<Client, ShopClock>, ClientKey> {
        KeyedRateLimitLayer::new(Arc::clone(&self.rate), Client::of as ClientKey)
    }

    /// The bulkhead as a tower layer.
    #[must_use]
    pub fn bulkhead(&self) -> BulkheadLayer<ShopClock> {
        BulkheadLayer::new(Arc::clone(&self.bulkhead))
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> EdgeStats {
        let rate = self.rate.stats();
        let bulkhead = self.bulkhead.stats();
        EdgeStats {
            rate_limited: rate.rejected,
            shed: bulkhead.rejected,
            admitted: bulkhead.acquired.unwrap_or(0),
            in_flight: bulkhead.in_flight as u64,
            max_concurrent: bulkhead.limit as u64,
            tracked_clients: rate.keys as u64,
        }
    }
}

/// The answer to an edge refusal (the `HandleErrorLayer` function of both layers).
pub async fn refused(refusal: LimitError<Infallible>) -> ApiError {
    ApiError::from(refusal)
}

impl From<LimitError<Infallible>> for ApiError {
    fn from(refusal: LimitError<Infallible>) -> Self {
        match refusal {
            LimitError::Throttled(t) => {
                let wait = t.retry_after();
                let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many requests; retry in {} ms", wait.as_millis()),
                )
                .retry_after(secs)
            }
            LimitError::Inner(never) => match never {},
            // The bulkhead (or a refusal a later levee adds): the shop is at capacity.
            _ => Self::unavailable(
                "overloaded",
                "the shop is at capacity; request shed, retry shortly",
                1,
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::error_handling::HandleErrorLayer;
    use axum::routing::get;
    use levee::core::ManualClock;
    use levee::limit::{BulkheadSettings, Quota};
    use tower::ServiceExt;

    use super::*;

    /// A router with the edge's two layers around one route that waits for `release`.
    fn app(edge: &Edge, release: Arc<tokio::sync::Notify>) -> Router {
        Router::new()
            .route(
                "/",
                get(move || {
                    let release = Arc::clone(&release);
                    async move { release.notified().await }
                }),
            )
            .route_layer((HandleErrorLayer::new(refused), edge.bulkhead()))
            .route_layer((HandleErrorLayer::new(refused), edge.rate_limit()))
    }

    fn request(key: &str) -> Request {
        Request::builder().uri("/").header("x-api-key", key).body(Body::empty()).unwrap()
    }

    #[tokio::test]
    async fn rate_per_client_then_bulkhead_with_retry_after() {
        let manual = ManualClock::new();
        let config = EdgeConfig {
            rate: Quota::per_second(10).with_burst(2),
            bulkhead: BulkheadSettings::new(1),
        };
        let edge = Edge::new(&config, ShopClock::manual(manual.clone())).unwrap();
        let release = Arc::new(tokio::sync::Notify::new());
        let app = app(&edge, Arc::clone(&release));

        // Alice's first request holds the one bulkhead slot.
        let held = tokio::spawn(app.clone().oneshot(request("alice")));
        while edge.stats().in_flight == 0 {
            tokio::task::yield_now().await;
        }
        // Bob is within his rate but the shop is full: 503, Retry-After 1.
        let shed = app.clone().oneshot(request("bob")).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");
        // Alice's second request is within her burst of two, so the bulkhead sheds it too;
        // her third is over her rate: 429 before it asks the bulkhead (which stays at two
        // refusals), Retry-After rounded up to 1 s.
        let second = app.clone().oneshot(request("alice")).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        let limited = app.clone().oneshot(request("alice")).await.unwrap();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()["retry-after"], "1");
        let body = axum::body::to_bytes(limited.into_body(), 4096).await.unwrap();
        let body: crate::api::ErrorBody = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            (body.error.code.as_str(), body.error.retry_after_secs),
            ("rate_limited", Some(1))
        );
        let s = edge.stats();
        assert_eq!((s.rate_limited, s.shed, s.tracked_clients), (1, 2, 2));

        release.notify_waiters();
        assert_eq!(held.await.unwrap().unwrap().status(), StatusCode::OK);
        assert_eq!(edge.stats().in_flight, 0, "the slot is back");
        // Time restores Alice's allowance.
        manual.advance(Duration::from_millis(100));
        release.notify_one();
        let again = app.oneshot(request("alice")).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }

    #[test]
    fn clients_are_keyed_by_api_key_else_address() {
        let mut req = Request::builder().uri("/").body(Body::empty()).unwrap();
        assert_eq!(Client::of(&req), Client::Unknown);
        req.extensions_mut().insert(ConnectInfo(SocketAddr::from(([127, 0, 0, 7], 9))));
        assert_eq!(Client::of(&req), Client::Addr(IpAddr::from([127, 0, 0, 7])));
        req.headers_mut().insert("x-api-key", "k1".parse().unwrap());
        assert_eq!(Client::of(&req), Client::ApiKey("k1".into()));
    }
}
