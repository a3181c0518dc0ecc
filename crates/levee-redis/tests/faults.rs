//! Redis away: a server that accepts connections but never answers (a plain TCP listener), a
//! port nothing listens on, and a real `redis-server` killed and restarted in the middle of
//! a run. No check may hang: each is bounded by the timeout; the breaker trips, the fail
//! mode decides, and Redis takes over again by itself once it is back.

mod common;

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use levee_breaker::{BreakerSettings, OpenWait, State};
use levee_core::ManualClock;
use levee_limit::Quota;
use levee_redis::{FailMode, RedisRateLimiter, default_breaker};

/// A check's wall time may exceed its timeout by scheduling on a busy machine, never by
/// more than this.
const SLACK: Duration = Duration::from_secs(1);

#[tokio::test]
async fn a_server_that_never_answers_cannot_hold_a_check() {
    // The kernel completes the TCP handshake into the backlog; nobody ever reads or writes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("redis://{}/", listener.local_addr().unwrap());
    let timeout = Duration::from_millis(50);
    let limiter = Arc::new(
        RedisRateLimiter::builder(Quota::per_second(100).with_burst(10))
            .timeout(timeout)
            .fail_mode(FailMode::open(0.5))
            .clock(ManualClock::new())
            .connect(&url)
            .unwrap(),
    );
    // 30 checks at once: each ends within the timeout, decided by the local half share.
    let started = Instant::now();
    let checks: Vec<_> = (0..30)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                let t = Instant::now();
                let admitted = limiter.check("k").await.is_ok();
                (admitted, t.elapsed())
            })
        })
        .collect();
    let mut admitted = 0;
    for check in checks {
        let (ok, took) = check.await.unwrap();
        assert!(took < timeout + SLACK, "a check took {took:?}");
        admitted += u32::from(ok);
    }
    assert!(started.elapsed() < timeout + SLACK);
    assert_eq!(admitted, 5, "the local share: a burst of 5 of 10");
    let stats = limiter.stats();
    assert_eq!(stats.degraded, 30);
    assert!(stats.failures >= 5, "{stats:?}");

    // The breaker has opened: checks no longer go to the network at all.
    assert_eq!(limiter.breaker().state(), State::Open);
    let trips = limiter.stats().round_trips;
    let t = Instant::now();
    for _ in 0..100 {
        assert!(limiter.check("k").await.is_err());
    }
    assert!(t.elapsed() < SLACK);
    assert_eq!(limiter.stats().round_trips, trips);
}

#[tokio::test]
async fn nothing_listening_fails_closed_with_the_breaker_retry_after() {
    let url = format!("redis://127.0.0.1:{}/", common::free_port());
    let clock = ManualClock::new();
    let quota = Quota::per_second(10);
    let limiter = RedisRateLimiter::builder(quota)
        .timeout(Duration::from_millis(200))
        .fail_mode(FailMode::Closed)
        .breaker(BreakerSettings {
            open_wait: OpenWait::exponential(Duration::from_secs(1), Duration::from_secs(8)),
            ..default_breaker(Duration::from_millis(200))
        })
        .clock(clock.clone())
        .connect(&url)
        .unwrap();
    // Before the breaker opens: refused, come back after one emission interval.
    for _ in 0..5 {
        let refused = limiter.check("k").await.unwrap_err();
        assert_eq!(refused.retry_after(), Duration::from_millis(100));
    }
    // Five failures out of five: open for a second.
    assert_eq!(limiter.breaker().state(), State::Open);
    assert_eq!(limiter.check("k").await.unwrap_err().retry_after(), Duration::from_secs(1));
    clock.advance(Duration::from_millis(400));
    assert_eq!(limiter.check("k").await.unwrap_err().retry_after(), Duration::from_millis(600));
    // The two trials after the wait fail too: open again, twice as long.
    clock.advance(Duration::from_millis(600));
    for _ in 0..2 {
        let refused = limiter.check("k").await.unwrap_err();
        assert_eq!(refused.retry_after(), Duration::from_millis(100));
    }
    assert_eq!(limiter.check("k").await.unwrap_err().retry_after(), Duration::from_secs(2));
    let stats = limiter.stats();
    assert_eq!((stats.round_trips, stats.failures, stats.admitted), (7, 7, 0));
    assert_eq!(stats.degraded, stats.rejected);
}

#[tokio::test]
async fn ping_to_nothing_listening_fails_within_the_timeout() {
    let url = format!("redis://127.0.0.1:{}/", common::free_port());
    let limiter = RedisRateLimiter::builder(Quota::per_second(10))
        .timeout(Duration::from_millis(200))
        .connect(&url)
        .unwrap();
    let t = Instant::now();
    assert!(limiter.ping().await.is_err(), "nothing answers");
    assert!(t.elapsed() < Duration::from_millis(200) + SLACK, "{:?}", t.elapsed());
    let stats = limiter.stats();
    assert_eq!((stats.round_trips, stats.failures), (0, 0), "outside the checks' counters");
    assert_eq!(limiter.breaker().state(), State::Closed, "and outside the breaker");
}

/// Three tasks check one key continuously while the server is killed and restarted: every
/// check ends within the timeout, the fail-open share decides while Redis is away, and Redis
/// decides again once it is back (the breaker's trials find it), with no call from the test.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_killed_and_restarted_mid_run() {
    let Some(mut server) = common::RedisServer::start() else { return };
    let timeout = Duration::from_millis(50);
    let breaker = BreakerSettings {
        open_wait: OpenWait::fixed(Duration::from_millis(100)),
        ..default_breaker(timeout)
    };
    // Three processes' limiters: separate connections, one shared limit.
    let prefix = common::unique_key("levee:test:restart") + ":";
    let limiters: Vec<_> = (0..3)
        .map(|_| {
            Arc::new(
                RedisRateLimiter::builder(Quota::per_second(1_000).with_burst(100))
                    .prefix(prefix.clone())
                    .timeout(timeout)
                    .fail_mode(FailMode::open(1.0 / 3.0))
                    .breaker(breaker.clone())
                    .connect(&server.url())
                    .unwrap(),
            )
        })
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let slowest = Arc::new(AtomicU64::new(0));
    let tasks: Vec<_> = limiters
        .iter()
        .map(|limiter| {
            let (limiter, stop, slowest) = (limiter.clone(), stop.clone(), slowest.clone());
            tokio::spawn(async move {
                let mut checks = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let t = Instant::now();
                    let _ = limiter.check("shared").await;
                    slowest.fetch_max(t.elapsed().as_nanos() as u64, Ordering::Relaxed);
                    checks += 1;
                    // Leave the other tasks (and the test) room on a 2-core machine.
                    tokio::task::yield_now().await;
                }
                checks
            })
        })
        .collect();
    let sum = |f: fn(&levee_redis::RedisStats) -> u64| -> u64 {
        limiters.iter().map(|l| f(&l.stats())).sum()
    };
    // Polls a condition on the counters every few milliseconds, for at most 20 s.
    async fn until(what: &str, mut done: impl FnMut() -> bool) {
        let started = Instant::now();
        while !done() {
            assert!(started.elapsed() < Duration::from_secs(20), "never happened: {what}");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    until("300 checks decided by Redis", || sum(|s| s.round_trips) >= 300).await;
    assert_eq!(sum(|s| s.degraded), 0);

    server.kill();
    // Each breaker opens once 10 of its last 20 calls failed: on a loaded machine one task
    // may get few turns, so the test waits for every breaker rather than for a total.
    until("every breaker open and 300 checks decided locally", || {
        limiters.iter().all(|l| l.breaker().state() != State::Closed) && sum(|s| s.degraded) >= 300
    })
    .await;

    server.restart();
    let answered = sum(|s| s.round_trips - s.failures);
    until("every breaker closed and 300 more checks decided by Redis", || {
        limiters.iter().all(|l| l.breaker().state() == State::Closed)
            && sum(|s| s.round_trips - s.failures) >= answered + 300
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let mut checks = 0;
    for task in tasks {
        checks += task.await.unwrap();
    }
    let slowest = Duration::from_nanos(slowest.load(Ordering::Relaxed));
    assert!(slowest < timeout + SLACK, "the slowest check took {slowest:?}");
    assert_eq!(sum(|s| s.admitted) + sum(|s| s.rejected), checks, "every check decided once");
}
