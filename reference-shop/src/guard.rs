//! Breaker + timeout + retry around calls to the payment provider: one levee-policy
//! [`Pipeline`], applied in the order written:
//!
//! ```text
//! overall timeout -> retry (backoff, budget, retry-after) -> circuit breaker -> attempt timeout -> provider
//! ```
//!
//! Each part is built from levee's own settings types, embedded in the shop's settings:
//!
//! - The **overall timeout** (`payment.timeout`) bounds a whole payment, every attempt and
//!   pause included; a retry that could not start before it is not made.
//! - **Retry** (`payment.retry`, levee-policy's `RetrySettings`) makes up to `max_attempts`
//!   attempts on its backoff (by default doubling from 50 ms, jittered). Its [`RetryBudget`],
//!   shared by every payment, keeps retries to a share of payments (plus a small floor), so an
//!   outage does not multiply the load on the provider. When the breaker refuses, its
//!   retry-after is the least wait before the next attempt; a wait longer than the overall
//!   deadline ends the retries at once instead of sleeping.
//! - The **breaker** (`payment.breaker`, levee-breaker's `BreakerSettings`) is a
//!   [`CircuitBreaker`]: by default it opens once its window of the last 20 calls holds 5
//!   failures (or half of at least 5 calls failed), stays open 10 s, then lets one trial
//!   call decide. Every attempt is one call of the breaker, so retries count against it too.
//! - The **attempt timeout** (`payment.attempt_timeout`) bounds each provider call; a
//!   timed-out call is a failure to the breaker and is retried.
//!
//! A customer who waits for the answer (the synchronous checkout, [`PaymentGuard::call_waiting`])
//! goes through a second pipeline of the same stages with the customer's deadlines
//! (`payment.checkout`: 1 s in all, 500 ms per call by default) and the *same* retry budget and
//! breaker: what the queued payments learn about the provider protects the customers, and the
//! other way round. A customer waits at most a few times the provider's recent answer latency
//! and never for the breaker's trial call (see `guard/waiting.rs`).
//!
//! The provider's answers that are not faults (a declined card) pass through as `Ok(Err(_))`:
//! to the pipeline they are successes, so they neither trip the breaker nor retry.
//!
//! Time: everything runs on the shop clock, which the pipeline owns: the timeouts and backoff
//! pauses sleep on it, and the breaker and the retry budget read it. In production it is the
//! OS clock; in tests a manual clock, so a test fires a payment timeout or moves past the
//! breaker's open wait by moving the clock (a sleep on a manual clock also follows tokio's
//! time, paused in the unit tests below).
//! Everything the pipeline does is counted through its event listener ([`PipelineStatus`]).
//!
//! Protections off (`[protections] enabled = false`, for the outage side by side): the same
//! guard is built with an empty pipeline ([`BarePipeline`]): one provider call, as long as the
//! provider takes, no retry, no breaker (its status stays closed, with nothing counted). The
//! queue's redeliveries still retry a payment later, as they would in any shop.

mod waiting;

use std::sync::Arc;
use std::time::Duration;

use levee::breaker::{BreakerEvent, CircuitBreakerBuilder, State};
use levee::core::Counter;
use levee::policy::{Breaker, Layered, Leaf};
use levee::prelude::*;
use serde::Serialize;

use crate::clock::ShopClock;
use crate::config::{PaymentConfig, ProtectionsConfig, SettingError, section};
pub use waiting::AnswerLatency;

/// The payment pipeline's type: overall timeout, retry, breaker, attempt timeout.
pub type PaymentPipeline = Pipeline<
    Layered<Timeout, Layered<Retry, Layered<Breaker<ShopClock>, Layered<Timeout, Leaf>>>>,
    ShopClock,
>;

/// The payment pipeline with protections off: no stage, the call as it is.
pub type BarePipeline = Pipeline<Leaf, ShopClock>;

/// The pipeline a guard runs: every stage, or none.
enum Stages {
    Protected(PaymentPipeline),
    Bare(BarePipeline),
}

/// What a guarded call returns: `Ok(answer)` when the provider answered (a charge, or a
/// decline), `Err` when it did not (the last fault, a timeout, or an open circuit), with the
/// pipeline's reason.
pub type Guarded<T, E> = Result<Result<T, E>, PolicyError<E>>;

/// The breaker's state, for `/admin/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    /// Calls go through.
    Closed,
    /// Calls are refused until the cool-down ends.
    Open,
    /// One probe call decides.
    HalfOpen,
}

impl BreakerState {
    /// The state of a levee breaker (disabled counts as closed: calls go through).
    #[must_use]
    pub fn of(state: State) -> Self {
        match state {
            State::Closed | State::Disabled => Self::Closed,
            State::HalfOpen => Self::HalfOpen,
            _ => Self::Open,
        }
    }

    /// 0 closed, 1 open, 2 half-open (the metric's encoding).
    #[must_use]
    pub fn as_gauge(self) -> i64 {
        match self {
            Self::Closed => 0,
            Self::Open => 1,
            Self::HalfOpen => 2,
        }
    }
}

/// The breaker now.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct BreakerStatus {
    /// State.
    pub state: BreakerState,
    /// Failed calls in the breaker's window.
    pub failures_in_window: u64,
    /// Times the breaker opened (a failed trial call re-opening it counts too).
    pub opened: u64,
    /// Times the breaker closed again after a successful trial: with `opened`, tells an
    /// intermittent provider (both grow) from a long outage (only `opened` grows).
    pub closed: u64,
    /// Calls refused by the open (or half-open and busy) breaker.
    pub rejected: u64,
}

/// What the payment pipeline has done.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct PipelineStatus {
    /// Provider calls made (attempts, retries included).
    pub calls: u64,
    /// Provider calls that failed with a fault or timed out.
    pub failures: u64,
    /// Retries started.
    pub retries: u64,
    /// Payments whose every attempt failed.
    pub retries_exhausted: u64,
    /// Retries not made because the wait (an open breaker's retry-after) would pass the
    /// overall deadline.
    pub retries_abandoned: u64,
    /// Retries not made because the retry budget was spent.
    pub retry_budget_exhausted: u64,
    /// Retries the budget allows now (`null` without a budget).
    #[schema(required = true)]
    pub retry_budget_available: Option<u64>,
    /// Provider calls cut by the attempt timeout.
    pub attempt_timeouts: u64,
    /// Payments cut by the overall timeout.
    pub overall_timeouts: u64,
}

/// Counts the pipeline's and the breaker's events.
#[derive(Debug, Default)]
struct Counters {
    calls: Counter,
    faults: Counter,
    retries: Counter,
    exhausted: Counter,
    abandoned: Counter,
    budget_exhausted: Counter,
    attempt_timeouts: Counter,
    overall_timeouts: Counter,
    opened: Counter,
    closed: Counter,
    /// Checkouts answered at once because the breaker was not closed (`guard/waiting.rs`).
    deferred: Counter,
}

impl Counters {
    fn record(&self, event: &PolicyEvent, attempt_timeout: Duration) {
        match event {
            PolicyEvent::Retry { .. } => self.retries.incr(),
            PolicyEvent::RetriesExhausted { .. } => self.exhausted.incr(),
            PolicyEvent::RetryAbandoned { .. } => self.abandoned.incr(),
            PolicyEvent::RetryBudgetExhausted { .. } => self.budget_exhausted.incr(),
            PolicyEvent::TimedOut { timeout } if *timeout == attempt_timeout => {
                self.attempt_timeouts.incr();
            }
            PolicyEvent::TimedOut { .. } => self.overall_timeouts.incr(),
            // Refusals are read from the breaker itself; other policies are not used here.
            _ => {}
        }
    }
}

/// The payment pipeline, its breaker and retry budget, and its counters.
pub struct PaymentGuard {
    pipeline: Stages,
    /// The synchronous checkout's pipeline: its own deadlines (`payment.checkout`), the same
    /// retry settings and budget, the same breaker.
    checkout: Stages,
    breaker: Option<Arc<CircuitBreaker<ShopClock>>>,
    /// The configured breaker settings, reported while there is no breaker.
    configured: levee::breaker::BreakerSettings,
    budget: Option<Arc<RetryBudget>>,
    counters: Arc<Counters>,
    /// The provider's recent answer latencies: the checkout's deadline.
    latency: AnswerLatency,
}

impl std::fmt::Debug for PaymentGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PaymentGuard")
            .field("breaker", &self.breaker_status())
            .field("pipeline", &self.pipeline_status())
            .finish()
    }
}

impl PaymentGuard {
    /// The pipeline with `config`'s settings; the breaker, the retry budget, the timeouts and
    /// the backoff pauses all run on `clock`. With `protections` off, the pipeline has no
    /// stage ([`BarePipeline`]) and `config` is not used.
    ///
    /// # Errors
    /// A setting out of range, named by its path (`payment.retry.max_attempts`, ...).
    pub fn new(
        config: &PaymentConfig,
        protections: &ProtectionsConfig,
        clock: ShopClock,
    ) -> Result<Self, SettingError> {
        let counters = Arc::new(Counters::default());
        if !protections.enabled {
            let bare =
                || Pipeline::builder().clock(clock.clone()).build().map_err(section("payment"));
            return Ok(Self {
                pipeline: Stages::Bare(bare()?),
                checkout: Stages::Bare(bare()?),
                breaker: None,
                configured: config.breaker.clone(),
                budget: None,
                counters,
                latency: AnswerLatency::new(&config.checkout),
            });
        }
        let breaker = Self::breaker_builder(config, &clock, &counters)
            .build()
            .map_err(section("payment.breaker"))?;
        Self::protected(config, clock, counters, Arc::new(breaker))
    }

    /// Like [`new`](Self::new), with the breaker built by `build` from the guard's breaker
    /// builder (settings, name, clock and the guard's counters already on it): the shared
    /// breaker (`[payment.shared_breaker]`) joins its peers with it. Returns what `build`
    /// returned beside the breaker; `None` with protections off (no breaker, `build` is not
    /// called).
    ///
    /// # Errors
    /// A setting out of range, or `build`'s error.
    pub async fn with_breaker<T, E, Fut>(
        config: &PaymentConfig,
        protections: &ProtectionsConfig,
        clock: ShopClock,
        build: impl FnOnce(CircuitBreakerBuilder<ShopClock>) -> Fut,
    ) -> Result<(Self, Option<T>), E>
    where
        Fut: Future<Output = Result<(Arc<CircuitBreaker<ShopClock>>, T), E>>,
        E: From<SettingError>,
    {
        if !protections.enabled {
            return Ok((Self::new(config, protections, clock)?, None));
        }
        let counters = Arc::new(Counters::default());
        let (breaker, built) = build(Self::breaker_builder(config, &clock, &counters)).await?;
        Ok((Self::protected(config, clock, counters, breaker)?, Some(built)))
    }

    /// The payment breaker's builder: its settings, its name, the shop clock, and a listener
    /// counting its openings and closings.
    fn breaker_builder(
        config: &PaymentConfig,
        clock: &ShopClock,
        counters: &Arc<Counters>,
    ) -> CircuitBreakerBuilder<ShopClock> {
        let transitions = Arc::clone(counters);
        CircuitBreaker::builder()
            .settings(config.breaker.clone())
            .name("payment-provider")
            .listener(move |e: &BreakerEvent| {
                if e.to == State::Open {
                    transitions.opened.incr();
                } else if e.to == State::Closed && e.from == State::HalfOpen {
                    transitions.closed.incr();
                }
            })
            .clock(clock.clone())
    }

    /// The protected guard around `breaker`.
    fn protected(
        config: &PaymentConfig,
        clock: ShopClock,
        counters: Arc<Counters>,
        breaker: Arc<CircuitBreaker<ShopClock>>,
    ) -> Result<Self, SettingError> {
        let retry =
            config.retry.build_with_clock(clock.clone()).map_err(section("payment.retry"))?;
        let budget = retry.budget().cloned();
        let timeout = |setting: &'static str, d: Duration| {
            Timeout::new(d).map_err(|e| SettingError {
                section: "payment",
                error: ConfigError { setting, ..e },
            })
        };
        let attempt_timeout = config.attempt_timeout;
        let events = Arc::clone(&counters);
        let pipeline = Pipeline::builder()
            .policy(timeout("timeout", config.timeout)?)
            .retry(retry.clone())
            .breaker(Arc::clone(&breaker))
            .policy(timeout("attempt_timeout", attempt_timeout)?)
            .listener(move |e: &PolicyEvent| events.record(e, attempt_timeout))
            .clock(clock.clone())
            .build()
            .map_err(section("payment"))?;
        // The checkout's: the same stages with the customer's deadlines. Its attempt timeout
        // is never longer than the queued path's.
        let sync = &config.checkout;
        let sync_attempt = sync.attempt_timeout.min(attempt_timeout);
        let events = Arc::clone(&counters);
        let checkout = Pipeline::builder()
            .policy(timeout("checkout.timeout", sync.timeout)?)
            .retry(retry)
            .breaker(Arc::clone(&breaker))
            .policy(timeout("checkout.attempt_timeout", sync_attempt)?)
            .listener(move |e: &PolicyEvent| events.record(e, sync_attempt))
            .clock(clock)
            .build()
            .map_err(section("payment"))?;
        Ok(Self {
            pipeline: Stages::Protected(pipeline),
            checkout: Stages::Protected(checkout),
            breaker: Some(breaker),
            configured: config.breaker.clone(),
            budget,
            counters,
            latency: AnswerLatency::new(&config.checkout),
        })
    }

    /// The pipeline's stages, outermost first (`timeout`, `retry`, `breaker`,
    /// `attempt_timeout`); none with protections off.
    #[must_use]
    pub fn stages(&self) -> &'static [&'static str] {
        match self.pipeline {
            Stages::Protected(_) => &["timeout", "retry", "breaker", "attempt_timeout"],
            Stages::Bare(_) => &[],
        }
    }

    /// Calls `f` through the pipeline. Errors for which `is_fault` is true (the provider is
    /// unavailable) are faults: they count against the breaker and are retried. Other errors
    /// (a declined card) are answers, returned as `Ok(Err(e))` at once.
    ///
    /// # Errors
    /// The outer `Err` when no answer came: [`PolicyError::Operation`] with the last fault,
    /// [`PolicyError::Timeout`], or [`PolicyError::CircuitOpen`] with the breaker's retry-after.
    pub async fn call<T, E, F, Fut>(
        &self,
        f: F,
        is_fault: impl Fn(&E) -> bool + Sync,
    ) -> Guarded<T, E>
    where
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<T, E>> + Send,
        T: Send,
        E: Send,
    {
        self.run(&self.pipeline, f, is_fault).await
    }

    /// Like [`call`](Self::call) for a customer who waits for the answer (the synchronous
    /// checkout): the same retry budget and breaker, the deadlines of `payment.checkout`,
    /// the whole wait cut at [`AnswerLatency::deadline`]; while the breaker is not closed,
    /// [`PolicyError::CircuitOpen`] at once (the queued payments make its trial calls). With
    /// protections off, the call as it is.
    ///
    /// # Errors
    /// As [`call`](Self::call); [`PolicyError::Timeout`] once the checkout's deadline
    /// passed.
    pub async fn call_waiting<T, E, F, Fut>(
        &self,
        f: F,
        is_fault: impl Fn(&E) -> bool + Sync,
    ) -> Guarded<T, E>
    where
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<T, E>> + Send,
        T: Send,
        E: Send,
    {
        match &self.checkout {
            Stages::Protected(p) => self.run_waiting(p, f, is_fault).await,
            bare @ Stages::Bare(_) => self.run(bare, f, is_fault).await,
        }
    }

    async fn run<T, E, F, Fut>(
        &self,
        stages: &Stages,
        f: F,
        is_fault: impl Fn(&E) -> bool + Sync,
    ) -> Guarded<T, E>
    where
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<T, E>> + Send,
        T: Send,
        E: Send,
    {
        let (f, is_fault) = (&f, &is_fault);
        let clock = match stages {
            Stages::Protected(p) => p.clock(),
            Stages::Bare(p) => p.clock(),
        };
        let attempt = |ctx: PolicyContext<'_>| self.attempt(clock, ctx.deadline(), f, is_fault);
        match stages {
            Stages::Protected(p) => p.execute(attempt).await,
            Stages::Bare(p) => p.execute(attempt).await,
        }
    }

    /// One provider call: counted, an answer's latency noted for the checkout's deadline; a
    /// fault is `Err`, an answer that is not a fault (a decline) `Ok(Err(_))`. The call runs
    /// with the pipeline's `deadline` (the tightest of its timeouts, a shop clock reading) as
    /// levee-client's task deadline, so a remote provider call sends what is left in its
    /// `levee-timeout` header.
    async fn attempt<T, E, F, Fut>(
        &self,
        clock: &ShopClock,
        deadline: Option<u64>,
        f: &F,
        is_fault: &(impl Fn(&E) -> bool + Sync),
    ) -> Result<Result<T, E>, E>
    where
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<T, E>> + Send,
    {
        self.counters.calls.incr();
        let started = clock.now();
        let call = f();
        let outcome = match deadline {
            Some(at) => {
                let deadline = levee::client::Deadline::at(Arc::new(clock.clone()), at);
                deadline.scope(call).await
            }
            None => call.await,
        };
        let answer = match outcome {
            Ok(v) => Ok(v),
            Err(e) if is_fault(&e) => {
                self.counters.faults.incr();
                return Err(e);
            }
            Err(e) => Err(e),
        };
        self.latency.record(Duration::from_nanos(clock.elapsed_since(started)));
        Ok(answer)
    }

    /// The breaker's settings now (with protections off, the configured ones, unused).
    #[must_use]
    pub fn breaker_settings(&self) -> levee::breaker::BreakerSettings {
        self.breaker.as_ref().map_or_else(|| self.configured.clone(), |b| b.settings().clone())
    }

    /// Changes the breaker's settings live (levee-breaker's `CircuitBreaker::reconfigure`):
    /// it keeps its state and window.
    ///
    /// # Errors
    /// The first invalid setting (or a different `window`); nothing changes.
    pub fn reconfigure_breaker(
        &self,
        settings: levee::breaker::BreakerSettings,
    ) -> Result<(), levee::core::ConfigError> {
        match &self.breaker {
            Some(breaker) => breaker.reconfigure(settings).map(drop),
            None => Err(ConfigError::new("breaker", "no breaker: [protections] enabled = false")),
        }
    }

    /// The breaker now.
    #[must_use]
    pub fn breaker_status(&self) -> BreakerStatus {
        let Some(breaker) = &self.breaker else {
            return BreakerStatus {
                state: BreakerState::Closed,
                failures_in_window: 0,
                opened: 0,
                closed: 0,
                rejected: 0,
            };
        };
        let metrics = breaker.metrics();
        BreakerStatus {
            state: BreakerState::of(metrics.state),
            failures_in_window: metrics.failed_calls,
            opened: self.counters.opened.get(),
            closed: self.counters.closed.get(),
            rejected: metrics.not_permitted + self.counters.deferred.get(),
        }
    }

    /// The pipeline's counters now.
    #[must_use]
    pub fn pipeline_status(&self) -> PipelineStatus {
        let c = &self.counters;
        PipelineStatus {
            calls: c.calls.get(),
            failures: c.faults.get() + c.attempt_timeouts.get(),
            retries: c.retries.get(),
            retries_exhausted: c.exhausted.get(),
            retries_abandoned: c.abandoned.get(),
            retry_budget_exhausted: c.budget_exhausted.get(),
            retry_budget_available: self.budget.as_ref().map(|b| b.available()),
            attempt_timeouts: c.attempt_timeouts.get(),
            overall_timeouts: c.overall_timeouts.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee::core::ManualClock;
    use std::sync::atomic::{AtomicU32, Ordering};

    use levee::breaker::{OpenWait, SlidingWindow};
    use levee::policy::RetryBudgetBuilder;

    /// One attempt, a 1 s attempt timeout, a 5 s deadline; the breaker opens after 2
    /// failures for 5 s.
    fn config() -> PaymentConfig {
        let mut c = PaymentConfig {
            timeout: Duration::from_secs(5),
            attempt_timeout: Duration::from_secs(1),
            ..PaymentConfig::default()
        };
        c.retry.max_attempts = 1;
        c.retry.backoff =
            Backoff::exponential(Duration::from_millis(10), Duration::from_millis(100))
                .with_jitter(0.2);
        c.retry.budget = Some(RetryBudgetBuilder::default().ratio(0.2).min_per_sec(10));
        c.breaker.window = SlidingWindow::count(20);
        c.breaker.open_wait = OpenWait::fixed(Duration::from_secs(5));
        opens_after(c, 2)
    }

    /// The breaker opens after `failures` failures (or half of at least that many calls).
    fn opens_after(mut c: PaymentConfig, failures: u32) -> PaymentConfig {
        c.breaker.minimum_calls = failures;
        c.breaker.failure_count_threshold = Some(failures);
        c
    }

    fn attempts(mut c: PaymentConfig, n: u32) -> PaymentConfig {
        c.retry.max_attempts = n;
        c
    }

    fn guard(config: &PaymentConfig) -> (PaymentGuard, ManualClock) {
        let manual = ManualClock::new();
        (
            PaymentGuard::new(
                config,
                &ProtectionsConfig::default(),
                ShopClock::manual(manual.clone()),
            )
            .unwrap(),
            manual,
        )
    }

    const FAULT: fn(&&str) -> bool = |e| *e == "down";

    #[tokio::test(start_paused = true)]
    async fn opens_after_failures_and_recovers_after_cool_down() {
        let (guard, manual) = guard(&config());
        let fail = || async { Err::<(), _>("down") };
        for _ in 0..2 {
            assert_eq!(guard.call(fail, FAULT).await, Err(PolicyError::Operation("down")));
        }
        assert_eq!(guard.breaker_status().state, BreakerState::Open);
        assert_eq!(guard.breaker_status().closed, 0);
        assert_eq!(
            guard.call(|| async { Ok::<_, &str>(1) }, FAULT).await,
            Err(PolicyError::CircuitOpen { retry_after: Some(Duration::from_secs(5)) })
        );
        assert_eq!(guard.breaker_status().rejected, 1);
        manual.advance(Duration::from_secs(5));
        assert_eq!(guard.call(|| async { Ok::<_, &str>(1) }, FAULT).await, Ok(Ok(1)));
        assert_eq!(guard.breaker_status().state, BreakerState::Closed);
        assert_eq!((guard.breaker_status().opened, guard.breaker_status().closed), (1, 1));
        // An answer that is not a fault neither trips nor retries.
        for _ in 0..3 {
            let declined = guard.call(|| async { Err::<(), _>("declined") }, FAULT).await;
            assert_eq!(declined, Ok(Err("declined")));
        }
        assert_eq!(guard.breaker_status().state, BreakerState::Closed);
        let s = guard.pipeline_status();
        assert_eq!((s.calls, s.failures, s.retries), (6, 2, 0));
    }

    #[tokio::test(start_paused = true)]
    async fn a_slow_attempt_times_out_and_the_retry_succeeds() {
        let (guard, _) = guard(&opens_after(attempts(config(), 3), 20));
        let attempts = AtomicU32::new(0);
        let started = tokio::time::Instant::now();
        let out = guard
            .call(
                || {
                    let n = attempts.fetch_add(1, Ordering::SeqCst);
                    async move {
                        if n == 0 {
                            // Far beyond the attempt timeout (paused time: no real wait).
                            tokio::time::sleep(Duration::from_secs(60)).await;
                        }
                        Ok::<_, &str>(n)
                    }
                },
                FAULT,
            )
            .await;
        assert_eq!(out, Ok(Ok(1)));
        // One attempt timeout (1 s), then one backoff pause of 10 ms +- 20 %.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(1008) && took <= Duration::from_millis(1012));
        let s = guard.pipeline_status();
        assert_eq!((s.calls, s.failures, s.retries, s.attempt_timeouts), (2, 1, 1, 1));
        let b = guard.breaker_status();
        assert_eq!((b.state, b.failures_in_window), (BreakerState::Closed, 1), "a timeout fails");
    }

    #[tokio::test(start_paused = true)]
    async fn the_overall_deadline_bounds_every_attempt_and_pause() {
        let (guard, _) = guard(&opens_after(
            attempts(PaymentConfig { timeout: Duration::from_millis(2500), ..config() }, 10),
            20,
        ));
        let started = tokio::time::Instant::now();
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, &str>(())
        };
        let out = guard.call(slow, FAULT).await;
        assert_eq!(out, Err(PolicyError::Timeout { timeout: Duration::from_millis(2500) }));
        assert_eq!(started.elapsed(), Duration::from_millis(2500));
        let s = guard.pipeline_status();
        assert_eq!((s.attempt_timeouts, s.overall_timeouts, s.calls), (2, 1, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn an_open_breaker_ends_retries_at_once_when_its_wait_passes_the_deadline() {
        let mut c = opens_after(attempts(config(), 3), 1);
        c.breaker.open_wait = OpenWait::fixed(Duration::from_secs(30));
        let (guard, _) = guard(&c);
        let started = tokio::time::Instant::now();
        // The first attempt fails and opens the breaker; the retry finds it open for 30 s,
        // longer than the 5 s deadline: no pause, no more attempts.
        let out = guard.call(|| async { Err::<(), _>("down") }, FAULT).await;
        // The 10 ms backoff pause ran on the shop clock: the breaker saw it pass.
        let Err(PolicyError::CircuitOpen { retry_after: Some(wait) }) = out else {
            panic!("expected an open circuit, got {out:?}")
        };
        assert!(
            wait > Duration::from_millis(29_985) && wait <= Duration::from_secs(30),
            "{wait:?}"
        );
        let s = guard.pipeline_status();
        assert_eq!((s.calls, s.retries, s.retries_abandoned), (1, 1, 1));
        assert!(started.elapsed() < Duration::from_millis(20), "only the first backoff pause");
        assert_eq!(guard.breaker_status().rejected, 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_spent_retry_budget_stops_retries() {
        let mut c = opens_after(attempts(config(), 3), 20);
        c.retry.budget = Some(RetryBudgetBuilder::default().ratio(0.0).min_per_sec(0));
        let (guard, _) = guard(&c);
        let out = guard.call(|| async { Err::<(), _>("down") }, FAULT).await;
        assert_eq!(out, Err(PolicyError::Operation("down")));
        let s = guard.pipeline_status();
        assert_eq!((s.calls, s.retries, s.retry_budget_exhausted), (1, 0, 1));
        assert_eq!(s.retry_budget_available, Some(0));
    }

    #[tokio::test(start_paused = true)]
    async fn protections_off_build_the_pipeline_without_its_stages() {
        let clock = ShopClock::manual(ManualClock::new());
        // The settings of a protected guard that opens after one failure and retries 3 times
        // within 5 s, attempts cut at 1 s: none of it applies with protections off.
        let c = opens_after(attempts(config(), 3), 1);
        let on = PaymentGuard::new(&c, &ProtectionsConfig::default(), clock.clone()).unwrap();
        assert_eq!(on.stages(), ["timeout", "retry", "breaker", "attempt_timeout"]);
        let guard = PaymentGuard::new(&c, &ProtectionsConfig::off(), clock).unwrap();
        assert!(guard.stages().is_empty());
        // No retry: each failing payment makes one call; no breaker: the tenth is called
        // like the first.
        let calls = AtomicU32::new(0);
        for _ in 0..10 {
            let out = guard
                .call(
                    || {
                        calls.fetch_add(1, Ordering::SeqCst);
                        async { Err::<(), _>("down") }
                    },
                    FAULT,
                )
                .await;
            assert_eq!(out, Err(PolicyError::Operation("down")));
        }
        assert_eq!(calls.load(Ordering::SeqCst), 10);
        let b = guard.breaker_status();
        assert_eq!((b.state, b.opened, b.rejected), (BreakerState::Closed, 0, 0));
        // No timeout: a call as slow as the provider makes it (a minute, paused time).
        let started = tokio::time::Instant::now();
        let slow = || async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            Ok::<_, &str>(7)
        };
        assert_eq!(guard.call(slow, FAULT).await, Ok(Ok(7)));
        assert_eq!(started.elapsed(), Duration::from_secs(60));
        let s = guard.pipeline_status();
        assert_eq!((s.calls, s.failures, s.retries, s.attempt_timeouts), (11, 10, 0, 0));
        assert_eq!(s.retry_budget_available, None);
    }

    #[test]
    fn bad_settings_are_named_as_the_shop_names_them() {
        let clock = ShopClock::manual(ManualClock::new());
        let c = PaymentConfig { attempt_timeout: Duration::ZERO, ..config() };
        let e = PaymentGuard::new(&c, &ProtectionsConfig::default(), clock.clone()).unwrap_err();
        assert_eq!(e.path(), "payment.attempt_timeout");
        let mut c = config();
        c.retry.budget = Some(RetryBudgetBuilder::default().ratio(-1.0));
        let e = PaymentGuard::new(&c, &ProtectionsConfig::default(), clock.clone()).unwrap_err();
        assert_eq!(e.path(), "payment.retry.ratio");
        let c = opens_after(config(), 0);
        assert_eq!(
            PaymentGuard::new(&c, &ProtectionsConfig::default(), clock).unwrap_err().path(),
            "payment.breaker.minimum_calls"
        );
    }
}
