//! Storage through sqlx's `Any` driver: one set of queries for SQLite (the embedded default, a
//! file in the data directory) and PostgreSQL (when a `postgres://` URL is configured).
//!
//! The queries use `$n` placeholders and SQL both databases share (`ON CONFLICT`,
//! `RETURNING`); only the migrations differ (`migrations/sqlite`, `migrations/postgres`).
//! Stock is changed only by conditional updates (`... WHERE stock >= $n`), so no interleaving
//! of orders can sell more than there is. A write transaction that loses a lock race (SQLite's
//! "database is locked", PostgreSQL's serialization failure or deadlock) runs again through a
//! levee-policy [`Retry`] on the shop clock that retries only those
//! (`storage.contention_retry`).

pub mod catalog;
pub mod holding;
mod orders;
mod seed;

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use levee::policy::{Error as PolicyError, Layered, Leaf, OnError, Pipeline, Retry};
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyPool, Executor, Row, SqlSafeStr, Transaction};

use crate::clock::ShopClock;
use crate::config::{SettingError, StorageConfig, section};
use crate::domain::Customer;
use crate::faults::Faults;

pub use holding::{Cap, Holding, HoldingCaps, OverCap};
pub use orders::{NewOrder, PendingOrder, PlaceOutcome, Transition};
pub use seed::DEMO_CUSTOMERS;

/// Which database is behind the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// PostgreSQL.
    Postgres,
}

/// A storage failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database refused or failed.
    #[error("database error: {0}")]
    Db(#[from] sqlx::Error),
    /// A migration failed.
    #[error("migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// The data directory could not be created.
    #[error("cannot create data directory: {0}")]
    Io(#[from] std::io::Error),
    /// The database URL names no supported database.
    #[error("unsupported database url (use sqlite:// or postgres://): {0}")]
    Url(String),
    /// The contention retry refused to run the transaction (a retry alone never does).
    #[error("contention retry: {0}")]
    Retry(String),
    /// A storage setting is out of range.
    #[error(transparent)]
    Setting(#[from] SettingError),
}

impl StoreError {
    /// Whether the failure is the database being busy or unreachable (worth a 503 and a retry)
    /// rather than a bug.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Db(e) => {
                matches!(
                    e,
                    sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_)
                ) || is_contention(e)
            }
            _ => false,
        }
    }
}

/// Lock contention that a retry of the transaction resolves: SQLite's "database is locked",
/// PostgreSQL's serialization failure and deadlock.
fn is_contention(e: &sqlx::Error) -> bool {
    let Some(db) = e.as_database_error() else {
        return false;
    };
    let code = db.code().unwrap_or(Cow::Borrowed(""));
    matches!(&*code, "5" | "6" | "517" | "261" | "40001" | "40P01")
        || db.message().contains("database is locked")
}

/// Which failed attempts the contention retry runs again: lock races only.
type OnContention = OnError<fn(&PolicyError<StoreError>) -> bool>;

fn lost_a_lock_race(e: &PolicyError<StoreError>) -> bool {
    matches!(e, PolicyError::Operation(StoreError::Db(e)) if is_contention(e))
}

/// The shop's storage.
#[derive(Debug)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    faults: Arc<Faults>,
    product_reads: AtomicU64,
    contention: Pipeline<Layered<Retry<OnContention>, Leaf>, ShopClock>,
}

const SQLITE: [&str; 2] = [
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_cart_reservations.sql"),
];
const POSTGRES: [&str; 2] = [
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_cart_reservations.sql"),
];
const NAMES: [&str; 2] = ["init", "cart reservations"];

fn migrator(backend: Backend) -> Migrator {
    let sql = match backend {
        Backend::Sqlite => SQLITE,
        Backend::Postgres => POSTGRES,
    };
    Migrator::with_migrations(
        sql.iter()
            .zip(NAMES)
            .zip(1..)
            .map(|((sql, name), version)| {
                Migration::new(
                    version,
                    Cow::Borrowed(name),
                    MigrationType::Simple,
                    sql.into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

impl Store {
    /// Opens the database `config` names (creating and migrating it on first start) and seeds
    /// it when it has no products. Contention retries pause on `clock`.
    ///
    /// # Errors
    /// The data directory cannot be created, the database cannot be reached, a migration
    /// fails, or the contention retry settings are out of range.
    pub async fn open(
        config: &StorageConfig,
        faults: Arc<Faults>,
        clock: ShopClock,
    ) -> Result<Self, StoreError> {
        let retries = section("storage.contention_retry");
        let retry = config
            .contention_retry
            .builder_with_clock(clock.clone())
            .map_err(&retries)?
            .retry_on_error(lost_a_lock_race as fn(&PolicyError<StoreError>) -> bool)
            .build()
            .map_err(&retries)?;
        let contention = Pipeline::builder().retry(retry).clock(clock).build().map_err(&retries)?;
        sqlx::any::install_default_drivers();
        let (url, backend) = match config.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (url.to_owned(), Backend::Postgres)
            }
            Some(url) if url.starts_with("sqlite:") => (url.to_owned(), Backend::Sqlite),
            Some(url) => return Err(StoreError::Url(url.to_owned())),
            None => {
                std::fs::create_dir_all(&config.data_dir)?;
                let file = config.data_dir.join("shop.db");
                (format!("sqlite://{}?mode=rwc", file.display()), Backend::Sqlite)
            }
        };
        let mut options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            options = options.after_connect(|conn, _meta| {
                Box::pin(async move {
                    // WAL lets readers go on while one writer commits; busy_timeout makes
                    // writers queue for the lock instead of failing at once.
                    conn.execute("PRAGMA journal_mode = WAL").await?;
                    conn.execute("PRAGMA synchronous = NORMAL").await?;
                    conn.execute("PRAGMA busy_timeout = 10000").await?;
                    conn.execute("PRAGMA foreign_keys = ON").await?;
                    Ok(())
                })
            });
        }
        let pool = options.connect(&url).await?;
        migrator(backend).run(&pool).await?;
        let store = Self { pool, backend, faults, product_reads: AtomicU64::new(0), contention };
        store.seed_if_empty(config.seed_products).await?;
        Ok(store)
    }

    /// Which database this is.
    #[must_use]
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Product reads that reached the database (the cache's misses).
    #[must_use]
    pub fn product_reads(&self) -> u64 {
        self.product_reads.load(Ordering::Relaxed)
    }

    /// Closes the pool after the last query finished.
    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Checks the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// A write transaction. SQLite takes the write lock up front (`BEGIN IMMEDIATE`), so a
    /// transaction never has to upgrade a read lock, which SQLite cannot wait for.
    async fn write_tx(&self) -> Result<Transaction<'static, sqlx::Any>, StoreError> {
        Ok(match self.backend {
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Creates a customer with a fresh API key.
    ///
    /// # Errors
    /// Database failures.
    pub async fn create_customer(&self, name: &str, now_ms: i64) -> Result<Customer, StoreError> {
        self.faults.store_delay().await;
        let api_key = format!(
            "key-{:016x}{:016x}",
            levee::core::random::next_u64(),
            levee::core::random::next_u64()
        );
        self.insert_customer(name, &api_key, now_ms).await
    }

    async fn insert_customer(
        &self,
        name: &str,
        api_key: &str,
        now_ms: i64,
    ) -> Result<Customer, StoreError> {
        let row = sqlx::query(
            "INSERT INTO customers (name, api_key, created_at_ms) VALUES ($1, $2, $3) RETURNING id",
        )
        .bind(name)
        .bind(api_key)
        .bind(now_ms)
        .fetch_one(&self.pool)
        .await?;
        Ok(Customer { id: row.try_get("id")?, name: name.to_owned(), api_key: api_key.to_owned() })
    }

    /// The customer an API key belongs to.
    ///
    /// # Errors
    /// Database failures.
    pub async fn customer_by_key(&self, api_key: &str) -> Result<Option<Customer>, StoreError> {
        self.faults.store_delay().await;
        let row = sqlx::query("SELECT id, name, api_key FROM customers WHERE api_key = $1")
            .bind(api_key)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| customer_from(&r)).transpose()
    }
}

fn customer_from(r: &AnyRow) -> Result<Customer, StoreError> {
    Ok(Customer { id: r.try_get("id")?, name: r.try_get("name")?, api_key: r.try_get("api_key")? })
}

impl Store {
    /// Runs the transaction `f` makes, again when it loses a lock race (on the contention
    /// retry's backoff, on the shop clock); any other outcome is returned as it is.
    pub(super) async fn retrying<T, F, Fut>(&self, f: F) -> Result<T, StoreError>
    where
        F: Fn() -> Fut + Send + Sync,
        Fut: Future<Output = Result<T, StoreError>> + Send,
        T: Send,
    {
        self.contention.execute(|_ctx| f()).await.map_err(|e| match e {
            PolicyError::Operation(e) => e,
            other => StoreError::Retry(other.to_string()),
        })
    }
}
