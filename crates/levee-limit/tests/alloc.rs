//! What a request through the rate-limit layers allocates, counted by a global allocator
//! that counts this thread's allocations only: nothing without headers (a local limiter
//! decides in `call`), and with them the header values and nothing else.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::convert::Infallible;
use std::future::{Future, Ready, ready};
use std::pin::pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use http::{HeaderMap, Request, Response};
use levee_core::ManualClock;
use levee_limit::tower::{KeyedRateLimitLayer, RateLimitHeaders, RateLimitLayer};
use levee_limit::{KeyedRateLimiter, Quota, RateLimiter};
use tower::{Layer, Service, service_fn};

struct Counting;

thread_local! {
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: delegates every call to `System` unchanged; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: the caller upholds `alloc`'s contract, which `System.alloc` shares.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` was allocated by `System` with `layout` (every allocation goes there).
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.with(|n| n.set(n.get() + 1));
        // SAFETY: as `dealloc` for `ptr`; the caller upholds `realloc`'s other conditions.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static COUNTING: Counting = Counting;

/// Allocations made by this thread while running `f`.
fn allocations<T>(f: impl FnOnce() -> T) -> (u64, T) {
    let before = ALLOCATIONS.with(Cell::get);
    let out = f();
    (ALLOCATIONS.with(Cell::get) - before, out)
}

/// Readies `svc`, calls it and polls the answer to completion (every future here is ready
/// at once: local limiters, inner services answering at once).
fn round_trip<S: Service<R>, R>(svc: &mut S, req: R) -> Result<S::Response, S::Error> {
    let mut cx = Context::from_waker(Waker::noop());
    let Poll::Ready(ready) = svc.poll_ready(&mut cx) else { panic!("not ready") };
    ready?;
    let Poll::Ready(out) = pin!(svc.call(req)).poll(&mut cx) else { panic!("pending") };
    out
}

fn echo(x: u32) -> Ready<Result<u32, Infallible>> {
    ready(Ok(x))
}

#[test]
fn without_headers_a_request_allocates_nothing() {
    let limiter = RateLimiter::with_clock(Quota::per_minute(100), ManualClock::new()).unwrap();
    let mut svc = RateLimitLayer::new(Arc::new(limiter)).layer(service_fn(echo));
    let keyed = KeyedRateLimiter::<u32>::builder(Quota::per_minute(100))
        .clock(ManualClock::new())
        .build()
        .unwrap();
    let mut by_key =
        KeyedRateLimitLayer::new(Arc::new(keyed), |x: &u32| x % 4).layer(service_fn(echo));
    round_trip(&mut by_key, 1).unwrap(); // the key's first request adds it to the table
    let (n, ()) = allocations(|| {
        for i in 0..10 {
            assert_eq!(round_trip(&mut svc, i).unwrap(), i);
            assert_eq!(round_trip(&mut by_key, 4 * i + 1).unwrap(), 4 * i + 1);
        }
    });
    assert_eq!(n, 0);
}

/// An HTTP service whose answers already have room for a few headers, so what is counted
/// is the layer's own work, not the growth of an empty map.
fn hello(_: Request<()>) -> Ready<Result<Response<()>, Infallible>> {
    let mut response = Response::new(());
    *response.headers_mut() = HeaderMap::with_capacity(8);
    ready(Ok(response))
}

#[test]
fn with_headers_a_request_allocates_its_header_values_only() {
    let limiter = RateLimiter::with_clock(Quota::per_minute(100), ManualClock::new()).unwrap();
    let mut svc = RateLimitLayer::new(Arc::new(limiter))
        .headers(RateLimitHeaders::new())
        .layer(service_fn(hello));
    round_trip(&mut svc, Request::new(())).unwrap(); // renders RateLimit-Policy, once
    let (n, response) = allocations(|| round_trip(&mut svc, Request::new(())).unwrap());
    // The inner service's own allocation (its header map) plus the `RateLimit` value.
    let (inner, _) = allocations(|| hello(Request::new(())));
    assert_eq!(response.headers().len(), 2);
    assert_eq!(n - inner, 1, "{n} allocations, {inner} of them the inner service's");
}

/// A refusal allocates its `429` and nothing more: as many allocations as building the same
/// response by hand.
#[test]
fn a_refusal_allocates_its_response_only() {
    let limiter = RateLimiter::with_clock(Quota::per_minute(1), ManualClock::new()).unwrap();
    let mut svc = RateLimitLayer::new(Arc::new(limiter))
        .headers(RateLimitHeaders::new())
        .layer(service_fn(hello));
    round_trip(&mut svc, Request::new(())).unwrap();
    round_trip(&mut svc, Request::new(())).unwrap(); // the first refusal shares the policy value
    let (n, refused) = allocations(|| round_trip(&mut svc, Request::new(())).unwrap());
    assert_eq!(refused.status(), http::StatusCode::TOO_MANY_REQUESTS);
    let policy = refused.headers()["ratelimit-policy"].clone();
    let (by_hand, _) = allocations(|| {
        let mut response = Response::new(());
        *response.status_mut() = http::StatusCode::TOO_MANY_REQUESTS;
        let headers = response.headers_mut();
        headers.append(RateLimitHeaders::RATELIMIT_POLICY, policy);
        let ratelimit = http::HeaderValue::from_bytes(br#""default";r=0;t=60"#).unwrap();
        headers.append(RateLimitHeaders::RATELIMIT, ratelimit);
        headers.insert(http::header::RETRY_AFTER, http::HeaderValue::from(60u64));
        response.extensions_mut().insert(levee_limit::Throttled::new(0, 60));
        response
    });
    assert_eq!(n, by_hand, "{n} allocations for a refusal, {by_hand} for the response by hand");
}
