//! The limits that keep one client from taking more than its share: who the edge's rate limit
//! counts a request against (`limits.trusted_proxies`, `limits.ipv6_prefix`), how often one
//! address may sign up (`limits.signup`), and how much one customer may hold reserved
//! (`limits.max_reserved_units`, `limits.max_unpaid_orders`).

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;
use levee::limit::Quota;
use serde::{Deserialize, Serialize};

use super::{SettingError, section};

/// Per-client limits beyond the edge's rate: sign-ups per address, trusted proxies, and what
/// one customer may hold reserved.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// `POST /customers` per client address: its own quota, apart from `edge.rate` (a new
    /// customer has no key yet, so every sign-up counts against its address).
    pub signup: Quota,
    /// Proxies (addresses or CIDRs, `"10.0.0.0/8"`) whose `X-Forwarded-For` is believed: for
    /// a request from one of them the client is the rightmost hop that is not a trusted
    /// proxy. Empty (the default): the header is ignored and the client is the peer address.
    pub trusted_proxies: Vec<TrustedProxy>,
    /// IPv6 clients are counted by network of this prefix length (one host usually holds a
    /// whole /64, so per address it could make up a fresh one per request). 128 counts each
    /// address alone.
    pub ipv6_prefix: u8,
    /// Units one customer may hold reserved at once, across their cart and unpaid orders.
    pub max_reserved_units: u32,
    /// Unpaid orders one customer may have at once.
    pub max_unpaid_orders: u32,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            signup: Quota::per_second(5).with_burst(100),
            trusted_proxies: Vec::new(),
            ipv6_prefix: 64,
            max_reserved_units: 500,
            max_unpaid_orders: 10,
        }
    }
}

impl LimitsConfig {
    /// Checks every limit.
    ///
    /// # Errors
    /// Names the first one out of range by its path (`limits.signup.count`, ...).
    pub fn validate(&self) -> Result<(), SettingError> {
        use levee::core::ConfigError as E;
        self.signup.gcra().map_err(section("limits.signup"))?;
        let limits = section("limits");
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err(limits(E::new("ipv6_prefix", "must lie in 1..=128")));
        }
        E::require_nonzero("max_reserved_units", self.max_reserved_units).map_err(&limits)?;
        E::require_nonzero("max_unpaid_orders", self.max_unpaid_orders).map_err(&limits)?;
        Ok(())
    }
}

/// A trusted proxy: one address (`"10.1.2.3"`) or a network (`"10.0.0.0/8"`, `"fd00::/8"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TrustedProxy(pub IpNet);

impl TrustedProxy {
    /// Whether `addr` is this proxy (IPv4-mapped IPv6 addresses count as IPv4).
    #[must_use]
    pub fn contains(&self, addr: IpAddr) -> bool {
        self.0.contains(&addr.to_canonical())
    }
}

/// Why a trusted proxy could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a trusted proxy is an IP address or a CIDR network (\"10.0.0.0/8\"), got {0:?}")]
pub struct BadProxy(String);

impl FromStr for TrustedProxy {
    type Err = BadProxy;

    fn from_str(s: &str) -> Result<Self, BadProxy> {
        let t = s.trim();
        let net = match t.parse::<IpNet>() {
            Ok(net) => net,
            Err(_) => t.parse::<IpAddr>().map(IpNet::from).map_err(|_| BadProxy(s.to_owned()))?,
        };
        // An IPv4-mapped IPv6 network names IPv4 peers: match them as IPv4.
        let net = match net {
            IpNet::V6(v6) if v6.addr().to_ipv4_mapped().is_some() && v6.prefix_len() >= 96 => {
                let v4 = v6.addr().to_ipv4_mapped().unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
                ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4)
            }
            other => other,
        };
        Ok(Self(net.trunc()))
    }
}

impl TryFrom<String> for TrustedProxy {
    type Error = BadProxy;

    fn try_from(s: String) -> Result<Self, BadProxy> {
        s.parse()
    }
}

impl From<TrustedProxy> for String {
    fn from(p: TrustedProxy) -> Self {
        p.to_string()
    }
}

impl fmt::Display for TrustedProxy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxies_are_addresses_or_networks() {
        let one: TrustedProxy = "10.1.2.3".parse().unwrap();
        assert!(one.contains([10, 1, 2, 3].into()));
        assert!(!one.contains([10, 1, 2, 4].into()));
        let net: TrustedProxy = " 10.0.0.0/8 ".parse().unwrap();
        assert!(net.contains([10, 200, 0, 1].into()));
        assert!(net.contains("::ffff:10.9.9.9".parse().unwrap()), "IPv4-mapped peers are IPv4");
        assert!(!net.contains([11, 0, 0, 1].into()));
        let v6: TrustedProxy = "fd00::/8".parse().unwrap();
        assert!(v6.contains("fd12::1".parse().unwrap()));
        let mapped: TrustedProxy = "::ffff:192.168.0.0/112".parse().unwrap();
        assert!(mapped.contains([192, 168, 3, 4].into()));
        for bad in ["", "10.0.0.0/33", "proxy.local", "10.0.0.1/8/8", "1.2.3"] {
            assert_eq!(bad.parse::<TrustedProxy>(), Err(BadProxy(bad.to_owned())), "{bad}");
        }
        // Host bits are dropped, so the written form is the network's.
        assert_eq!("10.1.2.3/8".parse::<TrustedProxy>().unwrap().to_string(), "10.0.0.0/8");
    }

    #[test]
    fn trusted_proxies_come_from_the_file_or_the_environment() {
        let env = |v: &str| vec![("SHOP_LIMITS__TRUSTED_PROXIES".to_owned(), v.to_owned())];
        let c = super::super::Config::load(None, env(r#"["10.0.0.0/8", "192.0.2.1"]"#)).unwrap();
        let written: Vec<String> = c.limits.trusted_proxies.iter().map(|p| p.to_string()).collect();
        assert_eq!(written, ["10.0.0.0/8", "192.0.2.1/32"]);
        let err = super::super::Config::load(None, env(r#"["proxy.local"]"#)).unwrap_err();
        assert!(err.to_string().contains("proxy.local"), "{err}");
    }

    #[test]
    fn out_of_range_limits_are_named() {
        let mut c = LimitsConfig::default();
        c.validate().unwrap();
        c.ipv6_prefix = 0;
        assert_eq!(c.validate().unwrap_err().path(), "limits.ipv6_prefix");
        c = LimitsConfig { max_unpaid_orders: 0, ..LimitsConfig::default() };
        assert_eq!(c.validate().unwrap_err().path(), "limits.max_unpaid_orders");
        c = LimitsConfig { signup: Quota::per_second(0), ..LimitsConfig::default() };
        assert!(c.validate().unwrap_err().path().starts_with("limits.signup."));
    }
}
