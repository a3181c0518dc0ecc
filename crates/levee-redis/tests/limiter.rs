//! The limiter on a real Redis (CI's shared server, `LEVEE_TEST_REDIS_URL`): decisions,
//! refusals, key state and expiry, the `EVAL` fallback, keys that hold other data, and lease
//! mode's round trips. Every test is a few dozen round trips on loopback.

mod common;

use std::time::Duration;

use levee_core::ManualClock;
use levee_limit::{CheckNError, InsufficientCapacity, Quota};
use levee_redis::{FailMode, LeaseSettings, RedisRateLimiter};

/// A slow quota (one cell a minute) so that real time passing during a test refills nothing.
fn slow(burst: u32) -> Quota {
    Quota::per_minute(1).with_burst(burst)
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap()
}

#[tokio::test]
async fn admits_the_burst_then_refuses_with_the_quota_retry_after() {
    let Some(url) = common::shared_url() else { return };
    let prefix = common::unique_key("levee:test:burst") + ":";
    let limiter = RedisRateLimiter::builder(slow(3))
        .prefix(prefix.clone())
        .timeout(Duration::from_secs(2))
        .clock(ManualClock::new())
        .connect(&url)
        .unwrap();
    for _ in 0..3 {
        limiter.check("k").await.unwrap();
    }
    let refused = limiter.check("k").await.unwrap_err();
    // Three cells of a one-a-minute quota were just taken: the next conforms a minute after
    // the first, less the (sub-second) time the three round trips took.
    let wait = refused.retry_after();
    assert!(wait <= Duration::from_secs(60) && wait > Duration::from_secs(59), "{wait:?}");
    assert!(limiter.check("other").await.is_ok(), "keys are limited independently");

    // The state is one key, with an expiry that covers it (three minutes of cells ahead).
    let mut conn = raw(&url).await;
    let pttl: i64 =
        redis::cmd("PTTL").arg(format!("{prefix}k")).query_async(&mut conn).await.unwrap();
    assert!((178_000..=180_001).contains(&pttl), "PTTL {pttl}");

    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.rejected, stats.round_trips), (4, 1, 5));
    assert_eq!((stats.failures, stats.degraded), (0, 0));
}

#[tokio::test]
async fn check_n_is_all_or_nothing_and_refuses_more_than_the_burst_at_once() {
    let Some(url) = common::shared_url() else { return };
    let limiter = RedisRateLimiter::builder(slow(5))
        .prefix(common::unique_key("levee:test:n") + ":")
        .timeout(Duration::from_secs(2))
        .connect(&url)
        .unwrap();
    assert_eq!(
        limiter.check_n("k", 6).await,
        Err(CheckNError::InsufficientCapacity(InsufficientCapacity { requested: 6, burst: 5 }))
    );
    assert_eq!(limiter.stats().round_trips, 0, "refused without asking Redis");
    assert!(limiter.check_n("k", 0).await.is_ok());
    limiter.check_n("k", 4).await.unwrap();
    let refused = limiter.check_n("k", 2).await.unwrap_err();
    assert!(refused.throttled().is_some());
    limiter.check_n("k", 1).await.expect("the refused batch took nothing");
    assert!(limiter.check("k").await.is_err());
    assert_eq!(limiter.stats().admitted, 5);
}

#[tokio::test]
async fn runs_the_script_again_after_the_server_forgets_it() {
    let Some(url) = common::shared_url() else { return };
    let limiter = RedisRateLimiter::builder(slow(10))
        .prefix(common::unique_key("levee:test:noscript") + ":")
        .timeout(Duration::from_secs(2))
        .connect(&url)
        .unwrap();
    limiter.check("k").await.unwrap();
    let mut conn = raw(&url).await;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query_async(&mut conn).await.unwrap();
    // EVALSHA answers NOSCRIPT, EVAL runs (and caches) it: still one decision per check.
    limiter.check("k").await.unwrap();
    limiter.check("k").await.unwrap();
    let stats = limiter.stats();
    assert_eq!((stats.admitted, stats.failures, stats.degraded, stats.round_trips), (3, 0, 0, 3));
}

#[tokio::test]
async fn a_key_holding_other_data_fails_over_without_tripping_the_breaker() {
    let Some(url) = common::shared_url() else { return };
    let prefix = common::unique_key("levee:test:foreign") + ":";
    let mut conn = raw(&url).await;
    let _: () = redis::cmd("HSET")
        .arg(format!("{prefix}hash"))
        .arg("f")
        .arg("v")
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SET")
        .arg(format!("{prefix}text"))
        .arg("not a time")
        .query_async(&mut conn)
        .await
        .unwrap();
    let limiter = RedisRateLimiter::builder(slow(2))
        .prefix(prefix.clone())
        .timeout(Duration::from_secs(2))
        .fail_mode(FailMode::Closed)
        .connect(&url)
        .unwrap();
    for _ in 0..10 {
        assert!(limiter.check("hash").await.is_err(), "fail closed");
        assert!(limiter.check("text").await.is_err(), "fail closed");
    }
    assert!(limiter.check("fresh").await.is_ok(), "other keys are decided by Redis");
    let stats = limiter.stats();
    assert_eq!((stats.failures, stats.degraded), (20, 20));
    assert_eq!(stats.breaker, levee_breaker::State::Closed, "Redis itself is healthy");
    let kept: String =
        redis::cmd("GET").arg(format!("{prefix}text")).query_async(&mut conn).await.unwrap();
    assert_eq!(kept, "not a time", "another program's data is never overwritten");
}

#[tokio::test]
async fn lease_mode_spends_batches_locally_and_remembers_refusals() {
    let Some(url) = common::shared_url() else { return };
    let clock = ManualClock::new();
    let limiter = RedisRateLimiter::builder(slow(40))
        .prefix(common::unique_key("levee:test:lease") + ":")
        .timeout(Duration::from_secs(2))
        .lease(LeaseSettings::new(8, Duration::from_secs(1)))
        .clock(clock.clone())
        .connect(&url)
        .unwrap();
    for _ in 0..40 {
        limiter.check("hot").await.unwrap();
    }
    let stats = limiter.stats();
    // Batches of 1, 2, 4, 8, 8, 8, 8, 1 (the last one what the burst had left).
    assert_eq!(stats.round_trips, 8, "{stats:?}");
    assert_eq!((stats.leased_cells, stats.lease_hits), (40, 32));
    let refused = limiter.check("hot").await.unwrap_err();
    assert!(refused.retry_after() > Duration::from_secs(59));
    // Known refusals are answered locally until their time.
    for _ in 0..5 {
        assert!(limiter.check("hot").await.is_err());
    }
    let stats = limiter.stats();
    assert_eq!((stats.round_trips, stats.cached_refusals), (9, 5));
    assert_eq!((stats.admitted, stats.rejected), (40, 6));
}

#[tokio::test]
async fn lease_cells_expire_unspent_and_the_batch_shrinks() {
    let Some(url) = common::shared_url() else { return };
    let clock = ManualClock::new();
    let limiter = RedisRateLimiter::builder(slow(100))
        .prefix(common::unique_key("levee:test:expiry") + ":")
        .timeout(Duration::from_secs(2))
        .lease(LeaseSettings::new(4, Duration::from_millis(10)))
        .clock(clock.clone())
        .connect(&url)
        .unwrap();
    // Batches 1, 2, 4 spent: 7 cells in 3 round trips; then a batch of 4, one spent.
    for _ in 0..8 {
        limiter.check("k").await.unwrap();
    }
    assert_eq!(limiter.stats().round_trips, 4);
    clock.advance(Duration::from_millis(20));
    limiter.check("k").await.unwrap();
    let stats = limiter.stats();
    assert_eq!((stats.expired_cells, stats.round_trips, stats.leased_cells), (3, 5, 13));
}

#[tokio::test]
async fn ping_answers_without_a_check() {
    let Some(url) = common::shared_url() else { return };
    let limiter = RedisRateLimiter::builder(slow(1))
        .timeout(Duration::from_secs(2))
        .clock(ManualClock::new())
        .connect(&url)
        .unwrap();
    limiter.ping().await.unwrap();
    let stats = limiter.stats();
    assert_eq!((stats.round_trips, stats.admitted, stats.failures), (0, 0, 0), "not a check");
}
