//! Cheap thread-local randomness for jitter (backoff, TTL spread, limiter pacing).
//!
//! Not cryptographic. A xorshift64* generator per thread, seeded once from the thread's
//! identity and the time, costs a few nanoseconds and no lock, which is what jitter on a hot
//! path needs.

use std::cell::Cell;
use std::time::Duration;

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    // RandomState is seeded by the OS once per process and varies per instance: a good seed.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64),
    );
    h.finish() | 1 // xorshift must not start at zero
}

/// A uniformly distributed `u64`.
///
/// ```
/// let a = levee_core::random::next_u64();
/// let b = levee_core::random::next_u64();
/// assert_ne!(a, b);
/// ```
#[inline]
#[must_use]
pub fn next_u64() -> u64 {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    })
}

/// A uniformly distributed `f64` in `[0, 1)`.
///
/// ```
/// let x = levee_core::random::next_f64();
/// assert!((0.0..1.0).contains(&x));
/// ```
#[inline]
#[must_use]
pub fn next_f64() -> f64 {
    // The top 53 bits fill the mantissa exactly.
    (next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// A value in `0..bound` (zero when `bound` is zero), without modulo bias worth measuring.
///
/// ```
/// assert!(levee_core::random::below(6) < 6);
/// ```
#[inline]
#[must_use]
pub fn below(bound: u64) -> u64 {
    ((u128::from(next_u64()) * u128::from(bound)) >> 64) as u64
}

/// `base` spread uniformly by up to `fraction` either way: `base * (1 ± fraction)`.
/// `fraction` is clamped to `0.0..=1.0`.
///
/// ```
/// use std::time::Duration;
/// let d = levee_core::random::jitter(Duration::from_secs(10), 0.1);
/// assert!(d >= Duration::from_secs(9) && d <= Duration::from_secs(11));
/// ```
#[must_use]
pub fn jitter(base: Duration, fraction: f64) -> Duration {
    let fraction = if fraction.is_nan() { 0.0 } else { fraction.clamp(0.0, 1.0) };
    let factor = 1.0 + fraction * (2.0 * next_f64() - 1.0);
    base.mul_f64(factor)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_stay_in_range() {
        for _ in 0..10_000 {
            assert!(next_f64() < 1.0);
            assert!(below(7) < 7);
            let d = jitter(Duration::from_millis(100), 0.5);
            assert!(d >= Duration::from_millis(50) && d <= Duration::from_millis(150));
        }
        assert_eq!(below(0), 0);
        assert_eq!(jitter(Duration::from_secs(1), f64::NAN), Duration::from_secs(1));
    }

    #[test]
    fn below_is_roughly_uniform() {
        let mut buckets = [0u32; 4];
        for _ in 0..40_000 {
            buckets[below(4) as usize] += 1;
        }
        assert!(buckets.iter().all(|&b| (9_000..11_000).contains(&b)), "{buckets:?}");
    }
}
