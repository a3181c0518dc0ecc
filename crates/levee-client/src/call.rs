//! One call through the client: the operation each attempt runs, and the two client
//! policies around levee-policy's retry and hedge.
//!
//! The pipeline is `CallDeadline -> Retry -> HedgeReads -> attempt`:
//!
//! - **CallDeadline** tightens the context to the call's deadline (the smaller of the
//!   client's timeout and the one it was given), so the retry never starts an attempt it
//!   could not finish, and ends the call with [`Error::DeadlineExceeded`] when it passes.
//! - **Retry** (levee-policy, within the client's [`RetryBudget`](levee_policy::RetryBudget))
//!   retries what the attempt marked retriable: a request that was not sent, or an
//!   idempotent one that failed.
//! - **HedgeReads** runs levee-policy's [`Hedge`] for reads only (GET, HEAD, OPTIONS).
//! - **The attempt** picks an endpoint (priority group, breaker permit, P2C on peak-EWMA,
//!   not one this call already tried if another is left), writes the deadline header,
//!   sends, and records the outcome in the endpoint's breaker and latency estimate. It
//!   times itself out at the call's deadline or the per-attempt timeout, whichever is
//!   first, so a hung endpoint's breaker hears of it.

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context as TaskContext, Poll};
use std::time::Duration;

use bytes::Bytes;
use levee_breaker::OwnedPermit;
use levee_core::{Clock, Sleep, nanos};
use levee_policy::{
    Context, Error as PolicyError, Hedge, Operation, Outcome, Policy, RetryOn, Stage,
};

use crate::ResponseClass;
use crate::balance::EndpointState;
use crate::client::Shared;
use crate::deadline::{TIMEOUT_HEADER, header_value};
use crate::error::{AttemptError, Error, Failure, TransportErrorKind};
use crate::transport::Transport;

/// One call: the request (replayed for each attempt), what may be done with it, and the
/// endpoints it already tried.
pub(crate) struct Call<'s, T: Transport, C: Clock> {
    pub(crate) shared: &'s Shared<T, C>,
    pub(crate) request: http::Request<Bytes>,
    pub(crate) idempotent: bool,
    pub(crate) hedgeable: bool,
    /// The call's deadline on the client's clock.
    pub(crate) deadline: Option<u64>,
    /// True when the deadline is the client's own timeout (an attempt cut by it counts
    /// against the endpoint), false when it was inherited and tighter.
    pub(crate) deadline_is_own: bool,
    /// Endpoints tried, as `1 << (id % 64)` bits.
    pub(crate) tried: AtomicU64,
}

/// A call as an operation, for every pair of lifetimes (a pipeline's futures are proven
/// `Send` for all of them).
impl<'c, 'a, 'b: 'a, T: Transport, C: Clock + Clone> Operation<'c> for &'a Call<'b, T, C> {
    type Output = http::Response<Bytes>;
    type Error = AttemptError;
    type Future = Attempt<'a, T, C>;

    #[inline]
    fn call(&self, ctx: Context<'c>) -> Attempt<'a, T, C> {
        Attempt::start(self, ctx.deadline())
    }
}

/// What the client's policies need to know about a call.
pub(crate) trait CallInfo {
    /// The call's deadline on the client's clock.
    fn deadline(&self) -> Option<u64>;
    /// Whether the call may be hedged.
    fn hedgeable(&self) -> bool;
}

impl<T: Transport, C: Clock> CallInfo for &Call<'_, T, C> {
    #[inline]
    fn deadline(&self) -> Option<u64> {
        self.deadline
    }

    #[inline]
    fn hedgeable(&self) -> bool {
        self.hedgeable
    }
}

/// Which limit an attempt's timer stands for.
#[derive(Debug, Clone, Copy)]
enum Bound {
    /// The call's deadline; `own` as in [`Call::deadline_is_own`].
    Call { own: bool },
    /// The per-attempt timeout.
    Attempt(Duration),
}

/// An attempt in flight at one endpoint: its breaker permit and when it started. Dropped
/// unfinished (the call was cancelled, or a hedge won elsewhere), it still records how long
/// the endpoint has taken so far, so a slow endpoint's estimate rises even when nobody
/// waits for its answers; the permit records nothing (a trial permit is handed back).
struct InFlight<'c, C: Clock> {
    state: Arc<EndpointState<C>>,
    permit: Option<OwnedPermit<C>>,
    started: u64,
    clock: &'c C,
}

impl<C: Clock> InFlight<'_, C> {
    /// Records the latency sample and hands back the permit for the outcome.
    fn land(&mut self) -> Option<OwnedPermit<C>> {
        let now = self.clock.now();
        self.state.load.observe(now.saturating_sub(self.started), now);
        self.permit.take()
    }
}

impl<C: Clock> Drop for InFlight<'_, C> {
    fn drop(&mut self) {
        if self.permit.is_some() {
            let now = self.clock.now();
            self.state.load.observe(now.saturating_sub(self.started), now);
        }
        self.state.load.finish();
    }
}

pin_project_lite::pin_project! {
    /// The future of one attempt.
    pub(crate) struct Attempt<'c, T: Transport, C: Clock> {
        call: &'c Call<'c, T, C>,
        ready: Option<Result<http::Response<Bytes>, AttemptError>>,
        #[pin]
        send: Option<T::Future>,
        flight: Option<InFlight<'c, C>>,
        #[pin]
        sleep: Option<Sleep>,
        until: u64,
        bound: Bound,
    }
}

impl<'c, T: Transport, C: Clock + Clone> Attempt<'c, T, C> {
    fn done(
        call: &'c Call<'c, T, C>,
        outcome: Result<http::Response<Bytes>, AttemptError>,
    ) -> Self {
        Self {
            call,
            ready: Some(outcome),
            send: None,
            flight: None,
            sleep: None,
            until: u64::MAX,
            bound: Bound::Call { own: true },
        }
    }

    fn start(call: &'c Call<'c, T, C>, deadline: Option<u64>) -> Self {
        let shared = call.shared;
        let clock = &shared.clock;
        let now = clock.now();
        let (mut until, mut bound) =
            (deadline.unwrap_or(u64::MAX), Bound::Call { own: call.deadline_is_own });
        if let Some(timeout) = shared.attempt_timeout {
            let at = now.saturating_add(nanos(timeout));
            if at < until {
                (until, bound) = (at, Bound::Attempt(timeout));
            }
        }
        if until <= now {
            return Self::done(call, Err(AttemptError::fatal(Error::DeadlineExceeded)));
        }
        let tried = call.tried.load(Ordering::Relaxed);
        let pick = shared.endpoints.with(|s| s.pick(now, tried, &mut levee_core::random::below));
        let pick = match pick {
            Ok(pick) => pick,
            Err(e) => {
                let retriable = e.was_not_sent();
                return Self::done(call, Err(AttemptError::error(e, retriable)));
            }
        };
        call.tried.fetch_or(pick.state.tried_bit(), Ordering::Relaxed);

        let source = &call.request;
        let mut request = http::Request::new(source.body().clone());
        *request.method_mut() = source.method().clone();
        *request.uri_mut() = pick.state.endpoint.uri_for(source.uri().path_and_query());
        *request.headers_mut() = source.headers().clone();
        if shared.propagate_deadline && until != u64::MAX {
            let remaining = Duration::from_nanos(until - now);
            request.headers_mut().insert(TIMEOUT_HEADER, header_value(remaining));
        }

        pick.state.load.start();
        pick.state.requests.incr();
        let send = shared.transport.send(&pick.state.endpoint, request);
        Self {
            call,
            ready: None,
            send: Some(send),
            flight: Some(InFlight {
                state: pick.state,
                permit: Some(pick.permit),
                started: now,
                clock,
            }),
            sleep: None,
            until,
            bound,
        }
    }
}

impl<T: Transport, C: Clock + Clone> Future for Attempt<'_, T, C> {
    type Output = Result<http::Response<Bytes>, AttemptError>;

    fn poll(self: Pin<&mut Self>, cx: &mut TaskContext<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        if let Some(outcome) = this.ready.take() {
            return Poll::Ready(outcome);
        }
        let Some(send) = this.send.as_mut().as_pin_mut() else {
            return Poll::Pending; // polled again after completion
        };
        if let Poll::Ready(result) = send.poll(cx) {
            this.send.set(None);
            let Some(mut flight) = this.flight.take() else { return Poll::Pending };
            return Poll::Ready(landed(this.call, &mut flight, result));
        }
        if *this.until == u64::MAX {
            return Poll::Pending;
        }
        if this.sleep.is_none() {
            this.sleep.set(Some(this.call.shared.clock.sleep_until(*this.until)));
        }
        match this.sleep.as_pin_mut().map(|s| s.poll(cx)) {
            Some(Poll::Ready(())) => {
                this.send.set(None);
                let Some(mut flight) = this.flight.take() else { return Poll::Pending };
                Poll::Ready(Err(timed_out(this.call, &mut flight, *this.bound)))
            }
            _ => Poll::Pending,
        }
    }
}

/// The outcome of an attempt that got an answer (or a transport error).
fn landed<T: Transport, C: Clock>(
    call: &Call<'_, T, C>,
    flight: &mut InFlight<'_, C>,
    result: Result<http::Response<Bytes>, crate::TransportError>,
) -> Result<http::Response<Bytes>, AttemptError> {
    let Some(permit) = flight.land() else {
        return Err(AttemptError::fatal(Error::InvalidRequest("attempt finished twice")));
    };
    let state = &flight.state;
    let endpoint = || state.endpoint.clone();
    match result {
        Ok(response) => match (call.shared.classify)(response.status()) {
            ResponseClass::Success => {
                permit.success();
                Ok(response)
            }
            class => {
                permit.failure();
                state.failures.incr();
                let retriable = class == ResponseClass::RetryableFailure && call.idempotent;
                Err(AttemptError { failure: Failure::Status(Box::new(response)), retriable })
            }
        },
        Err(e) => match e.kind {
            TransportErrorKind::Connect => {
                permit.failure();
                state.failures.incr();
                // Not sent: safe to retry whatever the method.
                Err(AttemptError::error(
                    Error::Connect { endpoint: endpoint(), source: e.source },
                    true,
                ))
            }
            TransportErrorKind::BodyTooLarge(limit) => {
                // The endpoint answered; the answer is too big for this client.
                permit.ignore();
                Err(AttemptError::fatal(Error::BodyTooLarge { endpoint: endpoint(), limit }))
            }
            _ => {
                permit.failure();
                state.failures.incr();
                let error = Error::Transport { endpoint: endpoint(), source: e.source };
                Err(AttemptError::error(error, call.idempotent))
            }
        },
    }
}

/// The outcome of an attempt whose timer fired first.
fn timed_out<T: Transport, C: Clock>(
    call: &Call<'_, T, C>,
    flight: &mut InFlight<'_, C>,
    bound: Bound,
) -> AttemptError {
    let Some(permit) = flight.land() else {
        return AttemptError::fatal(Error::DeadlineExceeded);
    };
    let own = match bound {
        Bound::Call { own } => own,
        Bound::Attempt(_) => true,
    };
    if own {
        permit.failure();
        flight.state.failures.incr();
    } else {
        // The caller's budget was tighter than ours: says nothing about the endpoint
        // (its latency estimate has the sample all the same).
        permit.ignore();
    }
    match bound {
        Bound::Attempt(timeout) => AttemptError::error(
            Error::Timeout { endpoint: flight.state.endpoint.clone(), timeout },
            call.idempotent,
        ),
        Bound::Call { .. } => AttemptError::fatal(Error::DeadlineExceeded),
    }
}

/// Ends the call at its deadline (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct CallDeadline;

impl<'c, Op> Policy<'c, Op> for CallDeadline
where
    Op: Operation<'c, Error = AttemptError> + CallInfo,
{
    async fn run<'s, I: Stage<'c, Op>>(
        &'s self,
        inner: &'s I,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> Outcome<'c, Op>
    where
        'c: 's,
    {
        let Some(deadline) = op.deadline() else {
            return inner.run(op, ctx).await;
        };
        let ctx = ctx.with_deadline(deadline);
        let mut call = pin!(inner.run(op, ctx));
        // Made (and registered with the clock) only once the call is found pending.
        let mut sleep = pin!(None::<Sleep>);
        poll_fn(|cx| {
            if let Poll::Ready(outcome) = call.as_mut().poll(cx) {
                return Poll::Ready(outcome);
            }
            if sleep.is_none() {
                sleep.set(Some(ctx.clock().sleep_until(deadline)));
            }
            match sleep.as_mut().as_pin_mut().map(|s| s.poll(cx)) {
                Some(Poll::Ready(())) => Poll::Ready(Err(PolicyError::Operation(
                    AttemptError::fatal(Error::DeadlineExceeded),
                ))),
                _ => Poll::Pending,
            }
        })
        .await
    }
}

/// levee-policy's hedge, for reads only.
#[derive(Debug)]
pub(crate) struct HedgeReads(pub(crate) Option<Hedge>);

impl<'c, Op> Policy<'c, Op> for HedgeReads
where
    Op: Operation<'c> + CallInfo,
{
    async fn run<'s, I: Stage<'c, Op>>(
        &'s self,
        inner: &'s I,
        op: &'s Op,
        ctx: Context<'c>,
    ) -> Outcome<'c, Op>
    where
        'c: 's,
    {
        match &self.0 {
            Some(hedge) if op.hedgeable() => hedge.run(inner, op, ctx).await,
            _ => inner.run(op, ctx).await,
        }
    }
}

/// Retries what the attempt marked retriable, waiting out an ejection's end.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Retriable;

impl RetryOn<http::Response<Bytes>, AttemptError> for Retriable {
    #[inline]
    fn should_retry(
        &self,
        outcome: &Result<http::Response<Bytes>, PolicyError<AttemptError>>,
    ) -> bool {
        matches!(outcome, Err(PolicyError::Operation(e)) if e.retriable)
    }

    fn retry_after(&self, error: &PolicyError<AttemptError>) -> Option<Duration> {
        match error {
            PolicyError::Operation(e) => e.retry_after(),
            other => levee_core::RetryAfter::retry_after(other),
        }
    }
}
