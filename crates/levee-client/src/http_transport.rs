//! The transport for real endpoints: hyper's pooled client, plain or mutual TLS.
//!
//! Why hyper (through `hyper-util`'s pooled client) rather than reqwest: the service client
//! needs the transport to be a plain function from one request to one response, and
//! everything reqwest adds on top (its own redirects, retries, timeouts, cookie and proxy
//! handling, a second TLS setup) is either done by the client itself (timeouts, retries,
//! balancing) or unwanted between services. hyper-util's client gives connection pooling,
//! HTTP/1.1 and HTTP/2 (by ALPN over TLS), a connect timeout, and tells a failed
//! connection (the request was not sent, so any method may be retried) from a failed
//! exchange, which is what the retry rules need. TLS is `hyper-rustls` on the
//! [`TlsConfig`]'s rustls client config.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use levee_core::ConfigError;

use crate::Endpoint;
use crate::error::{TransportError, TransportErrorKind};
use crate::tls::{TlsConfig, TlsError};
use crate::transport::Transport;

/// The default limit of a response body: 16 MiB.
pub const DEFAULT_MAX_RESPONSE_BYTES: usize = 16 << 20;

/// An HTTP/1.1 and HTTP/2 transport on hyper's pooled client, plain or with mutual TLS.
///
/// Reads each response whole, up to a size limit, so the client's deadline, retries and
/// latency estimate cover the body too.
///
/// ```
/// use std::time::Duration;
/// use levee_client::HttpTransport;
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let transport = HttpTransport::builder()
///     .connect_timeout(Duration::from_millis(500))
///     .max_response_bytes(1 << 20)
///     .build()
///     .unwrap();
/// # let _ = transport;
/// # }
/// ```
#[derive(Clone, Debug)]
pub struct HttpTransport {
    inner: Inner,
    max_response_bytes: usize,
}

#[derive(Clone, Debug)]
enum Inner {
    Plain(HyperClient<HttpConnector, Full<Bytes>>),
    Tls(HyperClient<HttpsConnector<HttpConnector>, Full<Bytes>>),
}

/// Builds an [`HttpTransport`].
///
/// ```
/// use std::time::Duration;
/// use levee_client::HttpTransport;
///
/// let transport = HttpTransport::builder()
///     .connect_timeout(Duration::from_millis(500))
///     .pool_idle_timeout(Duration::from_secs(30))
///     .max_idle_per_host(16)
///     .max_response_bytes(4 << 20)
///     .build()?;
/// # let _ = transport;
/// # Ok::<(), levee_client::BuildError>(())
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct HttpTransportBuilder {
    connect_timeout: Duration,
    pool_idle_timeout: Duration,
    max_idle_per_host: usize,
    max_response_bytes: usize,
    tls: Option<TlsConfig>,
}

/// What can go wrong building a transport.
///
/// ```
/// use levee_client::{BuildError, HttpTransport};
///
/// match HttpTransport::builder().max_response_bytes(0).build() {
///     Err(BuildError::Config(e)) => println!("bad setting `{}`: {}", e.setting, e.reason),
///     Err(e) => println!("TLS: {e}"),
///     Ok(_) => println!("built"),
/// }
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum BuildError {
    /// An invalid setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The TLS configuration.
    #[error(transparent)]
    Tls(#[from] TlsError),
}

impl Default for HttpTransportBuilder {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(1),
            pool_idle_timeout: Duration::from_secs(90),
            max_idle_per_host: 32,
            max_response_bytes: DEFAULT_MAX_RESPONSE_BYTES,
            tls: None,
        }
    }
}

impl HttpTransportBuilder {
    /// How long a TCP connect may take (default 1 s). A connect that times out is a
    /// connection failure: the request was not sent.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How long an idle pooled connection is kept (default 90 s).
    pub fn pool_idle_timeout(mut self, timeout: Duration) -> Self {
        self.pool_idle_timeout = timeout;
        self
    }

    /// Idle connections kept per endpoint (default 32).
    pub fn max_idle_per_host(mut self, n: usize) -> Self {
        self.max_idle_per_host = n;
        self
    }

    /// The largest response body read (default 16 MiB); a larger one fails the call with
    /// [`Error::BodyTooLarge`](crate::Error::BodyTooLarge).
    pub fn max_response_bytes(mut self, bytes: usize) -> Self {
        self.max_response_bytes = bytes;
        self
    }

    /// Speaks TLS to `https://` endpoints with `tls`: verifies servers against its CA and
    /// presents its certificate (mutual TLS). `http://` endpoints stay plain.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Builds the transport. Needs no runtime until the first request.
    ///
    /// # Errors
    /// A zero connect timeout or response limit; a TLS config rustls refuses.
    pub fn build(self) -> Result<HttpTransport, BuildError> {
        ConfigError::require_positive("connect_timeout", self.connect_timeout)?;
        ConfigError::require_nonzero("max_response_bytes", self.max_response_bytes)?;
        let mut http = HttpConnector::new();
        http.set_connect_timeout(Some(self.connect_timeout));
        http.set_nodelay(true);
        let mut builder = HyperClient::builder(TokioExecutor::new());
        builder
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.max_idle_per_host)
            .pool_timer(TokioTimer::new())
            .timer(TokioTimer::new());
        let inner = match self.tls {
            None => Inner::Plain(builder.build(http)),
            Some(tls) => {
                http.enforce_http(false);
                let mut config = tls.client_config()?;
                // hyper-rustls offers the protocols it was enabled for (below) itself.
                config.alpn_protocols.clear();
                let connector = hyper_rustls::HttpsConnectorBuilder::new()
                    .with_tls_config(config)
                    .https_or_http();
                let connector = match tls.verified_server_name()? {
                    Some(name) => connector.with_server_name_resolver(
                        hyper_rustls::FixedServerNameResolver::new(name),
                    ),
                    None => connector,
                };
                let connector = connector.enable_http1().enable_http2().wrap_connector(http);
                Inner::Tls(builder.build(connector))
            }
        };
        Ok(HttpTransport { inner, max_response_bytes: self.max_response_bytes })
    }
}

impl HttpTransport {
    /// A builder with the defaults: plain HTTP, 1 s connect timeout, 16 MiB responses.
    pub fn builder() -> HttpTransportBuilder {
        HttpTransportBuilder::default()
    }
}

/// The future of one exchange.
///
/// ```
/// use bytes::Bytes;
/// use levee_client::{Endpoint, HttpFuture, HttpTransport, Transport};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // A server on loopback to talk to.
/// let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
/// let addr = tcp.local_addr()?;
/// let app = axum::Router::new().route("/ping", axum::routing::get(|| async { "pong" }));
/// tokio::spawn(async move { axum::serve(tcp, app).await });
///
/// let transport = HttpTransport::builder().build()?;
/// let endpoint: Endpoint = format!("http://{addr}").parse()?;
/// let request = http::Request::get(format!("http://{addr}/ping")).body(Bytes::new())?;
/// let exchange: HttpFuture = transport.send(&endpoint, request); // one attempt, no retry
/// assert_eq!(exchange.await?.body(), "pong");
/// # Ok(())
/// # }
/// ```
pub type HttpFuture =
    Pin<Box<dyn Future<Output = Result<http::Response<Bytes>, TransportError>> + Send>>;

fn classify(e: hyper_util::client::legacy::Error) -> TransportError {
    let kind = if e.is_connect() { TransportErrorKind::Connect } else { TransportErrorKind::Io };
    TransportError::new(kind, e)
}

impl Transport for HttpTransport {
    type Future = HttpFuture;

    fn send(&self, _endpoint: &Endpoint, request: http::Request<Bytes>) -> HttpFuture {
        let request = request.map(Full::new);
        let response = match &self.inner {
            Inner::Plain(c) => c.request(request),
            Inner::Tls(c) => c.request(request),
        };
        let limit = self.max_response_bytes;
        Box::pin(async move {
            let (parts, body) = response.await.map_err(classify)?.into_parts();
            let body = Limited::new(body, limit).collect().await.map_err(|e| {
                if e.is::<http_body_util::LengthLimitError>() {
                    TransportError::new(TransportErrorKind::BodyTooLarge(limit), e)
                } else {
                    TransportError::new(TransportErrorKind::Io, e)
                }
            })?;
            Ok(http::Response::from_parts(parts, body.to_bytes()))
        })
    }
}
