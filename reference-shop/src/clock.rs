//! The shop's time: wall-clock milliseconds for what is stored (order deadlines), and the same
//! reading as a monotonic [`levee::core::Clock`] for the primitives.
//!
//! Production reads the OS clock; tests build the shop on a [`ManualClock`] and move time by
//! hand, so "an unpaid order is cancelled after 30 minutes" is observed without waiting.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use levee::core::{Clock, ManualClock, SystemClock};

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

impl Clock for ShopClock {
    /// Nanoseconds since the Unix epoch (monotonic: wall time at start plus elapsed).
    fn now(&self) -> u64 {
        let elapsed = self.mono.now().saturating_sub(self.start_mono);
        u64::try_from(self.base_wall_ms).unwrap_or(0) * 1_000_000 + elapsed
    }
}
