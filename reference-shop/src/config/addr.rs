//! The listen address, read so that a wrong one says which part is wrong: the host (not an
//! IP address: `localhost`, `0.0.0.0.0`), the port (missing, not a number, over 65535), or
//! an IPv6 host without its brackets. std's own parser says only "invalid socket address
//! syntax".

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use serde::{Deserialize, Deserializer, Serializer};

/// What is wrong with an address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddrError {
    /// No `:port` at the end.
    #[error("`{input}` has no port: write host:port, e.g. 127.0.0.1:8080")]
    MissingPort {
        /// The address as written.
        input: String,
    },
    /// The part before the port is not an IP address.
    #[error(
        "the host `{host}` of `{input}` is not an IP address: write e.g. 127.0.0.1, 0.0.0.0 or [::1] (names are not resolved)"
    )]
    Host {
        /// The address as written.
        input: String,
        /// The host part.
        host: String,
    },
    /// An IPv6 host without the brackets that set it apart from the port.
    #[error("`{input}`: an IPv6 host goes in brackets, followed by the port, e.g. [::1]:8080")]
    Brackets {
        /// The address as written.
        input: String,
    },
    /// The part after the last `:` is not a port.
    #[error("the port `{port}` of `{input}` is not a number from 0 to 65535 (0 picks a free port)")]
    Port {
        /// The address as written.
        input: String,
        /// The port part.
        port: String,
    },
}

/// Reads `host:port` with an IP host (IPv6 in brackets), saying which part is wrong.
///
/// # Errors
/// [`AddrError`], naming the part.
pub(super) fn parse(input: &str) -> Result<SocketAddr, AddrError> {
    if let Ok(addr) = input.parse::<SocketAddr>() {
        return Ok(addr);
    }
    let input_owned = || input.to_owned();
    match input.parse::<IpAddr>() {
        Ok(IpAddr::V4(_)) => return Err(AddrError::MissingPort { input: input_owned() }),
        Ok(IpAddr::V6(_)) => return Err(AddrError::Brackets { input: input_owned() }),
        Err(_) => {}
    }
    let Some((host, port)) = input.rsplit_once(':') else {
        return Err(AddrError::MissingPort { input: input_owned() });
    };
    let host_error = || AddrError::Host { input: input_owned(), host: host.to_owned() };
    match host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        Some(inner) if inner.parse::<Ipv6Addr>().is_err() => return Err(host_error()),
        Some(_) => {}
        None if host.contains(':') => {
            return Err(if host.parse::<Ipv6Addr>().is_ok() {
                AddrError::Brackets { input: input_owned() }
            } else {
                host_error()
            });
        }
        None if host.parse::<Ipv4Addr>().is_err() => return Err(host_error()),
        None => {}
    }
    if port.parse::<u16>().is_err() {
        return Err(AddrError::Port { input: input_owned(), port: port.to_owned() });
    }
    Err(host_error())
}

/// `#[serde(with = "addr")]`: an address as its text, read by [`parse`].
pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    parse(text.trim()).map_err(serde::de::Error::custom)
}

/// `#[serde(with = "addr")]`: the address as text.
pub(super) fn serialize<S: Serializer>(addr: &SocketAddr, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(addr)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Against std's parser as the model: what std reads, `parse` reads the same; what
        /// std refuses, `parse` refuses naming the input; never a panic.
        #[test]
        fn agrees_with_std_and_names_the_input(
            input in prop_oneof![
                any::<String>(),
                "\\[?[0-9a-f:.]{0,20}\\]?(:[0-9a-z-]{0,7})?",
                "[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}(:[0-9]{0,6})?",
            ]
        ) {
            match (input.parse::<SocketAddr>(), parse(&input)) {
                (Ok(std), Ok(ours)) => prop_assert_eq!(std, ours),
                (Err(_), Err(e)) => {
                    let named = format!("`{input}`");
                    prop_assert!(e.to_string().contains(&named), "{} lacks {}", e, named);
                }
                (std, ours) => prop_assert!(false, "std {:?}, ours {:?}", std, ours),
            }
        }
    }

    #[test]
    fn good_addresses_parse() {
        assert_eq!(parse("127.0.0.1:8080").unwrap(), SocketAddr::from(([127, 0, 0, 1], 8080)));
        assert_eq!(parse("[::1]:0").unwrap().port(), 0);
        assert!(parse("0.0.0.0:65535").is_ok());
    }

    #[test]
    fn each_wrong_part_is_named() {
        use AddrError::{Brackets, Host, MissingPort, Port};
        let missing = |input: &str| MissingPort { input: input.into() };
        let brackets = |input: &str| Brackets { input: input.into() };
        let port = |input: &str, port: &str| Port { input: input.into(), port: port.into() };
        let host = |input: &str, host: &str| Host { input: input.into(), host: host.into() };
        let cases = [
            missing("127.0.0.1"),
            missing("localhost"),
            missing(""),
            brackets("::1"),
            brackets("::1:8080"),
            port("127.0.0.1:99999", "99999"),
            port("127.0.0.1:http", "http"),
            port("127.0.0.1:", ""),
            port("[::1]:-1", "-1"),
            host("localhost:8080", "localhost"),
            host("300.0.0.1:80", "300.0.0.1"),
            host("[nope]:80", "[nope]"),
            host("[127.0.0.1]:80", "[127.0.0.1]"),
            host("a:b:80", "a:b"),
        ];
        for expected in cases {
            let (MissingPort { input }
            | Brackets { input }
            | Port { input, .. }
            | Host { input, .. }) = &expected;
            let err = parse(input).unwrap_err();
            assert_eq!(err, expected, "{input}");
            assert!(err.to_string().contains(&format!("`{input}`")), "{input}: {err}");
        }
    }
}
