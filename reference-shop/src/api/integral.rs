//! Integers as JSON Schema's `integer` reads them: `59`, and also `59.0` or `5.9e1` (a number
//! with a zero fraction is an integer there, so a client generated from the document, or a
//! fuzzer, may send one). Used for the query and path integers, which arrive as text.

use serde::de::{Deserialize, Deserializer, Error};

/// Below 2^53 an `f64` holds every integer exactly.
const EXACT: f64 = 9_007_199_254_740_992.0;

/// `text` as an integer: its digits, or a float with a zero fraction below 2^53.
#[must_use]
pub fn parse(text: &str) -> Option<i64> {
    text.parse::<i64>().ok().or_else(|| from_f64(text.parse().ok()?))
}

/// `f` as an integer when it has a zero fraction and is below 2^53 (where an `f64` still
/// holds every integer exactly).
#[must_use]
pub fn from_f64(f: f64) -> Option<i64> {
    // In range by the test: the cast is exact.
    #[allow(clippy::cast_possible_truncation)]
    (f.fract() == 0.0 && f.abs() < EXACT).then_some(f as i64)
}

/// `deserialize_with` for an optional `u32` query value.
///
/// # Errors
/// A value that is not an integer in `0..=u32::MAX`.
pub fn opt_u32<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let text = String::deserialize(d)?;
    parse(&text)
        .and_then(|v| u32::try_from(v).ok())
        .map(Some)
        .ok_or_else(|| D::Error::custom(format!("`{text}` is not an integer in 0..=4294967295")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_with_or_without_a_fraction() {
        assert_eq!(parse("59"), Some(59));
        assert_eq!(parse("-3"), Some(-3));
        assert_eq!(parse("59.0"), Some(59));
        assert_eq!(parse("5.9e1"), Some(59));
        assert_eq!(parse("9223372036854775807"), Some(i64::MAX));
        for bad in ["5.5", "", "abc", "NaN", "inf", "1e300", "9223372036854775808"] {
            assert_eq!(parse(bad), None, "{bad}");
        }
    }
}
