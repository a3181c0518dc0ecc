//! Durations in config files: `"30s"`, `"250ms"`, `"1.5s"`, `"2m"`, `"1h"`, or a bare number
//! of milliseconds. Written back in the largest unit that is exact (`"90s"`, `"1500ms"`).

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de};

const UNITS: [(&str, u64); 8] = [
    ("ns", 1),
    ("us", 1_000),
    ("µs", 1_000),
    ("ms", 1_000_000),
    ("s", 1_000_000_000),
    ("m", 60_000_000_000),
    ("min", 60_000_000_000),
    ("h", 3_600_000_000_000),
];

/// Parses `"<number><unit>"`; the number may have a fraction.
pub(crate) fn parse(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let unit = unit.trim();
    let Some(&(_, scale)) = UNITS.iter().find(|(name, _)| *name == unit) else {
        return Err(format!("unknown unit in duration `{text}` (use ns, us, ms, s, m or h)"));
    };
    let value: f64 = number.parse().map_err(|_| format!("invalid duration `{text}`"))?;
    let nanos = value * scale as f64;
    if !(nanos.is_finite() && nanos >= 0.0 && nanos < u64::MAX as f64) {
        return Err(format!("duration `{text}` is out of range"));
    }
    Ok(Duration::from_nanos(nanos.round() as u64))
}

/// The shortest exact text for `d`.
pub(crate) fn format(d: Duration) -> String {
    let n = levee_core::nanos(d);
    if n == 0 {
        return "0s".to_owned();
    }
    for (name, scale) in [
        ("h", 3_600_000_000_000u64),
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

struct Visitor;

impl de::Visitor<'_> for Visitor {
    type Value = Duration;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a duration such as \"30s\" or \"250ms\", or a number of milliseconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse(v).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        Ok(Duration::from_millis(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        u64::try_from(v)
            .map(Duration::from_millis)
            .map_err(|_| E::custom("a duration cannot be negative"))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        if v.is_finite() && v >= 0.0 {
            Ok(Duration::from_secs_f64(v / 1000.0))
        } else {
            Err(E::custom("a duration must be a finite number of milliseconds, at least 0"))
        }
    }
}

/// `#[serde(with = "duration_serde")]` for `Duration` fields.
pub(crate) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format(*d))
}

/// `#[serde(with = "duration_serde")]` for `Duration` fields.
pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(Visitor)
}

/// `#[serde(with = "duration_serde::option")]` for `Option<Duration>` fields.
pub(crate) mod option {
    use super::*;

    #[derive(Deserialize)]
    struct Wrapped(#[serde(deserialize_with = "super::deserialize")] Duration);

    pub(crate) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&format(*d)),
            None => s.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_formats() {
        for (text, d) in [
            ("30s", Duration::from_secs(30)),
            ("250ms", Duration::from_millis(250)),
            ("1.5s", Duration::from_millis(1500)),
            ("2m", Duration::from_secs(120)),
            ("2min", Duration::from_secs(120)),
            ("1h", Duration::from_secs(3600)),
            ("10us", Duration::from_micros(10)),
            ("7ns", Duration::from_nanos(7)),
            (" 3 s ", Duration::from_secs(3)),
        ] {
            assert_eq!(parse(text), Ok(d), "{text}");
        }
        assert!(parse("3 parsecs").is_err());
        assert!(parse("s").is_err());
        assert!(parse("1e400s").is_err());
        assert_eq!(format(Duration::from_secs(90)), "90s");
        assert_eq!(format(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format(Duration::from_secs(7200)), "2h");
        assert_eq!(format(Duration::ZERO), "0s");
        assert_eq!(format(Duration::from_nanos(1_001)), "1001ns");
    }
}
