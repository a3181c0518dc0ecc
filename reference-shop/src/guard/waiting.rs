//! The synchronous checkout's side of the guard ([`PaymentGuard::call_waiting`]): a customer
//! waits as long as the provider's recent answers say it should take, never for a trial.
//!
//! - **Latency-aware deadline.** [`AnswerLatency`] keeps the latencies of the provider's last
//!   answers (a charge or a decline, from the queued payments and the checkouts alike). A
//!   checkout waits `latency_multiplier` x their `latency_percentile`, within
//!   `payment.checkout.min_timeout..=timeout`: with a provider answering in 20 ms that is
//!   about 100 ms, so a provider that turns slow costs the customer that, not the whole
//!   1 s, and the order goes to the queue (202). The cut is made inside the breaker (an
//!   attempt that ran into the deadline is a failure to it, as a timeout is), so the
//!   checkouts that meet a slow provider open the shared breaker sooner. A provider that is
//!   slow but answers is still heard by the queued path (its own, longer deadlines), so its
//!   slower answers move the checkout's deadline up with it.
//! - **No customer is a trial.** While the shared breaker is not closed (open, half-open,
//!   or open with its wait passed and no trial started yet), a checkout answers "circuit
//!   open" at once without asking the breaker for a permit: the queued payments (the
//!   checkout's own hand-off among them) make the trial calls and wait them out, not a
//!   customer.

use std::future::Future;
use std::time::Duration;

use levee::breaker::State;
use levee::core::Clock;
use levee::prelude::{PolicyContext, PolicyError};
use parking_lot::Mutex;

use super::{Guarded, PaymentGuard, PaymentPipeline};
use crate::config::CheckoutConfig;

/// Answers remembered: the deadline follows the provider's last this many.
const SAMPLES: usize = 128;
/// Answers needed before the deadline follows them; fewer, and a checkout waits `timeout`.
const MIN_SAMPLES: usize = 10;

/// The latencies of the provider's recent answers, and the checkout deadline they give.
#[derive(Debug)]
pub struct AnswerLatency {
    ring: Mutex<Ring>,
    enabled: bool,
    percentile: f64,
    multiplier: f64,
    floor: Duration,
    cap: Duration,
}

#[derive(Debug)]
struct Ring {
    nanos: [u64; SAMPLES],
    next: usize,
    len: usize,
}

impl AnswerLatency {
    /// Follows `config`'s percentile and multiplier, within `min_timeout..=timeout`.
    #[must_use]
    pub fn new(config: &CheckoutConfig) -> Self {
        Self {
            ring: Mutex::new(Ring { nanos: [0; SAMPLES], next: 0, len: 0 }),
            enabled: config.latency_aware,
            percentile: config.latency_percentile,
            multiplier: config.latency_multiplier,
            floor: config.min_timeout,
            cap: config.timeout,
        }
    }

    /// Notes one answer's latency.
    pub fn record(&self, latency: Duration) {
        let nanos = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        let mut ring = self.ring.lock();
        let at = ring.next;
        ring.nanos[at] = nanos;
        ring.next = (at + 1) % SAMPLES;
        ring.len = (ring.len + 1).min(SAMPLES);
    }

    /// How long a checkout waits now: `multiplier` x the percentile of the recent answers,
    /// within `min_timeout..=timeout`; `timeout` before `MIN_SAMPLES` (10) answers were heard
    /// or with `latency_aware = false`.
    #[must_use]
    pub fn deadline(&self) -> Duration {
        if !self.enabled {
            return self.cap;
        }
        let mut sorted = [0; SAMPLES];
        let len = {
            let ring = self.ring.lock();
            sorted[..ring.len].copy_from_slice(&ring.nanos[..ring.len]);
            ring.len
        };
        if len < MIN_SAMPLES {
            return self.cap;
        }
        // The nearest-rank percentile: the smallest sample at least `percentile` of all are
        // not above.
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((self.percentile * len as f64).ceil() as usize).clamp(1, len);
        let (_, at, _) = sorted[..len].select_nth_unstable(rank - 1);
        let wait = Duration::from_nanos(*at).mul_f64(self.multiplier);
        wait.clamp(self.floor, self.cap)
    }
}

/// An attempt's error on the checkout's path: the provider's fault, or the deadline reached
/// while the provider had not answered.
enum Cut<E> {
    Fault(E),
    Deadline,
}

impl PaymentGuard {
    /// The protected checkout: at once "circuit open" unless the breaker is closed, else the
    /// checkout pipeline within the latency-aware deadline, every attempt cut at it.
    pub(super) async fn run_waiting<T, E, F, Fut>(
        &self,
        pipeline: &PaymentPipeline,
        f: F,
        is_fault: impl Fn(&E) -> bool + Sync,
    ) -> Guarded<T, E>
    where
        F: Fn() -> Fut + Sync,
        Fut: Future<Output = Result<T, E>> + Send,
        T: Send,
        E: Send,
    {
        if let Some(breaker) = &self.breaker
            && !matches!(breaker.state(), State::Closed | State::Disabled)
        {
            self.counters.deferred.incr();
            let retry_after = breaker.check().err().and_then(|open| open.retry_after());
            return Err(PolicyError::CircuitOpen { retry_after });
        }
        let clock = pipeline.clock();
        let within = self.latency.deadline();
        let deadline = clock.now().saturating_add(levee::core::nanos(within));
        let (f, is_fault) = (&f, &is_fault);
        let attempt = |ctx: PolicyContext<'_>| {
            // The tightest of the pipeline's deadlines and this wait's (the context's).
            let call = self.attempt(clock, ctx.deadline(), f, is_fault);
            async move {
                tokio::select! {
                    biased;
                    outcome = call => outcome.map_err(Cut::Fault),
                    () = clock.sleep_until(deadline) => {
                        self.counters.attempt_timeouts.incr();
                        Err(Cut::Deadline)
                    }
                }
            }
        };
        // The context's deadline keeps the retry from starting an attempt past it (and the
        // pipeline's own timeouts from arming timers that could not fire first).
        let ctx = PolicyContext::new(clock).with_deadline(deadline);
        pipeline.run_with(&attempt, ctx).await.map_err(|e| match e {
            PolicyError::Operation(Cut::Fault(e)) => PolicyError::Operation(e),
            PolicyError::Operation(Cut::Deadline) => PolicyError::Timeout { timeout: within },
            PolicyError::Timeout { timeout } => PolicyError::Timeout { timeout },
            PolicyError::CircuitOpen { retry_after } => PolicyError::CircuitOpen { retry_after },
            PolicyError::RateLimited { retry_after } => PolicyError::RateLimited { retry_after },
            PolicyError::BulkheadFull { max_concurrent } => {
                PolicyError::BulkheadFull { max_concurrent }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn latency(config: CheckoutConfig) -> AnswerLatency {
        AnswerLatency::new(&config)
    }

    #[test]
    fn the_deadline_follows_the_recent_answers_within_floor_and_cap() {
        let l = latency(CheckoutConfig::default());
        // Too few answers: the whole `timeout`.
        for _ in 0..MIN_SAMPLES - 1 {
            l.record(Duration::from_millis(20));
        }
        assert_eq!(l.deadline(), Duration::from_secs(1));
        // Ten answers of 1..=10 ms... then 20 ms: 4 x the p90.
        let l = latency(CheckoutConfig::default());
        for ms in 1..=100 {
            l.record(Duration::from_millis(ms));
        }
        assert_eq!(l.deadline(), Duration::from_millis(360), "4 x p90 (90 ms)");
        // Fast answers: the floor.
        for _ in 0..SAMPLES {
            l.record(Duration::from_micros(100));
        }
        assert_eq!(l.deadline(), Duration::from_millis(50));
        // Slow answers push out the old ones; the cap bounds the deadline.
        for _ in 0..SAMPLES {
            l.record(Duration::from_millis(700));
        }
        assert_eq!(l.deadline(), Duration::from_secs(1));
        // Off: always the cap.
        let off = latency(CheckoutConfig { latency_aware: false, ..CheckoutConfig::default() });
        for _ in 0..SAMPLES {
            off.record(Duration::from_millis(1));
        }
        assert_eq!(off.deadline(), Duration::from_secs(1));
    }

    #[test]
    fn a_few_slow_answers_stay_above_the_percentile() {
        let l = latency(CheckoutConfig { latency_multiplier: 2.0, ..CheckoutConfig::default() });
        for i in 0..100 {
            // 5 % slow: the p90 is still the fast 30 ms.
            l.record(Duration::from_millis(if i % 20 == 0 { 900 } else { 30 }));
        }
        assert_eq!(l.deadline(), Duration::from_millis(60));
    }
}
