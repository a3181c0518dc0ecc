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
//!
//! Opening says at once what is wrong and where: the embedded database's data directory is
//! created, checked for writing and locked first ([`DataDirLock`]: one shop per directory),
//! and one connection is made on its own before the pool, within `storage.connect_timeout`,
//! because the pool retries a refused connection until its acquire timeout and then reports
//! only "pool timed out" ([`StoreError::Unreachable`], [`StoreError::ConnectTimeout`],
//! [`StoreError::Open`] name the database and its address).

pub mod catalog;
#[cfg(test)]
mod contention_tests;
mod customer_notes;
mod data_dir;
pub mod holding;
mod ledger;
mod orders;
mod outbox;
#[cfg(test)]
mod replica_tests;
mod seed;
mod sweep;

use std::borrow::Cow;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use levee::policy::{Error as PolicyError, Layered, Leaf, OnError, Pipeline, Retry};
use parking_lot::Mutex;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AnyConnection, AnyPool, Connection, Executor, Row, SqlSafeStr, Transaction};

use crate::clock::ShopClock;
use crate::config::{SettingError, StorageConfig, section};
use crate::domain::Customer;
use crate::faults::Faults;

pub use data_dir::{DataDirError, DataDirLock, Holder, LOCK_FILE};
pub use holding::{Cap, Holding, HoldingCaps, OverCap};
pub use orders::{NewOrder, PendingOrder, PlaceOutcome, Transition};
pub use outbox::{Claimed, OutboxClaim, OutboxRow, RELAY_LOCK};
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
    /// The data directory cannot be created or written, or another shop uses it.
    #[error(transparent)]
    DataDir(#[from] DataDirError),
    /// The database cannot be reached: the OS refused the connection or the name does not
    /// resolve.
    #[error("cannot reach {database}: {source}")]
    Unreachable {
        /// Which database, and where (`PostgreSQL at 127.0.0.1:5432`).
        database: String,
        /// What the OS said.
        source: std::io::Error,
    },
    /// The database did not answer within `storage.connect_timeout`.
    #[error("cannot reach {database}: no answer within {} ms (storage.connect_timeout)", timeout.as_millis())]
    ConnectTimeout {
        /// Which database, and where.
        database: String,
        /// The timeout.
        timeout: Duration,
    },
    /// The database answered but refused to open (authentication, a missing database, a
    /// file that is not a database, ...).
    #[error("cannot open {database}: {source}")]
    Open {
        /// Which database, and where.
        database: String,
        /// What it said.
        source: sqlx::Error,
    },
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
    /// The data directory's lock while the store is open (embedded SQLite only).
    lock: Mutex<Option<DataDirLock>>,
}

/// The embedded database's file in the data directory.
const DATABASE_FILE: &str = "shop.db";

/// Each connection's SQLite set-up. WAL lets readers go on while one writer commits;
/// `busy_timeout` makes writers queue for the lock instead of failing at once.
async fn prepare_sqlite(conn: &mut AnyConnection) -> Result<(), sqlx::Error> {
    conn.execute("PRAGMA journal_mode = WAL").await?;
    conn.execute("PRAGMA synchronous = NORMAL").await?;
    conn.execute("PRAGMA busy_timeout = 10000").await?;
    conn.execute("PRAGMA foreign_keys = ON").await?;
    Ok(())
}

/// Which database `url` names and where, for messages: `PostgreSQL at 127.0.0.1:5432`,
/// `SQLite database data/shop.db`. Never the password.
fn describe(url: &str, backend: Backend) -> String {
    match backend {
        Backend::Sqlite => {
            let path = url.trim_start_matches("sqlite:").trim_start_matches("//");
            let path = path.split_once('?').map_or(path, |(path, _)| path);
            format!("SQLite database {path}")
        }
        Backend::Postgres => match url.parse::<sqlx::postgres::PgConnectOptions>() {
            Ok(o) => match o.get_socket() {
                Some(dir) => format!(
                    "PostgreSQL at {}",
                    dir.join(format!(".s.PGSQL.{}", o.get_port())).display()
                ),
                None if o.get_host().contains(':') => {
                    format!("PostgreSQL at [{}]:{}", o.get_host(), o.get_port())
                }
                None => format!("PostgreSQL at {}:{}", o.get_host(), o.get_port()),
            },
            Err(_) => "PostgreSQL (an unreadable URL)".to_owned(),
        },
    }
}

const SQLITE: [&str; 4] = [
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_cart_reservations.sql"),
    include_str!("../../migrations/sqlite/0003_outbox.sql"),
    include_str!("../../migrations/sqlite/0004_cart_expired.sql"),
];
const POSTGRES: [&str; 4] = [
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_cart_reservations.sql"),
    include_str!("../../migrations/postgres/0003_outbox.sql"),
    include_str!("../../migrations/postgres/0004_cart_expired.sql"),
];
const NAMES: [&str; 4] = ["init", "cart reservations", "outbox", "cart expired"];

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
    /// The data directory cannot be created or written or another shop holds it, the
    /// database cannot be reached (at once when refused, else after
    /// `storage.connect_timeout`) or refuses to open, a migration fails, or the contention
    /// retry settings are out of range.
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
        let (url, backend, lock) = match config.database_url.as_deref().filter(|u| !u.is_empty()) {
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                (url.to_owned(), Backend::Postgres, None)
            }
            Some(url) if url.starts_with("sqlite:") => (url.to_owned(), Backend::Sqlite, None),
            Some(url) => return Err(StoreError::Url(url.to_owned())),
            None => {
                let lock = DataDirLock::acquire(&config.data_dir, DATABASE_FILE)?;
                let file = config.data_dir.join(DATABASE_FILE);
                (format!("sqlite://{}?mode=rwc", file.display()), Backend::Sqlite, Some(lock))
            }
        };
        let database = describe(&url, backend);
        // One connection first, on its own: the pool retries a refused connection (and a
        // failing set-up) until its acquire timeout and then says only "pool timed out";
        // a single attempt fails at once with the cause.
        let first = tokio::time::timeout(config.connect_timeout, async {
            let mut conn = AnyConnection::connect(&url).await?;
            if backend == Backend::Sqlite {
                prepare_sqlite(&mut conn).await?;
            }
            conn.close().await
        })
        .await;
        match first {
            Ok(Ok(())) => {}
            Ok(Err(sqlx::Error::Io(source))) => {
                return Err(StoreError::Unreachable { database, source });
            }
            Ok(Err(source)) => return Err(StoreError::Open { database, source }),
            Err(_elapsed) => {
                return Err(StoreError::ConnectTimeout {
                    database,
                    timeout: config.connect_timeout,
                });
            }
        }
        let mut options = AnyPoolOptions::new()
            .max_connections(config.max_connections)
            .acquire_timeout(Duration::from_secs(10));
        if backend == Backend::Sqlite {
            options = options
                .after_connect(|conn, _meta| Box::pin(async move { prepare_sqlite(conn).await }));
        }
        let pool =
            options.connect(&url).await.map_err(|source| StoreError::Open { database, source })?;
        migrator(backend).run(&pool).await?;
        let store = Self {
            pool,
            backend,
            faults,
            product_reads: AtomicU64::new(0),
            contention,
            lock: Mutex::new(lock),
        };
        store.seed_if_empty(config.seed_products).await?;
        Ok(store)
    }

    /// Records in the data directory's lock file that this shop listens on `addr`, so that a
    /// second shop started on the directory names it when it refuses (nothing to do on
    /// PostgreSQL or an explicit SQLite URL, which take no directory lock).
    pub fn record_addr(&self, addr: SocketAddr) {
        if let Some(lock) = &*self.lock.lock()
            && let Err(e) = lock.record_addr(addr)
        {
            tracing::warn!(dir = %lock.dir().display(), error = %e, "cannot record the address in the lock file");
        }
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

    /// Closes the pool after the last query finished, then releases the data directory.
    pub async fn close(&self) {
        self.pool.close().await;
        self.lock.lock().take();
    }

    /// Checks the database answers (after the injected store latency, like every query).
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.faults.store_delay().await;
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
        insert_customer(&self.pool, name, &api_key, now_ms).await
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

/// Creates a customer through `db` (the pool, or a transaction's connection).
async fn insert_customer<'c, E>(
    db: E,
    name: &str,
    api_key: &str,
    now_ms: i64,
) -> Result<Customer, StoreError>
where
    E: Executor<'c, Database = sqlx::Any>,
{
    let row = sqlx::query(
        "INSERT INTO customers (name, api_key, created_at_ms) VALUES ($1, $2, $3) RETURNING id",
    )
    .bind(name)
    .bind(api_key)
    .bind(now_ms)
    .fetch_one(db)
    .await?;
    Ok(Customer { id: row.try_get("id")?, name: name.to_owned(), api_key: api_key.to_owned() })
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
