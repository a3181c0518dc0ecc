//! The IETF rate-limit header fields on the rate-limit layers (feature `http`).
//!
//! The fields are those of *RateLimit header fields for HTTP*,
//! [draft-ietf-httpapi-ratelimit-headers-11](https://datatracker.ietf.org/doc/draft-ietf-httpapi-ratelimit-headers/11/)
//! (23 May 2026), written as Structured Field Values ([RFC 9651](https://www.rfc-editor.org/rfc/rfc9651)):
//!
//! - `RateLimit-Policy: "default";q=100;w=60` (§3): a List of policies, each a String (the
//!   policy's name) with `q`, the quota in requests, and `w`, the window in whole seconds.
//!   It is the limiter's [`LimitPolicy`]. A window that is not a whole number of seconds is
//!   rounded up, and `q` scaled down with it, so the advertised rate never exceeds the real
//!   one (`50` per `500 ms` is `q=100;w=1`).
//! - `RateLimit: "default";r=42;t=17` (§4): a List of service limits, each naming its policy,
//!   with `r`, the available quota, and `t`, the effective window in seconds. After an
//!   admission they are the limiter's [`LimitState`] after it: `r` the cells admissible now,
//!   `t` the time until it is full again, rounded up to whole seconds (each algorithm's
//!   meaning is in [`LimitState`]'s table). A client that spends at most `r` within `t` is
//!   never refused by this limit.
//! - On a refusal, a `429 Too Many Requests` with `Retry-After` ([RFC 9110 §10.2.3](https://www.rfc-editor.org/rfc/rfc9110#section-10.2.3),
//!   whole seconds rounded up, at least 1) and `RateLimit` with `r=0` and `t` equal to
//!   `Retry-After`: the draft's §6 says `Retry-After` SHOULD NOT point before the end of
//!   the effective window, and its example B.1.4 gives both the same moment.
//!
//! Both fields are *appended*, never replaced, so nested layers (a per-client limit inside a
//! global one) each add their policy to the same Lists, as §3 and §4 allow.

use std::fmt;
use std::future::Future;
use std::io::{self, Write as _};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use http::header::{HeaderMap, HeaderName, HeaderValue, RETRY_AFTER};
use http::{Request, Response, StatusCode};
use levee_core::ConfigError;
use tower_service::Service;

use super::keyed::{KeyedRateLimitLayer, KeyedRateLimitService};
use super::rate::{RateLimitLayer, RateLimitService};
use super::rate_future::{Outcome, RateLimitFuture};
use crate::error::Throttled;
use crate::rate_limit::{AsyncRateLimit, KeyedRateLimit};
use crate::state::{LimitPolicy, LimitState};

/// The IETF rate-limit header fields for a rate-limit layer (feature `http`): `RateLimit-Policy`
/// and `RateLimit` on every answer to a limited route, `Retry-After` on refusals, which become
/// `429 Too Many Requests` answers. See the module docs for the exact fields, after
/// draft-ietf-httpapi-ratelimit-headers-11.
///
/// Give it to [`RateLimitLayer::headers`] or [`KeyedRateLimitLayer::headers`]; the keyed
/// layer reports each request's own key's state. The services then speak `http`:
/// `Request<B>` in, `Response<B2>` out (with `B2: Default`, the refusal's empty body), and
/// their error is the inner service's, so they go straight into axum's `Router::layer`.
/// A refusal's response carries the [`Throttled`] in its extensions, for an outer layer
/// that wants to write a body.
///
/// The values come from the limiter's own state ([`AsyncRateLimit::check_n_with_state`]):
/// after an admission a local limiter takes a snapshot (a clock read and a load); a remote
/// one reports what its decision saw. An admitted request's answer allocates one header
/// value, `RateLimit` (`RateLimit-Policy` is rendered once and shared); a refusal allocates
/// its `429` response with its two values.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::convert::Infallible;
/// use std::sync::Arc;
/// use http::{Request, Response, StatusCode};
/// use levee_core::ManualClock;
/// use levee_limit::tower::{RateLimitHeaders, RateLimitLayer};
/// use levee_limit::{Quota, RateLimiter};
/// use tower::{Layer, Service, ServiceExt, service_fn};
///
/// let limiter = RateLimiter::with_clock(Quota::per_minute(2), ManualClock::new())?;
/// let layer = RateLimitLayer::new(Arc::new(limiter)).headers(RateLimitHeaders::new());
/// let mut svc = layer.layer(service_fn(|_: Request<()>| async {
///     Ok::<_, Infallible>(Response::new(String::from("hello")))
/// }));
///
/// let ok = svc.ready().await?.call(Request::new(())).await?;
/// assert_eq!(ok.headers()["ratelimit-policy"], r#""default";q=2;w=60"#);
/// assert_eq!(ok.headers()["ratelimit"], r#""default";r=1;t=30"#);
///
/// svc.ready().await?.call(Request::new(())).await?;
/// let refused = svc.ready().await?.call(Request::new(())).await?;
/// assert_eq!(refused.status(), StatusCode::TOO_MANY_REQUESTS);
/// assert_eq!(refused.headers()["retry-after"], "30");
/// assert_eq!(refused.headers()["ratelimit"], r#""default";r=0;t=30"#);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct RateLimitHeaders {
    shared: Arc<Shared>,
}

struct Shared {
    /// The policy's name as a Structured Field String, quotes included.
    item: Box<str>,
    send_policy: bool,
    /// `RateLimit-Policy`, rendered once from the limiter's policy when it is first seen
    /// (`None` when the limiter cannot say, or the field is not sent).
    policy: OnceLock<Option<HeaderValue>>,
}

impl RateLimitHeaders {
    /// The `RateLimit` field's name.
    pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");
    /// The `RateLimit-Policy` field's name.
    pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");

    /// The fields for a policy named `default`, `RateLimit-Policy` included.
    #[must_use]
    pub fn new() -> Self {
        Self::with(r#""default""#.into(), true)
    }

    /// The fields for a policy named `name` (what ties `RateLimit` to `RateLimit-Policy`,
    /// and tells nested layers' policies apart).
    ///
    /// # Errors
    /// A [`ConfigError`] naming `headers.name` when `name` is empty or has a character a
    /// Structured Field String cannot carry (only printable ASCII, `0x20` to `0x7e`).
    pub fn named(name: &str) -> Result<Self, ConfigError> {
        if name.is_empty() || !name.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
            return Err(ConfigError::new(
                "headers.name",
                format!("must be non-empty printable ASCII, got {name:?}"),
            ));
        }
        let mut item = String::with_capacity(name.len() + 2);
        item.push('"');
        for c in name.chars() {
            if matches!(c, '"' | '\\') {
                item.push('\\');
            }
            item.push(c);
        }
        item.push('"');
        Ok(Self::with(item.into(), true))
    }

    /// Leaves out `RateLimit-Policy` (draft §8.2: a server need not disclose its capacity
    /// to untrusted clients); `RateLimit` and `Retry-After` stay.
    #[must_use]
    pub fn without_policy(self) -> Self {
        Self::with(self.shared.item.clone(), false)
    }

    fn with(item: Box<str>, send_policy: bool) -> Self {
        Self { shared: Arc::new(Shared { item, send_policy, policy: OnceLock::new() }) }
    }

    /// The same settings, with no limiter's policy rendered yet: one per layer.
    fn fresh(&self) -> Self {
        Self::with(self.shared.item.clone(), self.shared.send_policy)
    }

    /// Renders `RateLimit-Policy` from the limiter's policy, the first time only.
    fn learn_policy(&self, policy: impl FnOnce() -> Option<LimitPolicy>) {
        let shared = &*self.shared;
        shared.policy.get_or_init(|| {
            if !shared.send_policy {
                return None;
            }
            let LimitPolicy { quota, window } = policy()?;
            if window.is_zero() {
                return None;
            }
            // Whole seconds, rounded up; the quota scaled to them, rounded down.
            let w = ceil_secs(window);
            let q = u128::from(quota) * u128::from(w) * 1_000_000_000 / window.as_nanos();
            let q = q.min(SF_INTEGER_MAX);
            shared.field(format_args!(";q={q};w={w}"))
        });
    }

    /// Adds the fields of an admitted request's answer.
    fn admitted(&self, headers: &mut HeaderMap, state: Option<LimitState>) {
        self.append_policy(headers);
        if let Some(state) = state {
            let (r, t) = (state.remaining, ceil_secs(state.reset));
            if let Some(value) = self.shared.field(format_args!(";r={r};t={t}")) {
                headers.append(Self::RATELIMIT, value);
            }
        }
    }

    /// The answer to a refused request: `429` with the fields, and the refusal in its
    /// extensions.
    fn refusal<B: Default>(&self, refusal: Throttled) -> Response<B> {
        let mut response = Response::new(B::default());
        *response.status_mut() = StatusCode::TOO_MANY_REQUESTS;
        let wait = ceil_secs(refusal.retry_after()).max(1);
        let headers = response.headers_mut();
        self.append_policy(headers);
        if let Some(value) = self.shared.field(format_args!(";r=0;t={wait}")) {
            headers.append(Self::RATELIMIT, value);
        }
        headers.insert(RETRY_AFTER, HeaderValue::from(wait));
        response.extensions_mut().insert(refusal);
        response
    }

    fn append_policy(&self, headers: &mut HeaderMap) {
        if let Some(Some(policy)) = self.shared.policy.get() {
            headers.append(Self::RATELIMIT_POLICY, policy.clone());
        }
    }
}

impl Shared {
    /// One List member: the policy's name with `params`. Written on the stack and copied
    /// into the header value, its one allocation (a name longer than the stack buffer takes
    /// a second one).
    fn field(&self, params: fmt::Arguments<'_>) -> Option<HeaderValue> {
        let mut stack = [0u8; 128];
        let mut cursor = io::Cursor::new(&mut stack[..]);
        let value = match cursor.write_all(self.item.as_bytes()).and(cursor.write_fmt(params)) {
            Ok(()) => {
                let len = cursor.position() as usize;
                HeaderValue::from_bytes(&stack[..len])
            }
            Err(_) => {
                let mut heap = self.item.as_bytes().to_vec();
                heap.write_fmt(params).ok()?;
                HeaderValue::from_bytes(&heap)
            }
        };
        // Always valid: printable ASCII by construction.
        value.ok()
    }
}

impl Default for RateLimitHeaders {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for RateLimitHeaders {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RateLimitHeaders")
            .field("name", &self.shared.item)
            .field("send_policy", &self.shared.send_policy)
            .finish_non_exhaustive()
    }
}

/// The fields a layer named `name` writes for `policy`: `[RateLimit-Policy, RateLimit]` of
/// an answer admitted with `state`, then `[RateLimit, Retry-After]` of a refusal that can
/// conform after `retry_after`; `None` when `name` is refused. For the fuzz target.
#[cfg(fuzzing)]
pub fn render_fields(
    name: &str,
    policy: LimitPolicy,
    state: LimitState,
    retry_after: Duration,
) -> Option<[String; 4]> {
    let headers = RateLimitHeaders::named(name).ok()?;
    headers.learn_policy(|| Some(policy));
    let mut admitted = HeaderMap::new();
    headers.admitted(&mut admitted, Some(state));
    let refusal = headers.refusal::<()>(Throttled::new(0, levee_core::nanos(retry_after)));
    let text = |map: &HeaderMap, name: &HeaderName| {
        map.get(name).map_or(String::new(), |v| v.to_str().unwrap_or_default().to_owned())
    };
    Some([
        text(&admitted, &RateLimitHeaders::RATELIMIT_POLICY),
        text(&admitted, &RateLimitHeaders::RATELIMIT),
        text(refusal.headers(), &RateLimitHeaders::RATELIMIT),
        text(refusal.headers(), &RETRY_AFTER),
    ])
}

/// The largest Structured Field Integer (RFC 9651 §3.3.1: at most 15 digits).
const SF_INTEGER_MAX: u128 = 999_999_999_999_999;

/// `d` in whole seconds, rounded up.
fn ceil_secs(d: Duration) -> u64 {
    d.as_secs().saturating_add(u64::from(d.subsec_nanos() > 0))
}

impl<L> RateLimitLayer<L> {
    /// Answers with the IETF rate-limit header fields (see [`RateLimitHeaders`]): the
    /// services take `http` requests, add `RateLimit-Policy` and `RateLimit` to every
    /// answer, and answer refusals with `429` and `Retry-After` instead of an error.
    #[must_use]
    pub fn headers(self, headers: RateLimitHeaders) -> RateLimitLayer<L, RateLimitHeaders> {
        self.with_headers(headers.fresh())
    }
}

impl<L, F> KeyedRateLimitLayer<L, F> {
    /// Answers with the IETF rate-limit header fields of each request's key (see
    /// [`RateLimitHeaders`]), as [`RateLimitLayer::headers`].
    #[must_use]
    pub fn headers(self, headers: RateLimitHeaders) -> KeyedRateLimitLayer<L, F, RateLimitHeaders> {
        self.with_headers(headers.fresh())
    }
}

impl<S, L, ReqB, ResB> Service<Request<ReqB>> for RateLimitService<S, L, RateLimitHeaders>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    L: AsyncRateLimit + 'static,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = S::Error;
    type Future = RateLimitFuture<S, Request<ReqB>, RateLimitHeaders>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        if ready!(self.poll_decision(cx)) {
            return Poll::Ready(Ok(())); // refused: `call` answers without the inner service
        }
        self.inner_mut().poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let decision = self.decide(true);
        self.headers.learn_policy(|| self.limiter().policy());
        self.call_if(req, decision)
    }
}

impl<Inner, L, F, K, ReqB, ResB> Service<Request<ReqB>>
    for KeyedRateLimitService<Inner, L, F, RateLimitHeaders>
where
    Inner: Service<Request<ReqB>, Response = Response<ResB>> + Clone,
    F: Fn(&Request<ReqB>) -> K,
    K: Send + Sync + 'static,
    L: KeyedRateLimit<K> + 'static,
    ResB: Default,
{
    type Response = Response<ResB>;
    type Error = Inner::Error;
    type Future = RateLimitFuture<Inner, Request<ReqB>, RateLimitHeaders>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner_mut().poll_ready(cx)
    }

    fn call(&mut self, req: Request<ReqB>) -> Self::Future {
        let (future, policy) = self.call_keyed(req, true);
        self.headers.learn_policy(|| policy);
        future
    }
}

/// With headers: the inner response with the fields added, or a `429` carrying them.
impl<S, ReqB, ResB> Future for RateLimitFuture<S, Request<ReqB>, RateLimitHeaders>
where
    S: Service<Request<ReqB>, Response = Response<ResB>>,
    ResB: Default,
{
    type Output = Result<Response<ResB>, S::Error>;

    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let outcome = ready!(self.as_mut().poll_outcome(cx));
        let headers = self.headers();
        Poll::Ready(match outcome {
            Outcome::Answered(Ok(mut response), state) => {
                headers.admitted(response.headers_mut(), state);
                Ok(response)
            }
            Outcome::Answered(Err(e), _) => Err(e),
            Outcome::Refused(refusal) => Ok(headers.refusal(refusal)),
        })
    }
}
