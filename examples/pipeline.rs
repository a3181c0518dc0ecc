//! A resilience pipeline in front of a flaky payment provider.
//!
//! The provider fails 20 % of calls and is slow on 5 %, and halfway through it goes down
//! for a second. The pipeline: an overall deadline, retries with jittered exponential backoff
//! kept in check by a retry budget, hedging on the observed p95, a circuit breaker, a rate
//! limit and a bulkhead, and a per-attempt timeout. A listener counts what each policy did.
//!
//! `cargo run --release --example pipeline`

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use levee_breaker::CircuitBreaker;
use levee_core::LatencyRecorder;
use levee_limit::{Bulkhead, Quota, RateLimiter};
use levee_policy::{Backoff, Error, Event, Hedge, HedgeDelay, Pipeline, Retry, RetryBudget};

/// The simulated provider.
struct Provider {
    calls: AtomicU64,
    started: Instant,
}

#[derive(Debug)]
struct Declined;

impl Provider {
    async fn charge(&self, order: u64) -> Result<String, Declined> {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let elapsed = self.started.elapsed();
        if elapsed > Duration::from_millis(300) && elapsed < Duration::from_millis(1300) {
            tokio::time::sleep(Duration::from_millis(5)).await;
            return Err(Declined); // the outage
        }
        let roll = levee_core::random::below(100);
        let latency = if roll < 5 { Duration::from_millis(300) } else { Duration::from_millis(5) };
        tokio::time::sleep(latency).await;
        if (5..25).contains(&roll) { Err(Declined) } else { Ok(format!("receipt-{order}")) }
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let events: Arc<Mutex<BTreeMap<String, u64>>> = Arc::default();
    let breaker = Arc::new(
        CircuitBreaker::builder()
            .count_window(50)
            .minimum_calls(20)
            .failure_rate_threshold(60.0)
            .open_wait(Duration::from_millis(200))
            .half_open_calls(5)
            .build()?,
    );
    let counted = events.clone();
    let pipeline = Pipeline::builder()
        .timeout(Duration::from_secs(1))
        .retry(
            Retry::builder()
                .max_attempts(4)
                .backoff(
                    Backoff::exponential(Duration::from_millis(10), Duration::from_millis(200))
                        .with_jitter(0.3),
                )
                .budget(RetryBudget::builder().ratio(0.5).min_per_sec(20).build_shared()?)
                .build()?,
        )
        .hedge(Hedge::new(1, HedgeDelay::p95(Duration::from_millis(50)))?)
        .breaker(breaker.clone())
        .limiter(Arc::new(RateLimiter::new(Quota::per_second(2000))?))
        .bulkhead(Arc::new(Bulkhead::new(64)?))
        .timeout(Duration::from_millis(100))
        .listener(move |e: &Event| {
            let debug = format!("{e:?}");
            let variant = debug.split([' ', '{', '(']).next().unwrap_or_default();
            *counted.lock().unwrap().entry(format!("{}/{variant}", e.policy())).or_default() += 1;
        })
        .build()?;
    let pipeline = Arc::new(pipeline);
    let provider = Arc::new(Provider { calls: AtomicU64::new(0), started: Instant::now() });
    let latency = Arc::new(LatencyRecorder::new());
    let outcomes: Arc<Mutex<BTreeMap<&'static str, u64>>> = Arc::default();

    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in 0..50u64 {
        let (pipeline, provider) = (pipeline.clone(), provider.clone());
        let (latency, outcomes) = (latency.clone(), outcomes.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..40u64 {
                tokio::time::sleep(Duration::from_millis(40)).await;
                let order = client * 100 + i;
                let start = Instant::now();
                let result = pipeline
                    .execute(|_ctx| {
                        let provider = provider.clone();
                        async move { provider.charge(order).await }
                    })
                    .await;
                latency.record(start.elapsed());
                let kind = match result {
                    Ok(_) => "paid",
                    Err(Error::Operation(Declined)) => "declined after retries",
                    Err(e) => e.kind().as_str(),
                };
                *outcomes.lock().unwrap().entry(kind).or_default() += 1;
            }
        }));
    }
    for t in tasks {
        t.await?;
    }

    let snap = latency.snapshot();
    println!(
        "2000 payments in {:.2?}, {} provider calls",
        started.elapsed(),
        provider.calls.load(Ordering::Relaxed)
    );
    println!("outcomes: {:?}", outcomes.lock().unwrap());
    println!("breaker: {:?}", breaker.metrics().state);
    println!("latency: p50 {:?}, p99 {:?}, max {:?}", snap.p50, snap.p99, snap.max);
    println!("policy events:");
    for (name, n) in events.lock().unwrap().iter() {
        println!("  {name:<40} {n}");
    }
    Ok(())
}
