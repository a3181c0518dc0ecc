//! The tower layers: clones share one limit, refusals are typed and carry the retry-after,
//! bulkhead permits are released when the response completes or is dropped.
#![cfg(feature = "tower")]

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use levee_core::ManualClock;
use levee_limit::tower::{BulkheadLayer, KeyedRateLimitLayer, LimitError, RateLimitLayer};
use levee_limit::{Bulkhead, BulkheadError, KeyedRateLimiter, Quota, RateLimiter, RetryAfter};
use tokio::time::sleep;
use tower::{Layer, Service, ServiceExt, service_fn};

fn echo() -> impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone {
    service_fn(|x: u32| async move { Ok::<_, Infallible>(x) })
}

#[tokio::test(start_paused = true)]
async fn rate_limit_clones_share_one_quota() {
    let clock = ManualClock::new();
    let limiter = Arc::new(
        RateLimiter::with_clock(Quota::per_second(2).with_burst(2), clock.clone()).unwrap(),
    );
    let layer = RateLimitLayer::new(limiter.clone());
    let svc = layer.layer(echo());
    let mut clones: Vec<_> = (0..4).map(|_| svc.clone()).collect();
    let mut ok = 0;
    let mut refused = Vec::new();
    for (i, s) in clones.iter_mut().enumerate() {
        match s.ready().await.unwrap().call(i as u32).await {
            Ok(_) => ok += 1,
            Err(e) => refused.push(e),
        }
    }
    assert_eq!(ok, 2, "four clones, one quota of two");
    assert_eq!(refused.len(), 2);
    assert!(refused.iter().all(LimitError::is_refusal));
    assert_eq!(refused[0].retry_after(), Some(Duration::from_millis(500)));
    assert_eq!(refused[0].to_string(), "rate limited, retry after 500ms");
    clock.advance(Duration::from_millis(500));
    assert_eq!(clones[0].ready().await.unwrap().call(9).await.unwrap(), 9);
}

#[tokio::test(start_paused = true)]
async fn keyed_layer_keys_by_the_closure() {
    let keyed = Arc::new(
        KeyedRateLimiter::<u32>::builder(Quota::per_minute(1))
            .clock(ManualClock::new())
            .build()
            .unwrap(),
    );
    let mut svc = KeyedRateLimitLayer::new(keyed, |req: &u32| req % 10).layer(echo());
    assert!(svc.ready().await.unwrap().call(1).await.is_ok());
    let err = svc.ready().await.unwrap().call(11).await.unwrap_err();
    assert!(matches!(err, LimitError::Throttled(t) if t.retry_after() == Duration::from_secs(60)));
    assert!(svc.ready().await.unwrap().call(2).await.is_ok());
}

#[tokio::test(start_paused = true)]
async fn bulkhead_layer_holds_a_permit_per_request_in_flight() {
    let bulkhead = Arc::new(
        Bulkhead::builder(2)
            .max_queue(1)
            .max_wait(Duration::from_millis(20))
            .clock(ManualClock::new())
            .build()
            .unwrap(),
    );
    let slow = service_fn(|ms: u64| async move {
        sleep(Duration::from_millis(ms)).await;
        Ok::<_, Infallible>(ms)
    });
    let svc = BulkheadLayer::new(bulkhead.clone()).layer(slow);
    let (mut a, mut b, mut c) = (svc.clone(), svc.clone(), svc.clone());
    let fa = a.ready().await.unwrap().call(100);
    let fb = b.ready().await.unwrap().call(100);
    assert_eq!(bulkhead.in_flight(), 2);
    let ta = tokio::spawn(fa);
    let tb = tokio::spawn(fb);
    // The third waits in the queue for 20 ms, then is refused with a typed error.
    let err = c.ready().await.unwrap().call(1).await.unwrap_err();
    assert!(matches!(err, LimitError::Bulkhead(BulkheadError::TimedOut { .. })));
    assert_eq!(err.retry_after(), None);
    assert_eq!(ta.await.unwrap().unwrap(), 100);
    tb.await.unwrap().unwrap();
    assert_eq!(bulkhead.in_flight(), 0, "permits released when responses complete");

    // A dropped response future releases its permit too.
    let pending = c.ready().await.unwrap().call(5);
    assert_eq!(bulkhead.in_flight(), 1);
    drop(pending);
    assert_eq!(bulkhead.in_flight(), 0);

    // A clone does not inherit a permit its original holds.
    let mut d = svc.clone();
    d.ready().await.unwrap();
    let e = d.clone();
    assert_eq!(bulkhead.in_flight(), 1);
    drop(d);
    drop(e);
    assert_eq!(bulkhead.in_flight(), 0);
}

/// A keyed limit decided elsewhere (a stand-in for levee-redis): every decision takes a
/// round trip, and each key gets `allow` cells.
#[derive(Default)]
struct RemoteKeyed {
    allow: u32,
    asked: std::sync::Mutex<std::collections::HashMap<u32, u32>>,
    decisions: AtomicU32,
}

struct RemoteKey<'a> {
    limits: &'a RemoteKeyed,
    key: u32,
}

impl levee_limit::AsyncRateLimit for RemoteKey<'_> {
    async fn check_n(&self, n: u32) -> Result<(), levee_limit::CheckNError> {
        tokio::task::yield_now().await; // the round trip
        self.limits.decisions.fetch_add(1, Ordering::SeqCst);
        let mut asked = self.limits.asked.lock().unwrap();
        let taken = asked.entry(self.key).or_default();
        *taken += n;
        if *taken <= self.limits.allow {
            Ok(())
        } else {
            Err(levee_limit::Throttled::new(0, 5_000_000_000).into())
        }
    }

    fn stats(&self) -> levee_limit::RateStats {
        levee_limit::RateStats::default()
    }
}

impl levee_limit::KeyedRateLimit<u32> for RemoteKeyed {
    type Key<'a> = RemoteKey<'a>;

    fn key<'a>(&'a self, key: &'a u32) -> RemoteKey<'a> {
        RemoteKey { limits: self, key: *key }
    }
}

/// A service that counts its calls and answers its request.
fn counted(calls: Arc<AtomicU32>) -> impl Service<u32, Response = u32, Error = Infallible> + Clone {
    service_fn(move |x: u32| {
        calls.fetch_add(1, Ordering::SeqCst);
        async move { Ok::<_, Infallible>(x) }
    })
}

#[tokio::test]
async fn the_keyed_layer_awaits_a_remote_decision_before_calling_the_service() {
    let remote = Arc::new(RemoteKeyed { allow: 2, ..RemoteKeyed::default() });
    let calls = Arc::new(AtomicU32::new(0));
    let layer = KeyedRateLimitLayer::new(remote.clone(), |x: &u32| x % 10);
    let mut svc = layer.layer(counted(calls.clone()));

    // `call` only starts the decision: the service is called once the limit admits.
    let pending = svc.ready().await.unwrap().call(1);
    assert_eq!((remote.decisions.load(Ordering::SeqCst), calls.load(Ordering::SeqCst)), (0, 0));
    assert_eq!(pending.await.unwrap(), 1);
    assert_eq!(calls.load(Ordering::SeqCst), 1);
    assert_eq!(svc.ready().await.unwrap().call(11).await.unwrap(), 11, "key 1's second cell");
    let refused = svc.ready().await.unwrap().call(21).await.unwrap_err();
    assert!(
        matches!(refused, LimitError::Throttled(t) if t.retry_after() == Duration::from_secs(5))
    );
    assert_eq!(calls.load(Ordering::SeqCst), 2, "a refusal never reaches the service");
    assert_eq!(svc.ready().await.unwrap().call(2).await.unwrap(), 2, "another key");

    // A response future dropped while the limit decides calls nothing.
    drop(svc.ready().await.unwrap().call(3));
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    assert_eq!(remote.decisions.load(Ordering::SeqCst), 4);
}

#[test]
fn limit_error_exposes_the_inner_error() {
    let e: LimitError<std::io::Error> = LimitError::Inner(std::io::Error::other("boom"));
    assert!(!e.is_refusal());
    assert_eq!(e.to_string(), "boom");
    assert!(std::error::Error::source(&e).is_some());
    assert_eq!(e.into_inner().unwrap().to_string(), "boom");
}

/// axum's `Router::layer` needs services that are `Clone + Send + Sync + 'static`.
#[test]
fn services_and_limiters_are_send_and_sync() {
    fn assert_send_sync<T: Send + Sync + 'static>() {}
    type Echo = tower::util::ServiceFn<fn(u32) -> std::future::Ready<Result<u32, Infallible>>>;
    assert_send_sync::<levee_limit::tower::RateLimitService<Echo>>();
    assert_send_sync::<levee_limit::tower::BulkheadService<Echo>>();
    assert_send_sync::<
        levee_limit::tower::KeyedRateLimitService<Echo, KeyedRateLimiter<u32>, fn(&u32) -> u32>,
    >();
    assert_send_sync::<
        levee_limit::tower::RateLimitService<
            Echo,
            RateLimiter,
            levee_limit::tower::RateLimitHeaders,
        >,
    >();
    fn assert_send<T: Send>(_: &T) {}
    let mut keyed = KeyedRateLimitLayer::new(
        Arc::new(KeyedRateLimiter::<u32>::new(Quota::per_minute(1)).unwrap()),
        |x: &u32| *x,
    )
    .layer(echo());
    assert_send(&keyed.call(1));
    assert_send_sync::<
        levee_limit::tower::ResponseFuture<
            std::future::Ready<Result<u32, Infallible>>,
            Infallible,
            levee_limit::OwnedPermit,
        >,
    >();
    assert_send_sync::<RateLimiter>();
    assert_send_sync::<KeyedRateLimiter<String>>();
    assert_send_sync::<Bulkhead>();
    assert_send_sync::<levee_limit::AdaptiveBulkhead>();
    assert_send_sync::<levee_limit::AcquireOwned<levee_core::FastClock>>();
}
