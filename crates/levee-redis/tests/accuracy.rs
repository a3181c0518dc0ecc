//! Accuracy against a real Redis (CI's shared server, `LEVEE_TEST_REDIS_URL`): three tasks,
//! each with its own limiter and connection (three processes, as far as Redis can tell),
//! hammer one key for three seconds. The cells admitted in total must match
//! `burst + rate x elapsed`, elapsed read on the server's clock (`TIME`) before the first
//! check and after the last:
//!
//! - one round trip per check: within 1 %, and never above it (GCRA's exact bound);
//! - lease mode: never above it either (every cell is granted by the server), and below it
//!   by at most the cells the three processes may hold unspent, `3 x (max_batch - 1)`,
//!   plus the same 1 %.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use levee_limit::Quota;
use levee_redis::{LeaseSettings, RedisRateLimiter, RedisStats};

const TASKS: usize = 3;
const RUN: Duration = Duration::from_secs(3);
/// 1000 cells a second, bursts of 1000: a stall of all three tasks shorter than the burst's
/// tolerance (999 ms) loses nothing, so a busy machine does not bend the count.
const RATE: u32 = 1_000;
const BURST: u32 = 1_000;

/// The two tests take turns: each is meant to saturate the key from three tasks, not to
/// compete with the other for two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn server_time(url: &str) -> u64 {
    let mut conn =
        redis::Client::open(url).unwrap().get_multiplexed_async_connection().await.unwrap();
    let (secs, micros): (u64, u64) = redis::cmd("TIME").query_async(&mut conn).await.unwrap();
    secs * 1_000_000_000 + micros * 1_000
}

/// Runs the three tasks; returns the cells admitted, the server-side elapsed nanoseconds,
/// and the limiters' summed stats.
async fn hammer(url: &str, lease: Option<LeaseSettings>) -> (u64, u64, RedisStats, u64) {
    let prefix = common::unique_key("levee:test:accuracy") + ":";
    let limiters: Vec<_> = (0..TASKS)
        .map(|_| {
            let mut builder = RedisRateLimiter::builder(Quota::per_second(RATE).with_burst(BURST))
                .prefix(prefix.clone())
                .timeout(Duration::from_secs(2));
            if let Some(lease) = lease {
                builder = builder.lease(lease);
            }
            Arc::new(builder.connect(url).unwrap())
        })
        .collect();
    // Connect first (each limiter's connection opens on its first call), so that the run
    // starts when the first checks are made; a key of its own keeps the hot key fresh.
    for limiter in &limiters {
        limiter.check("warm-up").await.unwrap();
    }
    let stop = Arc::new(AtomicBool::new(false));
    let start = server_time(url).await;
    let tasks: Vec<_> = limiters
        .iter()
        .map(|limiter| {
            let (limiter, stop) = (limiter.clone(), stop.clone());
            tokio::spawn(async move {
                let (mut admitted, mut checks) = (0u64, 0u64);
                while !stop.load(Ordering::Relaxed) {
                    admitted += u64::from(limiter.check("hot").await.is_ok());
                    checks += 1;
                    if checks % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                (admitted, checks)
            })
        })
        .collect();
    let began = Instant::now();
    while began.elapsed() < RUN {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let (mut admitted, mut checks) = (0, 0);
    for task in tasks {
        let (a, c) = task.await.unwrap();
        admitted += a;
        checks += c;
    }
    let elapsed = server_time(url).await - start;
    let mut total = limiters[0].stats();
    for l in &limiters[1..] {
        let s = l.stats();
        total.round_trips += s.round_trips;
        total.degraded += s.degraded;
        total.failures += s.failures;
        total.lease_hits += s.lease_hits;
        total.cached_refusals += s.cached_refusals;
        total.expired_cells += s.expired_cells;
    }
    (admitted, elapsed, total, checks)
}

fn exact_bound(elapsed_nanos: u64) -> f64 {
    f64::from(BURST) + f64::from(RATE) * elapsed_nanos as f64 / 1e9
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_processes_share_one_limit_within_one_percent() {
    let Some(url) = common::shared_url() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let (admitted, elapsed, stats, checks) = hammer(&url, None).await;
    let expected = exact_bound(elapsed);
    eprintln!("admitted {admitted} of {checks} checks, expected {expected:.1}: {stats:?}");
    assert_eq!((stats.degraded, stats.failures), (0, 0), "Redis decided every check");
    assert!(checks as f64 > 1.2 * expected, "the key was saturated: {checks} checks");
    assert!(admitted as f64 <= expected + 1.0, "above GCRA's bound: {admitted} > {expected}");
    assert!(admitted as f64 >= expected * 0.99, "more than 1 % short: {admitted} < {expected}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lease_mode_stays_within_its_documented_bound() {
    let Some(url) = common::shared_url() else { return };
    let _turn = ONE_AT_A_TIME.lock().await;
    let lease = LeaseSettings::new(10, Duration::from_millis(50));
    let (admitted, elapsed, stats, checks) = hammer(&url, Some(lease)).await;
    let expected = exact_bound(elapsed);
    let held = (TASKS as u32 * (lease.max_batch - 1)) as f64;
    eprintln!("lease: admitted {admitted} of {checks} checks, expected {expected:.1}: {stats:?}");
    assert_eq!((stats.degraded, stats.failures), (0, 0), "Redis decided every lease");
    assert!(checks as f64 > 1.2 * expected, "the key was saturated: {checks} checks");
    assert!(admitted as f64 <= expected + 1.0, "above GCRA's bound: {admitted} > {expected}");
    assert!(
        admitted as f64 >= expected * 0.99 - held,
        "short of the documented bound: {admitted} < {expected} - {held} - 1 %"
    );
    assert!(
        stats.round_trips * 4 < checks,
        "leases and remembered refusals save round trips: {} for {checks} checks",
        stats.round_trips
    );
}
