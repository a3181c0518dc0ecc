//! A retry budget: retries may be at most a fraction of requests over a sliding window,
//! plus a small floor per second, so retries cannot multiply load during an outage.
//!
//! The idea is Finagle's `RetryBudget` (and tower's `TpsBudget`): every request deposits
//! `ratio` of a token, every retry withdraws one whole token, and both expire after
//! `window`. A reserve of `min_per_sec * window` tokens lets a quiet service still retry.
//!
//! How it works: the window is a ring of [`RetryBudget::BUCKETS`] time buckets. Each bucket is one
//! `AtomicU64` holding `(epoch: u32, amount: i32)`, where `epoch` numbers the bucket's time
//! slice and `amount` is the net of deposits and withdrawals in milli-tokens. A write CASes
//! the word: if the stored epoch is stale the bucket is reset to the new epoch and the
//! write's amount in the same step, so no concurrent write is lost and none is counted in
//! the wrong slice. The balance is the reserve plus the sum of the buckets whose epoch lies
//! in the window. Checking the balance and withdrawing are two steps, so `n` threads
//! withdrawing at the same instant may overdraw by at most `n - 1` tokens.
//!
//! The ratio and the floor can change at run time ([`RetryBudget::reconfigure`]): each is one
//! atomic read where it is used, so a change never blocks a request.

use std::time::Duration;

use levee_core::sync::{AtomicI64, AtomicU64, CachePadded, Mutex, Ordering};
use levee_core::{Clock, ConfigError, FastClock, nanos};

const BUCKETS: usize = 10;
/// Milli-tokens in one token (one retry).
const TOKEN: i64 = 1000;

/// Limits retries to a fraction of requests over a time window. Share one budget (in an
/// `Arc`) between every retry policy that calls the same backend.
///
/// ```
/// use std::time::Duration;
/// use levee_core::ManualClock;
/// use levee_policy::RetryBudget;
///
/// let clock = ManualClock::new();
/// // Retries up to 20 % of requests over 10 s, and no floor.
/// let budget = RetryBudget::builder().ratio(0.2).min_per_sec(0).build_with_clock(clock).unwrap();
/// for _ in 0..10 {
///     budget.deposit();
/// }
/// assert!(budget.try_withdraw());
/// assert!(budget.try_withdraw());
/// assert!(!budget.try_withdraw(), "10 requests at 20 % pay for two retries");
/// ```
pub struct RetryBudget {
    clock: Box<dyn Clock>,
    buckets: Box<[CachePadded<AtomicU64>]>,
    bucket_nanos: u64,
    /// Milli-tokens one request deposits (from `ratio`).
    deposit: AtomicI64,
    /// Milli-tokens always available (from `min_per_sec` and the window).
    reserve: AtomicI64,
    /// The settings in force; changed only by `reconfigure`, under this lock.
    settings: Mutex<RetryBudgetBuilder>,
}

/// Settings of a [`RetryBudget`].
///
/// ```
/// use std::time::Duration;
/// use levee_policy::{Retry, RetryBudget};
///
/// // Retries may add at most 10 % to the load, plus 5 per second, over a 10 s window.
/// let budget = RetryBudget::builder()
///     .window(Duration::from_secs(10))
///     .ratio(0.1)
///     .min_per_sec(5)
///     .build_shared()?;
/// let retry = Retry::builder().max_attempts(3).budget(budget.clone()).build()?;
/// assert!(retry.budget().is_some());
/// # Ok::<(), levee_core::ConfigError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "serde", serde(default, deny_unknown_fields))]
pub struct RetryBudgetBuilder {
    /// How long deposits and withdrawals count (default 10 s, at least 10 ms).
    #[cfg_attr(feature = "serde", serde(with = "levee_core::serde_duration"))]
    pub window: Duration,
    /// Retries allowed per request (default 0.2: one retry per five requests; up to 1000).
    pub ratio: f64,
    /// Retries allowed per second regardless of traffic (default 10).
    pub min_per_sec: u32,
}

impl Default for RetryBudgetBuilder {
    fn default() -> Self {
        Self { window: Duration::from_secs(10), ratio: 0.2, min_per_sec: 10 }
    }
}

impl RetryBudgetBuilder {
    /// Sets the window.
    #[must_use]
    pub fn window(mut self, window: Duration) -> Self {
        self.window = window;
        self
    }

    /// Sets the ratio of retries to requests.
    #[must_use]
    pub fn ratio(mut self, ratio: f64) -> Self {
        self.ratio = ratio;
        self
    }

    /// Sets the floor of retries per second.
    #[must_use]
    pub fn min_per_sec(mut self, min_per_sec: u32) -> Self {
        self.min_per_sec = min_per_sec;
        self
    }

    /// A budget on the default clock.
    ///
    /// # Errors
    /// See [`build_with_clock`](Self::build_with_clock).
    pub fn build(self) -> Result<RetryBudget, ConfigError> {
        self.build_with_clock(FastClock)
    }

    /// Shorthand for `Arc::new(self.build()?)`, what [`RetryBuilder::budget`](crate::RetryBuilder::budget) takes.
    ///
    /// # Errors
    /// See [`build_with_clock`](Self::build_with_clock).
    pub fn build_shared(self) -> Result<std::sync::Arc<RetryBudget>, ConfigError> {
        self.build().map(std::sync::Arc::new)
    }

    /// A budget reading time from `clock`.
    ///
    /// # Errors
    /// `window` under 10 ms or over a day (`window`), `ratio` negative, above 1000 or not
    /// finite (`ratio`).
    pub fn build_with_clock(self, clock: impl Clock) -> Result<RetryBudget, ConfigError> {
        let (deposit, reserve) = self.amounts()?;
        Ok(RetryBudget {
            clock: Box::new(clock),
            buckets: (0..BUCKETS).map(|_| CachePadded::new(AtomicU64::new(0))).collect(),
            bucket_nanos: nanos(self.window) / BUCKETS as u64,
            deposit: AtomicI64::new(deposit),
            reserve: AtomicI64::new(reserve),
            settings: Mutex::new(self),
        })
    }

    /// Validates the settings: milli-tokens per request and the reserve.
    fn amounts(&self) -> Result<(i64, i64), ConfigError> {
        if self.window < Duration::from_millis(10) || self.window > Duration::from_secs(86_400) {
            return Err(ConfigError::new("window", "must be between 10ms and 1 day"));
        }
        if !(self.ratio.is_finite() && (0.0..=1000.0).contains(&self.ratio)) {
            return Err(ConfigError::new(
                "ratio",
                format!("must be a number in 0.0..=1000.0, got {}", self.ratio),
            ));
        }
        let reserve = i64::from(self.min_per_sec)
            .saturating_mul(TOKEN)
            .saturating_mul(self.window.as_millis() as i64)
            / 1000;
        Ok(((self.ratio * TOKEN as f64).round() as i64, reserve))
    }
}

#[inline]
fn pack(epoch: u32, amount: i32) -> u64 {
    (u64::from(epoch) << 32) | u64::from(amount as u32)
}

#[inline]
fn unpack(word: u64) -> (u32, i32) {
    ((word >> 32) as u32, word as u32 as i32)
}

impl std::fmt::Debug for RetryBudget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RetryBudget")
            .field("available", &self.available())
            .field("deposit_millitokens", &self.deposit.load(Ordering::Relaxed))
            .field("reserve_millitokens", &self.reserve.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl RetryBudget {
    /// Number of time buckets the window is divided into: the window slides in steps of a
    /// tenth of its length.
    pub const BUCKETS: usize = BUCKETS;

    /// Settings with the defaults: 10 s window, 20 % ratio, 10 per second floor.
    #[must_use]
    pub fn builder() -> RetryBudgetBuilder {
        RetryBudgetBuilder::default()
    }

    #[inline]
    fn epoch(&self) -> u32 {
        // Truncation is intended: epochs compare by wrapping difference, and 2^32 buckets of
        // at least 1 ms are 49 days, far beyond any window.
        (self.clock.now() / self.bucket_nanos) as u32
    }

    fn add(&self, epoch: u32, amount: i64) {
        let bucket = &self.buckets[epoch as usize % BUCKETS];
        let mut current = bucket.load(Ordering::Relaxed);
        loop {
            let (stored, value) = unpack(current);
            let base = if stored == epoch { i64::from(value) } else { 0 };
            let next = (base + amount).clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
            // Relaxed: the bucket word is the whole state; nothing else is published with it.
            match bucket.compare_exchange_weak(
                current,
                pack(epoch, next),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return,
                Err(actual) => current = actual,
            }
        }
    }

    fn balance_at(&self, epoch: u32) -> i64 {
        // Relaxed: a setting; a balance racing a change uses either floor.
        let mut sum = self.reserve.load(Ordering::Relaxed);
        for bucket in self.buckets.iter() {
            let (stored, value) = unpack(bucket.load(Ordering::Relaxed));
            if epoch.wrapping_sub(stored) < BUCKETS as u32 {
                sum += i64::from(value);
            }
        }
        sum
    }

    /// Records one request (the first attempt of a call).
    #[inline]
    pub fn deposit(&self) {
        // Relaxed: a setting; a deposit racing a change uses either ratio.
        let deposit = self.deposit.load(Ordering::Relaxed);
        if deposit > 0 {
            self.add(self.epoch(), deposit);
        }
    }

    /// Takes one retry from the budget; false when it has none left.
    pub fn try_withdraw(&self) -> bool {
        let epoch = self.epoch();
        if self.balance_at(epoch) < TOKEN {
            return false;
        }
        self.add(epoch, -TOKEN);
        true
    }

    /// Whole retries available now.
    #[must_use]
    pub fn available(&self) -> u64 {
        (self.balance_at(self.epoch()).max(0) / TOKEN) as u64
    }

    /// The settings in force.
    #[must_use]
    pub fn settings(&self) -> RetryBudgetBuilder {
        *self.settings.lock()
    }

    /// Changes the ratio and the floor now, keeping the window's deposits and withdrawals;
    /// returns the settings it replaces. Callable from any thread: requests never wait for it.
    ///
    /// **Rule.** What the window holds is kept: deposits already made keep the value they
    /// were made with and leave the window as before, withdrawals stay withdrawn. The new
    /// `ratio` applies to requests from now on, so the budget moves to the new ratio over one
    /// window. The new floor (`min_per_sec * window`) applies at once: lowering it can leave
    /// the balance below zero, so no retry is allowed until deposits or time repay it.
    ///
    /// **Limits.** The window is fixed at build time (it numbers the buckets): a different
    /// `window` is refused.
    ///
    /// ```
    /// use levee_core::ManualClock;
    /// use levee_policy::RetryBudget;
    ///
    /// let budget = RetryBudget::builder().ratio(0.1).min_per_sec(0)
    ///     .build_with_clock(ManualClock::new())?;
    /// for _ in 0..10 {
    ///     budget.deposit();
    /// }
    /// assert_eq!(budget.available(), 1);
    /// budget.reconfigure(budget.settings().ratio(0.5))?;
    /// for _ in 0..10 {
    ///     budget.deposit();
    /// }
    /// assert_eq!(budget.available(), 6, "1 kept + 10 requests at the new 50 %");
    /// # Ok::<(), levee_core::ConfigError>(())
    /// ```
    ///
    /// # Errors
    /// As [`build_with_clock`](RetryBudgetBuilder::build_with_clock), or `window` when it
    /// differs from the budget's; the budget keeps its settings.
    pub fn reconfigure(
        &self,
        settings: RetryBudgetBuilder,
    ) -> Result<RetryBudgetBuilder, ConfigError> {
        let (deposit, reserve) = settings.amounts()?;
        let mut current = self.settings.lock();
        if settings.window != current.window {
            return Err(ConfigError::new(
                "window",
                "the window is fixed at build time and cannot change while running",
            ));
        }
        // Relaxed: settings read by `deposit` and `balance_at`; nothing else is published.
        self.deposit.store(deposit, Ordering::Relaxed);
        self.reserve.store(reserve, Ordering::Relaxed);
        Ok(std::mem::replace(&mut *current, settings))
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use levee_core::ManualClock;

    fn budget(ratio: f64, min_per_sec: u32, clock: &ManualClock) -> RetryBudget {
        RetryBudget::builder()
            .window(Duration::from_secs(10))
            .ratio(ratio)
            .min_per_sec(min_per_sec)
            .build_with_clock(clock.clone())
            .unwrap()
    }

    #[test]
    fn floor_applies_without_traffic() {
        let clock = ManualClock::new();
        let b = budget(0.0, 2, &clock);
        assert_eq!(b.available(), 20, "2 per second over 10 s");
        for _ in 0..20 {
            assert!(b.try_withdraw());
        }
        assert!(!b.try_withdraw());
    }

    #[test]
    fn withdrawals_expire_with_the_window() {
        let clock = ManualClock::new();
        let b = budget(0.5, 0, &clock);
        for _ in 0..4 {
            b.deposit();
        }
        assert!(b.try_withdraw() && b.try_withdraw());
        assert!(!b.try_withdraw(), "4 requests at 50 % give two retries");
        // Half a window later new deposits count beside the old ones.
        clock.advance(Duration::from_secs(5));
        b.deposit();
        b.deposit();
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
        // Once the first half leaves the window, its deposits and withdrawals go with it:
        // the balance is that of the second half alone (2 * 0.5 - 1 = 0).
        clock.advance(Duration::from_secs(6));
        assert_eq!(b.available(), 0);
        // After a full idle window everything is gone.
        clock.advance(Duration::from_secs(10));
        b.deposit();
        b.deposit();
        assert_eq!(b.available(), 1);
    }

    #[test]
    fn long_idle_gaps_reset_stale_buckets() {
        let clock = ManualClock::new();
        let b = budget(1.0, 0, &clock);
        for _ in 0..5 {
            b.deposit();
        }
        clock.advance(Duration::from_secs(3600));
        assert_eq!(b.available(), 0);
        b.deposit();
        assert_eq!(b.available(), 1, "the old bucket at the same ring slot was reset");
    }

    #[test]
    fn bad_settings_are_named() {
        let e = RetryBudget::builder().window(Duration::from_millis(1)).build().unwrap_err();
        assert_eq!(e.setting, "window");
        let e = RetryBudget::builder().ratio(-1.0).build().unwrap_err();
        assert_eq!(e.setting, "ratio");
        let e = RetryBudget::builder().ratio(f64::INFINITY).build().unwrap_err();
        assert_eq!(e.setting, "ratio");
    }

    #[test]
    fn reconfiguring_keeps_the_window_and_applies_ratio_and_floor() {
        let clock = ManualClock::new();
        let b = budget(1.0, 1, &clock); // floor 10
        for _ in 0..5 {
            b.deposit();
        }
        assert_eq!(b.available(), 15);
        let old = b.reconfigure(b.settings().ratio(0.0).min_per_sec(0)).unwrap();
        assert_eq!((old.ratio, old.min_per_sec), (1.0, 1));
        assert_eq!(b.available(), 5, "deposits kept, floor gone at once");
        b.deposit();
        assert_eq!(b.available(), 5, "the new ratio deposits nothing");
        for _ in 0..5 {
            assert!(b.try_withdraw());
        }
        assert!(!b.try_withdraw());
        // The deposits leave with the window as before.
        b.reconfigure(b.settings().ratio(1.0)).unwrap();
        clock.advance(Duration::from_secs(10));
        assert_eq!(b.available(), 0);
        b.deposit();
        assert_eq!(b.available(), 1);
        // A lower floor can leave the balance negative: no retry until it is repaid.
        b.reconfigure(b.settings().min_per_sec(1)).unwrap();
        for _ in 0..11 {
            assert!(b.try_withdraw());
        }
        b.reconfigure(b.settings().min_per_sec(0)).unwrap();
        assert_eq!(b.available(), 0);
        b.deposit();
        assert_eq!(b.available(), 0, "still repaying the floor's 10");
    }

    #[test]
    fn reconfiguring_refuses_a_new_window_and_bad_values() {
        let b = budget(0.2, 1, &ManualClock::new());
        let err = b.reconfigure(b.settings().window(Duration::from_secs(5))).unwrap_err();
        assert_eq!(err.setting, "window");
        assert_eq!(b.reconfigure(b.settings().ratio(-1.0)).unwrap_err().setting, "ratio");
        assert_eq!(b.settings().ratio, 0.2);
    }

    #[test]
    fn concurrent_deposits_and_withdrawals_balance() {
        let clock = ManualClock::new();
        let b = budget(1.0, 0, &clock);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        b.deposit();
                    }
                });
            }
        });
        assert_eq!(b.available(), 4000);
        let taken = std::sync::atomic::AtomicU64::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    while b.try_withdraw() {
                        taken.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                });
            }
        });
        let taken = taken.into_inner();
        assert!((4000..4004).contains(&taken), "overdraw bounded by threads - 1: {taken}");
    }
}
