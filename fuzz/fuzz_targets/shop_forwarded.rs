//! The reference shop's client address (`reference_shop::http::ClientAddrs`): arbitrary
//! trusted proxies (strings, parsed as the settings parse them), a peer address, an IPv6
//! prefix and arbitrary `X-Forwarded-For` header values. Checks:
//! - a trusted proxy's written form reads back as the same proxy;
//! - from a peer that is not a trusted proxy the header changes nothing: the client is the
//!   peer (IPv6: its network), as without the header;
//! - from a trusted proxy the client is the peer or an address written in the header (as
//!   its network), never anything else; and never a panic.
#![no_main]

use std::net::{IpAddr, SocketAddr};

use arbitrary::Arbitrary;
use axum::http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use reference_shop::config::{LimitsConfig, TrustedProxy};
use reference_shop::http::ClientAddrs;

#[derive(Debug, Arbitrary)]
struct Input {
    proxies: Vec<String>,
    peer: [u8; 16],
    peer_is_v4: bool,
    ipv6_prefix: u8,
    forwarded: Vec<Vec<u8>>,
}

fuzz_target!(|input: Input| {
    let mut proxies = Vec::new();
    for written in &input.proxies {
        if let Ok(proxy) = written.parse::<TrustedProxy>() {
            assert_eq!(proxy.to_string().parse::<TrustedProxy>(), Ok(proxy), "{written:?}");
            proxies.push(proxy);
        }
    }
    let limits = LimitsConfig {
        trusted_proxies: proxies.clone(),
        ipv6_prefix: input.ipv6_prefix.clamp(1, 128),
        ..LimitsConfig::default()
    };
    let addrs = ClientAddrs::new(&limits);
    let peer = if input.peer_is_v4 {
        IpAddr::from([input.peer[0], input.peer[1], input.peer[2], input.peer[3]])
    } else {
        IpAddr::from(input.peer)
    };
    let mut headers = HeaderMap::new();
    for value in &input.forwarded {
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append("x-forwarded-for", v);
        }
    }
    let none = HeaderMap::new();
    let client = addrs.client(peer, &headers);
    let bare = addrs.client(peer, &none);
    if !proxies.iter().any(|p| p.contains(peer)) {
        assert_eq!(client, bare, "an untrusted peer's X-Forwarded-For was believed");
        return;
    }
    let written = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|list| list.split(','))
        .filter_map(|hop| {
            let hop = hop.trim();
            hop.parse::<IpAddr>().ok().or_else(|| hop.parse::<SocketAddr>().ok().map(|s| s.ip()))
        });
    let mut candidates = written.map(|ip| addrs.client(ip, &none));
    assert!(
        client == bare || candidates.any(|c| c == client),
        "{client} is neither the peer {peer} nor a forwarded hop: {headers:?}"
    );
});
