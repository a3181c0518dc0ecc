//! The provider as its own process (`reference-shop serve --service provider`): the simulated
//! provider over HTTP, so its faults are real network faults to the shop.
//!
//! | route | what |
//! |---|---|
//! | `POST /charges` `{order_id, amount_cents, card}` | 200 `{charge_id}` (a repeat for an order returns its first charge), 402 declined, 503 unavailable (injected: half of them after charging) |
//! | `POST /refunds` `{order_id}` | 200, or 503 as injected |
//! | `GET /stats` | [`ProviderStats`] |
//! | `GET /health` | 200 while it serves |
//! | `GET`, `PUT /admin/faults` | the injected faults ([`FaultPatch`]), behind `server.admin_token` |
//!
//! It serves on the shop's own listener (`crate::http::serve`): `server.addr`, the
//! connection limits and read timeouts of `server.clients`, `server.max_body_bytes`, and
//! mutual TLS when `[server.tls]` is set (its certificate is `reference-shop certs`'s
//! `provider`). Charges
//! and refunds run under levee-client's `DeadlineLayer`: a call whose caller's deadline
//! (`levee-timeout`) has passed gets 504 and the work stops. It starts with the faults of
//! `[provider]` (`latency`, `failure_rate`) and keeps its charges in `provider.ledger_dir`
//! when set (shared by its replicas), else in memory.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use levee::client::DeadlineLayer;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{PaymentProvider, ProviderError, ProviderStats};
use crate::api::ApiError;
use crate::clock::ShopClock;
use crate::config::{Config, SettingError};
use crate::faults::{FaultPatch, FaultSettings, Faults};
use crate::http::{ApiJson, Connections, has_admin_token};

/// The longest a charge or refund may run, whatever its caller's deadline says.
const MAX_CALL: Duration = Duration::from_secs(60);

/// `POST /charges` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChargeRequest {
    /// The order (the idempotency key: one charge per order).
    pub order_id: i64,
    /// The amount.
    pub amount_cents: i64,
    /// The card token.
    pub card: String,
}

/// `POST /charges` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChargeAnswer {
    /// The order's charge.
    pub charge_id: String,
}

/// `POST /refunds` body.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefundRequest {
    /// The order whose charge is refunded.
    pub order_id: i64,
}

/// Why a provider process did not start.
#[derive(Debug, thiserror::Error)]
pub enum ProviderStartError {
    /// A setting is out of range.
    #[error(transparent)]
    Config(#[from] SettingError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The TLS files of `[server.tls]` cannot be used.
    #[error(transparent)]
    Tls(#[from] crate::config::TlsSettingsError),
    /// The ledger directory could not be created.
    #[error("provider.ledger_dir `{}`: {source}", path.display())]
    Ledger {
        /// The directory.
        path: PathBuf,
        /// Cause.
        source: std::io::Error,
    },
}

#[derive(Debug)]
struct ProviderState {
    provider: Arc<PaymentProvider>,
    faults: Arc<Faults>,
    admin_token: String,
}

/// A provider process's server, listening.
#[derive(Debug)]
pub struct RunningProvider {
    addr: SocketAddr,
    provider: Arc<PaymentProvider>,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl RunningProvider {
    /// Starts serving the provider on `config.server.addr`.
    ///
    /// # Errors
    /// Invalid settings (named by their path), the address cannot be bound, or the ledger
    /// directory cannot be created.
    pub async fn start(config: &Config) -> Result<Self, ProviderStartError> {
        config.validate()?;
        let settings = &config.provider;
        let faults = Arc::new(Faults::new(FaultSettings {
            provider_latency_ms: u64::try_from(settings.latency.as_millis()).unwrap_or(u64::MAX),
            provider_failure_rate: settings.failure_rate,
            store_latency_ms: 0,
        }));
        let provider = Arc::new(match &settings.ledger_dir {
            Some(dir) => PaymentProvider::on_disk(Arc::clone(&faults), dir.clone())
                .map_err(|source| ProviderStartError::Ledger { path: dir.clone(), source })?,
            None => PaymentProvider::new(Arc::clone(&faults)),
        });
        let connections = Arc::new(Connections::new(&config.server.clients, ShopClock::system())?);
        let addr = config.server.addr;
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| ProviderStartError::Bind { addr, source })?;
        let addr =
            listener.local_addr().map_err(|source| ProviderStartError::Bind { addr, source })?;
        let state = Arc::new(ProviderState {
            provider: Arc::clone(&provider),
            faults,
            admin_token: config.server.admin_token.clone(),
        });
        let app = router(state, config.server.max_body_bytes);
        let tls = config.server.tls.server()?;
        let (stop, stopped) = watch::channel(false);
        let limits = config.server.clients.clone();
        let server = tokio::spawn(async move {
            crate::http::serve(listener, app, connections, &limits, tls, stopped).await;
        });
        tracing::info!(%addr, ledger = ?settings.ledger_dir, "payment provider listening");
        Ok(Self { addr, provider, stop, server })
    }

    /// The address it listens on.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The provider it serves.
    #[must_use]
    pub fn provider(&self) -> &Arc<PaymentProvider> {
        &self.provider
    }

    /// Stops accepting, lets the calls under way finish, and returns when all have closed.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.server.await;
    }
}

/// `reference-shop serve --service provider`: serves until `shutdown` completes; prints
/// `reference shop on http://ADDR (the payment provider ...)` first on stdout (`https://`
/// with `[server.tls]`). Exit code 2 for settings it cannot run with, 1 for anything else.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> std::process::ExitCode {
    let running = match RunningProvider::start(&config).await {
        Ok(running) => running,
        Err(e) => {
            eprintln!("reference-shop: cannot start the payment provider: {e}");
            let code = if matches!(e, ProviderStartError::Config(_)) { 2 } else { 1 };
            return std::process::ExitCode::from(code);
        }
    };
    let addr = running.addr();
    if config.server.tls.files().is_some() {
        println!("reference shop on https://{addr} (the payment provider, mutual TLS)");
    } else {
        println!(
            "reference shop on http://{addr} (the payment provider; try: curl http://{addr}/stats)"
        );
    }
    shutdown.await;
    running.shutdown().await;
    std::process::ExitCode::SUCCESS
}

fn router(state: Arc<ProviderState>, max_body_bytes: usize) -> Router {
    let calls = Router::new()
        .route("/charges", post(charge))
        .route("/refunds", post(refund))
        .layer(DeadlineLayer::new().max_timeout(MAX_CALL));
    Router::new()
        .merge(calls)
        .route("/stats", get(stats))
        .route("/health", get(health))
        .route("/admin/faults", get(faults).put(set_faults))
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .with_state(state)
}

fn unavailable() -> ApiError {
    ApiError::unavailable("provider_unavailable", "the payment provider is unavailable", 1)
}

async fn charge(
    State(state): State<Arc<ProviderState>>,
    ApiJson(request): ApiJson<ChargeRequest>,
) -> Result<Json<ChargeAnswer>, ApiError> {
    match state.provider.charge(request.order_id, request.amount_cents, &request.card).await {
        Ok(charge_id) => Ok(Json(ChargeAnswer { charge_id })),
        Err(ProviderError::Declined(reason)) => {
            Err(ApiError::new(StatusCode::PAYMENT_REQUIRED, "card_declined", reason))
        }
        Err(ProviderError::Unavailable) => Err(unavailable()),
    }
}

async fn refund(
    State(state): State<Arc<ProviderState>>,
    ApiJson(request): ApiJson<RefundRequest>,
) -> Result<Json<serde_json::Value>, ApiError> {
    state.provider.refund(request.order_id).await.map_err(|_| unavailable())?;
    Ok(Json(serde_json::json!({ "order_id": request.order_id, "refunded": true })))
}

async fn stats(State(state): State<Arc<ProviderState>>) -> Json<ProviderStats> {
    Json(state.provider.stats())
}

async fn health() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

fn admin(state: &ProviderState, headers: &HeaderMap) -> Result<(), ApiError> {
    if has_admin_token(headers, &state.admin_token) {
        Ok(())
    } else {
        Err(ApiError::unauthorized(
            "admin_token_required",
            "admin endpoints need the X-Admin-Token header",
        ))
    }
}

async fn faults(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
) -> Result<Json<FaultSettings>, ApiError> {
    admin(&state, &headers)?;
    Ok(Json(state.faults.get()))
}

async fn set_faults(
    State(state): State<Arc<ProviderState>>,
    headers: HeaderMap,
    ApiJson(patch): ApiJson<FaultPatch>,
) -> Result<Json<FaultSettings>, ApiError> {
    admin(&state, &headers)?;
    let settings =
        state.faults.apply(patch).map_err(|e| ApiError::invalid("invalid_fault", e.to_string()))?;
    tracing::warn!(?settings, "provider fault injection changed");
    Ok(Json(settings))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn started(token: &str) -> (RunningProvider, reqwest::Client, String) {
        let mut config = Config::default();
        config.server.addr = "127.0.0.1:0".parse().unwrap();
        token.clone_into(&mut config.server.admin_token);
        config.provider.latency = Duration::ZERO;
        let running = RunningProvider::start(&config).await.unwrap();
        let base = format!("http://{}", running.addr());
        (running, reqwest::Client::new(), base)
    }

    #[tokio::test]
    async fn charges_are_idempotent_declines_are_402_and_faults_need_the_token() {
        let (running, http, base) = started("provider-test-token").await;
        let charge = |card: &'static str| {
            http.post(format!("{base}/charges"))
                .json(&serde_json::json!({ "order_id": 41, "amount_cents": 500, "card": card }))
                .send()
        };
        let first: ChargeAnswer = charge("tok_visa").await.unwrap().json().await.unwrap();
        let again: ChargeAnswer = charge("tok_visa").await.unwrap().json().await.unwrap();
        assert_eq!(first.charge_id, again.charge_id, "a repeat returns the first charge");
        assert_eq!(charge(super::super::DECLINED_CARD).await.unwrap().status(), 402);
        let stats: ProviderStats =
            http.get(format!("{base}/stats")).send().await.unwrap().json().await.unwrap();
        assert_eq!((stats.calls, stats.charges, stats.repeats, stats.declines), (3, 1, 1, 1));

        // A bad body is a typed 4xx, not a panic or a 500.
        let bad = http
            .post(format!("{base}/charges"))
            .json(&serde_json::json!({ "order_id": "x" }))
            .send()
            .await
            .unwrap();
        assert_eq!(bad.status(), 422);

        // Faults: refused without the token; with it, every call fails.
        let patch = serde_json::json!({ "provider_failure_rate": 1.0 });
        let put = |token: &'static str| {
            http.put(format!("{base}/admin/faults"))
                .header("x-admin-token", token)
                .json(&patch)
                .send()
        };
        assert_eq!(put("wrong").await.unwrap().status(), 401);
        assert_eq!(put("provider-test-token").await.unwrap().status(), 200);
        let answer = http
            .post(format!("{base}/charges"))
            .json(&serde_json::json!({ "order_id": 42, "amount_cents": 1, "card": "tok_visa" }))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 503);

        // An expired deadline: 504 without charging.
        let late = http
            .post(format!("{base}/charges"))
            .header("levee-timeout", "0n")
            .json(&serde_json::json!({ "order_id": 43, "amount_cents": 1, "card": "tok_visa" }))
            .send()
            .await
            .unwrap();
        assert_eq!(late.status(), 504);
        assert_eq!(running.provider().charges_for(43), 0);
        running.shutdown().await;
    }
}
