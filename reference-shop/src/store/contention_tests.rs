//! The lock race through the shop's contention retry (issue 13), on a real database.
//!
//! SQLite in WAL mode lets a deferred transaction read, then refuses its first write with
//! `SQLITE_BUSY_SNAPSHOT` (517) when another connection committed a write since its read:
//! `busy_timeout` cannot help (waiting never refreshes the snapshot), only running the
//! transaction again does. PostgreSQL refuses the same interleaving under `REPEATABLE READ`
//! with a serialization failure (40001). Each test provokes exactly that race with two of
//! the store's own pooled connections, and runs the transaction through [`Store::retrying`]
//! on a manual clock, so the backoff between attempts is the shop clock's. The PostgreSQL
//! case runs when `LEVEE_TEST_POSTGRES_URL` is set, on a database of its own.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use levee::core::ManualClock;
use sqlx::Row;

use super::{Store, StoreError};
use crate::clock::ShopClock;
use crate::config::StorageConfig;
use crate::faults::{FaultSettings, Faults};

/// A store on a new SQLite database in `dir`, or on `postgres` (a URL) when given, seeded
/// with one product.
pub(super) async fn store(
    dir: &std::path::Path,
    postgres: Option<String>,
    clock: &ManualClock,
) -> Store {
    let config = StorageConfig {
        data_dir: dir.to_path_buf(),
        database_url: postgres,
        seed_products: 1,
        ..StorageConfig::default()
    };
    Store::open(
        &config,
        Arc::new(Faults::new(FaultSettings::default())),
        ShopClock::manual(clock.clone()),
    )
    .await
    .expect("open the store")
}

pub(super) async fn stock(store: &Store) -> i64 {
    sqlx::query("SELECT stock FROM products WHERE id = 1")
        .fetch_one(&store.pool)
        .await
        .expect("read stock")
        .try_get("stock")
        .expect("stock column")
}

/// One attempt of "take one unit": read the stock in a deferred transaction, then write it.
/// While `races` is above zero, another connection sells a unit between the read and the
/// write (and `races` goes down by one), so the write loses the lock race.
async fn take_one(
    store: &Store,
    races: &AtomicU32,
    attempts: &AtomicU32,
) -> Result<(), StoreError> {
    attempts.fetch_add(1, Ordering::SeqCst);
    let mut tx = store.pool.begin().await?;
    if store.backend == super::Backend::Postgres {
        // PostgreSQL's default (READ COMMITTED) re-reads the row instead of failing.
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ").execute(&mut *tx).await?;
    }
    let row = sqlx::query("SELECT stock FROM products WHERE id = 1").fetch_one(&mut *tx).await?;
    let seen: i64 = row.try_get("stock")?;
    if races.load(Ordering::SeqCst) > 0 {
        races.fetch_sub(1, Ordering::SeqCst);
        // Autocommit on another pooled connection: it commits while `tx` holds its snapshot.
        sqlx::query("UPDATE products SET stock = stock - 1 WHERE id = 1")
            .execute(&store.pool)
            .await?;
    }
    sqlx::query("UPDATE products SET stock = $1 WHERE id = 1 AND stock = $2")
        .bind(seen - 1)
        .bind(seen)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// Runs `take_one` through the store's contention retry, moving the manual clock past each
/// backoff until it ends (bounded: 2,000 steps of 10 ms, 20 s of shop time).
async fn take_one_retrying(
    store: &Arc<Store>,
    clock: &ManualClock,
    races: u32,
) -> (Result<(), StoreError>, u32) {
    let races = Arc::new(AtomicU32::new(races));
    let attempts = Arc::new(AtomicU32::new(0));
    let task = tokio::spawn({
        let (store, races, attempts) =
            (Arc::clone(store), Arc::clone(&races), Arc::clone(&attempts));
        async move { store.retrying(|| take_one(&store, &races, &attempts)).await }
    });
    for _ in 0..2_000 {
        if task.is_finished() {
            break;
        }
        clock.advance(Duration::from_millis(10));
        tokio::task::yield_now().await;
        // The database answers on its own threads; give it a moment without sleeping long.
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(task.is_finished(), "the retried transaction did not end within 20 s of shop time");
    (task.await.expect("the transaction task"), attempts.load(Ordering::SeqCst))
}

async fn a_transaction_that_loses_the_lock_race_runs_again_and_commits_once(
    postgres: Option<String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = Arc::new(store(dir.path(), postgres, &clock).await);
    let before = stock(&store).await;

    let (result, attempts) = take_one_retrying(&store, &clock, 2).await;

    result.expect("the third attempt commits");
    assert_eq!(attempts, 3, "two lost races, then a commit");
    // Two units sold by the racing writer, one by the transaction: its lost attempts rolled
    // back and wrote nothing.
    assert_eq!(stock(&store).await, before - 3);
}

async fn a_race_lost_on_every_attempt_ends_as_unavailable_after_the_configured_attempts(
    postgres: Option<String>,
) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = Arc::new(store(dir.path(), postgres, &clock).await);
    let before = stock(&store).await;
    let max_attempts = StorageConfig::default().contention_retry.max_attempts;

    let (result, attempts) = take_one_retrying(&store, &clock, u32::MAX).await;

    let err = result.expect_err("every attempt lost the race");
    assert_eq!(attempts, max_attempts, "{err}");
    // The error is the database's own, and the API answers it with a 503.
    assert!(matches!(err, StoreError::Db(_)), "{err:?}");
    assert!(err.is_unavailable(), "a lost lock race is worth a 503 and a retry: {err}");
    assert_eq!(stock(&store).await, before - i64::from(max_attempts), "only the racer sold");
}

async fn other_database_errors_are_not_retried(postgres: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let clock = ManualClock::new();
    let store = Arc::new(store(dir.path(), postgres, &clock).await);
    let attempts = Arc::new(AtomicU32::new(0));

    // A CHECK constraint (stock >= 0) fails the same way on every attempt: no retry.
    let result = store
        .retrying(|| {
            let (store, attempts) = (Arc::clone(&store), Arc::clone(&attempts));
            async move {
                attempts.fetch_add(1, Ordering::SeqCst);
                sqlx::query("UPDATE products SET stock = -1 WHERE id = 1")
                    .execute(&store.pool)
                    .await?;
                Ok(())
            }
        })
        .await;

    let err = result.expect_err("the constraint refuses the write");
    assert_eq!(attempts.load(Ordering::SeqCst), 1, "{err}");
    assert!(!err.is_unavailable(), "a constraint violation is a bug, not a busy database: {err}");
}

/// A new, empty PostgreSQL database on `LEVEE_TEST_POSTGRES_URL`'s server, or `None` (the
/// test is skipped; a failure under `CI=true`).
pub(super) async fn postgres_database() -> Option<String> {
    use sqlx::Connection;
    let admin_url = levee::core::testing::server_url("LEVEE_TEST_POSTGRES_URL", "PostgreSQL")?;
    sqlx::any::install_default_drivers();
    let name = format!(
        "shop_contention_{}_{:x}",
        std::process::id(),
        levee::core::random::next_u64() as u32
    );
    let mut conn = sqlx::AnyConnection::connect(&admin_url).await.expect("connect to PostgreSQL");
    sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .execute(&mut conn)
        .await
        .expect("create the test database");
    let _ = conn.close().await;
    let (base, _) = admin_url.rsplit_once('/').expect("the URL names a database");
    Some(format!("{base}/{name}"))
}

macro_rules! on_both_databases {
    ($($scenario:ident),* $(,)?) => {
        $(
            mod $scenario {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn sqlite() {
                    super::$scenario(None).await;
                }

                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn postgres() {
                    let Some(url) = super::postgres_database().await else { return };
                    super::$scenario(Some(url)).await;
                }
            }
        )*
    };
}

on_both_databases!(
    a_transaction_that_loses_the_lock_race_runs_again_and_commits_once,
    a_race_lost_on_every_attempt_ends_as_unavailable_after_the_configured_attempts,
    other_database_errors_are_not_retried,
);
