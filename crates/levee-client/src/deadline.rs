//! Deadlines that travel with a request, hop by hop.
//!
//! **On the wire** a deadline is the time the caller will still wait, in the header
//! [`TIMEOUT_HEADER`] (`levee-timeout`), written in gRPC's `grpc-timeout` grammar: one to
//! eight ASCII digits and a unit, `H` hours, `M` minutes, `S` seconds, `m` milliseconds, `u`
//! microseconds, `n` nanoseconds (`250m` is 250 ms). A relative time, not a wall-clock
//! instant, so no two hosts need synchronised clocks; the grammar is gRPC's, so the value is
//! compact, exactly specified, and a server that speaks gRPC reads it too: the server side
//! also accepts `grpc-timeout` and takes the smaller of the two. The sender writes the
//! finest unit whose eight digits hold the remaining time, rounded down, so a hop never
//! grants more time than it has.
//!
//! **In a process** a [`Deadline`] is a reading of a [`Clock`] (with the clock), so it can
//! be compared with any other clock's time through [`Deadline::remaining`]. The server
//! layer ([`DeadlineLayer`](crate::DeadlineLayer)) parses the header, puts the deadline in the
//! request's extensions and makes it the task's [`Deadline::current`] while the handler
//! runs; a [`Client`](crate::Client) call inside the handler picks it up and sends on the
//! smaller of its own timeout and what is left.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use http::{HeaderMap, HeaderValue};
use levee_core::{Clock, nanos};

/// The header levee sends the remaining time in (gRPC `grpc-timeout` grammar).
pub const TIMEOUT_HEADER: &str = "levee-timeout";
/// gRPC's header, also read on the server side.
pub const GRPC_TIMEOUT_HEADER: &str = "grpc-timeout";

/// The largest value eight digits hold.
const MAX_VALUE: u64 = 99_999_999;

/// A malformed timeout header value.
///
/// ```
/// use levee_client::deadline::parse_timeout;
///
/// let err = parse_timeout(b"12x").unwrap_err();
/// assert_eq!(err.value, "12x");
/// println!("refused: {}", err.reason);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid timeout header `{value}`: {reason}")]
pub struct InvalidTimeout {
    /// The value as received (lossy UTF-8, at most 32 characters).
    pub value: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Parses a `grpc-timeout` value: 1 to 8 ASCII digits and one unit letter.
///
/// ```
/// use std::time::Duration;
/// use levee_client::deadline::parse_timeout;
///
/// assert_eq!(parse_timeout(b"250m"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_timeout(b"3S"), Ok(Duration::from_secs(3)));
/// assert!(parse_timeout(b"123456789n").is_err(), "nine digits");
/// assert!(parse_timeout(b"5 s").is_err());
/// ```
///
/// # Errors
/// [`InvalidTimeout`] saying what is wrong.
pub fn parse_timeout(value: &[u8]) -> Result<Duration, InvalidTimeout> {
    let bad = |reason| InvalidTimeout {
        value: String::from_utf8_lossy(&value[..value.len().min(32)]).into_owned(),
        reason,
    };
    let Some((&unit, digits)) = value.split_last() else {
        return Err(bad("empty"));
    };
    if digits.is_empty() {
        return Err(bad("no digits before the unit"));
    }
    if digits.len() > 8 {
        return Err(bad("more than 8 digits"));
    }
    let mut n = 0u64;
    for &d in digits {
        if !d.is_ascii_digit() {
            return Err(bad("not a number followed by a unit"));
        }
        n = n * 10 + u64::from(d - b'0');
    }
    Ok(match unit {
        b'H' => Duration::from_secs(n * 3600),
        b'M' => Duration::from_secs(n * 60),
        b'S' => Duration::from_secs(n),
        b'm' => Duration::from_millis(n),
        b'u' => Duration::from_micros(n),
        b'n' => Duration::from_nanos(n),
        _ => return Err(bad("the unit must be one of H M S m u n")),
    })
}

/// Writes `timeout` in the `grpc-timeout` grammar: the finest unit whose eight digits hold
/// it, rounded down (never more time than given; at most 99,999,999 hours).
///
/// ```
/// use std::time::Duration;
/// use levee_client::deadline::format_timeout;
///
/// assert_eq!(format_timeout(Duration::from_millis(50)), "50000000n");
/// assert_eq!(format_timeout(Duration::from_millis(250)), "250000u");
/// assert_eq!(format_timeout(Duration::from_secs(2)), "2000000u");
/// assert_eq!(format_timeout(Duration::from_secs(3600)), "3600000m");
/// ```
#[must_use]
pub fn format_timeout(timeout: Duration) -> String {
    let ns = timeout.as_nanos();
    let units: [(u128, char); 6] = [
        (1, 'n'),
        (1_000, 'u'),
        (1_000_000, 'm'),
        (1_000_000_000, 'S'),
        (60_000_000_000, 'M'),
        (3_600_000_000_000, 'H'),
    ];
    for (per, unit) in units {
        let n = ns / per;
        if n <= u128::from(MAX_VALUE) {
            return format!("{n}{unit}");
        }
    }
    format!("{MAX_VALUE}H")
}

/// The time left according to the request's timeout headers (`levee-timeout` and
/// `grpc-timeout`, the smaller if both), or `None` without either.
///
/// # Errors
/// [`InvalidTimeout`] when a header is present but malformed (or repeated with
/// different values; the smallest valid one is not guessed at).
pub fn timeout_from_headers(headers: &HeaderMap) -> Result<Option<Duration>, InvalidTimeout> {
    let mut least: Option<Duration> = None;
    for name in [TIMEOUT_HEADER, GRPC_TIMEOUT_HEADER] {
        for value in headers.get_all(name) {
            let t = parse_timeout(value.as_bytes())?;
            least = Some(least.map_or(t, |l| l.min(t)));
        }
    }
    Ok(least)
}

/// The header value for `remaining`.
pub(crate) fn header_value(remaining: Duration) -> HeaderValue {
    // Digits and a unit letter are always a valid header value.
    HeaderValue::from_str(&format_timeout(remaining))
        .unwrap_or_else(|_| HeaderValue::from_static("0n"))
}

tokio::task_local! {
    static CURRENT: Deadline;
}

/// When the caller stops waiting: a reading of a clock, with the clock.
///
/// ```
/// use std::sync::Arc;
/// use std::time::Duration;
/// use levee_client::Deadline;
/// use levee_core::ManualClock;
///
/// let clock = ManualClock::new();
/// let deadline = Deadline::after(Arc::new(clock.clone()), Duration::from_millis(300));
/// clock.advance(Duration::from_millis(100));
/// assert_eq!(deadline.remaining(), Duration::from_millis(200));
/// clock.advance(Duration::from_secs(1));
/// assert!(deadline.is_expired());
/// ```
#[derive(Clone)]
pub struct Deadline {
    at: u64,
    clock: Arc<dyn Clock>,
}

impl Deadline {
    /// `timeout` from now on `clock`.
    #[must_use]
    pub fn after(clock: Arc<dyn Clock>, timeout: Duration) -> Self {
        let at = clock.now().saturating_add(nanos(timeout));
        Self { at, clock }
    }

    /// The instant `at`, a reading of `clock`.
    #[must_use]
    pub fn at(clock: Arc<dyn Clock>, at: u64) -> Self {
        Self { at, clock }
    }

    /// Time left (zero once passed).
    #[must_use]
    pub fn remaining(&self) -> Duration {
        Duration::from_nanos(self.at.saturating_sub(self.clock.now()))
    }

    /// True once passed.
    #[must_use]
    pub fn is_expired(&self) -> bool {
        self.clock.now() >= self.at
    }

    /// The deadline as a reading of its clock.
    #[must_use]
    pub fn instant(&self) -> u64 {
        self.at
    }

    /// The clock the deadline is a reading of.
    #[must_use]
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// The deadline of the task this runs in, set by [`scope`](Self::scope) (the server
    /// layer does that for each request). `None` outside any scope. Tasks spawned from a
    /// handler do not inherit it: pass the deadline along explicitly.
    #[must_use]
    pub fn current() -> Option<Self> {
        CURRENT.try_with(Clone::clone).ok()
    }

    /// Runs `future` with this deadline as [`current`](Self::current).
    pub fn scope<F: Future>(self, future: F) -> tokio::task::futures::TaskLocalFuture<Self, F> {
        CURRENT.scope(self, future)
    }
}

impl fmt::Debug for Deadline {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Deadline")
            .field("at", &self.at)
            .field("remaining", &self.remaining())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use levee_core::ManualClock;
    use proptest::prelude::*;

    #[test]
    fn every_unit_parses() {
        let cases: [(&[u8], Duration); 6] = [
            (b"2H", Duration::from_secs(7200)),
            (b"2M", Duration::from_secs(120)),
            (b"2S", Duration::from_secs(2)),
            (b"2m", Duration::from_millis(2)),
            (b"2u", Duration::from_micros(2)),
            (b"2n", Duration::from_nanos(2)),
        ];
        for (text, expected) in cases {
            assert_eq!(parse_timeout(text), Ok(expected));
        }
        assert_eq!(parse_timeout(b"99999999H"), Ok(Duration::from_secs(99_999_999 * 3600)));
        for bad in [&b""[..], b"m", b"12", b"1x", b"-1m", b"+1m", b"1.5S", b"123456789m", b"\xffm"]
        {
            assert!(parse_timeout(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn headers_give_the_smaller_and_refuse_garbage() {
        let mut h = HeaderMap::new();
        assert_eq!(timeout_from_headers(&h), Ok(None));
        h.insert(TIMEOUT_HEADER, HeaderValue::from_static("300m"));
        h.insert(GRPC_TIMEOUT_HEADER, HeaderValue::from_static("1S"));
        assert_eq!(timeout_from_headers(&h), Ok(Some(Duration::from_millis(300))));
        h.append(TIMEOUT_HEADER, HeaderValue::from_static("200m"));
        assert_eq!(timeout_from_headers(&h), Ok(Some(Duration::from_millis(200))));
        h.insert(GRPC_TIMEOUT_HEADER, HeaderValue::from_static("soon"));
        assert!(timeout_from_headers(&h).is_err());
    }

    #[tokio::test]
    async fn the_current_deadline_is_the_scopes() {
        assert!(Deadline::current().is_none());
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new());
        let d = Deadline::after(clock, Duration::from_secs(1));
        let seen = d.scope(async { Deadline::current().map(|d| d.remaining()) }).await;
        assert_eq!(seen, Some(Duration::from_secs(1)));
    }

    proptest! {
        /// Formatting never grants more time, loses at most one unit of the chosen scale,
        /// and what it writes parses back.
        #[test]
        fn format_round_trips_rounding_down(ns in 0u64..=u64::MAX) {
            let t = Duration::from_nanos(ns);
            let text = format_timeout(t);
            let back = parse_timeout(text.as_bytes()).unwrap();
            prop_assert!(back <= t);
            // A coarser unit is only chosen when the finer one needs more than eight digits,
            // so at least six digits remain: the loss is under one part in 10^5.
            let lost = (t - back).as_nanos();
            prop_assert!(lost * 100_000 <= t.as_nanos(), "{t:?} -> {text}");
        }

        /// Arbitrary bytes: a value or a typed error, never a panic.
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12)) {
            let _ = parse_timeout(&bytes);
        }
    }
}
