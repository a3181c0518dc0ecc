//! The Redis limiter in levee-limit's family: one key runs in levee-policy's `Pipeline` and
//! behind levee-limit's `RateLimitLayer`, the limiter behind the `KeyedRateLimitLayer`, each
//! refusing exactly as a local GCRA with the same quota does; and the layers' rate-limit
//! headers, made from the script's replies, equal a local GCRA's for the same requests. On
//! CI's Redis (`LEVEE_TEST_REDIS_URL`), a few round trips each; one test needs no server.

mod common;

use std::convert::Infallible;
use std::future::Ready;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode};
use levee_core::ManualClock;
use levee_limit::tower::{KeyedRateLimitLayer, LimitError, RateLimitHeaders, RateLimitLayer};
use levee_limit::{AsyncRateLimit, KeyedRateLimiter, LimitState, Quota, RateLimiter};
use levee_policy::{Error, Pipeline};
use levee_redis::{FailMode, LeaseSettings, RedisKey, RedisRateLimiter};
use tower::{Layer, Service, ServiceExt, service_fn};

/// Two cells, then one a minute: real time passing during a test refills nothing.
fn slow() -> Quota {
    Quota::per_minute(1).with_burst(2)
}

fn redis_limiter(url: &str, quota: Quota, name: &str) -> Arc<RedisRateLimiter<ManualClock>> {
    let limiter = RedisRateLimiter::builder(quota)
        .prefix(common::unique_key(name) + ":")
        .timeout(Duration::from_secs(2))
        .fail_mode(FailMode::Closed) // a Redis failure must fail the test, not pass it
        .clock(ManualClock::new());
    Arc::new(limiter.connect(url).unwrap())
}

/// A remote retry-after: the local one, less the real time the round trips took.
fn close_to(remote: Duration, local: Duration) -> bool {
    remote <= local && local - remote < Duration::from_secs(1)
}

#[tokio::test]
async fn one_key_runs_in_a_pipeline_as_a_local_limiter_does() {
    let Some(url) = common::shared_url() else { return };
    let redis = Pipeline::builder()
        .limiter(Arc::new(RedisKey::new(redis_limiter(&url, slow(), "levee:test:pipeline"), "k")))
        .build()
        .unwrap();
    let local = Pipeline::builder()
        .limiter(Arc::new(RateLimiter::with_clock(slow(), ManualClock::new()).unwrap()))
        .build()
        .unwrap();
    for i in 0..2 {
        assert_eq!(redis.execute(|_| async move { Ok::<_, ()>(i) }).await, Ok(i));
        assert_eq!(local.execute(|_| async move { Ok::<_, ()>(i) }).await, Ok(i));
    }
    let Err(Error::RateLimited { retry_after: remote }) =
        redis.execute(|_| async { Ok::<_, ()>(2) }).await
    else {
        panic!("the Redis key refuses the third call as a rate limit");
    };
    let Err(Error::RateLimited { retry_after: local }) =
        local.execute(|_| async { Ok::<_, ()>(2) }).await
    else {
        panic!("the local limiter refuses the third call");
    };
    assert_eq!(local, Duration::from_secs(60));
    assert!(close_to(remote, local), "{remote:?} vs {local:?}");
}

fn echo() -> impl Service<u32, Response = u32, Error = Infallible, Future: Send> + Clone {
    service_fn(|x: u32| async move { Ok::<_, Infallible>(x) })
}

/// Sends `0..n` through `svc`; the answers, refusals as their retry-after.
async fn outcomes<S>(mut svc: S, n: u32) -> Vec<Result<u32, Duration>>
where
    S: Service<u32, Response = u32, Error = LimitError<Infallible>>,
{
    let mut out = Vec::new();
    for i in 0..n {
        out.push(match svc.ready().await.unwrap().call(i).await {
            Ok(x) => Ok(x),
            Err(LimitError::Throttled(t)) => Err(t.retry_after()),
            Err(other) => panic!("not a rate-limit refusal: {other:?}"),
        });
    }
    out
}

/// Same answers, refusals within the round trips' time of each other.
fn same_outcomes(remote: &[Result<u32, Duration>], local: &[Result<u32, Duration>]) {
    assert_eq!(remote.len(), local.len());
    for (r, l) in remote.iter().zip(local) {
        match (r, l) {
            (Ok(a), Ok(b)) => assert_eq!(a, b),
            (Err(a), Err(b)) => assert!(close_to(*a, *b), "{a:?} vs {b:?}"),
            _ => panic!("{remote:?} vs local {local:?}"),
        }
    }
}

#[tokio::test]
async fn one_key_runs_behind_the_rate_limit_layer() {
    let Some(url) = common::shared_url() else { return };
    let redis = redis_limiter(&url, slow(), "levee:test:layer");
    let global = RateLimitLayer::new(Arc::new(RedisKey::new(redis.clone(), "global".to_string())));
    let remote = outcomes(global.layer(echo()), 3).await;
    let local = RateLimiter::with_clock(slow(), ManualClock::new()).unwrap();
    let local = outcomes(RateLimitLayer::new(Arc::new(local)).layer(echo()), 3).await;
    assert_eq!(local, vec![Ok(0), Ok(1), Err(Duration::from_secs(60))]);
    same_outcomes(&remote, &local);
    assert_eq!(redis.stats().round_trips, 3, "one decision per request");
}

#[tokio::test]
async fn the_limiter_runs_behind_the_keyed_layer() {
    let Some(url) = common::shared_url() else { return };
    let redis = redis_limiter(&url, slow(), "levee:test:keyed-layer");
    let by_parity = |x: &u32| if x % 2 == 0 { "even" } else { "odd" };
    let remote =
        outcomes(KeyedRateLimitLayer::new(redis.clone(), by_parity).layer(echo()), 6).await;
    let local = KeyedRateLimiter::<&'static str>::builder(slow()).clock(ManualClock::new());
    let local = outcomes(
        KeyedRateLimitLayer::new(Arc::new(local.build().unwrap()), by_parity).layer(echo()),
        6,
    )
    .await;
    let minute = Duration::from_secs(60);
    assert_eq!(local, vec![Ok(0), Ok(1), Ok(2), Ok(3), Err(minute), Err(minute)]);
    same_outcomes(&remote, &local);
}

/// Requests name their client in `x-client`.
fn client(req: &Request<()>) -> String {
    req.headers().get("x-client").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
}

/// An HTTP answer's status and rate-limit fields, as text.
fn fields(answer: &Response<String>) -> (StatusCode, Vec<String>) {
    let headers: &HeaderMap = answer.headers();
    let text = ["ratelimit-policy", "ratelimit", "retry-after"]
        .into_iter()
        .map(|name| match headers.get(name) {
            Some(value) => format!("{name}: {}", value.to_str().unwrap()),
            None => format!("{name}: -"),
        })
        .collect();
    (answer.status(), text)
}

/// The guarded HTTP service: answers "hello".
type Hello = tower::util::ServiceFn<fn(Request<()>) -> Ready<Result<Response<String>, Infallible>>>;

fn hello() -> Hello {
    service_fn(|_| std::future::ready(Ok(Response::new(String::from("hello")))))
}

/// The answers of an HTTP service guarded by `layer` to Alice, Alice, Alice, Bob, Alice.
async fn answers<L, S>(layer: L) -> Vec<(StatusCode, Vec<String>)>
where
    L: Layer<Hello, Service = S>,
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    let mut svc = layer.layer(hello());
    let mut out = Vec::new();
    for who in ["alice", "alice", "alice", "bob", "alice"] {
        let req = Request::builder().header("x-client", who).body(()).unwrap();
        out.push(fields(&svc.ready().await.unwrap().call(req).await.unwrap()));
    }
    out
}

/// The headers come from the script's reply (its `tat - now`) through the same function as
/// a local GCRA's, so for the same requests they are the same, to the second.
#[tokio::test]
async fn the_headers_on_redis_equal_a_local_gcras() {
    let Some(url) = common::shared_url() else { return };
    // One an hour, bursts of 3: the round trips' real time never reaches a whole second.
    let quota = Quota::per_hour(1).with_burst(3);
    let headers = || RateLimitHeaders::named("per-client").unwrap();
    let redis = redis_limiter(&url, quota, "levee:test:headers");
    let remote = answers(KeyedRateLimitLayer::new(redis, client).headers(headers())).await;
    let local = KeyedRateLimiter::<String>::builder(quota).clock(ManualClock::new());
    let local = answers(
        KeyedRateLimitLayer::new(Arc::new(local.build().unwrap()), client).headers(headers()),
    )
    .await;
    let policy = r#"ratelimit-policy: "per-client";q=1;w=3600"#;
    let ok = |r, t| {
        (
            StatusCode::OK,
            vec![
                policy.into(),
                format!(r#"ratelimit: "per-client";r={r};t={t}"#),
                "retry-after: -".into(),
            ],
        )
    };
    let refused = (
        StatusCode::TOO_MANY_REQUESTS,
        vec![
            policy.into(),
            r#"ratelimit: "per-client";r=0;t=3600"#.into(),
            "retry-after: 3600".into(),
        ],
    );
    assert_eq!(local, vec![ok(2, 3600), ok(1, 7200), ok(0, 10800), ok(2, 3600), refused]);
    assert_eq!(remote, local);
}

#[tokio::test]
async fn lease_mode_advertises_the_policy_but_no_state() {
    let Some(url) = common::shared_url() else { return };
    let limiter = RedisRateLimiter::builder(Quota::per_hour(1).with_burst(3))
        .prefix(common::unique_key("levee:test:lease-headers") + ":")
        .timeout(Duration::from_secs(2))
        .lease(LeaseSettings::new(2, Duration::from_secs(1)))
        .clock(ManualClock::new())
        .connect(&url)
        .unwrap();
    let layer =
        KeyedRateLimitLayer::new(Arc::new(limiter), client).headers(RateLimitHeaders::new());
    let answers = answers(layer).await;
    let policy = r#"ratelimit-policy: "default";q=1;w=3600"#;
    assert_eq!(
        answers[0],
        (StatusCode::OK, vec![policy.into(), "ratelimit: -".into(), "retry-after: -".into()])
    );
    let (status, refused) = &answers[4];
    assert_eq!(*status, StatusCode::TOO_MANY_REQUESTS);
    assert!(refused[1].starts_with(r#"ratelimit: "default";r=0;t="#), "{refused:?}");
}

/// While Redis is away and the fail mode is open, the state is the local share's (here a
/// quarter: 25 a second, bursts of 5). Needs no server: nothing listens on port 1.
#[tokio::test]
async fn failing_open_reports_the_local_shares_state() {
    let limiter = RedisRateLimiter::builder(Quota::per_second(100).with_burst(20))
        .timeout(Duration::from_millis(50))
        .fail_mode(FailMode::open(0.25))
        .clock(ManualClock::new())
        .connect("redis://127.0.0.1:1/")
        .unwrap();
    let key = limiter.key("client-7");
    let state = |remaining, ms| Some(LimitState { remaining, reset: Duration::from_millis(ms) });
    assert_eq!(key.check_n_with_state(1).await, Ok(state(4, 40)));
    assert_eq!(key.check_n_with_state(2).await, Ok(state(2, 120)));
    assert!(key.check_n_with_state(3).await.is_err(), "two left");
    assert_eq!(key.policy().map(|p| p.quota), Some(100), "the policy is the cluster's");
    assert_eq!(AsyncRateLimit::stats(&key).admitted, Some(3));
}
