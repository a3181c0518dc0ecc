//! Breaker + timeout + retry around calls to the payment provider.
//!
//! The breaker is levee-breaker's [`CircuitBreaker`] on the shop clock: it opens once its
//! window of the last 20 calls holds `breaker_failure_threshold` failures (or half of at least
//! that many calls failed), stays open `breaker_open_secs`, then lets one trial call decide.
//! Timeout (`tokio::time::timeout`) and the doubling, jittered retry around it are a small
//! STAND-IN for levee-policy's pipeline, which has not landed on main yet. The shop uses only
//! [`PaymentGuard::call`] and [`PaymentGuard::status`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use levee_breaker::{CircuitBreaker, State};
use serde::Serialize;

use crate::clock::ShopClock;
use crate::config::PaymentConfig;

/// Why a guarded call did not return a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GuardError<E> {
    /// The breaker is open: the call was not made.
    #[error("circuit open, retry in {retry_in_ms} ms")]
    Open {
        /// Until the breaker lets a probe through.
        retry_in_ms: u64,
    },
    /// The last attempt ran out of time.
    #[error("timed out")]
    Timeout,
    /// The call failed (the last attempt's error).
    #[error("{0}")]
    Failed(E),
}

/// The breaker's state, for `/admin/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
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

/// What the guard has done.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct GuardStatus {
    /// Breaker state now.
    pub state: BreakerState,
    /// Failed calls in the breaker's window.
    pub failures_in_window: u64,
    /// Calls made.
    pub calls: u64,
    /// Calls that failed or timed out.
    pub failures: u64,
    /// Calls refused by the open breaker.
    pub rejected: u64,
    /// Retries made.
    pub retries: u64,
    /// Times the breaker opened.
    pub opened: u64,
}

/// Breaker + timeout + retry.
#[derive(Debug)]
pub struct PaymentGuard {
    timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
    breaker: CircuitBreaker<ShopClock>,
    calls: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    opened: AtomicU64,
}

impl PaymentGuard {
    /// A guard with `config`'s settings, timed by `clock`.
    ///
    /// # Errors
    /// A breaker setting out of range, named.
    pub fn new(config: &PaymentConfig, clock: ShopClock) -> Result<Self, levee_core::ConfigError> {
        let threshold = config.breaker_failure_threshold.clamp(1, 20);
        let breaker = CircuitBreaker::builder()
            .name("payment-provider")
            .count_window(20)
            .minimum_calls(threshold)
            .failure_rate_threshold(50.0)
            .failure_count_threshold(threshold)
            .open_wait(levee_core::ConfigError::require_positive(
                "payment.breaker_open_secs",
                Duration::from_secs(config.breaker_open_secs),
            )?)
            .half_open_calls(1)
            .clock(clock)
            .build()?;
        Ok(Self {
            timeout: Duration::from_millis(config.timeout_ms),
            max_attempts: config.max_attempts.max(1),
            backoff: Duration::from_millis(config.retry_backoff_ms),
            breaker,
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        })
    }

    /// Calls `f` under the breaker, each attempt bounded by the timeout, retrying failures
    /// that `is_failure` calls provider faults. Errors for which it returns `false` (a
    /// declined card) are answers, not faults: they neither trip the breaker nor retry.
    ///
    /// # Errors
    /// [`GuardError::Open`] without calling, [`GuardError::Timeout`] or
    /// [`GuardError::Failed`] after the last attempt.
    pub async fn call<T, E, F, Fut>(
        &self,
        mut f: F,
        is_failure: impl Fn(&E) -> bool,
    ) -> Result<T, GuardError<E>>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, E>>,
    {
        let mut attempt = 0;
        loop {
            let permit = match self.breaker.try_acquire() {
                Ok(permit) => permit,
                Err(open) => {
                    self.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(GuardError::Open {
                        retry_in_ms: open.retry_after().map_or(0, |d| d.as_millis() as u64),
                    });
                }
            };
            self.calls.fetch_add(1, Ordering::Relaxed);
            let error = match tokio::time::timeout(self.timeout, f()).await {
                Ok(Ok(v)) => {
                    permit.success();
                    return Ok(v);
                }
                Ok(Err(e)) if !is_failure(&e) => {
                    permit.success();
                    return Err(GuardError::Failed(e));
                }
                Ok(Err(e)) => GuardError::Failed(e),
                Err(_) => GuardError::Timeout,
            };
            self.failures.fetch_add(1, Ordering::Relaxed);
            let was_open = self.is_open();
            permit.failure();
            if !was_open && self.is_open() {
                self.opened.fetch_add(1, Ordering::Relaxed);
            }
            attempt += 1;
            if attempt >= self.max_attempts {
                return Err(error);
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            let pause = self.backoff.saturating_mul(1 << (attempt - 1).min(10));
            tokio::time::sleep(levee_core::random::jitter(pause, 0.2)).await;
        }
    }

    fn is_open(&self) -> bool {
        matches!(self.breaker.state(), State::Open | State::ForcedOpen)
    }

    /// State and counters now.
    #[must_use]
    pub fn status(&self) -> GuardStatus {
        let metrics = self.breaker.metrics();
        let state = match metrics.state {
            State::Closed | State::Disabled => BreakerState::Closed,
            State::HalfOpen => BreakerState::HalfOpen,
            _ => BreakerState::Open,
        };
        GuardStatus {
            state,
            failures_in_window: metrics.failed_calls,
            calls: self.calls.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            rejected: self.rejected.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            opened: self.opened.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee_core::ManualClock;

    #[tokio::test]
    async fn opens_after_failures_and_recovers_after_cool_down() {
        let manual = ManualClock::new();
        let guard = PaymentGuard::new(
            &PaymentConfig {
                timeout_ms: 1000,
                max_attempts: 1,
                retry_backoff_ms: 0,
                breaker_failure_threshold: 2,
                breaker_open_secs: 5,
            },
            ShopClock::manual(manual.clone()),
        )
        .unwrap();
        let fail = || async { Err::<(), _>("down") };
        for _ in 0..2 {
            assert_eq!(guard.call(fail, |_| true).await, Err(GuardError::Failed("down")));
        }
        assert_eq!(guard.status().state, BreakerState::Open);
        assert!(matches!(
            guard.call(|| async { Ok::<_, &str>(1) }, |_| true).await,
            Err(GuardError::Open { .. })
        ));
        manual.advance(Duration::from_secs(5));
        assert_eq!(guard.call(|| async { Ok::<_, &str>(1) }, |_| true).await, Ok(1));
        assert_eq!(guard.status().state, BreakerState::Closed);
        // An answer that is not a fault neither trips nor retries.
        for _ in 0..3 {
            let _ = guard.call(|| async { Err::<(), _>("declined") }, |_| false).await;
        }
        assert_eq!(guard.status().state, BreakerState::Closed);
    }
}
