//! Settings: defaults that work, overridden by a TOML file (`--config`), overridden by
//! environment variables.
//!
//! Every setting `section.key` can be set as `SHOP_SECTION__KEY` (two underscores between
//! section and key), e.g. `SHOP_SERVER__ADDR=0.0.0.0:9000` or
//! `SHOP_ORDERS__UNPAID_TIMEOUT_SECS=60`. The value is read as TOML when it parses (numbers,
//! booleans) and as a string otherwise. `DATABASE_URL` selects PostgreSQL as usual.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

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
    /// The file or an environment variable does not fit the settings.
    #[error("invalid settings: {0}")]
    Invalid(String),
    /// A setting is out of range.
    #[error(transparent)]
    Setting(#[from] levee::core::ConfigError),
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
    /// Product cache.
    pub cache: CacheConfig,
    /// Orders.
    pub orders: OrdersConfig,
    /// Calls to the payment provider.
    pub payment: PaymentConfig,
    /// Event delivery.
    pub queue: QueueConfig,
    /// The simulated payment provider's starting behaviour.
    pub provider: ProviderConfig,
}

/// HTTP server settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Listen address (`127.0.0.1:0` picks a free port).
    pub addr: SocketAddr,
    /// Token for `/admin/*` (header `X-Admin-Token`).
    pub admin_token: String,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// How long shutdown waits for in-flight requests and consumers.
    pub shutdown_grace_secs: u64,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            admin_token: DEFAULT_ADMIN_TOKEN.to_owned(),
            max_body_bytes: 64 * 1024,
            shutdown_grace_secs: 10,
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
    /// Products created on first start.
    pub seed_products: u32,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("data"),
            database_url: None,
            max_connections: 8,
            seed_products: 3000,
        }
    }
}

/// Edge protection settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EdgeConfig {
    /// Sustained requests per second per client (API key, or address without one).
    pub rate_per_sec: f64,
    /// Requests a client may send at once above the sustained rate.
    pub burst: u32,
    /// Requests served at the same time; more are shed with 503.
    pub max_concurrent: u32,
}

impl Default for EdgeConfig {
    fn default() -> Self {
        Self { rate_per_sec: 100.0, burst: 200, max_concurrent: 256 }
    }
}

/// Product cache settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CacheConfig {
    /// Products kept in memory.
    pub capacity: u64,
    /// Seconds an entry lives at most (a safety net; changes invalidate at once).
    pub ttl_secs: u64,
}

impl Default for CacheConfig {
    fn default() -> Self {
        Self { capacity: 10_000, ttl_secs: 300 }
    }
}

/// Order settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OrdersConfig {
    /// Seconds an order may stay unpaid before it is cancelled and its stock released.
    pub unpaid_timeout_secs: u64,
    /// Lines in one order at most.
    pub max_lines: usize,
    /// Units of one product in one order line at most.
    pub max_quantity: u32,
    /// The timers' resolution (the wheel's tick), in milliseconds: a timer fires less than
    /// this late. The driver sleeps until the next deadline; it does not poll.
    pub timer_tick_ms: u64,
    /// Seconds a cart holds its stock after its last change; then its lines are removed and
    /// the stock released.
    pub cart_reservation_secs: u64,
}

impl Default for OrdersConfig {
    fn default() -> Self {
        Self {
            unpaid_timeout_secs: 30 * 60,
            max_lines: 50,
            max_quantity: 100,
            timer_tick_ms: 100,
            cart_reservation_secs: 15 * 60,
        }
    }
}

/// Settings of the breaker + timeout + retry pipeline around the payment provider.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PaymentConfig {
    /// Deadline of one provider call (one attempt), in milliseconds.
    pub timeout_ms: u64,
    /// Deadline of a whole payment (every attempt and backoff pause), in milliseconds.
    pub overall_timeout_ms: u64,
    /// Calls per delivery at most (1 = no retry).
    pub max_attempts: u32,
    /// Pause before the first retry, doubled each time (with 20 % jitter), in milliseconds;
    /// 0 retries at once.
    pub retry_backoff_ms: u64,
    /// Longest pause between retries, in milliseconds.
    pub retry_backoff_max_ms: u64,
    /// Retries allowed per payment over a 10 s window (the retry budget: 0.2 is one retry
    /// per five payments), so retries cannot multiply the load on a failing provider.
    pub retry_budget_ratio: f64,
    /// Retries per second the budget allows regardless of traffic.
    pub retry_budget_min_per_sec: u32,
    /// Failures among the last 20 calls that open the breaker (or half of at least that
    /// many calls).
    pub breaker_failure_threshold: u32,
    /// Seconds the breaker stays open before it lets a probe through.
    pub breaker_open_secs: u64,
}

impl Default for PaymentConfig {
    fn default() -> Self {
        Self {
            timeout_ms: 2000,
            overall_timeout_ms: 5000,
            max_attempts: 3,
            retry_backoff_ms: 50,
            retry_backoff_max_ms: 1000,
            retry_budget_ratio: 0.2,
            retry_budget_min_per_sec: 10,
            breaker_failure_threshold: 5,
            breaker_open_secs: 10,
        }
    }
}

/// Event delivery settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueueConfig {
    /// Deliveries of one event at most before it goes to the dead-letter queue.
    pub max_deliveries: u32,
    /// Pause before the first redelivery, doubled each time, in milliseconds.
    pub redelivery_backoff_ms: u64,
    /// Longest pause between redeliveries, in milliseconds.
    pub redelivery_backoff_max_ms: u64,
    /// Events one subscription handles at the same time.
    pub consumer_concurrency: u32,
    /// Seconds a handler may hold an event before it is redelivered to another consumer.
    pub ack_wait_secs: u64,
}

impl Default for QueueConfig {
    fn default() -> Self {
        Self {
            max_deliveries: 6,
            redelivery_backoff_ms: 500,
            redelivery_backoff_max_ms: 30_000,
            consumer_concurrency: 8,
            ack_wait_secs: 60,
        }
    }
}

/// Starting behaviour of the simulated payment provider (changeable at run time).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProviderConfig {
    /// Added latency of every call, in milliseconds.
    pub latency_ms: u64,
    /// Share of calls that fail as "unavailable", 0.0 to 1.0.
    pub failure_rate: f64,
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self { latency_ms: 20, failure_rate: 0.0 }
    }
}

impl Config {
    /// Defaults, then `file` if given, then `SHOP_*` and `DATABASE_URL` from `env`.
    ///
    /// # Errors
    /// The file cannot be read, does not parse, names unknown settings, or a value is out of
    /// range.
    pub fn load(
        file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let mut value = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
                toml::from_str::<toml::Table>(&text)
                    .map_err(|e| ConfigError::Invalid(format!("{}: {e}", path.display())))?
            }
            None => toml::Table::new(),
        };
        for (name, raw) in env {
            if name == "DATABASE_URL" {
                set(&mut value, "storage", "database_url", toml::Value::String(raw));
                continue;
            }
            let Some(rest) = name.strip_prefix("SHOP_") else {
                continue;
            };
            let Some((section, key)) = rest.split_once("__") else {
                continue;
            };
            let parsed = toml::from_str::<toml::Table>(&format!("v = {raw}"))
                .ok()
                .and_then(|mut t| t.remove("v"))
                .unwrap_or(toml::Value::String(raw));
            set(&mut value, &section.to_ascii_lowercase(), &key.to_ascii_lowercase(), parsed);
        }
        let config: Config = toml::Value::Table(value)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Invalid(e.to_string()))?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges.
    ///
    /// # Errors
    /// Names the first setting out of range.
    pub fn validate(&self) -> Result<(), levee::core::ConfigError> {
        use levee::core::ConfigError as E;
        E::require_nonzero("storage.max_connections", u64::from(self.storage.max_connections))?;
        if !(self.edge.rate_per_sec > 0.0 && self.edge.rate_per_sec.is_finite()) {
            return Err(E::new("edge.rate_per_sec", "must be a positive number"));
        }
        E::require_nonzero("edge.burst", u64::from(self.edge.burst))?;
        E::require_nonzero("edge.max_concurrent", u64::from(self.edge.max_concurrent))?;
        E::require_nonzero("cache.capacity", self.cache.capacity)?;
        E::require_nonzero("cache.ttl_secs", self.cache.ttl_secs)?;
        E::require_nonzero("orders.unpaid_timeout_secs", self.orders.unpaid_timeout_secs)?;
        E::require_nonzero("orders.max_lines", self.orders.max_lines as u64)?;
        E::require_nonzero("orders.max_quantity", u64::from(self.orders.max_quantity))?;
        E::require_nonzero("orders.timer_tick_ms", self.orders.timer_tick_ms)?;
        E::require_nonzero("orders.cart_reservation_secs", self.orders.cart_reservation_secs)?;
        E::require_nonzero("payment.timeout_ms", self.payment.timeout_ms)?;
        E::require_nonzero("payment.overall_timeout_ms", self.payment.overall_timeout_ms)?;
        if !(self.payment.retry_budget_ratio.is_finite()
            && (0.0..=1000.0).contains(&self.payment.retry_budget_ratio))
        {
            return Err(E::new("payment.retry_budget_ratio", "must lie in 0.0..=1000.0"));
        }
        E::require_nonzero("payment.breaker_open_secs", self.payment.breaker_open_secs)?;
        E::require_nonzero("payment.max_attempts", u64::from(self.payment.max_attempts))?;
        E::require_nonzero(
            "payment.breaker_failure_threshold",
            u64::from(self.payment.breaker_failure_threshold),
        )?;
        E::require_nonzero("queue.max_deliveries", u64::from(self.queue.max_deliveries))?;
        E::require_nonzero(
            "queue.consumer_concurrency",
            u64::from(self.queue.consumer_concurrency),
        )?;
        E::require_nonzero("queue.ack_wait_secs", self.queue.ack_wait_secs)?;
        if !(0.0..=1.0).contains(&self.provider.failure_rate) {
            return Err(E::new("provider.failure_rate", "must lie in 0.0..=1.0"));
        }
        if self.server.admin_token.is_empty() {
            return Err(E::new("server.admin_token", "must not be empty"));
        }
        Ok(())
    }

    /// The unpaid-order timeout.
    #[must_use]
    pub fn unpaid_timeout(&self) -> Duration {
        Duration::from_secs(self.orders.unpaid_timeout_secs)
    }

    /// How long a cart holds its stock after its last change.
    #[must_use]
    pub fn cart_reservation(&self) -> Duration {
        Duration::from_secs(self.orders.cart_reservation_secs)
    }
}

fn set(root: &mut toml::Table, section: &str, key: &str, v: toml::Value) {
    let entry =
        root.entry(section.to_owned()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
    if let toml::Value::Table(t) = entry {
        t.insert(key.to_owned(), v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        Config::load(None, Vec::new()).unwrap();
    }

    #[test]
    fn env_overrides_file_values() {
        let env = vec![
            ("SHOP_ORDERS__UNPAID_TIMEOUT_SECS".to_owned(), "60".to_owned()),
            ("SHOP_SERVER__ADDR".to_owned(), "127.0.0.1:9999".to_owned()),
            ("DATABASE_URL".to_owned(), "postgres://x@127.0.0.1/db".to_owned()),
            ("UNRELATED".to_owned(), "1".to_owned()),
        ];
        let c = Config::load(None, env).unwrap();
        assert_eq!(c.orders.unpaid_timeout_secs, 60);
        assert_eq!(c.server.addr.port(), 9999);
        assert_eq!(c.storage.database_url.as_deref(), Some("postgres://x@127.0.0.1/db"));
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
        let env = vec![("SHOP_PROVIDER__FAILURE_RATE".to_owned(), "1.5".to_owned())];
        let err = Config::load(None, env).unwrap_err().to_string();
        assert!(err.contains("provider.failure_rate"), "{err}");
        let env = vec![("SHOP_SERVER__NOPE".to_owned(), "1".to_owned())];
        assert!(Config::load(None, env).is_err());
    }
}
