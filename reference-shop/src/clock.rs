//! The shop's time: wall-clock milliseconds for what is stored (order deadlines), and the same
//! reading as a monotonic [`levee::core::Clock`] for the primitives.
//!
//! Production reads the OS clock; tests build the shop on a [`ManualClock`] and move time by
//! hand, so "an unpaid order is cancelled after 30 minutes" is observed without waiting.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use levee::core::{Clock, ManualClock, Sleep, SystemClock};

/// Wall-clock time that never goes backwards: the wall time at start plus monotonic elapsed.
#[derive(Clone)]
pub struct ShopClock {
    base_wall_ms: i64,
    start_mono: u64,
    mono: Arc<dyn Clock>,
}

impl std::fmt::Debug for ShopClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShopClock").field("now_ms", &self.now_ms()).finish()
    }
}

fn wall_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl ShopClock {
    /// The OS clock.
    #[must_use]
    pub fn system() -> Self {
        Self::on(Arc::new(SystemClock))
    }

    /// A clock that moves only when `manual` is advanced; it starts at the current wall time.
    #[must_use]
    pub fn manual(manual: ManualClock) -> Self {
        Self::on(Arc::new(manual))
    }

    fn on(mono: Arc<dyn Clock>) -> Self {
        Self { base_wall_ms: wall_now_ms(), start_mono: mono.now(), mono }
    }

    /// Milliseconds since the Unix epoch.
    #[must_use]
    pub fn now_ms(&self) -> i64 {
        let elapsed_ms = self.mono.now().saturating_sub(self.start_mono) / 1_000_000;
        self.base_wall_ms + i64::try_from(elapsed_ms).unwrap_or(i64::MAX / 2)
    }

    /// `now_ms() + d`.
    #[must_use]
    pub fn after_ms(&self, d: Duration) -> i64 {
        self.now_ms() + i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 4)
    }
}

impl ShopClock {
    fn base_nanos(&self) -> u64 {
        u64::try_from(self.base_wall_ms).unwrap_or(0) * 1_000_000
    }
}

impl Clock for ShopClock {
    /// Nanoseconds since the Unix epoch (monotonic: wall time at start plus elapsed).
    fn now(&self) -> u64 {
        let elapsed = self.mono.now().saturating_sub(self.start_mono);
        self.base_nanos() + elapsed
    }

    /// Sleeps on the underlying clock until it reads what makes this one read `deadline`: so
    /// a manual shop clock's sleeps wake when a test moves it.
    fn sleep_until(&self, deadline: u64) -> Sleep {
        let mono = deadline.saturating_sub(self.base_nanos()).saturating_add(self.start_mono);
        self.mono.sleep_until(mono)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manual_shop_clock_sleeps_until_the_manual_clock_gets_there() {
        let manual = ManualClock::new();
        let clock = ShopClock::manual(manual.clone());
        let deadline = clock.now() + 5_000_000;
        let mover = manual.clone();
        let t = std::thread::spawn(move || {
            while mover.pending_sleeps() == 0 {
                std::thread::yield_now();
            }
            mover.advance(Duration::from_millis(5));
        });
        levee::core::block_on(clock.sleep_until(deadline));
        assert_eq!(clock.now(), deadline);
        t.join().unwrap();
    }
}
