//! `[server.tls]`: mutual TLS (issue 18, item 4). Off unless `ca`, `cert` and `key` are set,
//! all three or none.
//!
//! With them, the shop's listener serves HTTPS and requires every client to present a
//! certificate signed by `ca` (`http::serve`); the same identity is what the shop's own
//! calls to its other services present ([`TlsSettings::client`]). The files are read once,
//! at start: a certificate is rotated by restarting with new files. `reference-shop certs`
//! writes a development set (`crate::certs`).
//!
//! The files are checked at start with errors that name the setting and the file
//! ([`TlsSettingsError`]): missing, unreadable, holding no PEM certificate or key, or a key
//! that is not the certificate's.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use levee::client::TlsFiles;
use levee::client::tls::{TlsConfig, TlsError};
use levee::core::ConfigError as E;
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;

use super::{SettingError, section};

/// `[server.tls]`: the CA every peer's certificate must be signed by, and this service's own
/// certificate chain and private key, all PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSettings {
    /// The CA certificate(s) that clients' (and, for the shop's own calls, servers')
    /// certificates must be signed by.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca: Option<PathBuf>,
    /// This service's certificate chain, leaf first.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cert: Option<PathBuf>,
    /// This service's private key (PKCS#8, PKCS#1 or SEC1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<PathBuf>,
    /// A connection must complete its TLS handshake within this, from its acceptance; else
    /// it is closed (and counted as refused). Bounds what a silent client holds.
    #[serde(with = "levee::core::serde_duration")]
    pub handshake_timeout: Duration,
}

impl Default for TlsSettings {
    fn default() -> Self {
        Self { ca: None, cert: None, key: None, handshake_timeout: Duration::from_secs(10) }
    }
}

/// Why the `[server.tls]` files cannot be used. Each names the setting (`server.tls.key`)
/// and the file.
#[derive(Debug, thiserror::Error)]
pub enum TlsSettingsError {
    /// The file does not exist.
    #[error("invalid setting `{setting}`: {} does not exist", path.display())]
    Missing {
        /// `server.tls.ca`, `server.tls.cert` or `server.tls.key`.
        setting: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file cannot be read (permissions, a directory).
    #[error("invalid setting `{setting}`: cannot read {}: {source}", path.display())]
    Unreadable {
        /// The setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS's error.
        #[source]
        source: std::io::Error,
    },
    /// The file holds no PEM certificate (`ca`, `cert`) or private key (`key`), or a
    /// malformed one.
    #[error("invalid setting `{setting}`: {} holds no valid PEM {what}", path.display())]
    NotPem {
        /// The setting.
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// `certificate` or `private key`.
        what: &'static str,
    },
    /// The key is not the private key of the certificate.
    #[error(
        "invalid setting `server.tls.key`: {} is not the private key of the certificate in {}",
        key.display(),
        cert.display()
    )]
    KeyMismatch {
        /// `server.tls.cert`'s file.
        cert: PathBuf,
        /// `server.tls.key`'s file.
        key: PathBuf,
    },
    /// rustls refused the certificates otherwise (a CA certificate it cannot use as a trust
    /// anchor, a certificate it cannot parse).
    #[error("invalid setting `server.tls`: {0}")]
    Unusable(TlsError),
}

impl TlsSettingsError {
    /// The setting at fault: `server.tls.ca`, `server.tls.cert`, `server.tls.key`, or
    /// `server.tls` when rustls did not say which.
    #[must_use]
    pub fn setting(&self) -> &'static str {
        match self {
            Self::Missing { setting, .. }
            | Self::Unreadable { setting, .. }
            | Self::NotPem { setting, .. } => setting,
            Self::KeyMismatch { .. } => "server.tls.key",
            Self::Unusable(_) => "server.tls",
        }
    }
}

/// The listener's side of `[server.tls]`: the handshake and its time limit.
#[derive(Clone)]
pub struct ServerTls {
    /// Handshakes with the server config: this service's certificate, a client certificate
    /// signed by the CA required.
    pub acceptor: TlsAcceptor,
    /// `server.tls.handshake_timeout`.
    pub handshake_timeout: Duration,
}

impl std::fmt::Debug for ServerTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerTls")
            .field("handshake_timeout", &self.handshake_timeout)
            .finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// The three files when all are set; `None` when none is (plain HTTP).
    ///
    /// [`validate`](Self::validate) refuses settings with only some set.
    #[must_use]
    pub fn files(&self) -> Option<TlsFiles> {
        match (&self.ca, &self.cert, &self.key) {
            (Some(ca), Some(cert), Some(key)) => Some(TlsFiles {
                ca: ca.clone(),
                certificate: cert.clone(),
                key: key.clone(),
                server_name: None,
            }),
            _ => None,
        }
    }

    /// Checks what can be checked without reading the files: all of `ca`, `cert`, `key` or
    /// none, none empty, and a positive handshake timeout.
    ///
    /// # Errors
    /// The first setting at fault, named by its path (`server.tls.key`).
    pub fn validate(&self) -> Result<(), SettingError> {
        let here = section("server.tls");
        let named = [("ca", &self.ca), ("cert", &self.cert), ("key", &self.key)];
        if let Some((setting, _)) =
            named.iter().find(|(_, p)| p.as_ref().is_some_and(|p| p.as_os_str().is_empty()))
        {
            return Err(here(E::new(setting, "must not be empty (leave it out for plain HTTP)")));
        }
        if named.iter().any(|(_, p)| p.is_some())
            && let Some((setting, _)) = named.iter().find(|(_, p)| p.is_none())
        {
            return Err(here(E::new(
                setting,
                "is missing: set all of `ca`, `cert` and `key` for mutual TLS, or none for plain HTTP",
            )));
        }
        E::require_positive("handshake_timeout", self.handshake_timeout).map_err(here)?;
        Ok(())
    }

    /// Reads and checks the files: this service's mutual-TLS identity, or `None` when TLS
    /// is off.
    ///
    /// # Errors
    /// A file missing, unreadable, holding no PEM certificate or key, or a key that is not
    /// the certificate's ([`TlsSettingsError`]).
    pub fn load(&self) -> Result<Option<TlsConfig>, TlsSettingsError> {
        Ok(self.load_checked()?.map(|(tls, _)| tls))
    }

    /// [`load`](Self::load), with the server config whose building checked the key.
    fn load_checked(&self) -> Result<Option<(TlsConfig, rustls::ServerConfig)>, TlsSettingsError> {
        let Some(files) = self.files() else { return Ok(None) };
        let ca = read("server.tls.ca", &files.ca)?;
        let cert = read("server.tls.cert", &files.certificate)?;
        let key = read("server.tls.key", &files.key)?;
        let tls = TlsConfig::from_pem(&ca, &cert, &key).map_err(|e| match e {
            TlsError::NoCertificate { what: "ca" } => {
                not_pem("server.tls.ca", &files.ca, "certificate")
            }
            TlsError::NoCertificate { .. } => {
                not_pem("server.tls.cert", &files.certificate, "certificate")
            }
            TlsError::NoKey => not_pem("server.tls.key", &files.key, "private key"),
            other => TlsSettingsError::Unusable(other),
        })?;
        // Building the server config checks that the key is the certificate's, and that
        // the CA can verify anything.
        let mut server = tls.server_config().map_err(|e| match e {
            TlsError::Rustls(rustls::Error::InconsistentKeys(_)) => {
                TlsSettingsError::KeyMismatch { cert: files.certificate, key: files.key }
            }
            other => TlsSettingsError::Unusable(other),
        })?;
        // The listener speaks HTTP/1 only (`http::serve`): a client must not negotiate h2.
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Some((tls, server)))
    }

    /// The listener's TLS when `[server.tls]` is set: the files read and checked once.
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn server(&self) -> Result<Option<ServerTls>, TlsSettingsError> {
        let Some((_, config)) = self.load_checked()? else { return Ok(None) };
        Ok(Some(ServerTls {
            acceptor: TlsAcceptor::from(Arc::new(config)),
            handshake_timeout: self.handshake_timeout,
        }))
    }

    /// The client side of the same identity, for the shop's calls to its other services:
    /// trusts `ca` only, presents `cert`, and verifies each server against `server_name`
    /// when given (else against the host of the URL called). `None` when TLS is off: call
    /// the services over plain `http://`.
    ///
    /// One line hands it to levee's service client:
    ///
    /// ```no_run
    /// # fn build(config: &reference_shop::Config) -> Result<(), Box<dyn std::error::Error>> {
    /// let mut client = levee::client::Client::builder();
    /// if let Some(tls) = config.server.tls.client(Some("catalog"))? {
    ///     client = client.tls(tls);
    /// }
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`load`](Self::load).
    pub fn client(&self, server_name: Option<&str>) -> Result<Option<TlsConfig>, TlsSettingsError> {
        Ok(self.load()?.map(|tls| match server_name {
            Some(name) => tls.server_name(name),
            None => tls,
        }))
    }
}

fn read(setting: &'static str, path: &Path) -> Result<Vec<u8>, TlsSettingsError> {
    std::fs::read(path).map_err(|source| {
        let path = path.to_owned();
        if source.kind() == std::io::ErrorKind::NotFound {
            TlsSettingsError::Missing { setting, path }
        } else {
            TlsSettingsError::Unreadable { setting, path, source }
        }
    })
}

fn not_pem(setting: &'static str, path: &Path, what: &'static str) -> TlsSettingsError {
    TlsSettingsError::NotPem { setting, path: path.to_owned(), what }
}

#[cfg(test)]
mod tests {
    use levee::client::tls::dev::write_dev_certs;

    use super::*;
    use crate::config::{Config, ConfigError};

    fn load(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::load(None, pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
    }

    fn settings(ca: &Path, cert: &Path, key: &Path) -> TlsSettings {
        TlsSettings {
            ca: Some(ca.to_owned()),
            cert: Some(cert.to_owned()),
            key: Some(key.to_owned()),
            ..TlsSettings::default()
        }
    }

    #[test]
    fn off_by_default_and_set_by_env() {
        let c = load(&[]).unwrap();
        assert_eq!(c.server.tls, TlsSettings::default());
        assert!(c.server.tls.files().is_none());
        assert!(c.server.tls.server().unwrap().is_none(), "plain HTTP");
        assert!(c.server.tls.client(Some("catalog")).unwrap().is_none());
        let c = load(&[
            ("SHOP_SERVER__TLS__CA", "certs/ca.pem"),
            ("SHOP_SERVER__TLS__CERT", "certs/orders.pem"),
            ("SHOP_SERVER__TLS__KEY", "certs/orders-key.pem"),
            ("SHOP_SERVER__TLS__HANDSHAKE_TIMEOUT", "2s"),
        ])
        .unwrap();
        let files = c.server.tls.files().unwrap();
        assert_eq!(files.key, Path::new("certs/orders-key.pem"));
        assert_eq!(c.server.tls.handshake_timeout, Duration::from_secs(2));
    }

    #[test]
    fn some_but_not_all_empty_or_a_zero_timeout_is_refused_by_path() {
        for (pairs, path) in [
            (&[("SHOP_SERVER__TLS__CA", "ca.pem")][..], "server.tls.cert"),
            (
                &[("SHOP_SERVER__TLS__CA", "ca.pem"), ("SHOP_SERVER__TLS__CERT", "c.pem")][..],
                "server.tls.key",
            ),
            (&[("SHOP_SERVER__TLS__KEY", "k.pem")][..], "server.tls.ca"),
            (&[("SHOP_SERVER__TLS__CERT", "")][..], "server.tls.cert"),
            (&[("SHOP_SERVER__TLS__HANDSHAKE_TIMEOUT", "0s")][..], "server.tls.handshake_timeout"),
        ] {
            let err = load(pairs).unwrap_err();
            assert!(
                matches!(&err, ConfigError::Setting(e) if e.path() == path),
                "{pairs:?}: {err}"
            );
        }
    }

    #[test]
    fn each_unusable_file_is_named_with_its_setting() {
        let dir = tempfile::tempdir().unwrap();
        let files = write_dev_certs(dir.path(), &["gateway", "orders"]).unwrap();
        let (ca, cert, key) = (&files[0].ca, &files[0].certificate, &files[0].key);
        let good = settings(ca, cert, key);
        assert!(good.server().unwrap().is_some());
        let server = good.load_checked().unwrap().unwrap().1;
        assert_eq!(server.alpn_protocols, [b"http/1.1".to_vec()], "the listener is HTTP/1");
        let client = good.client(Some("catalog")).unwrap().unwrap();
        assert!(client.client_config().is_ok());

        let absent = dir.path().join("absent.pem");
        let err = settings(ca, &absent, key).load().unwrap_err();
        assert!(
            matches!(&err, TlsSettingsError::Missing { setting: "server.tls.cert", path } if *path == absent),
            "{err}"
        );
        assert!(err.to_string().contains(&absent.display().to_string()), "{err}");

        // A directory cannot be read as a file.
        let err = settings(ca, cert, dir.path()).load().unwrap_err();
        assert!(
            matches!(&err, TlsSettingsError::Unreadable { setting: "server.tls.key", .. }),
            "{err}"
        );

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a pem file").unwrap();
        for (s, setting) in [
            (settings(&garbage, cert, key), "server.tls.ca"),
            (settings(ca, &garbage, key), "server.tls.cert"),
            (settings(ca, cert, &garbage), "server.tls.key"),
            // A certificate where the key should be is no key.
            (settings(ca, cert, cert), "server.tls.key"),
        ] {
            let err = s.load().unwrap_err();
            assert!(matches!(&err, TlsSettingsError::NotPem { .. }), "{setting}: {err}");
            assert_eq!(err.setting(), setting);
        }

        let err = settings(ca, cert, &files[1].key).load().unwrap_err();
        assert!(matches!(&err, TlsSettingsError::KeyMismatch { .. }), "{err}");
        assert_eq!(err.setting(), "server.tls.key");
        assert!(err.to_string().contains(&files[1].key.display().to_string()), "{err}");
    }
}
