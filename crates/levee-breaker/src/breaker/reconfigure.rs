//! Changing a running breaker's settings (issue 22): thresholds, slow-call rules, half-open
//! trials and open waits, keeping the window, the state and the backoff history.

use levee_core::{Clock, ConfigError, nanos};

use super::{CircuitBreaker, Config, MS};
use crate::settings::Rules;
use crate::state::Word;
use crate::{BreakerSettings, State};

impl<C: Clock> CircuitBreaker<C> {
    /// Runs on `settings` from now on, keeping what the breaker has seen; returns the
    /// settings it replaces. Callable from any thread while calls go through: a call never
    /// waits for it (it reads the settings before or after, one acquire load), and changes
    /// are applied one at a time.
    ///
    /// **Rules.**
    /// - The window and the state are kept: the calls recorded so far count, and a closed,
    ///   open or half-open breaker stays so. Thresholds (failure and slow-call rates, the
    ///   failure count, minimum calls, what is slow) apply from the next decision: the next
    ///   recorded failure or slow call (a success never opens the circuit), so a window
    ///   already over a lowered threshold opens on its next failure, not on the change.
    /// - Half-open: trials already issued stay valid; the new `half_open_calls` decides how
    ///   many completed trials make the verdict (at least those issued so far).
    /// - Open waits: the current open period ends at the earlier of its deadline and *entry
    ///   time + the new wait* for its number of consecutive openings: a shorter wait takes
    ///   effect at once (probes start sooner), a longer one from the next opening (a period
    ///   already promised to callers in `Open::until` never grows). The consecutive-openings
    ///   count is kept, so an exponential wait continues from where it was.
    ///
    /// **Limits.** The sliding window's kind and size are fixed at build time (they size its
    /// storage): a different `window` is refused. A breaker forced open or disabled stays so.
    ///
    /// ```
    /// use std::time::Duration;
    /// use levee_breaker::{BreakerSettings, CircuitBreaker, OpenWait, State};
    /// use levee_core::ManualClock;
    ///
    /// let clock = ManualClock::new();
    /// let breaker = CircuitBreaker::builder()
    ///     .count_window(10)
    ///     .minimum_calls(4)
    ///     .failure_rate_threshold(80.0)
    ///     .open_wait(Duration::from_secs(60))
    ///     .clock(clock.clone())
    ///     .build()?;
    /// for _ in 0..3 {
    ///     let _ = breaker.call(|| Err::<(), _>("boom"));
    /// }
    /// breaker.call(|| Ok::<_, &str>(())).unwrap(); // 3 of 4 failed: 75 % < 80 %
    ///
    /// let mut settings = breaker.settings().clone();
    /// settings.failure_rate_threshold = 50.0;
    /// breaker.reconfigure(settings.clone())?;
    /// assert_eq!(breaker.state(), State::Closed, "the window is kept; judged at the next call");
    /// let _ = breaker.call(|| Err::<(), _>("boom")); // 4 of 5 failed
    /// assert_eq!(breaker.state(), State::Open);
    ///
    /// // A shorter wait shortens the current open period.
    /// settings.open_wait = OpenWait::fixed(Duration::from_secs(5));
    /// breaker.reconfigure(settings)?;
    /// clock.advance(Duration::from_secs(5));
    /// assert!(breaker.try_acquire().is_ok(), "half-open after 5 s, not 60");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first invalid setting, or `window` when it differs from
    /// the breaker's; the breaker keeps its settings.
    pub fn reconfigure(&self, settings: BreakerSettings) -> Result<BreakerSettings, ConfigError> {
        settings.validate()?;
        let _change = self.change.lock();
        let previous = self.config.load().get();
        if settings.window != previous.settings.window {
            return Err(ConfigError::new(
                "window",
                "the sliding window is sized at build time and cannot change while running",
            ));
        }
        let mut rules = Rules::new(&settings);
        // An open word's deadline is unwrapped against the longest wait it may have been
        // given (`open_until`): keep covering the waits of periods opened before the change.
        rules.max_wait_ms = rules.max_wait_ms.max(previous.rules.max_wait_ms);
        let old = previous.settings.clone();
        self.config.publish(Config { rules, settings });
        self.shorten_open_period();
        Ok(old)
    }

    /// Brings the current open period's deadline forward to entry + the new wait, if that is
    /// earlier (the rule in `reconfigure`).
    fn shorten_open_period(&self) {
        let now = self.clock.now();
        let mut word = self.word();
        while word.state() == State::Open {
            let Some(entered_ms) = self.entered.of(word.generation()) else {
                return; // entered an instant ago, already under the new settings
            };
            let Some(until) = self.open_until(word, now) else {
                return; // the wait has passed already
            };
            let wait = nanos(self.settings().open_wait.wait(u32::from(word.attempts())));
            let deadline_ms = entered_ms.saturating_add(wait.div_ceil(MS));
            if self.origin.saturating_add(deadline_ms.saturating_mul(MS)) >= until {
                return;
            }
            // Same generation: the entry note and the permits of this period stay valid.
            let next = Word::open(word.generation(), deadline_ms as u32, word.attempts());
            match self.cas(word, next) {
                Ok(()) => return,
                Err(actual) => word = actual,
            }
        }
    }
}
