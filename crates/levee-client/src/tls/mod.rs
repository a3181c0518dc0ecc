//! Mutual TLS between services, on rustls.
//!
//! One [`TlsConfig`] per service: the CA every service trusts, and this service's own
//! certificate chain and private key, all PEM (files in production, strings in tests). From
//! it come both sides of mutual TLS:
//!
//! - [`TlsConfig::client_config`]: verifies the server's certificate against the CA (and its
//!   name: the URI's host, or the [`server_name`](TlsConfig::server_name) set), and presents
//!   this service's certificate when asked. [`ClientBuilder::tls`](crate::ClientBuilder::tls)
//!   takes the `TlsConfig` directly.
//! - [`TlsConfig::server_config`]: presents this service's certificate and **requires** a
//!   client certificate signed by the CA; a client without one, or with one from another CA,
//!   fails the handshake. `TlsListener` (feature `axum`) serves an axum app with it.
//!
//! The crypto provider is rustls' `ring` provider, chosen explicitly for every config (no
//! process-wide default is installed or needed): it builds with nothing but a C compiler
//! (aws-lc-rs also needs cmake and, for some targets, NASM), and the workspace already
//! builds it for the NATS client, so one crypto library serves the whole tree. The price:
//! ring has no post-quantum hybrid key exchange (X25519MLKEM768), which is why rustls
//! 0.23.48 deprecates its ring provider; traffic between the services of one deployment is
//! what this protects, and a deployment that needs quantum-safe key exchange swaps in the
//! aws-lc-rs provider in `provider()`. TLS 1.2 and 1.3, rustls' safe defaults; ALPN offers
//! HTTP/2 and HTTP/1.1.
//!
//! With the `dev-certs` feature, `dev` makes a development CA and per-service
//! certificates (what the shop's `reference-shop certs` writes).

#[cfg(feature = "dev-certs")]
pub mod dev;
#[cfg(feature = "axum")]
mod listener;

#[cfg(feature = "axum")]
pub use listener::{TlsListener, TlsPeer};

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::RootCertStore;
use rustls::crypto::CryptoProvider;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};

/// What can go wrong loading certificates or building a TLS config.
///
/// ```
/// use levee_client::tls::{TlsConfig, TlsError};
///
/// let err = TlsConfig::from_pem(b"not a certificate", b"", b"").unwrap_err();
/// assert!(matches!(err, TlsError::NoCertificate { what: "ca" }));
/// let missing = TlsConfig::from_pem_files("/nonexistent/ca.pem", "/nonexistent/c.pem", "/nonexistent/k.pem");
/// assert!(matches!(missing, Err(TlsError::Read { .. })));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file could not be written (development certificates).
    #[error("cannot write {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A PEM input holds no certificate, or a malformed one.
    #[error("no valid certificate in the {what} PEM")]
    NoCertificate {
        /// `ca` or `certificate`.
        what: &'static str,
    },
    /// The key PEM holds no private key, or a malformed one.
    #[error("no valid private key in the key PEM")]
    NoKey,
    /// The server name to verify is not a DNS name or an IP address.
    #[error("invalid server name `{0}`")]
    ServerName(String),
    /// rustls refused the certificates or key (a key that does not match the certificate,
    /// a CA certificate it cannot use).
    #[error("rustls: {0}")]
    Rustls(#[from] rustls::Error),
    /// The client-certificate verifier could not be built (no usable CA).
    #[error("client certificate verifier: {0}")]
    Verifier(#[from] rustls::server::VerifierBuilderError),
    /// Making a development certificate failed.
    #[error("certificate generation: {0}")]
    Generate(String),
}

/// One service's mutual-TLS identity: the CA it trusts, its certificate chain and key.
///
/// ```
/// # #[cfg(feature = "dev-certs")] {
/// use levee_client::tls::{TlsConfig, dev::DevCa};
///
/// let ca = DevCa::new("levee dev CA").unwrap();
/// let orders = ca.issue("orders").unwrap();
/// let tls = TlsConfig::from_pem(ca.cert_pem().as_bytes(), orders.cert_pem.as_bytes(), orders.key_pem.as_bytes())
///     .unwrap()
///     .server_name("catalog"); // orders calls catalog: the server must prove it is catalog
/// let client = tls.client_config().unwrap();
/// let server = tls.server_config().unwrap();
/// assert_eq!(client.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// assert_eq!(server.alpn_protocols, [b"h2".to_vec(), b"http/1.1".to_vec()]);
/// # }
/// ```
#[derive(Clone)]
pub struct TlsConfig {
    ca: Vec<CertificateDer<'static>>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<PrivateKeyDer<'static>>,
    server_name: Option<String>,
}

impl fmt::Debug for TlsConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsConfig")
            .field("ca_certificates", &self.ca.len())
            .field("chain", &self.chain.len())
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read { path: path.to_owned(), source })
}

fn certificates(pem: &[u8], what: &'static str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|_| TlsError::NoCertificate { what })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what });
    }
    Ok(certs)
}

/// The ring provider, explicitly (module docs). rustls 0.23.48 deprecates it because ring
/// has no post-quantum key exchange (X25519MLKEM768); see the module docs for why levee
/// still uses it, and switch to aws-lc-rs where quantum-safe key exchange is required.
#[allow(deprecated)]
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

const ALPN: [&[u8]; 2] = [b"h2", b"http/1.1"];

impl TlsConfig {
    /// Loads the CA certificate(s), this service's certificate chain (leaf first) and its
    /// private key (PKCS#8, PKCS#1 or SEC1) from PEM files.
    ///
    /// # Errors
    /// [`TlsError::Read`] for a file that cannot be read; as [`from_pem`](Self::from_pem)
    /// for its contents.
    pub fn from_pem_files(
        ca: impl AsRef<Path>,
        certificate: impl AsRef<Path>,
        key: impl AsRef<Path>,
    ) -> Result<Self, TlsError> {
        Self::from_pem(&read(ca.as_ref())?, &read(certificate.as_ref())?, &read(key.as_ref())?)
    }

    /// The same from PEM bytes.
    ///
    /// # Errors
    /// [`TlsError::NoCertificate`] when the CA or certificate PEM holds no certificate,
    /// [`TlsError::NoKey`] when the key PEM holds no private key.
    pub fn from_pem(ca: &[u8], certificate: &[u8], key: &[u8]) -> Result<Self, TlsError> {
        let ca = certificates(ca, "ca")?;
        let chain = certificates(certificate, "certificate")?;
        let key = PrivateKeyDer::from_pem_slice(key).map_err(|_| TlsError::NoKey)?;
        Ok(Self { ca, chain, key: Arc::new(key), server_name: None })
    }

    /// Verifies servers against `name` instead of the host in the endpoint's URI: call
    /// `https://10.0.0.7:8443` and require the certificate of `catalog`. A name that is
    /// neither a DNS name nor an IP address makes building the client fail.
    #[must_use]
    pub fn server_name(mut self, name: impl Into<String>) -> Self {
        self.server_name = Some(name.into());
        self
    }

    /// The name servers are verified against, if set and valid.
    ///
    /// # Errors
    /// [`TlsError::ServerName`] for a name that is neither a DNS name nor an IP address.
    pub fn verified_server_name(&self) -> Result<Option<ServerName<'static>>, TlsError> {
        self.server_name
            .as_ref()
            .map(|n| ServerName::try_from(n.clone()).map_err(|_| TlsError::ServerName(n.clone())))
            .transpose()
    }

    fn roots(&self) -> Result<Arc<RootCertStore>, TlsError> {
        let mut roots = RootCertStore::empty();
        for cert in &self.ca {
            roots.add(cert.clone())?;
        }
        Ok(Arc::new(roots))
    }

    /// A client config: trusts the CA only, presents this service's certificate, offers
    /// HTTP/2 and HTTP/1.1.
    ///
    /// # Errors
    /// [`TlsError::Rustls`] when the CA certificate is unusable or the key does not fit
    /// the certificate.
    pub fn client_config(&self) -> Result<rustls::ClientConfig, TlsError> {
        let mut config = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(self.roots()?)
            .with_client_auth_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// A server config that requires a client certificate signed by the CA, presents this
    /// service's certificate, and offers HTTP/2 and HTTP/1.1.
    ///
    /// # Errors
    /// [`TlsError::Verifier`] when the CA cannot verify anything, [`TlsError::Rustls`] when
    /// the key does not fit the certificate.
    pub fn server_config(&self) -> Result<rustls::ServerConfig, TlsError> {
        let verifier =
            WebPkiClientVerifier::builder_with_provider(self.roots()?, provider()).build()?;
        let mut config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(self.chain.clone(), self.key.clone_key())?;
        config.alpn_protocols = ALPN.iter().map(|p| p.to_vec()).collect();
        Ok(config)
    }

    /// A `tokio-rustls` acceptor on [`server_config`](Self::server_config), for servers
    /// other than axum.
    ///
    /// # Errors
    /// As [`server_config`](Self::server_config).
    pub fn acceptor(&self) -> Result<tokio_rustls::TlsAcceptor, TlsError> {
        Ok(tokio_rustls::TlsAcceptor::from(Arc::new(self.server_config()?)))
    }
}
