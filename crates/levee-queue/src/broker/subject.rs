//! Subject filters in the NATS style: dot-separated tokens, `*` matches exactly one token,
//! a final `>` matches one or more.
//!
//! `orders.*` matches `orders.placed` but not `orders` or `orders.placed.eu`;
//! `orders.>` matches `orders.placed` and `orders.placed.eu` but not `orders`.

use std::fmt;

use super::error::BrokerError;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Literal(Box<str>),
    One,
    Rest,
}

/// A compiled subject filter.
///
/// ```
/// use levee_queue::broker::SubjectFilter;
///
/// let f = SubjectFilter::new("orders.>").unwrap();
/// assert!(f.matches("orders.placed"));
/// assert!(f.matches("orders.placed.eu"));
/// assert!(!f.matches("payments.ok"));
/// assert!(SubjectFilter::new("orders.>.eu").is_err()); // `>` must come last
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct SubjectFilter {
    source: Box<str>,
    tokens: Box<[Token]>,
}

impl fmt::Debug for SubjectFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SubjectFilter").field(&self.source).finish()
    }
}

impl fmt::Display for SubjectFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl SubjectFilter {
    /// Compiles `pattern`.
    ///
    /// # Errors
    /// [`BrokerError::InvalidFilter`] when the pattern is empty, has an empty token
    /// (`a..b`, a leading or trailing dot), a `>` that is not the last token, or a wildcard
    /// mixed into a token (`ord*`).
    pub fn new(pattern: &str) -> Result<Self, BrokerError> {
        let invalid =
            |reason: &'static str| BrokerError::InvalidFilter { filter: pattern.into(), reason };
        if pattern.is_empty() {
            return Err(invalid("is empty"));
        }
        let parts: Vec<&str> = pattern.split('.').collect();
        let mut tokens = Vec::with_capacity(parts.len());
        for (i, part) in parts.iter().enumerate() {
            let token = match *part {
                "" => return Err(invalid("has an empty token")),
                "*" => Token::One,
                ">" if i + 1 == parts.len() => Token::Rest,
                ">" => return Err(invalid("`>` must be the last token")),
                p if p.contains(['*', '>']) => {
                    return Err(invalid("a wildcard must be a whole token"));
                }
                p => Token::Literal(p.into()),
            };
            tokens.push(token);
        }
        Ok(Self { source: pattern.into(), tokens: tokens.into() })
    }

    /// The pattern as written.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// True when `subject` matches.
    #[must_use]
    pub fn matches(&self, subject: &str) -> bool {
        let mut parts = subject.split('.');
        for token in self.tokens.iter() {
            match token {
                Token::Rest => return parts.next().is_some_and(|p| !p.is_empty()),
                Token::One => match parts.next() {
                    Some(p) if !p.is_empty() => {}
                    _ => return false,
                },
                Token::Literal(lit) => match parts.next() {
                    Some(p) if p == &**lit => {}
                    _ => return false,
                },
            }
        }
        parts.next().is_none()
    }
}

/// Checks that a published subject is well formed: non-empty tokens, no wildcard.
///
/// # Errors
/// [`BrokerError::InvalidSubject`] saying what is wrong.
pub fn validate_subject(subject: &str) -> Result<(), BrokerError> {
    let invalid =
        |reason: &'static str| BrokerError::InvalidSubject { subject: subject.into(), reason };
    if subject.is_empty() {
        return Err(invalid("is empty"));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(invalid("has an empty token"));
    }
    if subject.contains(['*', '>']) {
        return Err(invalid("a published subject cannot contain wildcards"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(p: &str, s: &str) -> bool {
        SubjectFilter::new(p).unwrap().matches(s)
    }

    #[test]
    fn literals_and_wildcards() {
        assert!(m("orders", "orders"));
        assert!(!m("orders", "orders.placed"));
        assert!(m("orders.*", "orders.placed"));
        assert!(!m("orders.*", "orders"));
        assert!(!m("orders.*", "orders.placed.eu"));
        assert!(m("orders.*.eu", "orders.placed.eu"));
        assert!(!m("orders.*.eu", "orders.placed.us"));
        assert!(m("orders.>", "orders.placed"));
        assert!(m("orders.>", "orders.placed.eu"));
        assert!(!m("orders.>", "orders"));
        assert!(m(">", "anything.at.all"));
        assert!(m("*", "one"));
        assert!(!m("*", "one.two"));
    }

    #[test]
    fn bad_patterns_are_errors() {
        for p in ["", ".", "a..b", "a.", ".a", "a.>.b", "ord*", "a.b>"] {
            assert!(SubjectFilter::new(p).is_err(), "{p:?} accepted");
        }
    }

    #[test]
    fn subjects_are_validated() {
        assert!(validate_subject("orders.placed").is_ok());
        for s in ["", "a..b", "a.*", "a.>", ".a"] {
            assert!(validate_subject(s).is_err(), "{s:?} accepted");
        }
    }
}
