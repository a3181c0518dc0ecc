//! The edge, on levee-limit's tower layers: a per-client rate limit
//! ([`KeyedRateLimitLayer`], GCRA per client; idle clients reclaim themselves) keyed by
//! verified customer or, without a known key, by client address ([`Client`], found by
//! [`identify`](super::identity::identify)); sign-ups (`POST /customers`) by address alone on
//! their own quota (`limits.signup`); then a global
//! [`BulkheadLayer`] that sheds load at once instead of queueing (unless `edge.bulkhead` gives
//! it a queue). Both take time from the shop clock.
//!
//! Each layer is applied to the customer routes on its own, the rate limit outside, so a
//! request over its rate is refused before it asks the bulkhead for a slot; each layer's
//! refusal ([`LimitError`]) becomes an answer through one mapping, [`refused`]: 429 with
//! `Retry-After` (the limiter's own wait, rounded up to whole seconds) for the rate limit, 503
//! with `Retry-After: 1` for the bulkhead, both with the shop's JSON error body.
//!
//! With protections off (`[protections] enabled = false`, [`Edge::protections`]) the edge has
//! no bulkhead: every request is served, however many are in flight.
//!
//! With `[edge.admission]` set (off by default), an [`AdmissionLayer`] inside the bulkhead
//! sheds by levee-limit's admission controller as well: requests in flight against the
//! capacity the shop measures on itself (max throughput x min latency of its handlers over a
//! sliding window). Its sheds are answered as the bulkhead's: 503, `Retry-After: 1`, code
//! `overloaded`.
//!
//! With `[edge.redis]`'s `url` set, the rate and sign-up limits run on Redis instead, shared
//! by every shop on it ([`EdgeLimiter`], `redis_edge.rs`); the layers and answers stay these.

use std::convert::Infallible;
use std::sync::Arc;

use axum::Router;
use axum::error_handling::HandleErrorLayer;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use levee::limit::tower::{
    AdmissionLayer, BulkheadLayer, KeyedRateLimitLayer, LimitError, RateLimitHeaders,
};
use levee::limit::{AdmissionController, Bulkhead, BulkheadError, OwnedPermit, Throttled};
use serde::Serialize;

use super::identity::{Client, ClientAddrs};
use super::redis_edge::{EdgeLimiter, RedisEdgeStats};
use crate::api::{ApiError, EdgeLive, EdgePatch};
use crate::clock::ShopClock;
use crate::config::{EdgeConfig, LimitsConfig, ProtectionsConfig, SettingError, section};

/// How the rate-limit layer keys a request.
pub type ClientKey = fn(&Request) -> Client;

/// A per-client rate-limit layer of the edge, answering with the IETF `RateLimit` fields.
pub type ClientLimitLayer = KeyedRateLimitLayer<EdgeLimiter, ClientKey, RateLimitHeaders>;

/// Counters of the edge, for `/admin/status` and `/metrics`.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct EdgeStats {
    /// The limits' Redis counters, when they run on Redis (`edge.redis.url`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis: Option<RedisEdgeStats>,
    /// Requests refused by the per-client rate limit (429).
    pub rate_limited: u64,
    /// Sign-ups refused by the per-address sign-up limit (429).
    pub signup_limited: u64,
    /// Requests shed by the bulkhead (503).
    pub shed: u64,
    /// Requests admitted by the bulkhead.
    pub admitted: u64,
    /// Requests being served now.
    pub in_flight: u64,
    /// Bulkhead size.
    pub max_concurrent: u64,
    /// Clients the rate limiter tracks in this process (0 on Redis).
    pub tracked_clients: u64,
    /// Requests the admission controller shed (503), among those the bulkhead admitted; 0
    /// without `[edge.admission]`.
    pub admission_shed: u64,
    /// The admission controller's estimated capacity in requests in flight (its rule:
    /// max throughput x min latency x headroom); `None` without `[edge.admission]` or before
    /// its window holds a completion.
    pub admission_capacity: Option<u64>,
}

/// The edge's limiters, shared by every connection.
#[derive(Debug)]
pub struct Edge {
    rate: Arc<EdgeLimiter>,
    signup: Arc<EdgeLimiter>,
    addrs: ClientAddrs,
    /// None with protections off.
    bulkhead: Option<Arc<Bulkhead<ShopClock>>>,
    admission: Option<Arc<AdmissionController<ShopClock>>>,
}

impl Edge {
    /// An edge with `config`'s limits and `limits`' sign-up quota and client addresses,
    /// timed by `clock`.
    ///
    /// # Errors
    /// A limit out of range, named by its path (`edge.rate.count`, ...), or a Redis URL the
    /// client cannot read (`edge.redis.url`).
    pub fn new(
        config: &EdgeConfig,
        limits: &LimitsConfig,
        clock: ShopClock,
    ) -> Result<Self, SettingError> {
        let redis = &config.redis;
        let rate = EdgeLimiter::build(config.rate, "edge.rate", "rate", redis, clock.clone())?;
        let signup =
            EdgeLimiter::build(limits.signup, "limits.signup", "signup", redis, clock.clone())?;
        let admission = config
            .admission
            .map(|settings| settings.build_with_clock(clock.clone()))
            .transpose()
            .map_err(section("edge.admission"))?;
        let bulkhead = config
            .bulkhead
            .builder()
            .count_acquired(true)
            .clock(clock)
            .build()
            .map_err(section("edge.bulkhead"))?;
        Ok(Self {
            rate: Arc::new(rate),
            signup: Arc::new(signup),
            addrs: ClientAddrs::new(limits),
            bulkhead: Some(Arc::new(bulkhead)),
            admission: admission.map(Arc::new),
        })
    }

    /// The same edge without its bulkhead and admission controller when `protections` are off.
    #[must_use]
    pub fn protections(mut self, protections: &ProtectionsConfig) -> Self {
        if !protections.enabled {
            self.bulkhead = None;
            self.admission = None;
        }
        self
    }

    /// The limits now (`/admin/settings`); `max_concurrent` 0 without a bulkhead
    /// (protections off).
    #[must_use]
    pub fn live(&self) -> EdgeLive {
        EdgeLive {
            rate: self.rate.quota(),
            signup: self.signup.quota(),
            max_concurrent: self.bulkhead.as_ref().map_or(0, |b| b.limit()),
        }
    }

    /// Why `patch` cannot be applied while the shop runs: it changes a limit that runs on
    /// Redis (`edge.rate` or `edge.signup`, and the reason). `None` when it can.
    #[must_use]
    pub fn fixed(&self, patch: &EdgePatch) -> Option<(&'static str, &'static str)> {
        [("edge.rate", patch.rate, &self.rate), ("edge.signup", patch.signup, &self.signup)]
            .into_iter()
            .filter(|(_, quota, _)| quota.is_some())
            .find_map(|(setting, _, limiter)| limiter.fixed().map(|why| (setting, why)))
    }

    /// The per-client rate limit (for the start's check of Redis).
    #[must_use]
    pub fn rate_limiter(&self) -> &EdgeLimiter {
        &self.rate
    }

    /// Applies `patch`, whose values the caller checked (an invalid quota, or one for a
    /// limit on Redis, see [`Edge::fixed`], is skipped): each client keeps what it owes,
    /// requests in flight finish.
    pub fn reconfigure(&self, patch: &EdgePatch) {
        for (limiter, quota) in [(&self.rate, patch.rate), (&self.signup, patch.signup)] {
            if let Some(quota) = quota {
                // An invalid quota changes nothing (`LiveControl::apply` checks first).
                let _ = limiter.reconfigure(quota);
            }
        }
        // Without a bulkhead (protections off) there is no limit to change.
        if let (Some(limit), Some(bulkhead)) = (patch.max_concurrent, &self.bulkhead) {
            bulkhead.set_limit(limit);
        }
    }

    /// How client addresses are found.
    #[must_use]
    pub fn addrs(&self) -> &ClientAddrs {
        &self.addrs
    }

    /// The per-client rate limit as a tower layer: the policy `"client"` in the IETF
    /// `RateLimit` fields, and a bodiless 429 on refusals ([`throttled_body`] writes the body).
    #[must_use]
    pub fn rate_limit(&self) -> ClientLimitLayer {
        KeyedRateLimitLayer::new(Arc::clone(&self.rate), Client::of as ClientKey)
            .headers(named("client"))
    }

    /// The per-address sign-up limit as a tower layer, as [`Edge::rate_limit`] with the
    /// policy `"signup"`.
    #[must_use]
    pub fn signup_limit(&self) -> ClientLimitLayer {
        KeyedRateLimitLayer::new(Arc::clone(&self.signup), Client::addr_of as ClientKey)
            .headers(named("signup"))
    }

    /// A bulkhead slot for work the edge does before the layers (a key look-up that the
    /// cache cannot answer), so that work is bounded like any request's; refused at once
    /// when the shop is full. `None` without a bulkhead (protections off).
    ///
    /// # Errors
    /// The bulkhead's refusal.
    pub fn slot(&self) -> Result<Option<OwnedPermit<ShopClock>>, BulkheadError> {
        self.bulkhead.as_ref().map(|b| b.try_acquire_owned()).transpose()
    }

    /// The bulkhead as a tower layer; `None` with protections off.
    #[must_use]
    pub fn bulkhead(&self) -> Option<BulkheadLayer<ShopClock>> {
        self.bulkhead.as_ref().map(|b| BulkheadLayer::new(Arc::clone(b)))
    }

    /// `routes` behind the bulkhead (its refusals answered by [`refused`]); `routes` as they
    /// are with protections off.
    pub fn behind_bulkhead<S>(&self, routes: Router<S>) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        match self.bulkhead() {
            Some(bulkhead) => routes.route_layer((HandleErrorLayer::new(refused), bulkhead)),
            None => routes,
        }
    }

    /// `routes` behind the admission controller when `[edge.admission]` is set (refusals
    /// answered by [`refused`]), else as they are. Applied first, so it sits inside the
    /// bulkhead and measures the handlers.
    pub fn admission<S: Clone + Send + Sync + 'static>(&self, routes: Router<S>) -> Router<S> {
        match &self.admission {
            Some(controller) => routes.route_layer((
                HandleErrorLayer::new(refused),
                AdmissionLayer::new(Arc::clone(controller)),
            )),
            None => routes,
        }
    }

    /// The admission controller, when `[edge.admission]` is set (for its stats).
    #[must_use]
    pub fn admission_controller(&self) -> Option<&Arc<AdmissionController<ShopClock>>> {
        self.admission.as_ref()
    }

    /// Counters now.
    #[must_use]
    pub fn stats(&self) -> EdgeStats {
        let mut stats = EdgeStats {
            rate_limited: self.rate.rejected(),
            signup_limited: self.signup.rejected(),
            tracked_clients: self.rate.tracked(),
            redis: RedisEdgeStats::of(&self.rate, &self.signup),
            ..EdgeStats::default()
        };
        if let Some(bulkhead) = &self.bulkhead {
            let b = bulkhead.stats();
            stats.shed = b.rejected;
            stats.admitted = b.acquired.unwrap_or(0);
            stats.in_flight = b.in_flight as u64;
            stats.max_concurrent = b.limit as u64;
        }
        if let Some(admission) = &self.admission {
            let a = admission.stats();
            stats.admission_shed = a.shed;
            stats.admission_capacity = a.capacity.map(|c| c as u64);
        }
        stats
    }
}

/// The IETF fields of a policy named `name` (a constant: printable ASCII).
fn named(name: &str) -> RateLimitHeaders {
    RateLimitHeaders::named(name).unwrap_or_default()
}

/// The answer to a bulkhead refusal (its `HandleErrorLayer` function).
pub async fn refused(refusal: LimitError<Infallible>) -> ApiError {
    ApiError::from(refusal)
}

/// Gives a rate limit's 429 the shop's error body (the layers answer with their header
/// fields, `Retry-After` among them, and the refusal in the response's extensions); other
/// answers pass as they are. The `map_response` function around the rate-limit layers.
pub async fn throttled_body(mut response: Response) -> Response {
    let Some(refusal) = response.extensions_mut().remove::<Throttled>() else {
        return response;
    };
    let fields = std::mem::take(response.headers_mut());
    let mut answer = ApiError::from(LimitError::<Infallible>::Throttled(refusal)).into_response();
    // The layer's `RateLimit`, `RateLimit-Policy` and `Retry-After` (the same whole seconds).
    answer.headers_mut().extend(fields);
    answer
}

impl From<LimitError<Infallible>> for ApiError {
    fn from(refusal: LimitError<Infallible>) -> Self {
        match refusal {
            LimitError::Throttled(t) => {
                let wait = t.retry_after();
                Self::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "rate_limited",
                    format!("too many requests; retry in {} ms", wait.as_millis()),
                )
                .retry_after(crate::api::retry_after_secs(wait))
            }
            LimitError::Inner(never) => match never {},
            // The bulkhead, the admission controller (or a refusal a later levee adds): the
            // shop is at capacity.
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

    use axum::body::Body;
    use axum::routing::get;
    use levee::core::ManualClock;
    use levee::limit::{BulkheadSettings, Quota};
    use tower::ServiceExt;

    use super::*;

    /// A router with the edge's two layers around one route that waits for `release`.
    fn app(edge: &Edge, release: Arc<tokio::sync::Notify>) -> Router {
        let route = Router::new().route(
            "/",
            get(move || {
                let release = Arc::clone(&release);
                async move { release.notified().await }
            }),
        );
        edge.behind_bulkhead(route)
            .route_layer((axum::middleware::map_response(throttled_body), edge.rate_limit()))
    }

    /// A request from the customer `id`, as `identify` marks it.
    fn request(id: i64) -> Request {
        let mut req = Request::builder().uri("/").body(Body::empty()).unwrap();
        req.extensions_mut().insert(Client::Customer(id));
        req
    }

    #[tokio::test]
    async fn rate_per_client_then_bulkhead_with_retry_after() {
        let manual = ManualClock::new();
        let config = EdgeConfig {
            rate: Quota::per_second(10).with_burst(2),
            bulkhead: BulkheadSettings::new(1),
            ..EdgeConfig::default()
        };
        let edge = Edge::new(&config, &LimitsConfig::default(), ShopClock::manual(manual.clone()))
            .unwrap();
        let release = Arc::new(tokio::sync::Notify::new());
        let app = app(&edge, Arc::clone(&release));

        // Alice's first request holds the one bulkhead slot.
        let held = tokio::spawn(app.clone().oneshot(request(1)));
        while edge.stats().in_flight == 0 {
            tokio::task::yield_now().await;
        }
        // Bob is within his rate but the shop is full: 503, Retry-After 1.
        let shed = app.clone().oneshot(request(2)).await.unwrap();
        assert_eq!(shed.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(shed.headers()["retry-after"], "1");
        // Alice's second request is within her burst of two, so the bulkhead sheds it too;
        // her third is over her rate: 429 before it asks the bulkhead (which stays at two
        // refusals), Retry-After rounded up to 1 s.
        let second = app.clone().oneshot(request(1)).await.unwrap();
        assert_eq!(second.status(), StatusCode::SERVICE_UNAVAILABLE);
        let limited = app.clone().oneshot(request(1)).await.unwrap();
        assert_eq!(limited.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(limited.headers()["retry-after"], "1");
        assert_eq!(limited.headers()["ratelimit"], r#""client";r=0;t=1"#);
        let policy = limited.headers()["ratelimit-policy"].to_str().unwrap();
        assert!(policy.starts_with(r#""client";q="#), "{policy}");
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
        let again = app.oneshot(request(1)).await.unwrap();
        assert_eq!(again.status(), StatusCode::OK);
    }

    #[tokio::test]
    async fn protections_off_leave_the_edge_without_its_bulkhead() {
        let config = EdgeConfig {
            rate: Quota::per_second(100).with_burst(100),
            bulkhead: BulkheadSettings::new(1),
            ..EdgeConfig::default()
        };
        let clock = ShopClock::manual(ManualClock::new());
        let on = Edge::new(&config, &LimitsConfig::default(), clock.clone()).unwrap();
        assert!(on.bulkhead().is_some() && on.slot().unwrap().is_some());
        let edge = Edge::new(&config, &LimitsConfig::default(), clock)
            .unwrap()
            .protections(&ProtectionsConfig::off());
        assert!(edge.bulkhead().is_none(), "no bulkhead layer");
        assert!(edge.slot().unwrap().is_none(), "no slot taken before the layers");
        let release = Arc::new(tokio::sync::Notify::new());
        let app = app(&edge, Arc::clone(&release));
        // Three requests at once on a bulkhead of one: none is shed.
        let held: Vec<_> =
            (1..=3).map(|id| tokio::spawn(app.clone().oneshot(request(id)))).collect();
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert!(held.iter().all(|h| !h.is_finished()), "all three wait in the handler");
        release.notify_waiters();
        for h in held {
            assert_eq!(h.await.unwrap().unwrap().status(), StatusCode::OK);
        }
        let s = edge.stats();
        assert_eq!((s.shed, s.admitted, s.max_concurrent), (0, 0, 0));
    }
}
