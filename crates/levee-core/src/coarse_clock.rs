//! A clock read from memory: one background thread keeps a recent [`FastClock`] reading in an
//! atomic, and every `now()` is a single relaxed load.

use std::io;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::clock::{Clock, FastClock};
use crate::sleep::Sleep;

/// A [`FastClock`] reading kept fresh by a background thread, so reading it costs one load
/// instead of one time-stamp-counter read (about 1 ns instead of about 9 ns on the CI machine;
/// see `benches/limit.rs`).
///
/// The price is resolution: a reading lags real time by up to the updater's period (the
/// [`resolution`](Self::resolution), 1 ms unless the first [`with_resolution`](Self::with_resolution)
/// says otherwise), plus however long the updater waits for a CPU on a loaded machine. A
/// lagging clock makes a rate limiter stricter, never looser (capacity refills in steps of
/// one period), so choose this clock for a limiter whose burst covers at least `rate x
/// resolution` cells; below that it admits fewer calls than its quota. Timeouts and timers
/// need [`FastClock`].
///
/// Every `CoarseClock` shares one updater thread (started by the first constructor call,
/// never stopped) and reads on [`FastClock`]'s scale: a reading is at most the `FastClock`
/// reading taken at the same moment, and the two can be compared.
///
/// ```
/// use levee_core::{Clock, CoarseClock, FastClock};
///
/// let coarse = CoarseClock::new()?;
/// let reading = coarse.now();
/// assert!(reading <= FastClock.now());
/// assert!(coarse.now() >= reading);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CoarseClock {
    /// Only the constructors make one, after the updater has stored its first reading.
    _started: (),
}

/// The latest reading the updater stored, alone on its cache line: it is read on hot paths
/// everywhere, so no other static's writes may invalidate it.
static RECENT: Padded = Padded(AtomicU64::new(0));

/// An atomic on a cache line (two, for adjacent-line prefetch) of its own.
#[repr(align(128))]
struct Padded(AtomicU64);

/// The updater's period once it runs, or why it could not start (kept, so every later
/// constructor call fails the same way instead of handing out a clock nobody updates).
static UPDATER: OnceLock<Result<Duration, (io::ErrorKind, String)>> = OnceLock::new();

impl CoarseClock {
    /// The resolution used when the first caller does not choose one.
    pub const DEFAULT_RESOLUTION: Duration = Duration::from_millis(1);

    /// A coarse clock with the shared updater, started now at
    /// [`DEFAULT_RESOLUTION`](Self::DEFAULT_RESOLUTION) if it is not running yet.
    ///
    /// # Errors
    /// The operating system's error if the updater thread cannot be started.
    pub fn new() -> io::Result<Self> {
        Self::with_resolution(Self::DEFAULT_RESOLUTION)
    }

    /// A coarse clock whose updater stores a fresh reading every `resolution` (at least one
    /// microsecond). Only the first call in a process chooses; later calls share that
    /// updater, whatever they ask for ([`resolution`](Self::resolution) says which).
    ///
    /// # Errors
    /// The operating system's error if the updater thread cannot be started.
    pub fn with_resolution(resolution: Duration) -> io::Result<Self> {
        let started = UPDATER.get_or_init(|| {
            let period = resolution.max(Duration::from_micros(1));
            refresh();
            std::thread::Builder::new()
                .name("levee-coarse-clock".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(period);
                        refresh();
                    }
                })
                .map(|_| period)
                .map_err(|e| (e.kind(), e.to_string()))
        });
        match started {
            Ok(_) => Ok(Self { _started: () }),
            Err((kind, message)) => Err(io::Error::new(*kind, message.clone())),
        }
    }

    /// How often the shared updater refreshes the reading.
    #[must_use]
    pub fn resolution(&self) -> Duration {
        match UPDATER.get() {
            Some(Ok(period)) => *period,
            _ => Self::DEFAULT_RESOLUTION, // unreachable: a clock exists only once it runs
        }
    }

    /// How far behind [`FastClock`] this clock reads right now (for diagnostics).
    #[must_use]
    pub fn lag(&self) -> Duration {
        Duration::from_nanos(FastClock.now().saturating_sub(self.now()))
    }
}

/// Stores a fresh reading. Relaxed: readers need only this word's own order (coherence makes
/// the readings any one thread sees non-decreasing), and readings only grow (`fetch_max`: a
/// refresh from a test never races the updater backwards).
fn refresh() {
    RECENT.0.fetch_max(FastClock.now(), Ordering::Relaxed);
}

impl Clock for CoarseClock {
    #[inline]
    fn now(&self) -> u64 {
        RECENT.0.load(Ordering::Relaxed)
    }

    /// Waits the remaining real time, then brings the shared reading up to date itself
    /// (readings only move forward): the clock reads the deadline when the sleep ends, even
    /// when the updater thread was kept from running. (One allocation per sleep that waits.)
    fn sleep_until(&self, deadline: u64) -> Sleep {
        match deadline.saturating_sub(self.now()) {
            0 => Sleep::ready(),
            // A reading never runs ahead of the fast clock, so after `left` of real time the
            // fast clock reads at least `deadline`.
            left => Sleep::from_future(Box::pin(async move {
                Sleep::real_time(Duration::from_nanos(left)).await;
                refresh();
            })),
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_refresh_brings_it_up_to_the_fast_clock_and_never_past_it() {
        let coarse = CoarseClock::with_resolution(Duration::from_micros(200)).unwrap();
        let before = FastClock.now();
        // What the updater thread does every period, done here so the test waits for nothing.
        refresh();
        let reading = coarse.now();
        assert!(reading >= before, "a refresh stores a current reading");
        assert!(reading <= FastClock.now(), "never ahead of the fast clock");
    }

    #[test]
    fn readings_never_go_backwards_and_all_clocks_share_one_updater() {
        let a = CoarseClock::new().unwrap();
        let b = CoarseClock::with_resolution(Duration::from_secs(5)).unwrap();
        assert_eq!(a.resolution(), b.resolution(), "one updater per process");
        let mut last = a.now();
        for _ in 0..100_000 {
            let now = b.now();
            assert!(now >= last);
            last = now;
        }
    }
}
