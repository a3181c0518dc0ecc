//! The provider over HTTP (`provider.urls`): the shop's side of a provider process, through
//! levee's service client.
//!
//! The client picks a replica by power of two choices on peak-EWMA latency across the
//! primaries, keeps a breaker per replica that ejects a failing one, and sends to the
//! standbys only while every primary is ejected. Every call carries the order id as its
//! `Idempotency-Key`, so the client may retry a failed charge on another replica (the
//! provider answers an order's second charge with its first), and the time the payment
//! pipeline has left as `levee-timeout` (the pipeline's attempt runs inside that deadline,
//! see `crate::guard`), so a replica stops working on a charge nobody waits for.
//!
//! The answers map back onto [`ProviderError`]: 200 is the charge, 402 a decline (an
//! answer, not a fault), anything else, and no answer at all, is `Unavailable` (a fault
//! for the payment pipeline, which retries it and counts it against its breaker).

use axum::body::Bytes;
use axum::http::{self, StatusCode, header};
use levee::client::tls::TlsConfig;
use levee::client::{Client, EndpointStats, IDEMPOTENCY_KEY};
use serde::Serialize;

use super::ProviderError;
use super::server::{ChargeAnswer, ChargeRequest, RefundRequest};
use crate::api::ErrorBody;
use crate::config::{ProviderConfig, SettingError, section};
use crate::guard::BreakerState;

/// The payment provider as remote replicas, called through levee's service client.
#[derive(Debug, Clone)]
pub struct RemoteProvider {
    client: Client,
}

/// One provider replica as the shop's client sees it (`/admin/status`, `/metrics`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct ProviderEndpointStatus {
    /// `http://host:port`.
    pub url: String,
    /// `primary` or `standby`.
    pub role: String,
    /// Its breaker in the client.
    pub breaker: BreakerState,
    /// Out of rotation now: its breaker is open (and its wait not over).
    pub ejected: bool,
    /// Calls sent and not answered yet.
    pub in_flight: u32,
    /// The peak-EWMA latency estimate, in microseconds.
    pub latency_us: u64,
    /// Calls sent to it.
    pub requests: u64,
    /// Of those, failures (error statuses, transport errors, timeouts).
    pub failures: u64,
}

impl ProviderEndpointStatus {
    fn of(s: &EndpointStats) -> Self {
        let endpoint = &s.endpoint;
        Self {
            url: format!("{}://{}", endpoint.scheme(), endpoint.authority()),
            role: if endpoint.priority() == levee::client::PRIMARY { "primary" } else { "standby" }
                .to_owned(),
            breaker: BreakerState::of(s.breaker.state),
            ejected: s.is_ejected(),
            in_flight: s.in_flight,
            latency_us: u64::try_from(s.latency.as_micros()).unwrap_or(u64::MAX),
            requests: s.requests,
            failures: s.failures,
        }
    }
}

impl RemoteProvider {
    /// A client for the replicas of `config` (`urls`, `standby_urls`), over mutual TLS
    /// when `tls` is given (`[server.tls]`'s client side, verifying the replicas as
    /// `provider`).
    ///
    /// # Errors
    /// An invalid setting of `[provider]`, named by its path.
    pub fn new(config: &ProviderConfig, tls: Option<TlsConfig>) -> Result<Self, SettingError> {
        let mut builder = Client::builder()
            .endpoints(config.endpoints()?)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .max_attempts(config.max_attempts)
            .breaker(config.endpoint_breaker.clone());
        if let Some(tls) = tls {
            builder = builder.tls(tls);
        }
        let client = builder.build().map_err(|e| match e {
            levee::client::BuildError::Config(e) => section("provider")(e),
            other => section("provider")(levee::core::ConfigError::new("urls", other.to_string())),
        })?;
        Ok(Self { client })
    }

    /// Charges `amount_cents` to `card` for `order_id` on one of the replicas.
    ///
    /// # Errors
    /// [`ProviderError::Declined`] on a 402, [`ProviderError::Unavailable`] on any other
    /// failure (no replica answered, or one answered with an error).
    pub async fn charge(
        &self,
        order_id: i64,
        amount_cents: i64,
        card: &str,
    ) -> Result<String, ProviderError> {
        let body = ChargeRequest { order_id, amount_cents, card: card.to_owned() };
        let (status, bytes) = self.post("/charges", &body, &format!("charge-{order_id}")).await?;
        match status {
            StatusCode::OK => serde_json::from_slice::<ChargeAnswer>(&bytes)
                .map(|answer| answer.charge_id)
                .map_err(|e| unreadable(order_id, &e)),
            StatusCode::PAYMENT_REQUIRED => {
                let reason = serde_json::from_slice::<ErrorBody>(&bytes)
                    .map_or_else(|_| "card declined".to_owned(), |b| b.error.message);
                Err(ProviderError::Declined(reason))
            }
            other => {
                tracing::debug!(order_id, status = %other, "the provider refused a charge");
                Err(ProviderError::Unavailable)
            }
        }
    }

    /// Refunds the charge of `order_id` (idempotent on the provider's side).
    ///
    /// # Errors
    /// [`ProviderError::Unavailable`] when no replica confirmed it.
    pub async fn refund(&self, order_id: i64) -> Result<(), ProviderError> {
        let body = RefundRequest { order_id };
        let (status, _) = self.post("/refunds", &body, &format!("refund-{order_id}")).await?;
        if status == StatusCode::OK { Ok(()) } else { Err(ProviderError::Unavailable) }
    }

    /// Each replica now, primaries first.
    #[must_use]
    pub fn endpoints(&self) -> Vec<ProviderEndpointStatus> {
        self.client.stats().iter().map(ProviderEndpointStatus::of).collect()
    }

    async fn post(
        &self,
        path: &str,
        body: &impl Serialize,
        key: &str,
    ) -> Result<(StatusCode, Bytes), ProviderError> {
        let body = serde_json::to_vec(body).map_err(|_| ProviderError::Unavailable)?;
        let request = http::Request::post(path)
            .header(header::CONTENT_TYPE, "application/json")
            .header(IDEMPOTENCY_KEY, key)
            .body(Bytes::from(body))
            .map_err(|_| ProviderError::Unavailable)?;
        match self.client.send(request).await {
            Ok(response) => {
                let (parts, bytes) = response.into_parts();
                Ok((parts.status, bytes))
            }
            Err(e) => {
                tracing::debug!(path, error = %e, "no provider replica answered");
                Err(ProviderError::Unavailable)
            }
        }
    }
}

/// A 200 whose body is not a charge: the answer is as good as lost.
fn unreadable(order_id: i64, e: &serde_json::Error) -> ProviderError {
    tracing::warn!(order_id, error = %e, "unreadable charge answer from the provider");
    ProviderError::Unavailable
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use axum::Router;
    use axum::http::HeaderMap;
    use axum::routing::post;
    use parking_lot::Mutex;

    use super::*;
    use crate::clock::ShopClock;
    use crate::config::{PaymentConfig, ProtectionsConfig};
    use crate::guard::PaymentGuard;

    /// A provider stand-in that notes each charge's `levee-timeout` and `Idempotency-Key`
    /// and answers by card: a charge, a decline, or 503.
    async fn stand_in(seen: Arc<Mutex<Vec<(String, String)>>>) -> String {
        let app = Router::new().route(
            "/charges",
            post(move |headers: HeaderMap, body: Bytes| async move {
                let text = |name: &str| {
                    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
                };
                seen.lock().push((text("levee-timeout"), text("idempotency-key")));
                let request: ChargeRequest = serde_json::from_slice(&body).unwrap();
                match request.card.as_str() {
                    "tok_declined" => (
                        StatusCode::PAYMENT_REQUIRED,
                        r#"{"error":{"code":"card_declined","message":"insufficient funds"}}"#,
                    ),
                    "tok_down" => (StatusCode::SERVICE_UNAVAILABLE, "{}"),
                    _ => (StatusCode::OK, r#"{"charge_id":"ch_7"}"#),
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    #[tokio::test]
    async fn a_charge_carries_the_order_id_and_what_the_payment_pipeline_has_left() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let url = stand_in(Arc::clone(&seen)).await;
        let config = ProviderConfig {
            urls: vec![url],
            timeout: Duration::from_secs(5),
            max_attempts: 1,
            ..ProviderConfig::default()
        };
        let remote = RemoteProvider::new(&config, None).unwrap();
        let payment = PaymentConfig {
            attempt_timeout: Duration::from_millis(300),
            ..PaymentConfig::default()
        };
        let guard = PaymentGuard::new(&payment, &ProtectionsConfig::default(), ShopClock::system())
            .unwrap();

        let charged = guard.call(|| remote.charge(7, 100, "tok_visa"), ProviderError::is_fault);
        assert_eq!(charged.await.unwrap().unwrap(), "ch_7");
        let (timeout, key) = seen.lock()[0].clone();
        assert_eq!(key, "charge-7", "the order id is the idempotency key");
        let left = levee::client::deadline::parse_timeout(timeout.as_bytes()).unwrap();
        assert!(
            left > Duration::ZERO && left <= Duration::from_millis(300),
            "the attempt's deadline, not the client's 5 s: {timeout}"
        );

        // A decline is an answer with the provider's reason; a 503 is a fault.
        let declined = remote.charge(8, 100, "tok_declined").await;
        assert_eq!(declined, Err(ProviderError::Declined("insufficient funds".into())));
        assert_eq!(remote.charge(9, 100, "tok_down").await, Err(ProviderError::Unavailable));
        let endpoints = remote.endpoints();
        assert_eq!((endpoints[0].requests, endpoints[0].failures), (3, 1), "{endpoints:?}");
        assert_eq!(endpoints[0].role, "primary");
    }

    #[tokio::test]
    async fn no_replica_listening_is_unavailable() {
        // A port nobody listens on (bound, then closed).
        let addr = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let config = ProviderConfig { urls: vec![format!("http://{addr}")], ..Default::default() };
        let remote = RemoteProvider::new(&config, None).unwrap();
        assert_eq!(remote.charge(1, 1, "tok_visa").await, Err(ProviderError::Unavailable));
        assert_eq!(remote.refund(1).await, Err(ProviderError::Unavailable));
    }
}
