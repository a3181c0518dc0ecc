//! Durations as text, for settings files: `"30s"`, `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`,
//! `"800us"`, `"100ns"`.

use std::time::Duration;

/// The units a duration may be written in, with their length in seconds.
const UNITS: [(&str, f64); 8] = [
    ("ns", 1e-9),
    ("us", 1e-6),
    ("µs", 1e-6),
    ("ms", 1e-3),
    ("s", 1.0),
    ("m", 60.0),
    ("min", 60.0),
    ("h", 3600.0),
];

/// Parses a duration written as a number and a unit: `"250ms"`, `"2s"`, `"1.5s"`, `"5m"`
/// (or `"5min"`), `"1h"`, `"800us"` (or `"800µs"`), `"100ns"`. The number may have a
/// fraction; white space around the number and the unit is ignored. The result is rounded to
/// the nearest nanosecond.
///
/// ```
/// use std::time::Duration;
/// use levee_core::parse_duration;
///
/// assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
/// assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
/// assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
/// assert!(parse_duration("250").is_err(), "a unit is required");
/// assert!(parse_duration("3 weeks").is_err());
/// ```
///
/// # Errors
/// A message naming the text and what is wrong with it (no number, a missing or unknown
/// unit, out of range), for a serde error or a [`ConfigError`](crate::ConfigError).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a duration like \"250ms\""))?;
    let scale = match unit.trim() {
        "" => return Err(format!("`{text}` needs a unit (ns, us, ms, s, m or h)")),
        unit => match UNITS.iter().find(|(name, _)| *name == unit) {
            Some(&(_, scale)) => scale,
            None => {
                return Err(format!(
                    "unknown unit `{unit}` in duration `{text}` (use ns, us, ms, s, m or h)"
                ));
            }
        },
    };
    Duration::try_from_secs_f64(value * scale)
        .map_err(|_| format!("duration `{text}` is out of range"))
}

/// Writes `d` in the largest unit that is exact (`"90s"`, `"1500ms"`, `"2m"`, `"1h"`), the
/// way [`parse_duration`] reads it.
///
/// ```
/// use std::time::Duration;
/// use levee_core::format_duration;
///
/// assert_eq!(format_duration(Duration::from_secs(90)), "90s");
/// assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
/// assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
/// assert_eq!(format_duration(Duration::ZERO), "0s");
/// ```
#[must_use]
pub fn format_duration(d: Duration) -> String {
    let n = d.as_nanos();
    if n == 0 {
        return "0s".to_owned();
    }
    for (name, scale) in [
        ("h", 3_600_000_000_000u128),
        ("m", 60_000_000_000),
        ("s", 1_000_000_000),
        ("ms", 1_000_000),
        ("us", 1_000),
    ] {
        if n % scale == 0 {
            return format!("{}{name}", n / scale);
        }
    }
    format!("{n}ns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_unit() {
        for (text, d) in [
            ("30s", Duration::from_secs(30)),
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            ("0.1s", Duration::from_millis(100)),
            ("2m", Duration::from_secs(120)),
            ("2min", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("100us", Duration::from_micros(100)),
            ("10us", Duration::from_micros(10)),
            ("800µs", Duration::from_micros(800)),
            ("7ns", Duration::from_nanos(7)),
            (" 3 s ", Duration::from_secs(3)),
            ("0s", Duration::ZERO),
        ] {
            assert_eq!(parse_duration(text), Ok(d), "{text}");
        }
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        let err = |text| parse_duration(text).unwrap_err();
        assert!(err("fast").contains("not a duration"), "{}", err("fast"));
        assert!(err("s").contains("not a duration"));
        assert!(err("-1s").contains("not a duration"));
        assert!(err("12").contains("needs a unit"));
        assert!(err("2 fortnights").contains("unknown unit"), "{}", err("2 fortnights"));
        assert!(err("3 parsecs").contains("unknown unit"));
        assert!(err("1e400s").contains("unknown unit"));
        assert!(err(&format!("{}h", "9".repeat(400))).contains("out of range"));
    }

    #[test]
    fn formats_in_the_largest_exact_unit_and_reads_back() {
        assert_eq!(format_duration(Duration::from_secs(90)), "90s");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::ZERO), "0s");
        assert_eq!(format_duration(Duration::from_micros(800)), "800us");
        assert_eq!(format_duration(Duration::from_nanos(1_001)), "1001ns");
        for d in [
            Duration::ZERO,
            Duration::from_nanos(7),
            Duration::from_micros(800),
            Duration::from_millis(250),
            Duration::from_millis(1500),
            Duration::from_secs(3),
            Duration::from_secs(7200),
            Duration::new(86_400, 1),
        ] {
            assert_eq!(parse_duration(&format_duration(d)), Ok(d), "{d:?}");
        }
    }
}
