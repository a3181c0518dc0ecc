//! `[server.clients]`: what a client may hold of the shop, and for how long. Slow or greedy
//! clients are cut off here, before they can hold a bulkhead slot (issue 14, item 1).

use std::time::Duration;

use levee::core::ConfigError as E;
use serde::{Deserialize, Serialize};

use super::{SettingError, section};

/// Connection limits and read timeouts, enforced by the listener (`http::serve`) and the
/// request-body reader (`http::body`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClientLimits {
    /// A connection's request headers must arrive within this, from its first byte (and an
    /// idle keep-alive connection must start its next request within it); else the
    /// connection is closed.
    #[serde(with = "levee::core::serde_duration")]
    pub header_read_timeout: Duration,
    /// A request's whole body (up to `server.max_body_bytes`) must arrive within this, from
    /// the end of its headers; else it is answered 408 and the connection closed. No body
    /// that is still arriving holds a bulkhead slot.
    #[serde(with = "levee::core::serde_duration")]
    pub body_read_timeout: Duration,
    /// A customer request must be answered within this once its body is read (bulkhead
    /// queueing included); else it is answered 504. Runs on the shop clock.
    #[serde(with = "levee::core::serde_duration")]
    pub request_timeout: Duration,
    /// Open connections at most; a connection over it is refused at once.
    pub max_connections: usize,
    /// Open connections from one client address at most; one over it is refused at once.
    pub max_connections_per_address: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            max_connections_per_address: 1024,
        }
    }
}

impl ClientLimits {
    /// Checks every limit: none may be zero, and one address may not be allowed more
    /// connections than the shop.
    ///
    /// # Errors
    /// The first setting out of range, named by its path (`server.clients.max_connections`).
    pub fn validate(&self) -> Result<(), SettingError> {
        let here = section("server.clients");
        E::require_positive("header_read_timeout", self.header_read_timeout).map_err(&here)?;
        E::require_positive("body_read_timeout", self.body_read_timeout).map_err(&here)?;
        E::require_positive("request_timeout", self.request_timeout).map_err(&here)?;
        E::require_nonzero("max_connections", self.max_connections).map_err(&here)?;
        E::require_nonzero("max_connections_per_address", self.max_connections_per_address)
            .map_err(&here)?;
        if self.max_connections_per_address > self.max_connections {
            return Err(here(E::new(
                "max_connections_per_address",
                "must not exceed `max_connections`",
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    fn load(pairs: &[(&str, &str)]) -> Result<Config, crate::config::ConfigError> {
        Config::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    #[test]
    fn env_overrides_each_setting() {
        let c = load(&[
            ("SHOP_SERVER__CLIENTS__HEADER_READ_TIMEOUT", "2s"),
            ("SHOP_SERVER__CLIENTS__BODY_READ_TIMEOUT", "1500"),
            ("SHOP_SERVER__CLIENTS__REQUEST_TIMEOUT", "1m"),
            ("SHOP_SERVER__CLIENTS__MAX_CONNECTIONS", "100"),
            ("SHOP_SERVER__CLIENTS__MAX_CONNECTIONS_PER_ADDRESS", "10"),
        ])
        .unwrap();
        assert_eq!(
            c.server.clients,
            ClientLimits {
                header_read_timeout: Duration::from_secs(2),
                body_read_timeout: Duration::from_millis(1500),
                request_timeout: Duration::from_secs(60),
                max_connections: 100,
                max_connections_per_address: 10,
            }
        );
        assert_eq!(c.server.max_body_bytes, 64 * 1024, "the rest of `server` stays");
    }

    #[test]
    fn zero_and_inconsistent_values_are_refused_by_path() {
        for (name, path) in [
            ("HEADER_READ_TIMEOUT", "header_read_timeout"),
            ("BODY_READ_TIMEOUT", "body_read_timeout"),
            ("REQUEST_TIMEOUT", "request_timeout"),
            ("MAX_CONNECTIONS", "max_connections"),
            ("MAX_CONNECTIONS_PER_ADDRESS", "max_connections_per_address"),
        ] {
            let var = format!("SHOP_SERVER__CLIENTS__{name}");
            let err = load(&[(var.as_str(), "0")]).unwrap_err();
            assert!(err.to_string().contains(&format!("`server.clients.{path}`")), "{err}");
        }
        let err = load(&[("SHOP_SERVER__CLIENTS__MAX_CONNECTIONS", "10")]).unwrap_err();
        assert!(err.to_string().contains("must not exceed `max_connections`"), "{err}");
        assert!(load(&[("SHOP_SERVER__CLIENTS__MAX_CONNECTIONS", "-1")]).is_err());
    }
}
