//! levee-limit in one tour: a global rate limit that callers wait on, a per-client limit
//! whose memory returns by itself, "N per minute" windows, a bulkhead with a bounded queue,
//! an adaptive limit, and the same limits as tower middleware.
//!
//! `cargo run --release --example rate_limit`

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use levee_limit::tower::{BulkheadLayer, KeyedRateLimitLayer, LimitError};
use levee_limit::{
    AdaptiveBulkhead, Aimd, Bulkhead, BulkheadError, KeyedRateLimiter, Quota, RateLimiter,
    RetryAfter, SlidingWindowLimiter, WindowQuota,
};
use tower::{Layer, Service, ServiceExt, service_fn};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. A global limit: 200 per second, bursts of 20. Twenty go at once, the rest wait
    //    their turn (5 ms apart) without spinning.
    let global = Arc::new(RateLimiter::new(Quota::per_second(200).with_burst(20))?);
    let start = Instant::now();
    let tasks: Vec<_> = (0..40)
        .map(|_| {
            let global = global.clone();
            tokio::spawn(async move { global.until_ready().await })
        })
        .collect();
    for t in tasks {
        t.await?;
    }
    println!(
        "global: 40 calls admitted in {:?} (20 at once, then one per 5 ms); {:?}",
        start.elapsed(),
        global.stats()
    );

    // 2. Per client: 5 per second each, no bursts. A crawler sweeping 100,000 client ids
    //    leaves no trace once they have refilled: no cleanup call anywhere.
    let per_client = KeyedRateLimiter::<u64>::builder(Quota::per_second(5).with_burst(1))
        .sweep_interval(Duration::from_millis(200))
        .build()?;
    for client in 0..100_000u64 {
        per_client.check(&client)?;
    }
    let refusal = per_client.check(&42).unwrap_err();
    println!(
        "per client: {} keys tracked; client 42 again at once: retry after {:?}",
        per_client.len(),
        refusal.retry_after()
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    for client in 1_000_000..1_001_000u64 {
        per_client.check(&client)?; // ordinary traffic from a thousand clients
    }
    let stats = per_client.stats();
    println!(
        "per client, 250 ms later: {} keys tracked, {} reclaimed, tables {} KiB",
        stats.keys,
        stats.reclaimed,
        stats.table_bytes / 1024
    );

    // 3. The operator's view: at most 100 per minute, over a sliding window of 6 buckets.
    let per_minute =
        SlidingWindowLimiter::builder(WindowQuota::per_minute(100)).buckets(6).build()?;
    let admitted = (0..150).filter(|_| per_minute.check().is_ok()).count();
    println!("sliding window: {admitted} of 150 admitted, rate {:.2}/s", per_minute.rate());

    // 4. A bulkhead: 2 in flight, 2 more may queue for at most 20 ms.
    let bulkhead =
        Arc::new(Bulkhead::builder(2).max_queue(2).max_wait(Duration::from_millis(20)).build()?);
    let mut calls = Vec::new();
    for i in 0..6u64 {
        let bulkhead = bulkhead.clone();
        calls.push(tokio::spawn(async move {
            match bulkhead.acquire_owned().await {
                Ok(_permit) => {
                    tokio::time::sleep(Duration::from_millis(15)).await;
                    format!("call {i}: done")
                }
                Err(e @ BulkheadError::QueueFull { .. }) => format!("call {i}: shed ({e})"),
                Err(e) => format!("call {i}: {e}"),
            }
        }));
    }
    for c in calls {
        println!("bulkhead: {}", c.await?);
    }

    // 5. An adaptive limit: AIMD backs off when calls report overload.
    let adaptive = AdaptiveBulkhead::builder(Aimd::new())
        .initial_limit(32)
        .window(Duration::from_millis(1), 1)
        .build()?;
    for _ in 0..5 {
        let permit = adaptive.try_acquire()?;
        tokio::time::sleep(Duration::from_millis(2)).await;
        permit.dropped(); // e.g. the backend answered 503
    }
    println!("adaptive: limit backed off from 32 to {}", adaptive.limit());

    // 6. As tower middleware: a per-client limit in front of a bulkhead. Clones of the
    //    service (one per connection in a server) share both limits.
    let clients = Arc::new(KeyedRateLimiter::<u32>::new(Quota::per_second(2).with_burst(2))?);
    let handler = service_fn(|(client, body): (u32, &'static str)| async move {
        Ok::<_, Infallible>(format!("client {client}: {body}"))
    });
    let guarded = BulkheadLayer::new(Arc::new(Bulkhead::new(8)?)).layer(handler);
    let svc = KeyedRateLimitLayer::new(clients, |req: &(u32, &'static str)| req.0).layer(guarded);
    for i in 0..3 {
        let mut conn = svc.clone();
        match conn.ready().await?.call((7, "hello")).await {
            Ok(reply) => println!("tower #{i}: {reply}"),
            Err(LimitError::Throttled(t)) => {
                println!("tower #{i}: 429, Retry-After {:?}", t.retry_after())
            }
            Err(other) => {
                println!("tower #{i}: {:?} (retry after {:?})", other, other.retry_after())
            }
        }
    }
    Ok(())
}
