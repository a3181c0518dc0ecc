//! `[gateway]`: where the gateway (`serve --service gateway`) finds the other services, and
//! how it calls them (levee's service client, `levee::client`).
//!
//! Each upstream group is a list of primaries and a list of standbys (`http://host:port`).
//! The standbys serve only when every primary is ejected (its breaker open); traffic returns
//! to the primaries as they recover. `client` is levee-client's own settings table, shared by
//! the three groups (its `endpoints` stay empty: the groups say them).

use levee::client::{ClientSettings, Endpoint};
use levee::core::ConfigError;
use serde::{Deserialize, Serialize};

use super::SettingError;
use super::endpoints::read_endpoints;

/// The section's path, as errors name it.
const SECTION: &str = "gateway";

/// `[gateway]`: the upstream groups and the client that calls them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GatewayConfig {
    /// The catalog's primaries (`/products`).
    pub catalog: Vec<String>,
    /// The catalog's standbys.
    pub catalog_standby: Vec<String>,
    /// The orders service's primaries (`/cart`, `/orders`).
    pub orders: Vec<String>,
    /// The orders service's standbys.
    pub orders_standby: Vec<String>,
    /// The notification service's primaries (`/cart/notifications`,
    /// `/orders/{id}/notifications`).
    pub notification: Vec<String>,
    /// The notification service's standbys.
    pub notification_standby: Vec<String>,
    /// How each group is called: timeouts, retries, each endpoint's breaker (levee-client's
    /// `ClientSettings`; `endpoints` must stay empty).
    pub client: ClientSettings,
}

impl Default for GatewayConfig {
    fn default() -> Self {
        let client = ClientSettings {
            // Within the gateway's own request deadline (`server.clients.request_timeout`):
            // an upstream that takes longer is answered 504 here, not left to the client.
            timeout: Some(std::time::Duration::from_secs(10)),
            attempt_timeout: Some(std::time::Duration::from_secs(5)),
            ..ClientSettings::default()
        };
        Self {
            catalog: Vec::new(),
            catalog_standby: Vec::new(),
            orders: Vec::new(),
            orders_standby: Vec::new(),
            notification: Vec::new(),
            notification_standby: Vec::new(),
            client,
        }
    }
}

/// One upstream group's name and its primaries and standbys, as set.
pub(crate) struct GroupSettings<'a> {
    /// `catalog`, `orders` or `notification`.
    pub name: &'static str,
    /// The setting of the primaries.
    pub primaries: (&'static str, &'a [String]),
    /// The setting of the standbys.
    pub standbys: (&'static str, &'a [String]),
}

impl GatewayConfig {
    /// The three groups.
    pub(crate) fn groups(&self) -> [GroupSettings<'_>; 3] {
        [
            GroupSettings {
                name: "catalog",
                primaries: ("catalog", &self.catalog),
                standbys: ("catalog_standby", &self.catalog_standby),
            },
            GroupSettings {
                name: "orders",
                primaries: ("orders", &self.orders),
                standbys: ("orders_standby", &self.orders_standby),
            },
            GroupSettings {
                name: "notification",
                primaries: ("notification", &self.notification),
                standbys: ("notification_standby", &self.notification_standby),
            },
        ]
    }

    /// Checks every address and the client settings (any process: a gateway section that
    /// cannot work is refused wherever it is read).
    ///
    /// # Errors
    /// The first address that is not `http://host:port` or `https://host:port`, named by its
    /// setting and position; `client.endpoints` set; a client setting out of range.
    pub fn validate(&self) -> Result<(), SettingError> {
        for group in self.groups() {
            group.endpoints()?;
        }
        let err = |error| SettingError { section: SECTION, error };
        if !self.client.endpoints.is_empty() {
            return Err(err(ConfigError::new(
                "client",
                "`endpoints` must stay empty: the groups (`catalog`, `orders`, ...) list them",
            )));
        }
        levee::client::Client::builder()
            .settings(&self.client)
            .build()
            .map_err(|e| err(ConfigError::new("client", format!("{e}"))))?;
        Ok(())
    }

    /// Checks that every group has a primary (a gateway cannot start without).
    ///
    /// # Errors
    /// The first group without one.
    pub fn require_groups(&self) -> Result<(), SettingError> {
        for group in self.groups() {
            if group.primaries.1.is_empty() {
                return Err(SettingError {
                    section: SECTION,
                    error: ConfigError::new(
                        group.primaries.0,
                        format!(
                            "the gateway needs at least one {} address (`[\"http://127.0.0.1:8081\"]`)",
                            group.name
                        ),
                    ),
                });
            }
        }
        Ok(())
    }
}

impl GroupSettings<'_> {
    /// The group's endpoints: primaries, then standbys.
    ///
    /// # Errors
    /// An address that is not an HTTP(S) `host:port`, named by setting and position.
    pub(crate) fn endpoints(&self) -> Result<Vec<Endpoint>, SettingError> {
        let ((primaries, p), (standbys, s)) = (self.primaries, self.standbys);
        read_endpoints([(primaries, p, false), (standbys, s, true)]).map_err(|bad| SettingError {
            section: SECTION,
            error: ConfigError::new(
                bad.setting,
                format!("entry {} `{}`: {}", bad.index, bad.address, bad.error),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_by_setting_and_position() {
        let mut c = GatewayConfig {
            catalog: vec!["http://127.0.0.1:8081".into()],
            catalog_standby: vec!["http://127.0.0.1:8082".into(), "ftp://x:1".into()],
            ..GatewayConfig::default()
        };
        let err = c.validate().unwrap_err();
        assert_eq!(err.path(), "gateway.catalog_standby");
        assert!(err.to_string().contains("entry 1 `ftp://x:1`"), "{err}");
        c.catalog_standby.pop();
        c.validate().unwrap();
        let endpoints = c.groups()[0].endpoints().unwrap();
        assert_eq!(endpoints.iter().map(Endpoint::priority).collect::<Vec<_>>(), [0, 1]);
        let err = c.require_groups().unwrap_err();
        assert_eq!(err.path(), "gateway.orders", "catalog is set, orders is the first missing");
        c.orders = vec!["http://127.0.0.1:8083".into()];
        c.notification = vec!["http://127.0.0.1:8084".into()];
        c.require_groups().unwrap();
    }

    #[test]
    fn the_client_table_is_levee_clients_and_lists_no_endpoints() {
        let mut c = GatewayConfig::default();
        c.client.endpoints = vec![Endpoint::new("http://127.0.0.1:1").unwrap()];
        assert_eq!(c.validate().unwrap_err().path(), "gateway.client");
        let mut c = GatewayConfig::default();
        c.client.retry.max_attempts = 0;
        let err = c.validate().unwrap_err();
        assert_eq!(err.path(), "gateway.client", "{err}");
    }
}
