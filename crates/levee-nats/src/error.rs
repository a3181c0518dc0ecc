//! Turning the NATS client's errors into [`BrokerError`]s.
//!
//! async-nats has one error-kind enum per operation; what levee's callers need from all of
//! them is one distinction: could not reach the server or got no answer in time
//! ([`BrokerError::Unavailable`], transient: retry) versus the server refused
//! ([`BrokerError::Backend`]).

use std::fmt;

use levee_queue::broker::BrokerError;

/// Kinds whose `Debug` name says the server was not reached or did not answer in time.
const UNREACHABLE: &[&str] =
    &["TimedOut", "NoResponders", "BrokenPipe", "Disconnected", "Timeout", "ConnectionClosed"];

/// Maps an async-nats error of any operation, `what` naming the operation.
pub(crate) fn nats<K>(what: &str, error: &async_nats::error::Error<K>) -> BrokerError
where
    K: Clone + PartialEq + fmt::Debug + fmt::Display,
{
    let kind = format!("{:?}", error.kind());
    if UNREACHABLE.iter().any(|k| kind.starts_with(k)) {
        BrokerError::Unavailable { reason: format!("{what}: {error}") }
    } else {
        BrokerError::Backend { reason: format!("{what}: {error}") }
    }
}

/// A request that got no answer within `timeout`.
pub(crate) fn timed_out(what: &str, timeout: std::time::Duration) -> BrokerError {
    BrokerError::Unavailable { reason: format!("{what}: no answer within {timeout:?}") }
}

/// Maps an error the client only hands out boxed (a message stream's item), by its text.
pub(crate) fn boxed(what: &str, error: &(dyn std::error::Error + Send + Sync)) -> BrokerError {
    let text = error.to_string();
    let lower = text.to_ascii_lowercase();
    if ["timed out", "timeout", "disconnected", "no responders", "broken pipe"]
        .iter()
        .any(|k| lower.contains(k))
    {
        BrokerError::Unavailable { reason: format!("{what}: {text}") }
    } else {
        BrokerError::Backend { reason: format!("{what}: {text}") }
    }
}
