//! Where a service runs: an endpoint's address, its priority group and its health.

use std::fmt;
use std::str::FromStr;

use http::uri::{Authority, Scheme, Uri};

/// The priority group of the primaries. Lower groups are preferred; a request goes to the
/// next group only when every endpoint of the groups before it is ejected or unhealthy.
pub const PRIMARY: u8 = 0;
/// The priority group [`Endpoint::standby`] puts an endpoint in.
pub const STANDBY: u8 = 1;

/// One replica of a service: `http://host:port` or `https://host:port`, a priority group,
/// and whether service discovery says it is healthy.
///
/// Two endpoints are the same replica when their scheme and authority are equal: an update
/// of the endpoint list keeps the breaker and latency estimate of every replica it keeps.
///
/// ```
/// use levee_client::Endpoint;
///
/// let primary: Endpoint = "http://10.0.0.7:8080".parse().unwrap();
/// let standby = Endpoint::new("https://catalog-standby:8443").unwrap().standby();
/// assert_eq!(primary.priority(), 0);
/// assert_eq!(standby.priority(), 1);
/// assert_eq!(primary.to_string(), "http://10.0.0.7:8080");
/// assert!("10.0.0.7:8080/path".parse::<Endpoint>().is_err());
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    scheme: Scheme,
    authority: Authority,
    priority: u8,
    healthy: bool,
}

/// An endpoint address that is not `scheme://host[:port]`.
///
/// ```
/// use levee_client::Endpoint;
///
/// let err = Endpoint::new("catalog:8080/products").unwrap_err();
/// assert_eq!(err.input, "catalog:8080/products");
/// assert!(Endpoint::new("https://catalog:8443").is_ok());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid endpoint `{input}`: {reason}")]
pub struct InvalidEndpoint {
    /// What was given.
    pub input: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

impl Endpoint {
    /// Parses `http://host:port` or `https://host:port` (a trailing `/` is allowed; any
    /// other path, a query or user info is not). A primary, healthy.
    ///
    /// # Errors
    /// [`InvalidEndpoint`] for anything else.
    pub fn new(address: &str) -> Result<Self, InvalidEndpoint> {
        let bad = |reason| InvalidEndpoint { input: address.to_owned(), reason };
        let uri: Uri = address.parse().map_err(|_| bad("not a URI"))?;
        let scheme = uri.scheme().cloned().ok_or_else(|| bad("no scheme (http:// or https://)"))?;
        if scheme != Scheme::HTTP && scheme != Scheme::HTTPS {
            return Err(bad("the scheme must be http or https"));
        }
        let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("user info is not allowed"));
        }
        if authority.host().is_empty() {
            return Err(bad("no host"));
        }
        match uri.path_and_query().map(|p| p.as_str()) {
            None | Some("" | "/") => {}
            Some(_) => return Err(bad("a path or query is not allowed")),
        }
        Ok(Self { scheme, authority, priority: PRIMARY, healthy: true })
    }

    /// The same endpoint in priority group `priority` (0 is the primaries').
    #[must_use]
    pub fn with_priority(mut self, priority: u8) -> Self {
        self.priority = priority;
        self
    }

    /// The same endpoint as a standby (priority group 1).
    #[must_use]
    pub fn standby(self) -> Self {
        self.with_priority(STANDBY)
    }

    /// The same endpoint, marked healthy or not by service discovery. An unhealthy endpoint
    /// gets no requests, as if its breaker were open.
    #[must_use]
    pub fn healthy(mut self, healthy: bool) -> Self {
        self.healthy = healthy;
        self
    }

    /// `http` or `https`.
    #[must_use]
    pub fn scheme(&self) -> &Scheme {
        &self.scheme
    }

    /// `host:port`.
    #[must_use]
    pub fn authority(&self) -> &Authority {
        &self.authority
    }

    /// The priority group (0 = primaries).
    #[must_use]
    pub fn priority(&self) -> u8 {
        self.priority
    }

    /// Whether discovery says the endpoint is healthy.
    #[must_use]
    pub fn is_healthy(&self) -> bool {
        self.healthy
    }

    /// Same scheme and authority.
    pub(crate) fn same_replica(&self, other: &Self) -> bool {
        self.scheme == other.scheme && self.authority == other.authority
    }

    /// The absolute URI of `path_and_query` on this endpoint.
    pub(crate) fn uri_for(&self, path_and_query: Option<&http::uri::PathAndQuery>) -> Uri {
        let mut parts = http::uri::Parts::default();
        parts.scheme = Some(self.scheme.clone());
        parts.authority = Some(self.authority.clone());
        parts.path_and_query = Some(
            path_and_query.cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        // A scheme, an authority and a path always make a valid absolute URI.
        Uri::from_parts(parts).unwrap_or_default()
    }
}

impl FromStr for Endpoint {
    type Err = InvalidEndpoint;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}", self.scheme, self.authority)
    }
}

impl fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Endpoint")
            .field("address", &format_args!("{self}"))
            .field("priority", &self.priority)
            .field("healthy", &self.healthy)
            .finish()
    }
}

#[cfg(feature = "serde")]
mod serde_impl {
    //! An endpoint in a settings file: `"http://host:port"`, or a table with `url`,
    //! `priority` and `healthy`.
    use super::Endpoint;

    #[derive(serde::Deserialize)]
    #[serde(untagged)]
    enum Repr {
        Url(String),
        Table {
            url: String,
            #[serde(default)]
            priority: u8,
            #[serde(default = "yes")]
            healthy: bool,
        },
    }

    fn yes() -> bool {
        true
    }

    impl<'de> serde::Deserialize<'de> for Endpoint {
        fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            let (url, priority, healthy) = match Repr::deserialize(d)? {
                Repr::Url(url) => (url, 0, true),
                Repr::Table { url, priority, healthy } => (url, priority, healthy),
            };
            Endpoint::new(&url)
                .map(|e| e.with_priority(priority).healthy(healthy))
                .map_err(serde::de::Error::custom)
        }
    }

    impl serde::Serialize for Endpoint {
        fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            use serde::ser::SerializeStruct;
            let mut t = s.serialize_struct("Endpoint", 3)?;
            t.serialize_field("url", &self.to_string())?;
            t.serialize_field("priority", &self.priority)?;
            t.serialize_field("healthy", &self.healthy)?;
            t.end()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_addresses_and_refuses_the_rest() {
        let e = Endpoint::new("https://catalog:8443/").unwrap();
        assert_eq!(e.scheme(), &Scheme::HTTPS);
        assert_eq!(e.authority().as_str(), "catalog:8443");
        for bad in [
            "catalog:8443",
            "ftp://catalog",
            "http://catalog/products",
            "http://catalog?x=1",
            "http://user@catalog",
            "",
            "http://",
        ] {
            assert!(Endpoint::new(bad).is_err(), "{bad}");
        }
        let uri = e.uri_for(Some(&"/products/7?x=1".parse().unwrap()));
        assert_eq!(uri.to_string(), "https://catalog:8443/products/7?x=1");
        assert_eq!(e.uri_for(None).to_string(), "https://catalog:8443/");
    }

    #[test]
    fn replicas_are_told_apart_by_scheme_and_authority() {
        let a = Endpoint::new("http://a:1").unwrap();
        assert!(a.same_replica(&a.clone().standby().healthy(false)));
        assert!(!a.same_replica(&Endpoint::new("https://a:1").unwrap()));
    }

    #[cfg(feature = "serde")]
    #[test]
    fn serializes_address_priority_and_health() {
        let endpoint = Endpoint::new("http://127.0.0.1:8080").unwrap().standby().healthy(false);
        let json = serde_json::to_value(&endpoint).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"url": "http://127.0.0.1:8080", "priority": 1, "healthy": false})
        );
    }
}
