//! The IETF rate-limit header fields on the tower layers: exact values on a manual clock
//! across a burst, a refusal and a refill; a keyed layer's fields are the request's key's;
//! nested layers list both policies; every field parses as an RFC 9651 structured field
//! (with the `sfv` crate, not our own code); the layers go into an axum `Router`.

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use http::{HeaderMap, Request, Response, StatusCode};
use levee_core::ManualClock;
use levee_limit::tower::{KeyedRateLimitLayer, RateLimitHeaders, RateLimitLayer};
use levee_limit::{
    AsyncRateLimit, CheckNError, FixedWindowLimiter, KeyedRateLimiter, LimitPolicy, LimitState,
    Quota, RateLimiter, RateStats, Throttled, WindowQuota,
};
use sfv::{BareItem, ListEntry, Parser};
use tower::{Layer, Service, ServiceExt, service_fn};

/// One List member as the test reads it: the policy's name and its integer parameters.
type Member = (String, Vec<(String, i64)>);

/// Parses every line of field `name` as one Structured Field List (RFC 9651 §3.1: lines
/// combine with commas) of Strings with Integer parameters; panics on anything else.
fn sf_list(headers: &HeaderMap, name: &str) -> Vec<Member> {
    let lines: Vec<&str> = headers.get_all(name).iter().map(|v| v.to_str().unwrap()).collect();
    let list = Parser::parse_list(lines.join(", ").as_bytes())
        .unwrap_or_else(|e| panic!("{name}: {lines:?} is not a structured field list: {e}"));
    list.into_iter()
        .map(|entry| {
            let ListEntry::Item(item) = entry else { panic!("{name}: an inner list") };
            let BareItem::String(policy) = item.bare_item else { panic!("{name}: not a String") };
            let params = item
                .params
                .into_iter()
                .map(|(k, v)| (k, v.as_int().unwrap_or_else(|| panic!("{name}: not an Integer"))))
                .collect();
            (policy, params)
        })
        .collect()
}

fn member(policy: &str, params: &[(&str, i64)]) -> Member {
    (policy.into(), params.iter().map(|&(k, v)| (k.into(), v)).collect())
}

/// `RateLimit: "<policy>";r=<r>;t=<t>`, parsed.
fn ratelimit(policy: &str, r: i64, t: i64) -> Vec<Member> {
    vec![member(policy, &[("r", r), ("t", t)])]
}

/// An HTTP service that counts the requests that reach it.
fn counting(
    calls: Arc<AtomicU32>,
) -> impl Service<Request<()>, Response = Response<String>, Error = Infallible, Future: Send> + Clone
{
    service_fn(move |_: Request<()>| {
        calls.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, Infallible>(Response::new(String::from("ok"))) }
    })
}

async fn send<S>(svc: &mut S, req: Request<()>) -> Response<String>
where
    S: Service<Request<()>, Response = Response<String>, Error = Infallible>,
{
    svc.ready().await.unwrap().call(req).await.unwrap()
}

#[tokio::test]
async fn gcra_fields_are_exact_across_a_burst_a_refusal_and_a_refill() {
    // Six a minute (a cell every 10 s), bursts of three.
    let clock = ManualClock::new();
    let limiter = RateLimiter::with_clock(Quota::per_minute(6).with_burst(3), clock.clone());
    let layer = RateLimitLayer::new(Arc::new(limiter.unwrap())).headers(RateLimitHeaders::new());
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc = layer.layer(counting(calls.clone()));
    let policy = vec![member("default", &[("q", 6), ("w", 60)])];

    // The burst: each answer says what is left and when the burst is back.
    for (r, t) in [(2, 10), (1, 20), (0, 30)] {
        let ok = send(&mut svc, Request::new(())).await;
        assert_eq!(ok.status(), StatusCode::OK);
        assert_eq!(sf_list(ok.headers(), "ratelimit"), ratelimit("default", r, t));
        assert_eq!(sf_list(ok.headers(), "ratelimit-policy"), policy);
        assert!(ok.headers().get("retry-after").is_none());
    }

    // A refusal: 429, Retry-After when the next cell conforms, and the same moment as `t`.
    let refused = send(&mut svc, Request::new(())).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "10");
    assert_eq!(sf_list(refused.headers(), "ratelimit"), ratelimit("default", 0, 10));
    assert_eq!(sf_list(refused.headers(), "ratelimit-policy"), policy);
    let throttled = refused.extensions().get::<Throttled>().expect("the refusal");
    assert_eq!(throttled.retry_after(), Duration::from_secs(10));
    assert_eq!(refused.body(), "", "the body is left to an outer layer");
    clock.advance(Duration::from_millis(3_500));
    let refused = send(&mut svc, Request::new(())).await;
    assert_eq!(refused.headers()["retry-after"], "7", "6.5 s, rounded up");
    assert_eq!(sf_list(refused.headers(), "ratelimit"), ratelimit("default", 0, 7));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "refusals never reach the service");

    // The refill, cell by cell: at 10 s one cell is back (and taken at once).
    clock.advance(Duration::from_millis(6_500));
    let ok = send(&mut svc, Request::new(())).await;
    assert_eq!(sf_list(ok.headers(), "ratelimit"), ratelimit("default", 0, 30));
    // Long idle: full again; 2.5 s later a quarter cell has come back, not a whole one.
    clock.advance(Duration::from_secs(60));
    let ok = send(&mut svc, Request::new(())).await;
    assert_eq!(sf_list(ok.headers(), "ratelimit"), ratelimit("default", 2, 10));
    clock.advance(Duration::from_millis(2_500));
    let ok = send(&mut svc, Request::new(())).await;
    assert_eq!(sf_list(ok.headers(), "ratelimit"), ratelimit("default", 1, 18), "17.5 s, up");
    assert_eq!(calls.load(Ordering::SeqCst), 6);
}

#[tokio::test]
async fn window_fields_count_down_to_the_window_end() {
    let clock = ManualClock::new();
    let limiter = FixedWindowLimiter::builder(WindowQuota::per_minute(2)).clock(clock.clone());
    let layer = RateLimitLayer::new(Arc::new(limiter.build().unwrap()))
        .headers(RateLimitHeaders::named("per-minute").unwrap());
    let mut svc = layer.layer(counting(Arc::default()));
    clock.advance(Duration::from_secs(15));
    let ok = send(&mut svc, Request::new(())).await;
    assert_eq!(sf_list(ok.headers(), "ratelimit"), ratelimit("per-minute", 1, 45));
    assert_eq!(
        sf_list(ok.headers(), "ratelimit-policy"),
        vec![member("per-minute", &[("q", 2), ("w", 60)])]
    );
    send(&mut svc, Request::new(())).await;
    clock.advance(Duration::from_secs(20));
    let refused = send(&mut svc, Request::new(())).await;
    assert_eq!(refused.headers()["retry-after"], "25", "the next window");
    assert_eq!(sf_list(refused.headers(), "ratelimit"), ratelimit("per-minute", 0, 25));
}

/// Requests carry their client in `x-client`.
fn client(req: &Request<()>) -> String {
    req.headers().get("x-client").and_then(|v| v.to_str().ok()).unwrap_or("anonymous").to_owned()
}

fn from(who: &str) -> Request<()> {
    Request::builder().header("x-client", who).body(()).unwrap()
}

#[tokio::test]
async fn a_keyed_layer_reports_each_keys_own_state() {
    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<String>::builder(Quota::per_minute(3)).clock(clock.clone());
    let layer = KeyedRateLimitLayer::new(Arc::new(keyed.build().unwrap()), client)
        .headers(RateLimitHeaders::named("per-client").unwrap());
    let mut svc = layer.layer(counting(Arc::default()));

    for (r, t) in [(2, 20), (1, 40), (0, 60)] {
        let ok = send(&mut svc, from("alice")).await;
        assert_eq!(sf_list(ok.headers(), "ratelimit"), ratelimit("per-client", r, t));
    }
    let refused = send(&mut svc, from("alice")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(sf_list(refused.headers(), "ratelimit"), ratelimit("per-client", 0, 20));
    // Bob's answer is Bob's state, untouched by Alice's burst.
    let bob = send(&mut svc, from("bob")).await;
    assert_eq!(sf_list(bob.headers(), "ratelimit"), ratelimit("per-client", 2, 20));
    assert_eq!(
        sf_list(bob.headers(), "ratelimit-policy"),
        vec![member("per-client", &[("q", 3), ("w", 60)])]
    );
}

#[tokio::test]
async fn nested_layers_each_add_their_policy_to_the_lists() {
    let clock = ManualClock::new();
    let global = RateLimiter::with_clock(Quota::per_second(100), clock.clone()).unwrap();
    let per_client = KeyedRateLimiter::<String>::builder(Quota::per_minute(1))
        .clock(clock.clone())
        .build()
        .unwrap();
    let inner = KeyedRateLimitLayer::new(Arc::new(per_client), client)
        .headers(RateLimitHeaders::named("per-client").unwrap())
        .layer(counting(Arc::default()));
    let mut svc = RateLimitLayer::new(Arc::new(global))
        .headers(RateLimitHeaders::named("global").unwrap())
        .layer(inner);

    let ok = send(&mut svc, from("carol")).await;
    assert_eq!(
        sf_list(ok.headers(), "ratelimit-policy"),
        vec![
            member("per-client", &[("q", 1), ("w", 60)]),
            member("global", &[("q", 100), ("w", 1)])
        ]
    );
    assert_eq!(
        sf_list(ok.headers(), "ratelimit"),
        vec![
            member("per-client", &[("r", 0), ("t", 60)]),
            member("global", &[("r", 99), ("t", 1)])
        ]
    );
    // The inner limit refuses; the outer one admitted and says so on the same 429.
    let refused = send(&mut svc, from("carol")).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "60");
    assert_eq!(
        sf_list(refused.headers(), "ratelimit"),
        vec![
            member("per-client", &[("r", 0), ("t", 60)]),
            member("global", &[("r", 98), ("t", 1)])
        ]
    );
}

#[test]
fn names_are_structured_field_strings() {
    let headers = RateLimitHeaders::named(r#"tier "gold" \ eu"#).unwrap();
    let layer = RateLimitLayer::new(Arc::new(RateLimiter::new(Quota::per_minute(1)).unwrap()));
    let mut svc = layer.headers(headers).layer(counting(Arc::default()));
    let ok = levee_core::block_on(send(&mut svc, Request::new(())));
    let raw = ok.headers()["ratelimit"].to_str().unwrap();
    assert!(raw.starts_with(r#""tier \"gold\" \\ eu";r=0;t="#), "{raw}");
    assert_eq!(sf_list(ok.headers(), "ratelimit")[0].0, r#"tier "gold" \ eu"#);

    for bad in ["", "caf\u{e9}", "tab\there", "new\nline"] {
        assert_eq!(RateLimitHeaders::named(bad).unwrap_err().setting, "headers.name", "{bad:?}");
    }
}

/// The window is whole seconds, rounded up, and the quota scaled down with it: the rate a
/// client reads off `q / w` never exceeds the limiter's.
#[test]
fn policies_with_odd_windows_never_overstate_the_rate() {
    let policy_of = |quota: Quota| {
        let limiter = RateLimiter::with_clock(quota, ManualClock::new()).unwrap();
        let mut svc = RateLimitLayer::new(Arc::new(limiter))
            .headers(RateLimitHeaders::new())
            .layer(counting(Arc::default()));
        let ok = levee_core::block_on(send(&mut svc, Request::new(())));
        sf_list(ok.headers(), "ratelimit-policy").remove(0).1
    };
    let qw = |q, w| vec![("q".to_string(), q), ("w".to_string(), w)];
    assert_eq!(policy_of(Quota::new(50, Duration::from_millis(500))), qw(100, 1));
    assert_eq!(policy_of(Quota::new(3, Duration::from_millis(1_500))), qw(4, 2));
    assert_eq!(policy_of(Quota::new(1, Duration::from_millis(700))), qw(1, 1));
    assert_eq!(policy_of(Quota::per_hour(1_000).with_burst(10)), qw(1_000, 3_600));
}

#[tokio::test]
async fn without_policy_sends_the_state_only() {
    let limiter = RateLimiter::with_clock(Quota::per_minute(2), ManualClock::new()).unwrap();
    let layer =
        RateLimitLayer::new(Arc::new(limiter)).headers(RateLimitHeaders::new().without_policy());
    let mut svc = layer.layer(counting(Arc::default()));
    let ok = send(&mut svc, Request::new(())).await;
    assert!(ok.headers().get("ratelimit-policy").is_none());
    assert_eq!(sf_list(ok.headers(), "ratelimit"), ratelimit("default", 1, 30));
}

#[tokio::test]
async fn inner_errors_pass_through_as_they_are() {
    let limiter = RateLimiter::with_clock(Quota::per_minute(2), ManualClock::new()).unwrap();
    let failing = service_fn(|_: Request<()>| async {
        Err::<Response<String>, _>(std::io::Error::other("backend down"))
    });
    let mut svc =
        RateLimitLayer::new(Arc::new(limiter)).headers(RateLimitHeaders::new()).layer(failing);
    let err = svc.ready().await.unwrap().call(Request::new(())).await.unwrap_err();
    assert_eq!(err.to_string(), "backend down", "the error type is the inner service's");
}

/// A limiter that decides elsewhere and reports the state its decision saw: `allow` cells,
/// the burst back 7 s after the last one taken.
struct Remote {
    allow: u32,
    asked: AtomicU32,
}

impl AsyncRateLimit for Remote {
    async fn check_n(&self, n: u32) -> Result<(), CheckNError> {
        self.check_n_with_state(n).await.map(|_| ())
    }

    async fn check_n_with_state(&self, n: u32) -> Result<Option<LimitState>, CheckNError> {
        tokio::task::yield_now().await; // the round trip
        let taken = self.asked.fetch_add(n, Ordering::SeqCst) + n;
        match self.allow.checked_sub(taken) {
            Some(remaining) => Ok(Some(LimitState { remaining, reset: Duration::from_secs(7) })),
            None => Err(Throttled::new(0, 2_500_000_000).into()),
        }
    }

    fn policy(&self) -> Option<LimitPolicy> {
        Some(LimitPolicy { quota: self.allow, window: Duration::from_secs(10) })
    }

    fn stats(&self) -> RateStats {
        RateStats::default()
    }
}

#[tokio::test]
async fn a_remote_limiter_reports_the_state_its_decision_saw() {
    let remote = Arc::new(Remote { allow: 2, asked: AtomicU32::new(0) });
    let calls = Arc::new(AtomicU32::new(0));
    let mut svc =
        RateLimitLayer::new(remote).headers(RateLimitHeaders::new()).layer(counting(calls.clone()));
    let ok = send(&mut svc, Request::new(())).await;
    assert_eq!(sf_list(ok.headers(), "ratelimit"), ratelimit("default", 1, 7));
    assert_eq!(
        sf_list(ok.headers(), "ratelimit-policy"),
        vec![member("default", &[("q", 2), ("w", 10)])]
    );
    send(&mut svc, Request::new(())).await;
    let refused = send(&mut svc, Request::new(())).await;
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "3", "2.5 s, rounded up");
    assert_eq!(calls.load(Ordering::SeqCst), 2);
}

/// axum's `Router::layer` takes the HTTP layers as they are (their error is the inner
/// service's, `Infallible`), and each client sees its own fields.
#[cfg(not(loom))] // axum needs tokio's `net`
#[tokio::test]
async fn the_http_layers_go_into_an_axum_router() {
    use axum::Router;
    use axum::body::Body;
    use axum::routing::get;

    let clock = ManualClock::new();
    let keyed = KeyedRateLimiter::<String>::builder(Quota::per_minute(2))
        .clock(clock.clone())
        .build()
        .unwrap();
    let by_client = |req: &Request<Body>| {
        req.headers().get("x-client").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned()
    };
    let global = RateLimiter::with_clock(Quota::per_second(10), clock.clone()).unwrap();
    let app = Router::new()
        .route("/", get(|| async { "hello" }))
        .layer(
            KeyedRateLimitLayer::new(Arc::new(keyed), by_client).headers(RateLimitHeaders::new()),
        )
        .route_layer(
            RateLimitLayer::new(Arc::new(global))
                .headers(RateLimitHeaders::named("global").unwrap()),
        );
    let request = |who: &str| {
        Request::builder().uri("/").header("x-client", who).body(Body::empty()).unwrap()
    };

    // The route layer (global) wraps the per-client layer: the inner one lists first.
    let ok = app.clone().oneshot(request("dave")).await.unwrap();
    assert_eq!(ok.status(), StatusCode::OK);
    assert_eq!(
        sf_list(ok.headers(), "ratelimit"),
        vec![member("default", &[("r", 1), ("t", 30)]), member("global", &[("r", 9), ("t", 1)])]
    );
    app.clone().oneshot(request("dave")).await.unwrap();
    let refused = app.clone().oneshot(request("dave")).await.unwrap();
    assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(refused.headers()["retry-after"], "30");
    let other = app.oneshot(request("erin")).await.unwrap();
    assert_eq!(other.status(), StatusCode::OK);
}
