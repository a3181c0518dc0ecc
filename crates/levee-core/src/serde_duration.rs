//! serde for `Duration` settings (feature `serde`): `#[serde(with = "levee_core::serde_duration")]`
//! on a `Duration` field, `#[serde(with = "levee_core::serde_duration::option")]` on an
//! `Option<Duration>` field, `#[serde(with = "levee_core::serde_duration::vec")]` on a
//! `Vec<Duration>` field (a schedule).
//!
//! Reads a string with a unit (`"30s"`, `"250ms"`, `"1.5s"`, `"1m"`, `"1h"`, `"100us"`: see
//! [`parse_duration`]) or a number of milliseconds (`250`, `0.5`); writes a string in the
//! largest exact unit ([`format_duration`]).
//!
//! ```
//! use std::time::Duration;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, PartialEq, Serialize, Deserialize)]
//! struct Settings {
//!     #[serde(with = "levee_core::serde_duration")]
//!     timeout: Duration,
//!     #[serde(with = "levee_core::serde_duration::option", default)]
//!     max_wait: Option<Duration>,
//! }
//!
//! let s: Settings = serde_json::from_str(r#"{"timeout": "250ms", "max_wait": 1500}"#).unwrap();
//! assert_eq!(s.timeout, Duration::from_millis(250));
//! assert_eq!(s.max_wait, Some(Duration::from_millis(1500)));
//! assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"timeout":"250ms","max_wait":"1500ms"}"#);
//!
//! let s: Settings = serde_json::from_str(r#"{"timeout": "1m"}"#).unwrap();
//! assert_eq!((s.timeout, s.max_wait), (Duration::from_secs(60), None));
//! assert!(serde_json::from_str::<Settings>(r#"{"timeout": "soon"}"#).is_err());
//! ```

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer, de};

use crate::{format_duration, parse_duration};

struct Visitor;

impl de::Visitor<'_> for Visitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a duration such as \"30s\" or \"250ms\", or a number of milliseconds")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        parse_duration(v).map_err(E::custom)
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
        Duration::try_from_secs_f64(v / 1000.0).map_err(|_| {
            E::custom("a duration must be a finite number of milliseconds, at least 0")
        })
    }
}

/// Writes `d` as a string such as `"250ms"`.
///
/// # Errors
/// Those of the serializer.
pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format_duration(*d))
}

/// Reads `"250ms"`-style strings or a number of milliseconds.
///
/// # Errors
/// A malformed, negative or out-of-range duration, or a value of another type.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(Visitor)
}

/// One duration read as [`deserialize`] reads it, for the containers below.
#[derive(Deserialize)]
struct Wrapped(#[serde(deserialize_with = "deserialize")] Duration);

/// The same for an `Option<Duration>` field: `None` is written as the format's none (a
/// missing TOML key needs `#[serde(default)]` as well).
pub mod option {
    use super::*;

    /// Writes `Some(d)` as a string such as `"250ms"`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&format_duration(*d)),
            None => s.serialize_none(),
        }
    }

    /// Reads an optional duration.
    ///
    /// # Errors
    /// As [`deserialize`](super::deserialize).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
    }
}

/// The same for a `Vec<Duration>` field, such as a backoff schedule: a list of durations
/// (`["1s", "5s", "30s"]`), each read and written as a single one is.
pub mod vec {
    use super::*;

    /// Writes each duration as a string such as `"250ms"`.
    ///
    /// # Errors
    /// Those of the serializer.
    pub fn serialize<S: Serializer>(ds: &[Duration], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(ds.iter().map(|d| format_duration(*d)))
    }

    /// Reads a list of durations.
    ///
    /// # Errors
    /// As [`deserialize`](super::deserialize), for any element; or a value that is not a
    /// list.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Duration>, D::Error> {
        Ok(Vec::<Wrapped>::deserialize(d)?.into_iter().map(|w| w.0).collect())
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct S {
        #[serde(with = "super")]
        d: Duration,
        #[serde(with = "super::option", default)]
        o: Option<Duration>,
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Schedule {
        #[serde(with = "super::vec")]
        backoff: Vec<Duration>,
    }

    #[test]
    fn a_schedule_is_a_list_of_durations() {
        let s: Schedule = toml::from_str(r#"backoff = ["500ms", 1000, "1m"]"#).unwrap();
        let want = [Duration::from_millis(500), Duration::from_secs(1), Duration::from_secs(60)];
        assert_eq!(s.backoff, want);
        assert_eq!(serde_json::to_string(&s).unwrap(), r#"{"backoff":["500ms","1s","1m"]}"#);
        let empty: Schedule = serde_json::from_str(r#"{"backoff": []}"#).unwrap();
        assert!(empty.backoff.is_empty());
        let err = serde_json::from_str::<Schedule>(r#"{"backoff": ["1s", "soon"]}"#).unwrap_err();
        assert!(err.to_string().contains("not a duration"), "{err}");
        assert!(serde_json::from_str::<Schedule>(r#"{"backoff": "1s"}"#).is_err());
    }

    fn json(text: &str) -> Result<S, serde_json::Error> {
        serde_json::from_str(text)
    }

    #[test]
    fn reads_strings_and_milliseconds() {
        assert_eq!(json(r#"{"d": "30s"}"#).unwrap(), S { d: Duration::from_secs(30), o: None });
        assert_eq!(json(r#"{"d": 250, "o": "1h"}"#).unwrap().o, Some(Duration::from_secs(3600)));
        assert_eq!(json(r#"{"d": 250}"#).unwrap().d, Duration::from_millis(250));
        assert_eq!(json(r#"{"d": 0.5}"#).unwrap().d, Duration::from_micros(500));
        assert_eq!(json(r#"{"d": "100us", "o": null}"#).unwrap().o, None);
        // TOML integers are signed.
        let s: S = toml::from_str("d = 1500\no = \"1m\"").unwrap();
        assert_eq!(s, S { d: Duration::from_millis(1500), o: Some(Duration::from_secs(60)) });
    }

    #[test]
    fn rejects_bad_durations_with_a_message() {
        let err = json(r#"{"d": "2 fortnights"}"#).unwrap_err().to_string();
        assert!(err.contains("unknown unit"), "{err}");
        let err = json(r#"{"d": -3}"#).unwrap_err().to_string();
        assert!(err.contains("negative"), "{err}");
        let err = json(r#"{"d": -0.5}"#).unwrap_err().to_string();
        assert!(err.contains("at least 0"), "{err}");
        let err = json(r#"{"d": 1e300}"#).unwrap_err().to_string();
        assert!(err.contains("at least 0"), "{err}");
        let err = json(r#"{"d": true}"#).unwrap_err().to_string();
        assert!(err.contains("a duration such as"), "{err}");
        assert!(json(r#"{"d": "fast"}"#).unwrap_err().to_string().contains("not a duration"));
    }

    #[test]
    fn writes_strings_that_read_back() {
        let s = S { d: Duration::from_millis(1500), o: Some(Duration::from_secs(90)) };
        let text = serde_json::to_string(&s).unwrap();
        assert_eq!(text, r#"{"d":"1500ms","o":"90s"}"#);
        assert_eq!(json(&text).unwrap(), s);
        let none = S { d: Duration::ZERO, o: None };
        assert_eq!(serde_json::to_string(&none).unwrap(), r#"{"d":"0s","o":null}"#);
        let toml_text = toml::to_string(&s).unwrap();
        assert_eq!(toml::from_str::<S>(&toml_text).unwrap(), s);
    }
}
