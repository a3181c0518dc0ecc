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
    /// A client for the replicas of `config` (`urls`, `standby_urls`).
    ///
    /// # Errors
    /// An invalid setting of `[provider]`, named by its path.
    pub fn new(config: &ProviderConfig) -> Result<Self, SettingError> {
        let client = Client::builder()
            .endpoints(config.endpoints()?)
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .max_attempts(config.max_attempts)
            .breaker(config.endpoint_breaker.clone())
            .build()
            .map_err(|e| match e {
                levee::client::BuildError::Config(e) => section("provider")(e),
                other => {
                    section("provider")(levee::core::ConfigError::new("urls", other.to_string()))
                }
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
