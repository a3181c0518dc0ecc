//! The shop under load: a base URL that must be on this machine, and the HTTP client that
//! cannot leave it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// The target was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TargetError {
    /// Not a URL.
    #[error("`{0}` is not a URL")]
    NotAUrl(String),
    /// Not `http://` on a loopback address.
    #[error(
        "refusing `{0}`: only http:// on this machine's loopback (127.0.0.0/8, ::1, localhost)"
    )]
    NotLoopback(String),
}

/// A validated base URL on loopback.
///
/// ```
/// use reference_shop::loadgen::Target;
///
/// assert_eq!(Target::parse("http://127.0.0.1:8080/").unwrap().base(), "http://127.0.0.1:8080");
/// assert!(Target::parse("http://[::1]:80").is_ok());
/// assert!(Target::parse("http://10.0.0.1:8080").is_err());
/// assert!(Target::parse("https://localhost").is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    base: String,
    /// `localhost` is pinned to 127.0.0.1 in the client instead of resolved.
    pin_localhost: Option<u16>,
}

/// How long the load generator keeps an idle connection for reuse.
///
/// The shop closes a keep-alive connection that has not started its next request within
/// `server.clients.header_read_timeout` (10 s by default). A client that reuses such a
/// connection just as the shop closes it sends its request into a closed socket and sees a
/// reset: the request failed through no fault of the shop. Dropping idle connections well
/// before any server does keeps that race out of the figures (a soak run counted one such
/// failure in 18,000 requests). A new loopback connection costs well under a millisecond.
pub(super) const POOL_IDLE: Duration = Duration::from_secs(2);

impl Target {
    /// Checks that `url` is `http://` on a loopback address or `localhost`.
    ///
    /// # Errors
    /// [`TargetError`] otherwise.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let parsed = reqwest::Url::parse(url).map_err(|_| TargetError::NotAUrl(url.to_owned()))?;
        let refused = || TargetError::NotLoopback(url.to_owned());
        if parsed.scheme() != "http" || !parsed.username().is_empty() || parsed.password().is_some()
        {
            return Err(refused());
        }
        let shown = parsed.host_str().ok_or_else(refused)?;
        let host = shown.trim_start_matches('[').trim_end_matches(']');
        let pin_localhost = if host.eq_ignore_ascii_case("localhost") {
            Some(parsed.port_or_known_default().unwrap_or(80))
        } else if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            None
        } else {
            return Err(refused());
        };
        let base = match parsed.port() {
            Some(port) => format!("http://{shown}:{port}"),
            None => format!("http://{shown}"),
        };
        Ok(Self { base, pin_localhost })
    }

    /// `http://host:port`, without a trailing slash.
    #[must_use]
    pub fn base(&self) -> &str {
        &self.base
    }

    /// An HTTP client that reaches only this target: no proxy, no redirects, `localhost`
    /// pinned to 127.0.0.1, `timeout` per request, up to `pool` idle connections kept for at
    /// most `POOL_IDLE` (2 s).
    ///
    /// # Errors
    /// The TLS-less client could not be built (no resources).
    pub fn client(&self, timeout: Duration, pool: usize) -> reqwest::Result<reqwest::Client> {
        let mut builder = reqwest::Client::builder()
            .no_proxy()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(5)))
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(POOL_IDLE)
            .tcp_nodelay(true);
        if let Some(port) = self.pin_localhost {
            builder =
                builder.resolve("localhost", SocketAddr::new(Ipv4Addr::LOCALHOST.into(), port));
        }
        builder.build()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_http_targets() {
        for (ok, base) in [
            ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
            ("http://localhost:1/", "http://localhost:1"),
            ("http://LOCALHOST:1/x?y", "http://localhost:1"),
            ("http://[::1]:80", "http://[::1]"),
            ("http://127.5.0.1", "http://127.5.0.1"),
        ] {
            assert_eq!(Target::parse(ok).map(|t| t.base().to_owned()), Ok(base.to_owned()), "{ok}");
        }
        for bad in [
            "http://10.0.0.1",
            "http://example.com",
            "http://192.168.1.1:8080",
            "http://localhost.example.com",
            "http://127.0.0.1.example.com",
            "https://127.0.0.1",
            "ftp://127.0.0.1",
            "http://user:pw@127.0.0.1",
            "http://[::ffff:10.0.0.1]",
            "http://0.0.0.0:8080",
        ] {
            assert_eq!(Target::parse(bad), Err(TargetError::NotLoopback(bad.to_owned())), "{bad}");
        }
        assert_eq!(Target::parse("not a url"), Err(TargetError::NotAUrl("not a url".to_owned())));
    }
}
