//! The tower layers: retries through a flaky service, state shared across clones.
#![cfg(feature = "tower")]

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use levee_core::ManualClock;
use levee_policy::tower::{PipelineLayer, policy_layer};
use levee_policy::{Backoff, Error, Pipeline, Retry, RetryBudget, Timeout};
use tokio::time::sleep;
use tower_layer::Layer;
use tower_service::Service;

/// Fails the first `fail_first` calls, and every call takes `delay`.
#[derive(Clone)]
struct Backend {
    calls: Arc<AtomicU32>,
    fail_first: u32,
    delay: Duration,
}

impl Service<&'static str> for Backend {
    type Response = String;
    type Error = &'static str;
    type Future = Pin<Box<dyn Future<Output = Result<String, &'static str>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: &'static str) -> Self::Future {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let (fail, delay) = (n < self.fail_first, self.delay);
        Box::pin(async move {
            sleep(delay).await;
            if fail { Err("unavailable") } else { Ok(format!("hello {req}")) }
        })
    }
}

fn backend(fail_first: u32, delay: Duration) -> Backend {
    Backend { calls: Arc::default(), fail_first, delay }
}

#[tokio::test(start_paused = true)]
async fn a_pipeline_layer_retries_a_flaky_service() {
    let pipeline = Pipeline::builder()
        .timeout(Duration::from_secs(1))
        .retry(Retry::builder().max_attempts(3).backoff(Backoff::Immediate).build().unwrap())
        .build()
        .unwrap();
    let backend = backend(2, Duration::from_millis(1));
    let mut svc = PipelineLayer::new(pipeline).layer(backend.clone());
    assert_eq!(svc.call("levee").await.unwrap(), "hello levee");
    assert_eq!(backend.calls.load(Ordering::SeqCst), 3);
}

#[tokio::test(start_paused = true)]
async fn clones_share_one_retry_budget() {
    // A floor of 1 retry per second over 10 s and no ratio: 10 retries for everyone.
    let budget = Arc::new(
        RetryBudget::builder()
            .ratio(0.0)
            .min_per_sec(1)
            .build_with_clock(ManualClock::new())
            .unwrap(),
    );
    let retry = Retry::builder().max_attempts(5).backoff(Backoff::Immediate).budget(budget.clone());
    let layer = policy_layer(retry.build().unwrap());
    let backend = backend(u32::MAX, Duration::ZERO);
    let svc = layer.layer(backend.clone());
    let mut a = svc.clone();
    let mut b = svc;
    for _ in 0..5 {
        assert_eq!(a.call("a").await, Err(Error::Operation("unavailable")));
        assert_eq!(b.call("b").await, Err(Error::Operation("unavailable")));
    }
    assert_eq!(backend.calls.load(Ordering::SeqCst), 10 + 10, "10 requests + 10 shared retries");
    assert_eq!(budget.available(), 0);
}

#[tokio::test(start_paused = true)]
async fn a_single_policy_layer_times_out_a_slow_service() {
    let timeout = Timeout::new(Duration::from_millis(50)).unwrap();
    let mut svc = policy_layer(timeout).layer(backend(0, Duration::from_secs(5)));
    assert_eq!(svc.call("slow").await, Err(Error::Timeout { timeout: Duration::from_millis(50) }));
}

#[tokio::test(start_paused = true)]
async fn services_can_be_spawned_on_a_runtime() {
    let svc = policy_layer(Timeout::new(Duration::from_secs(1)).unwrap())
        .layer(backend(0, Duration::from_millis(3)));
    let mut clone = svc.clone();
    let handle = tokio::spawn(async move { clone.call("spawned").await });
    assert_eq!(handle.await.unwrap().unwrap(), "hello spawned");
}
