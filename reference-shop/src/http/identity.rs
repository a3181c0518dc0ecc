//! Who a request counts against at the edge: a verified customer, or else its client address.
//!
//! [`identify`] runs before the edge's rate limits. A request whose API key names a known
//! customer (looked up through the customers service's cache, which also remembers unknown
//! keys for a while) is [`Client::Customer`]: that customer's own budget. A request without a
//! key, or with a key nobody has, is [`Client::Addr`]: the budget of the address it comes
//! from. So a made-up key per request buys nothing: every one of them costs the address.
//!
//! The address is the peer's (axum's `ConnectInfo`), unless the peer is one of
//! `limits.trusted_proxies`: then it is the rightmost `X-Forwarded-For` hop that is not a
//! trusted proxy (each proxy appends the address it got the request from, so hops left of
//! the first untrusted one are whatever the client wrote). IPv6 addresses count by their
//! `limits.ipv6_prefix` network, since one host commonly holds a whole /64.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::HeaderMap;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use levee::limit::tower::LimitError;

use super::auth::{Caller, api_key};
use crate::api::ApiError;
use crate::app::Shop;
use crate::config::{LimitsConfig, TrustedProxy};

/// Who a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Client {
    /// A customer whose API key the shop knows.
    Customer(i64),
    /// A client address (IPv6: its network), for requests without a known key.
    Addr(IpAddr),
    /// Neither (a request that did not come through the listener, as in unit tests).
    Unknown,
}

impl Client {
    /// The client [`identify`] found for `req` (`Unknown` when it did not run).
    #[must_use]
    pub fn of(req: &Request) -> Self {
        req.extensions().get::<Self>().copied().unwrap_or(Self::Unknown)
    }

    /// The address [`identify`] found for `req`, whatever its key: sign-ups count by it.
    #[must_use]
    pub fn addr_of(req: &Request) -> Self {
        req.extensions().get::<ClientAddr>().map_or(Self::Unknown, |a| Self::Addr(a.0))
    }
}

/// The client address of a request (IPv6: its network), as [`identify`] found it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

/// How client addresses are found: the trusted proxies and the IPv6 prefix.
#[derive(Debug, Clone)]
pub struct ClientAddrs {
    proxies: Vec<TrustedProxy>,
    ipv6_prefix: u8,
}

impl ClientAddrs {
    /// With `limits`' trusted proxies and IPv6 prefix.
    #[must_use]
    pub fn new(limits: &LimitsConfig) -> Self {
        Self { proxies: limits.trusted_proxies.clone(), ipv6_prefix: limits.ipv6_prefix }
    }

    /// The address a request from `peer` with `headers` counts against: `peer`, or for a
    /// trusted proxy the rightmost untrusted `X-Forwarded-For` hop; IPv6 by network.
    #[must_use]
    pub fn client(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        self.network(self.forwarded(peer.to_canonical(), headers))
    }

    fn trusts(&self, addr: IpAddr) -> bool {
        self.proxies.iter().any(|p| p.contains(addr))
    }

    /// Walks `X-Forwarded-For` from the right while the hops are trusted proxies. A hop that
    /// is not an address stops the walk at the last proxy seen: what lies left of it cannot
    /// be told from what the client made up.
    fn forwarded(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        if !self.trusts(peer) {
            return peer;
        }
        let mut client = peer;
        for value in headers.get_all("x-forwarded-for").iter().rev() {
            let Ok(list) = value.to_str() else {
                return client;
            };
            for hop in list.rsplit(',') {
                let Some(addr) = parse_hop(hop) else {
                    return client;
                };
                if !self.trusts(addr) {
                    return addr;
                }
                client = addr;
            }
        }
        client
    }

    /// IPv6 addresses as their `ipv6_prefix` network; IPv4 as they are.
    fn network(&self, addr: IpAddr) -> IpAddr {
        match addr {
            IpAddr::V4(_) => addr,
            IpAddr::V6(v6) => {
                let mask = !u128::MAX.checked_shr(u32::from(self.ipv6_prefix)).unwrap_or(0);
                IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
            }
        }
    }
}

/// One `X-Forwarded-For` hop: an address, possibly with a port (`1.2.3.4:80`, `[::1]:80`).
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    let addr =
        hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()));
    addr.map(|a| a.to_canonical())
}

/// Middleware: finds who the request counts against ([`Client`], [`ClientAddr`]) for the
/// edge's rate limits, and hands a verified customer on to the handler (`Caller`), so the
/// key is looked up once. A look-up the cache cannot answer holds a bulkhead slot while it
/// reads the store (503 when the shop is full). A key the store could not check (it failed)
/// counts against the address; the handler then answers for the key as it always does.
pub async fn identify(State(shop): State<Arc<Shop>>, mut req: Request, next: Next) -> Response {
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| shop.edge.addrs().client(c.0.ip(), req.headers()));
    let by_addr = addr.map_or(Client::Unknown, Client::Addr);
    let key = api_key(req.headers()).map(str::to_owned);
    let client = match key {
        None => by_addr,
        Some(key) => {
            // A key the cache cannot answer costs a store read before the rate limit: take a
            // bulkhead slot for it, so look-ups are bounded (and shed) like any other work.
            let _slot = if shop.customers.is_cached(&key) {
                None
            } else {
                match shop.edge.slot() {
                    Ok(slot) => slot,
                    Err(e) => {
                        return ApiError::from(LimitError::<Infallible>::Bulkhead(e))
                            .into_response();
                    }
                }
            };
            match shop.customers.authenticate(Some(&key)).await {
                Ok(customer) => {
                    let id = customer.id;
                    req.extensions_mut().insert(Caller(customer));
                    Client::Customer(id)
                }
                Err(_) => by_addr,
            }
        }
    };
    if let Some(addr) = addr {
        req.extensions_mut().insert(ClientAddr(addr));
    }
    req.extensions_mut().insert(client);
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn addrs(proxies: &[&str], ipv6_prefix: u8) -> ClientAddrs {
        ClientAddrs { proxies: proxies.iter().map(|p| p.parse().unwrap()).collect(), ipv6_prefix }
    }

    fn xff(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_ignored_without_trusted_proxies() {
        let a = addrs(&[], 128);
        assert_eq!(a.client(ip("203.0.113.9"), &xff(&["1.1.1.1"])), ip("203.0.113.9"));
        // Also from a peer that is not one of the trusted proxies.
        let a = addrs(&["10.0.0.0/8"], 128);
        assert_eq!(a.client(ip("203.0.113.9"), &xff(&["1.1.1.1"])), ip("203.0.113.9"));
    }

    #[test]
    fn the_rightmost_untrusted_hop_is_the_client() {
        let a = addrs(&["10.0.0.0/8", "192.0.2.1"], 128);
        // client wrote 6.6.6.6 itself; 198.51.100.7 is who reached the first proxy.
        let h = xff(&["6.6.6.6, 198.51.100.7", "192.0.2.1:443"]);
        assert_eq!(a.client(ip("10.1.1.1"), &h), ip("198.51.100.7"));
        // Every hop trusted: the leftmost of them.
        assert_eq!(a.client(ip("10.1.1.1"), &xff(&["10.2.2.2"])), ip("10.2.2.2"));
        // No header: the proxy itself.
        assert_eq!(a.client(ip("10.1.1.1"), &HeaderMap::new()), ip("10.1.1.1"));
        // Garbage stops the walk at the last trusted hop, never past it.
        assert_eq!(a.client(ip("10.1.1.1"), &xff(&["7.7.7.7, nonsense"])), ip("10.1.1.1"));
        assert_eq!(a.client(ip("10.1.1.1"), &xff(&["7.7.7.7,, 10.3.3.3"])), ip("10.3.3.3"));
        // Ports and brackets, IPv4-mapped peers.
        assert_eq!(a.client(ip("::ffff:10.1.1.1"), &xff(&["[2001:db8::1]:80"])), ip("2001:db8::1"));
    }

    #[test]
    fn ipv6_counts_by_network() {
        let a = addrs(&[], 64);
        let h = HeaderMap::new();
        assert_eq!(a.client(ip("2001:db8:1:2:aaaa::1"), &h), ip("2001:db8:1:2::"));
        assert_eq!(a.client(ip("2001:db8:1:2:ffff::9"), &h), ip("2001:db8:1:2::"));
        assert_eq!(a.client(ip("192.0.2.77"), &h), ip("192.0.2.77"));
        assert_eq!(addrs(&[], 128).client(ip("2001:db8::5"), &h), ip("2001:db8::5"));
        assert_eq!(addrs(&[], 1).client(ip("ffff::5"), &h), ip("8000::"));
    }
}
