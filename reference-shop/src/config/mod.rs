//! Settings: defaults that work, overridden by a TOML file (`--config`), overridden by
//! environment variables.
//!
//! Where a part of the shop is a levee primitive, its settings are levee's own serde type,
//! embedded as a table: the edge's rate limit is a [`Quota`] and its bulkhead a
//! [`BulkheadSettings`], the caches are [`CacheSettings`], the payment retries and database
//! contention retries [`RetrySettings`], the payment breaker [`BreakerSettings`], the event
//! subscriptions a [`SubscriptionConfig`] and their consumers a [`ServeConfig`]. Durations
//! are written in levee's one format everywhere: `"250ms"`, `"30s"`, `"15m"` (or a number of
//! milliseconds).
//!
//! Every setting can be set as `SHOP_<PATH>` with the keys of its path in capitals joined by
//! two underscores: `SHOP_SERVER__ADDR=0.0.0.0:9000`, `SHOP_ORDERS__UNPAID_TIMEOUT=1m`,
//! `SHOP_PAYMENT__RETRY__MAX_ATTEMPTS=5`. Each value is read as the type of its setting
//! ([`env`]): `SHOP_SERVER__ADMIN_TOKEN=123456` is the token `"123456"`. `DATABASE_URL`
//! selects PostgreSQL as usual.
//!
//! [`Config::load`] refuses settings the shop cannot run with, naming the setting by its path
//! (and the environment variable it came from): a value of the wrong type, an address with
//! a wrong part ([`AddrError`]), an admin token with surrounding spaces, a body limit of
//! zero, and every range [`Config::validate`] checks.

mod addr;
mod checkout;
mod clients;
mod endpoints;
mod env;
mod gateway;
mod limits;
mod protections;
mod provider;
mod queue;
mod redis;
mod replicas;
mod shared_breaker;
mod tls;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use levee::breaker::{BreakerSettings, OpenWait, SlidingWindow};
use levee::cache::CacheSettings;
use levee::limit::{AdmissionSettings, BulkheadSettings, Quota};
use levee::policy::{Backoff, RetryBudgetBuilder, RetrySettings};
use levee::queue::broker::{ServeConfig, SubscriptionConfig};
use serde::{Deserialize, Serialize};

pub use checkout::CheckoutConfig;
pub use clients::ClientLimits;
use env::Layer;
pub use gateway::GatewayConfig;
pub use limits::{BadProxy, LimitsConfig, TrustedProxy};
pub use protections::ProtectionsConfig;
pub use provider::ProviderConfig;
pub use queue::{QueueBackend, durable_dir};
pub use redis::RedisEdgeConfig;
pub use replicas::ReplicasConfig;
pub use shared_breaker::SharedBreakerConfig;
pub use tls::{ServerTls, TlsSettings, TlsSettingsError};

pub use addr::AddrError;

/// The token admin endpoints accept when none is configured. A warning is logged when used.
pub const DEFAULT_ADMIN_TOKEN: &str = "dev-admin-token";

/// Why the settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not TOML, or its settings or the environment's do not fit together.
    #[error("invalid settings: {0}")]
    Invalid(String),
    /// A value does not fit its setting (a wrong type, an address with a wrong part, an
    /// unknown setting in a table).
    #[error("invalid setting `{setting}`{}: {message}", from.as_ref().map(|v| format!(" (from {v})")).unwrap_or_default())]
    Value {
        /// The setting's path (`server.addr`); the table's for an unknown setting.
        setting: String,
        /// The environment variable the value came from, if it did.
        from: Option<String>,
        /// What is wrong.
        message: String,
    },
    /// A setting is out of range.
    #[error(transparent)]
    Setting(#[from] SettingError),
}

/// A setting out of range, named by its full path in the settings (`payment.retry.max_attempts`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid setting `{section}{}{}`: {}", if section.is_empty() { "" } else { "." }, error.setting, error.reason)]
pub struct SettingError {
    /// The table the setting is in (`payment.retry`), empty for a top-level one.
    pub section: &'static str,
    /// What levee (or the shop) said about it.
    pub error: levee::core::ConfigError,
}

impl SettingError {
    /// The full path of the setting.
    #[must_use]
    pub fn path(&self) -> String {
        if self.section.is_empty() {
            self.error.setting.to_owned()
        } else {
            format!("{}.{}", self.section, self.error.setting)
        }
    }
}

/// Names the section of a levee error: `.map_err(section("payment.retry"))`.
pub fn section(name: &'static str) -> impl Fn(levee::core::ConfigError) -> SettingError {
    move |error| SettingError { section: name, error }
}

/// All settings of the shop.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP server.
    pub server: ServerConfig,
    /// Database.
    pub storage: StorageConfig,
    /// Edge protection: per-client rate limit and global bulkhead.
    pub edge: EdgeConfig,
    /// Per-client limits: sign-ups per address, trusted proxies, what a customer may hold.
    pub limits: LimitsConfig,
    /// Product and customer caches.
    pub cache: CacheConfig,
    /// Orders and carts.
    pub orders: OrdersConfig,
    /// Shops sharing one PostgreSQL database: the sweep of overdue orders and carts.
    pub replicas: ReplicasConfig,
    /// Calls to the payment provider.
    pub payment: PaymentConfig,
    /// Event delivery.
    pub queue: QueueConfig,
    /// The simulated payment provider's starting behaviour.
    pub provider: ProviderConfig,
    /// Readiness (`/health/ready`).
    pub health: HealthConfig,
    /// levee's protections on (the default) or off, for the outage side by side.
    pub protections: ProtectionsConfig,
    /// A fixed service time under a fixed concurrency for product reads, which gives the
    /// shop a known capacity for load tests (`[work]`, off unless present; [`crate::work`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub work: Option<crate::work::WorkConfig>,
    /// Where the gateway (`serve --service gateway`) finds the other services (`[gateway]`).
    pub gateway: GatewayConfig,
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address, `ip:port` (`127.0.0.1:0` picks a free port).
    #[serde(with = "addr")]
    pub addr: SocketAddr,
    /// Token for `/admin/*` (header `X-Admin-Token`).
    pub admin_token: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests and for the consumers to drain.
    #[serde(with = "levee::core::serde_duration")]
    pub shutdown_grace: Duration,
    /// Slow and greedy clients: read timeouts, request deadline, connection limits.
    pub clients: ClientLimits,
    /// Mutual TLS (`[server.tls]`): off unless `ca`, `cert` and `key` are set.
    pub tls: TlsSettings,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: DEFAULT_ADMIN_TOKEN.to_owned(),
            max_body_bytes: 64 * 1024,
            shutdown_grace: Duration::from_secs(10),
            clients: ClientLimits::default(),
            tls: TlsSettings::default(),
        }
    }
}

/// Database settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Directory of the embedded SQLite database (`shop.db`), created on first start.
    pub data_dir: PathBuf,
    /// `postgres://...` to use PostgreSQL instead (also read from `DATABASE_URL`).
    pub database_url: Option<String>,
    /// Connection pool size.
    pub max_connections: u32,
    /// How long the first connection at start may take before the shop gives up and says
    /// where it tried (a refused connection fails at once).
    #[serde(with = "levee::core::serde_duration")]
    pub connect_timeout: Duration,
    /// Products created on first start.
    pub seed_products: u32,
    /// Retries of a transaction that lost a lock race (SQLite's "database is locked",
    /// PostgreSQL's serialization failure or deadlock): levee-policy's retry settings.
    pub contention_retry: RetrySettings,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            max_connections: 8,
            connect_timeout: Duration::from_secs(2),
            seed_products: 3000,
            contention_retry: RetrySettings {
                max_attempts: 6,
                backoff: Backoff::Exponential {
                    base: Duration::from_millis(10),
                    factor: 2.0,
                    max: Duration::from_millis(200),
                    jitter: 0.5,
                },
                budget: None,
                max_retry_after: None,
            },
        }
    }
}

/// Edge protection settings, levee-limit's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Each client's rate (API key, or address without one): `count` requests per `period`,
    /// up to `burst` at once.
    pub rate: Quota,
    /// Requests served at the same time; more are shed with 503.
    pub bulkhead: BulkheadSettings,
    /// Adaptive load shedding (`[edge.admission]`, off unless the section is present; every
    /// field has a default): requests in flight against the capacity the shop measures on
    /// itself, max throughput x min latency over a sliding window; sheds with 503 as the
    /// bulkhead does. The shop reads no CPU usage, so `cpu_threshold` is refused here.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub admission: Option<AdmissionSettings>,
    /// The rate and sign-up limits shared by every shop on one Redis (`[edge.redis]`, with
    /// `url` set; in-process without it).
    pub redis: RedisEdgeConfig,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self {
            rate: Quota::per_second(100).with_burst(200),
            bulkhead: BulkheadSettings::new(256),
            admission: None,
            redis: RedisEdgeConfig::default(),
        }
    }
}

/// Cache settings, levee-cache's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Products by id. The time to live is a safety net: a change of stock or price
    /// invalidates the entry at once.
    pub products: CacheSettings,
    /// Customers by API key; unknown keys are remembered for the `negative_ttl`.
    pub customers: CacheSettings,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self {
            products: CacheSettings::new(10_000).time_to_live(Duration::from_secs(300)),
            customers: CacheSettings::new(100_000)
                .time_to_live(Duration::from_secs(300))
                .negative_ttl(Duration::from_secs(10)),
        }
    }
}

/// Order and cart settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {
    /// How long an order may stay unpaid before it is cancelled and its stock released.
    #[serde(with = "levee::core::serde_duration")]
    pub unpaid_timeout: Duration,
    /// Lines in one order at most.
    pub max_lines: usize,
    /// Units of one product in one order line at most.
    pub max_quantity: u32,
    /// The timers' resolution (the wheel's tick): a timer fires less than this late. The
    /// driver sleeps until the next deadline; it does not poll.
    #[serde(with = "levee::core::serde_duration")]
    pub timer_tick: Duration,
    /// How long a cart holds its stock after its last change; then its lines are removed
    /// and the stock released.
    #[serde(with = "levee::core::serde_duration")]
    pub cart_reservation: Duration,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            unpaid_timeout: Duration::from_secs(30 * 60),
            max_lines: 50,
            max_quantity: 100,
            timer_tick: Duration::from_millis(100),
            cart_reservation: Duration::from_secs(15 * 60),
        }
    }
}

/// The payment pipeline: overall timeout, retry, breaker, attempt timeout (see
/// [`crate::guard`]).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentConfig {
    /// Deadline of a whole payment: every attempt and backoff pause.
    #[serde(with = "levee::core::serde_duration")]
    pub timeout: Duration,
    /// Deadline of one provider call.
    #[serde(with = "levee::core::serde_duration")]
    pub attempt_timeout: Duration,
    /// Retries of provider faults: levee-policy's retry settings, with a retry budget so
    /// that retries cannot multiply the load on a failing provider.
    pub retry: RetrySettings,
    /// The circuit breaker around the provider: levee-breaker's settings.
    pub breaker: BreakerSettings,
    /// The synchronous checkout's deadlines (`[payment.checkout]`).
    pub checkout: CheckoutConfig,
    /// The breaker shared with the shop's other replicas on NATS
    /// (`[payment.shared_breaker]`); off unless present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shared_breaker: Option<SharedBreakerConfig>,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(2),
            retry: RetrySettings {
                max_attempts: 3,
                backoff: Backoff::Exponential {
                    base: Duration::from_millis(50),
                    factor: 2.0,
                    max: Duration::from_secs(1),
                    jitter: 0.2,
                },
                budget: Some(RetryBudgetBuilder::default()),
                max_retry_after: None,
            },
            breaker: BreakerSettings {
                window: SlidingWindow::count(20),
                minimum_calls: 5,
                failure_rate_threshold: 50.0,
                failure_count_threshold: Some(5),
                open_wait: OpenWait::fixed(Duration::from_secs(10)),
                half_open_calls: 1,
                ..BreakerSettings::default()
            },
            checkout: CheckoutConfig::default(),
            shared_breaker: None,
        }
    }
}

/// Event delivery settings, levee-queue's.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Every subscription's settings (its `name` is ignored: each service's subscription
    /// has its own): redelivery backoff, deliveries before the dead-letter queue, ack wait.
    pub subscription: SubscriptionConfig,
    /// How each subscription's consumers run (levee-queue's `serve`): consumers, handlers
    /// at once, drain timeout.
    pub serve: ServeConfig,
    /// Which broker carries the events: `"durable"` (the default), `"memory"` or `"nats"`.
    pub backend: QueueBackend,
    /// The durable broker's directory (default `<storage.data_dir>/events`).
    pub durable_dir: Option<PathBuf>,
    /// The NATS server for `backend = "nats"`.
    pub nats_url: String,
    /// The prefix of the shop's JetStream streams and consumers on NATS (shops that share
    /// a server but not their events need different ones).
    pub nats_prefix: String,
}

impl Default for QueueConfig {
    fn default() -> Self {
        let backoff = [500, 1_000, 2_000, 4_000, 8_000, 16_000, 30_000];
        Self {
            subscription: SubscriptionConfig::new("")
                .max_deliveries(6)
                .backoff(backoff.into_iter().map(Duration::from_millis).collect())
                .ack_wait(Duration::from_secs(60)),
            serve: ServeConfig::new()
                .consumers(1)
                .concurrency(8)
                .drain_timeout(Duration::from_secs(10)),
            backend: QueueBackend::default(),
            durable_dir: None,
            nats_url: "nats://127.0.0.1:4222".to_owned(),
            nats_prefix: "shop".to_owned(),
        }
    }
}

/// Readiness settings: when `/health/ready` says the shop should get no traffic.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HealthConfig {
    /// How long the store may take to answer a readiness check before it counts as down.
    #[serde(with = "levee::core::serde_duration")]
    pub store_timeout: Duration,
    /// How long the shop stays not ready after its bulkhead shed a request (as seen by a
    /// readiness check), so that a load balancer sends elsewhere while it is overloaded.
    /// Zero: not ready only while the bulkhead is full.
    #[serde(with = "levee::core::serde_duration")]
    pub shed_window: Duration,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self { store_timeout: Duration::from_secs(1), shed_window: Duration::from_secs(5) }
    }
}

impl Config {
    /// Defaults, then `file` if given, then `SHOP_*` and `DATABASE_URL` from `env`.
    ///
    /// # Errors
    /// The file cannot be read, does not parse, names unknown settings, a value does not
    /// fit its setting, or a value is out of range.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        let defaults = toml::Table::try_from(Config::default())
            .map_err(|e| ConfigError::Invalid(format!("the defaults: {e}")))?;
        let mut layers = Layer::file(table);
        // Which variable set which setting, to name it when its value is refused.
        let mut sources = std::collections::BTreeMap::new();
        for (name, value) in env {
            if name == "DATABASE_URL" {
                let path = ["storage".to_owned(), "database_url".to_owned()];
                sources.insert(path.join("."), name);
                layers.set(&path, value, &defaults);
                continue;
            }
            let Some(rest) = name.strip_prefix("SHOP_") else {
                continue;
            };
            let path: Vec<String> = rest.split("__").map(str::to_ascii_lowercase).collect();
            if path.len() < 2 || path.iter().any(String::is_empty) {
                // SHOP_LOG and the like are not settings.
                continue;
            }
            layers.set(&path, value, &defaults);
            sources.insert(path.join("."), name);
        }
        let config = serde_path_to_error::deserialize(layers).map_err(|e| {
            let setting = e.path().to_string();
            ConfigError::Value {
                from: sources.get(&setting).cloned(),
                message: e.into_inner().message().to_owned(),
                setting,
            }
        })?;
        Self::validate(&config)?;
        Ok(config)
    }

    /// Checks every setting that can be checked without building anything (the caches are
    /// checked when the shop builds them).
    ///
    /// # Errors
    /// Names the first setting out of range by its path.
    pub fn validate(&self) -> Result<(), SettingError> {
        use levee::core::ConfigError as E;
        let shop = |section, error| SettingError { section, error };
        let token = &self.server.admin_token;
        if token.is_empty() {
            return Err(shop("server", E::new("admin_token", "must not be empty")));
        }
        if token.trim() != token {
            return Err(shop(
                "server",
                E::new("admin_token", "has spaces around it (a header value cannot carry them)"),
            ));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic() || b == b' ') {
            return Err(shop(
                "server",
                E::new("admin_token", "must be printable ASCII (it is sent as a header value)"),
            ));
        }
        E::require_nonzero("max_body_bytes", self.server.max_body_bytes)
            .map_err(section("server"))?;
        if self.storage.data_dir.as_os_str().is_empty() {
            return Err(shop("storage", E::new("data_dir", "must not be empty")));
        }
        self.server.clients.validate()?;
        self.server.tls.validate()?;
        E::require_nonzero("max_connections", self.storage.max_connections)
            .map_err(section("storage"))?;
        E::require_positive("connect_timeout", self.storage.connect_timeout)
            .map_err(section("storage"))?;
        self.storage.contention_retry.build().map_err(section("storage.contention_retry"))?;
        self.edge.rate.gcra().map_err(section("edge.rate"))?;
        self.edge.bulkhead.build().map_err(section("edge.bulkhead"))?;
        if let Some(admission) = &self.edge.admission {
            admission.build().map_err(section("edge.admission"))?;
        }
        self.edge.redis.validate()?;
        self.limits.validate()?;
        let orders = &self.orders;
        E::require_positive("unpaid_timeout", orders.unpaid_timeout).map_err(section("orders"))?;
        E::require_nonzero("max_lines", orders.max_lines).map_err(section("orders"))?;
        E::require_nonzero("max_quantity", orders.max_quantity).map_err(section("orders"))?;
        E::require_positive("timer_tick", orders.timer_tick).map_err(section("orders"))?;
        E::require_positive("cart_reservation", orders.cart_reservation)
            .map_err(section("orders"))?;
        self.replicas.validate()?;
        let payment = &self.payment;
        E::require_positive("timeout", payment.timeout).map_err(section("payment"))?;
        E::require_positive("attempt_timeout", payment.attempt_timeout)
            .map_err(section("payment"))?;
        payment.retry.build().map_err(section("payment.retry"))?;
        payment.breaker.validate().map_err(section("payment.breaker"))?;
        payment.checkout.validate()?;
        if let Some(shared) = &payment.shared_breaker {
            shared.validate()?;
        }
        self.queue.subscription_named("check").validate().map_err(section("queue.subscription"))?;
        self.queue.serve.validate().map_err(section("queue.serve"))?;
        if self.queue.backend == QueueBackend::Nats {
            let mut nats = levee::nats::NatsConfig::new(self.queue.nats_url.clone());
            nats.prefix.clone_from(&self.queue.nats_prefix);
            nats.validate().map_err(|e| {
                let setting = if e.setting == "prefix" { "nats_prefix" } else { "nats_url" };
                shop("queue", E { setting, ..e })
            })?;
        }
        self.provider.validate()?;
        E::require_positive("store_timeout", self.health.store_timeout)
            .map_err(section("health"))?;
        if let Some(work) = &self.work {
            work.validate().map_err(section("work"))?;
        }
        self.gateway.validate()?;
        Ok(())
    }
}

impl QueueConfig {
    /// The subscription settings for the subscription `name`.
    #[must_use]
    pub fn subscription_named(&self, name: &str) -> SubscriptionConfig {
        let mut config = self.subscription.clone();
        name.clone_into(&mut config.name);
        config
    }
}

#[cfg(test)]
mod tests {
    use levee::redis::FailMode;

    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn defaults_are_valid() {
        Config::load(None, Vec::new()).unwrap();
    }

    #[test]
    fn env_overrides_at_any_depth_with_the_settings_types() {
        let c = Config::load(
            None,
            env(&[
                ("SHOP_ORDERS__UNPAID_TIMEOUT", "60s"),
                ("SHOP_SERVER__ADDR", "127.0.0.1:9999"),
                ("SHOP_SERVER__ADMIN_TOKEN", "123456"),
                ("SHOP_PAYMENT__RETRY__MAX_ATTEMPTS", "5"),
                ("SHOP_PAYMENT__BREAKER__OPEN_WAIT__WAIT", "30s"),
                ("SHOP_EDGE__RATE__COUNT", "7"),
                ("SHOP_QUEUE__SUBSCRIPTION__BACKOFF", r#"["1s", "2s"]"#),
                ("SHOP_QUEUE__SUBSCRIPTION__OVERFLOW", "reject"),
                ("SHOP_CACHE__PRODUCTS__TIME_TO_LIVE", "1500"),
                ("DATABASE_URL", "postgres://x@127.0.0.1/db"),
                ("SHOP_LOG", "debug"),
                ("UNRELATED", "1"),
            ]),
        )
        .unwrap();
        assert_eq!(c.orders.unpaid_timeout, Duration::from_secs(60));
        assert_eq!(c.server.addr.port(), 9999);
        assert_eq!(c.server.admin_token, "123456", "a numeric token stays a string");
        assert_eq!(c.payment.retry.max_attempts, 5);
        assert_eq!(c.payment.breaker.open_wait, OpenWait::fixed(Duration::from_secs(30)));
        assert_eq!(c.edge.rate.count, 7);
        assert_eq!(c.edge.rate.burst(), 200, "the rest of the quota stays");
        assert_eq!(c.queue.subscription.backoff_for(5), Duration::from_secs(2));
        assert_eq!(c.queue.subscription.overflow, levee::queue::broker::Overflow::Reject);
        assert_eq!(c.cache.products.time_to_live, Some(Duration::from_millis(1500)));
        assert_eq!(c.storage.database_url.as_deref(), Some("postgres://x@127.0.0.1/db"));
    }

    #[test]
    fn edge_limits_go_to_redis_by_env_fail_mode_and_all() {
        let c = Config::load(None, Vec::new()).unwrap();
        assert_eq!(c.edge.redis.url(), None, "in process unless a URL is set");
        let c = Config::load(
            None,
            env(&[
                ("SHOP_EDGE__REDIS__URL", "redis://127.0.0.1:6379/0"),
                ("SHOP_EDGE__REDIS__FAIL_MODE__MODE", "closed"),
                ("SHOP_EDGE__REDIS__TIMEOUT", "20ms"),
            ]),
        )
        .unwrap();
        let redis = &c.edge.redis;
        assert_eq!(redis.url(), Some("redis://127.0.0.1:6379/0"));
        assert_eq!((redis.fail_mode, redis.timeout), (FailMode::Closed, Duration::from_millis(20)));
        let c = Config::load(None, env(&[("SHOP_EDGE__REDIS__FAIL_MODE__SHARE", "0.5")])).unwrap();
        assert_eq!(c.edge.redis.fail_mode, FailMode::open(0.5));
        for (var, value, setting) in [
            ("SHOP_EDGE__REDIS__PREFIX", "", "`edge.redis.prefix`"),
            ("SHOP_EDGE__REDIS__TIMEOUT", "0s", "`edge.redis.timeout`"),
        ] {
            let err = Config::load(None, env(&[(var, value)])).unwrap_err().to_string();
            assert!(err.contains(setting), "{err}");
        }
    }

    #[test]
    fn the_example_file_is_the_defaults() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/shop.example.toml"));
        let from_file = Config::load(Some(path), Vec::new()).unwrap();
        assert_eq!(
            toml::to_string(&from_file).unwrap(),
            toml::to_string(&Config::default()).unwrap()
        );
    }

    #[test]
    fn bad_values_name_the_setting() {
        let err = Config::load(None, env(&[("SHOP_PROVIDER__FAILURE_RATE", "1.5")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("provider.failure_rate"), "{err}");
        let err = Config::load(None, env(&[("SHOP_PAYMENT__RETRY__MAX_ATTEMPTS", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`payment.retry.max_attempts`"), "{err}");
        let err = Config::load(None, env(&[("SHOP_EDGE__BULKHEAD__MAX_CONCURRENT", "0")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`edge.bulkhead.max_concurrent`"), "{err}");
        let err =
            Config::load(None, env(&[("SHOP_ORDERS__TIMER_TICK", "0s")])).unwrap_err().to_string();
        assert!(err.contains("`orders.timer_tick`"), "{err}");
        let err = Config::load(None, env(&[("SHOP_ORDERS__UNPAID_TIMEOUT", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("duration"), "{err}");
        assert!(Config::load(None, env(&[("SHOP_SERVER__NOPE", "1")])).is_err());
        assert!(Config::load(None, env(&[("SHOP_SERVER__ADMIN_TOKEN", "")])).is_err());
    }

    fn refused(pairs: &[(&str, &str)]) -> ConfigError {
        Config::load(None, env(pairs)).unwrap_err()
    }

    #[test]
    fn unusable_values_are_refused_by_path() {
        for token in [" secret", "secret ", "\tsecret"] {
            let err = refused(&[("SHOP_SERVER__ADMIN_TOKEN", token)]);
            assert!(
                matches!(&err, ConfigError::Setting(e) if e.path() == "server.admin_token"),
                "{token:?}: {err}"
            );
        }
        let err = refused(&[("SHOP_SERVER__ADMIN_TOKEN", "caf\u{e9}")]);
        assert!(err.to_string().contains("printable ASCII"), "{err}");
        for (var, path) in [
            ("SHOP_SERVER__MAX_BODY_BYTES", "server.max_body_bytes"),
            ("SHOP_STORAGE__CONNECT_TIMEOUT", "storage.connect_timeout"),
            ("SHOP_HEALTH__STORE_TIMEOUT", "health.store_timeout"),
            ("SHOP_STORAGE__MAX_CONNECTIONS", "storage.max_connections"),
        ] {
            let err = refused(&[(var, "0")]);
            assert!(matches!(&err, ConfigError::Setting(e) if e.path() == path), "{var}: {err}");
        }
        let err = refused(&[("SHOP_STORAGE__DATA_DIR", "")]);
        assert!(err.to_string().contains("`storage.data_dir`: must not be empty"), "{err}");
    }

    #[test]
    fn a_value_of_the_wrong_shape_names_the_setting_and_its_variable() {
        let err = refused(&[("SHOP_SERVER__ADDR", "127.0.0.1:99999")]);
        match &err {
            ConfigError::Value { setting, from, message } => {
                assert_eq!(setting, "server.addr");
                assert_eq!(from.as_deref(), Some("SHOP_SERVER__ADDR"));
                assert!(message.contains("the port `99999`"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            err.to_string().starts_with("invalid setting `server.addr` (from SHOP_SERVER__ADDR): "),
            "{err}"
        );
        let err = refused(&[("SHOP_PAYMENT__RETRY__MAX_ATTEMPTS", "lots")]).to_string();
        assert!(
            err.contains("`payment.retry.max_attempts` (from SHOP_PAYMENT__RETRY__MAX_ATTEMPTS)"),
            "{err}"
        );
        // From the file: the setting, and no variable.
        let dir = std::env::temp_dir().join(format!("levee-shop-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("shop.toml");
        std::fs::write(&file, "[server]\naddr = \"localhost:80\"\n").unwrap();
        let err = Config::load(Some(&file), Vec::new()).unwrap_err().to_string();
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(err.starts_with("invalid setting `server.addr`: the host `localhost`"), "{err}");
    }
}
