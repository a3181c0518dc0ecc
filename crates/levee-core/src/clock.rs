//! Monotonic time as `u64` nanoseconds, injected into every primitive, and sleeps on it.
//!
//! Primitives never call `Instant::now()` or `tokio::time::sleep` themselves: they take a
//! [`Clock`] instance and read it, or sleep until one of its readings. Production code uses
//! [`FastClock`] or [`SystemClock`]; tests use [`ManualClock`](crate::ManualClock) and move
//! time by hand, so no test sleeps and every timing behaviour is deterministic.
//!
//! Nanoseconds in a `u64` cover 584 years, so a clock that starts at zero never wraps.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::sleep::Sleep;
use crate::sync::Arc;

/// A monotonic source of time in nanoseconds that async code can sleep on.
///
/// `now()` never goes backwards for one clock. The origin is arbitrary (each clock picks its
/// own), so only differences between two readings of the same clock mean anything.
///
/// [`sleep_until`](Self::sleep_until) returns a [`Sleep`] that completes once this clock
/// reads at least the deadline. The provided implementation is right for every clock that
/// follows real time: it waits `deadline - now()` of real time ([`Sleep::real_time`]: a tokio
/// timer inside a runtime, a parked thread inside [`block_on`](crate::block_on)).
/// [`ManualClock`](crate::ManualClock) completes its sleeps when it is moved. A clock with its
/// own way of waiting returns [`Sleep::from_future`].
///
/// The trait is dyn-compatible: an `Arc<dyn Clock>` reads and sleeps like the clock inside.
///
/// A primitive is generic over its clock, so tests drive it by hand:
///
/// ```
/// use std::time::Duration;
/// use levee_core::{Clock, ManualClock};
///
/// struct Lease<C: Clock> { clock: C, expires_at: u64 }
/// impl<C: Clock> Lease<C> {
///     fn expired(&self) -> bool { self.clock.now() >= self.expires_at }
/// }
///
/// let clock = ManualClock::new();
/// let lease = Lease { clock: clock.clone(), expires_at: 1_000 };
/// assert!(!lease.expired());
/// clock.advance(Duration::from_micros(1));
/// assert!(lease.expired());
/// assert_eq!(clock.elapsed_since(400), 600);
/// ```
pub trait Clock: Send + Sync + 'static {
    /// Nanoseconds since this clock's origin.
    fn now(&self) -> u64;

    /// Nanoseconds elapsed since an earlier reading, zero if `earlier` is in the future.
    #[inline]
    fn elapsed_since(&self, earlier: u64) -> u64 {
        self.now().saturating_sub(earlier)
    }

    /// A future that completes once this clock reads at least `deadline` (at once if it
    /// already does). Dropping it cancels it.
    ///
    /// The default waits `deadline - now()` of real time, which is right for clocks that
    /// follow real time; see [`Sleep`] for where such a sleep can be polled.
    fn sleep_until(&self, deadline: u64) -> Sleep {
        Sleep::real_time(Duration::from_nanos(deadline.saturating_sub(self.now())))
    }

    /// A future that completes once `duration` has passed on this clock.
    fn sleep(&self, duration: Duration) -> Sleep {
        self.sleep_until(self.now().saturating_add(nanos(duration)))
    }
}

/// Forwards every method, so wrappers keep a clock's own sleeps.
macro_rules! forward_clock {
    ($($wrapper:ident),+) => {$(
        impl<C: Clock + ?Sized> Clock for $wrapper<C> {
            #[inline]
            fn now(&self) -> u64 {
                (**self).now()
            }

            #[inline]
            fn elapsed_since(&self, earlier: u64) -> u64 {
                (**self).elapsed_since(earlier)
            }

            fn sleep_until(&self, deadline: u64) -> Sleep {
                (**self).sleep_until(deadline)
            }

            fn sleep(&self, duration: Duration) -> Sleep {
                (**self).sleep(duration)
            }
        }
    )+};
}

forward_clock!(Arc, Box);

/// Converts a `Duration` to nanoseconds, saturating at `u64::MAX` (584 years).
///
/// ```
/// use std::time::Duration;
/// assert_eq!(levee_core::nanos(Duration::from_millis(2)), 2_000_000);
/// assert_eq!(levee_core::nanos(Duration::MAX), u64::MAX);
/// ```
#[inline]
#[must_use]
pub const fn nanos(duration: Duration) -> u64 {
    // u64 arithmetic rather than `as_nanos()`'s u128: this runs on every clock read.
    match duration.as_secs().checked_mul(1_000_000_000) {
        Some(secs) => secs.saturating_add(duration.subsec_nanos() as u64),
        None => u64::MAX,
    }
}

/// The operating system's monotonic clock (the one `std::time::Instant` reads).
///
/// Zero-sized and `Copy`: every `SystemClock` shares one process-wide origin, so readings from
/// different instances compare. The origin is taken on first use.
///
/// On Linux and Android a reading is one `clock_gettime(CLOCK_MONOTONIC)` through the vDSO
/// (`rustix`), the call `Instant::now()` makes, and a subtraction: `Instant`'s own arithmetic
/// costs another 3 ns a read there. Elsewhere it is `Instant::now()` less the origin.
///
/// ```
/// use levee_core::{Clock, SystemClock};
///
/// let clock = SystemClock;
/// let start = clock.now();
/// assert!(clock.now() >= start);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SystemClock;

/// The moment every `SystemClock` reads as zero, as an `Instant` and (where `now` reads the
/// OS clock directly) as that clock's raw nanoseconds.
#[derive(Debug)]
struct SystemOrigin {
    instant: Instant,
    #[cfg(any(target_os = "linux", target_os = "android"))]
    raw: u64,
}

static ORIGIN: OnceLock<SystemOrigin> = OnceLock::new();

impl SystemOrigin {
    /// Takes the raw reading first, so it is at or before the `Instant`: a reading is then
    /// never below [`SystemClock::from_instant`] of an `Instant` taken before it (a deadline
    /// that an `Instant` says has passed has passed for the clock too). The pair is the
    /// closest of a few tries; readings run ahead of `from_instant` by the gap between the
    /// two reads, tens of nanoseconds.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    fn take() -> Self {
        let pair = || {
            let raw = raw_monotonic();
            let instant = Instant::now();
            (raw_monotonic().saturating_sub(raw), Self { instant, raw })
        };
        let mut closest = pair();
        for _ in 1..4 {
            let next = pair();
            if next.0 < closest.0 {
                closest = next;
            }
        }
        closest.1
    }

    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    fn take() -> Self {
        Self { instant: Instant::now() }
    }

    #[inline]
    fn get() -> &'static Self {
        ORIGIN.get_or_init(Self::take)
    }
}

/// `CLOCK_MONOTONIC` in nanoseconds: the clock std's `Instant` reads on Linux and Android.
#[cfg(any(target_os = "linux", target_os = "android"))]
#[inline]
fn raw_monotonic() -> u64 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    // The monotonic clock counts from boot: never negative, and u64 nanoseconds last 584 years.
    (t.tv_sec as u64).wrapping_mul(1_000_000_000).wrapping_add(t.tv_nsec as u64)
}

impl SystemClock {
    /// The `Instant` that reads as zero on every `SystemClock`.
    ///
    /// ```
    /// use levee_core::SystemClock;
    /// let reading = SystemClock::from_instant(std::time::Instant::now());
    /// assert_eq!(SystemClock::from_instant(SystemClock::to_instant(reading)), reading);
    /// assert!(SystemClock::origin() <= std::time::Instant::now());
    /// ```
    #[must_use]
    pub fn origin() -> Instant {
        SystemOrigin::get().instant
    }

    /// The `Instant` a reading of this clock stands for.
    #[must_use]
    pub fn to_instant(nanos: u64) -> Instant {
        Self::origin() + Duration::from_nanos(nanos)
    }

    /// Reads an `Instant` on this clock's scale (zero for instants before the origin).
    #[must_use]
    pub fn from_instant(instant: Instant) -> u64 {
        nanos(instant.saturating_duration_since(Self::origin()))
    }
}

impl Clock for SystemClock {
    #[inline]
    fn now(&self) -> u64 {
        // The origin is taken before the clock is read, so the difference is never negative.
        let origin = SystemOrigin::get();
        #[cfg(any(target_os = "linux", target_os = "android"))]
        return raw_monotonic().saturating_sub(origin.raw);
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        return nanos(Instant::now().duration_since(origin.instant));
    }
}

/// The CPU's time-stamp counter, calibrated to nanoseconds: about 2.5x cheaper to read than
/// [`SystemClock`] (see `benches/clock.rs`), so it is the default clock of levee's hot paths.
///
/// Backed by [`quanta`](https://docs.rs/quanta), which checks at start-up that the TSC is
/// invariant and synchronised across cores and otherwise falls back to the OS monotonic clock.
/// Zero-sized and `Copy`; every `FastClock` shares one process-wide origin (taken on first use,
/// which also runs quanta's calibration, up to a few milliseconds once per process).
///
/// ```
/// use levee_core::{Clock, FastClock};
///
/// let clock = FastClock;
/// let start = clock.now();
/// assert!(clock.now() >= start);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FastClock;

struct FastOrigin {
    clock: quanta::Clock,
    raw_origin: u64,
}

static FAST: OnceLock<FastOrigin> = OnceLock::new();

impl FastClock {
    #[inline]
    fn origin() -> &'static FastOrigin {
        FAST.get_or_init(|| {
            let clock = quanta::Clock::new();
            let raw_origin = clock.raw();
            FastOrigin { clock, raw_origin }
        })
    }
}

impl Clock for FastClock {
    #[inline]
    fn now(&self) -> u64 {
        let origin = Self::origin();
        origin.clock.delta_as_nanos(origin.raw_origin, origin.clock.raw())
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic() {
        let clock = SystemClock;
        let mut last = clock.now();
        for _ in 0..10_000 {
            let now = clock.now();
            assert!(now >= last, "went back from {last} to {now}");
            last = now;
        }
    }

    #[test]
    fn fast_clock_is_monotonic_and_tracks_real_time() {
        let clock = FastClock;
        let mut last = clock.now();
        for _ in 0..10_000 {
            let now = clock.now();
            assert!(now >= last, "went back from {last} to {now}");
            last = now;
        }
        // Both clocks count nanoseconds: an interval measured on each agrees to within a
        // generous margin (this asserts units, not speed).
        let (f0, s0) = (FastClock.now(), SystemClock.now());
        let mut x = 0u64;
        for i in 0..2_000_000u64 {
            x = std::hint::black_box(x.wrapping_add(i));
        }
        let (f1, s1) = (FastClock.now(), SystemClock.now());
        let (fast, system) = ((f1 - f0) as f64, (s1 - s0) as f64);
        assert!((fast / system - 1.0).abs() < 0.5, "fast {fast} ns vs system {system} ns");
    }

    #[test]
    fn system_clock_is_never_behind_an_earlier_instant() {
        for _ in 0..10_000 {
            let instant = Instant::now();
            let reading = SystemClock.now();
            assert!(reading >= SystemClock::from_instant(instant));
            assert!(SystemClock::to_instant(reading) >= instant);
        }
    }

    #[test]
    fn system_clock_round_trips_instants() {
        let reading = SystemClock.now();
        let instant = SystemClock::to_instant(reading);
        assert_eq!(SystemClock::from_instant(instant), reading);
    }

    #[test]
    fn nanos_saturates() {
        assert_eq!(nanos(Duration::from_secs(1)), 1_000_000_000);
        assert_eq!(nanos(Duration::MAX), u64::MAX);
    }
}
