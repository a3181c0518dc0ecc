//! Breaker + timeout + retry around calls to the payment provider.
//!
//! STAND-IN until `levee-breaker` / `levee-policy` land on main: a consecutive-failures
//! breaker (closed -> open for a while -> one half-open probe), `tokio::time::timeout` and a
//! doubling retry. The shop uses only [`PaymentGuard::call`] and [`PaymentGuard::status`].

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use levee_core::Clock;
use parking_lot::Mutex;
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
    /// Failures in a row (while closed).
    pub consecutive_failures: u32,
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

#[derive(Debug, Clone, Copy)]
enum Breaker {
    Closed { failures: u32 },
    Open { until: u64 },
    HalfOpen { probing: bool },
}

/// Breaker + timeout + retry.
#[derive(Debug)]
pub struct PaymentGuard {
    clock: ShopClock,
    timeout: Duration,
    max_attempts: u32,
    backoff: Duration,
    threshold: u32,
    open_for_ns: u64,
    breaker: Mutex<Breaker>,
    calls: AtomicU64,
    failures: AtomicU64,
    rejected: AtomicU64,
    retries: AtomicU64,
    opened: AtomicU64,
}

impl PaymentGuard {
    /// A guard with `config`'s settings, timed by `clock`.
    #[must_use]
    pub fn new(config: &PaymentConfig, clock: ShopClock) -> Self {
        Self {
            clock,
            timeout: Duration::from_millis(config.timeout_ms),
            max_attempts: config.max_attempts.max(1),
            backoff: Duration::from_millis(config.retry_backoff_ms),
            threshold: config.breaker_failure_threshold.max(1),
            open_for_ns: config.breaker_open_secs.saturating_mul(1_000_000_000),
            breaker: Mutex::new(Breaker::Closed { failures: 0 }),
            calls: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            opened: AtomicU64::new(0),
        }
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
            self.admit()?;
            self.calls.fetch_add(1, Ordering::Relaxed);
            let error = match tokio::time::timeout(self.timeout, f()).await {
                Ok(Ok(v)) => {
                    self.record(true);
                    return Ok(v);
                }
                Ok(Err(e)) if !is_failure(&e) => {
                    self.record(true);
                    return Err(GuardError::Failed(e));
                }
                Ok(Err(e)) => GuardError::Failed(e),
                Err(_) => GuardError::Timeout,
            };
            self.failures.fetch_add(1, Ordering::Relaxed);
            self.record(false);
            attempt += 1;
            if attempt >= self.max_attempts {
                return Err(error);
            }
            self.retries.fetch_add(1, Ordering::Relaxed);
            let pause = self.backoff.saturating_mul(1 << (attempt - 1).min(10));
            tokio::time::sleep(levee_core::random::jitter(pause, 0.2)).await;
        }
    }

    fn admit<E>(&self) -> Result<(), GuardError<E>> {
        let now = self.clock.now();
        let mut b = self.breaker.lock();
        match *b {
            Breaker::Closed { .. } => Ok(()),
            Breaker::Open { until } if now >= until => {
                *b = Breaker::HalfOpen { probing: true };
                Ok(())
            }
            Breaker::HalfOpen { probing: false } => {
                *b = Breaker::HalfOpen { probing: true };
                Ok(())
            }
            Breaker::Open { until } => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(GuardError::Open { retry_in_ms: (until - now) / 1_000_000 })
            }
            Breaker::HalfOpen { probing: true } => {
                self.rejected.fetch_add(1, Ordering::Relaxed);
                Err(GuardError::Open { retry_in_ms: 0 })
            }
        }
    }

    fn record(&self, ok: bool) {
        let mut b = self.breaker.lock();
        *b = match (*b, ok) {
            (_, true) => Breaker::Closed { failures: 0 },
            (Breaker::Closed { failures }, false) if failures + 1 < self.threshold => {
                Breaker::Closed { failures: failures + 1 }
            }
            (Breaker::Open { until }, false) => Breaker::Open { until },
            (_, false) => {
                self.opened.fetch_add(1, Ordering::Relaxed);
                Breaker::Open { until: self.clock.now() + self.open_for_ns }
            }
        };
    }

    /// State and counters now.
    #[must_use]
    pub fn status(&self) -> GuardStatus {
        let (state, consecutive_failures) = match *self.breaker.lock() {
            Breaker::Closed { failures } => (BreakerState::Closed, failures),
            Breaker::Open { until } if self.clock.now() >= until => (BreakerState::HalfOpen, 0),
            Breaker::Open { .. } => (BreakerState::Open, 0),
            Breaker::HalfOpen { .. } => (BreakerState::HalfOpen, 0),
        };
        GuardStatus {
            state,
            consecutive_failures,
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
        );
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
