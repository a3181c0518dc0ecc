//! Development certificates (feature `dev-certs`): a CA and one certificate per service,
//! made with rcgen. For local clusters and tests, never production: the CA's key sits
//! beside the certificates it signs.
//!
//! Each service certificate is valid for the service's name, `localhost`, `127.0.0.1`
//! and `::1` (plus any extra names), for both TLS server and TLS client authentication, so
//! one certificate serves a service's listener and its outgoing calls. Keys are ECDSA P-256.
//!
//! ```
//! use levee_client::tls::dev;
//!
//! let dir = tempfile::tempdir().unwrap();
//! let written = dev::write_dev_certs(dir.path(), &["catalog", "orders"]).unwrap();
//! assert_eq!(written.len(), 2);
//! let orders = written[1].load().unwrap().server_name("catalog");
//! assert!(orders.client_config().is_ok());
//! ```

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use rustls_pki_types::ServerName;

use super::{TlsConfig, TlsError};
use crate::TlsFiles;

fn generate(e: rcgen::Error) -> TlsError {
    TlsError::Generate(e.to_string())
}

/// A development certificate authority.
///
/// ```
/// use levee_client::tls::dev::DevCa;
///
/// let ca = DevCa::new("levee development CA").unwrap();
/// assert!(ca.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
/// let orders = ca.issue("orders").unwrap(); // valid for orders, localhost, 127.0.0.1, ::1
/// let tls = orders.tls_config(&ca).unwrap().server_name("catalog");
/// assert!(tls.client_config().is_ok() && tls.server_config().is_ok());
/// ```
pub struct DevCa {
    cert_pem: String,
    key_pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for DevCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCa").finish_non_exhaustive()
    }
}

/// A certificate and its private key, PEM.
///
/// ```
/// use levee_client::tls::TlsConfig;
/// use levee_client::tls::dev::DevCa;
///
/// let ca = DevCa::new("levee development CA").unwrap();
/// let cert = ca.issue_for("catalog", &["catalog.internal"]).unwrap();
/// assert!(cert.key_pem.contains("PRIVATE KEY"));
/// // The PEMs load like files from disk would.
/// let tls = TlsConfig::from_pem(ca.cert_pem().as_bytes(), cert.cert_pem.as_bytes(), cert.key_pem.as_bytes());
/// assert!(tls.is_ok());
/// ```
#[derive(Clone)]
pub struct DevCert {
    /// The certificate.
    pub cert_pem: String,
    /// The private key (PKCS#8).
    pub key_pem: String,
}

impl std::fmt::Debug for DevCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DevCert").field("cert_pem", &self.cert_pem).finish_non_exhaustive()
    }
}

impl DevCa {
    /// A new CA named `common_name`.
    ///
    /// # Errors
    /// [`TlsError::Generate`] if key generation or signing fails.
    pub fn new(common_name: &str) -> Result<Self, TlsError> {
        let mut params = CertificateParams::new(Vec::new()).map_err(generate)?;
        params.distinguished_name.push(DnType::CommonName, common_name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.self_signed(&key).map_err(generate)?;
        let key_pem = key.serialize_pem();
        Ok(Self { cert_pem: cert.pem(), key_pem, issuer: Issuer::new(params, key) })
    }

    /// The CA certificate, PEM (what every service trusts).
    #[must_use]
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA's private key, PEM.
    #[must_use]
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A certificate for `service` (valid for it, `localhost`, `127.0.0.1` and `::1`).
    ///
    /// # Errors
    /// [`TlsError::Generate`] for a name that is not a valid DNS name, or a failed signing.
    pub fn issue(&self, service: &str) -> Result<DevCert, TlsError> {
        self.issue_for(service, &[])
    }

    /// A certificate for `service` and `extra` names too (DNS names or IP addresses).
    ///
    /// # Errors
    /// As [`issue`](Self::issue).
    pub fn issue_for(&self, service: &str, extra: &[&str]) -> Result<DevCert, TlsError> {
        let mut names =
            vec![service.to_owned(), "localhost".into(), "127.0.0.1".into(), "::1".into()];
        names.extend(extra.iter().map(|n| (*n).to_owned()));
        let mut params = CertificateParams::new(names).map_err(generate)?;
        params.distinguished_name.push(DnType::CommonName, service);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(generate)?;
        let cert = params.signed_by(&key, &self.issuer).map_err(generate)?;
        Ok(DevCert { cert_pem: cert.pem(), key_pem: key.serialize_pem() })
    }
}

impl DevCert {
    /// This certificate as a service's identity, trusting `ca`.
    ///
    /// # Errors
    /// As [`TlsConfig::from_pem`].
    pub fn tls_config(&self, ca: &DevCa) -> Result<TlsConfig, TlsError> {
        TlsConfig::from_pem(
            ca.cert_pem.as_bytes(),
            self.cert_pem.as_bytes(),
            self.key_pem.as_bytes(),
        )
    }
}

/// What [`write_dev_certs_with`] does with files already in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    /// Refuse, and write nothing, when any of the files exists ([`TlsError::Write`] naming
    /// it, with an error of kind `AlreadyExists`).
    Refuse,
    /// Replace them.
    Replace,
}

fn write(path: PathBuf, contents: &str, secret: bool, existing: Existing) -> Result<PathBuf, TlsError> {
    use std::io::Write as _;
    let failed = |source| TlsError::Write { path: path.clone(), source };
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    match existing {
        // `create_new` fails on a file that appeared since the check: never overwritten.
        Existing::Refuse => options.create_new(true),
        Existing::Replace => options.create(true).truncate(true),
    };
    // A key is the owner's from its first byte: created 0600, never readable by others
    // between creation and a later chmod.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&path).map_err(failed)?;
    // A replaced key file keeps its old mode through `open`: set it.
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(failed)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    file.write_all(contents.as_bytes()).map_err(failed)?;
    file.sync_all().map_err(failed)?;
    Ok(path)
}

/// The files [`write_dev_certs`] writes for `services` into `dir`, CA first.
fn dev_cert_paths(dir: &Path, services: &[&str]) -> Vec<PathBuf> {
    let mut paths = vec![dir.join("ca.pem"), dir.join("ca-key.pem")];
    for service in services {
        paths.push(dir.join(format!("{service}.pem")));
        paths.push(dir.join(format!("{service}-key.pem")));
    }
    paths
}

/// Writes a new development CA (`ca.pem`, `ca-key.pem`) and, per service, `<name>.pem` and
/// `<name>-key.pem` into `dir` (created if missing; keys readable by the owner only),
/// replacing files already there, and returns where each service's files are, in the order
/// given. [`write_dev_certs_with`] can refuse to replace them instead.
///
/// # Errors
/// [`TlsError::Write`] for a file that cannot be written, [`TlsError::Generate`] for a
/// service name that is not a DNS name.
pub fn write_dev_certs(dir: &Path, services: &[&str]) -> Result<Vec<TlsFiles>, TlsError> {
    write_dev_certs_with(dir, services, Existing::Replace)
}

/// [`write_dev_certs`], deciding what to do with files already in `dir`: with
/// [`Existing::Refuse`] nothing is written when any of them exists.
///
/// ```
/// use levee_client::tls::dev::{self, Existing};
/// use levee_client::tls::TlsError;
///
/// let dir = tempfile::tempdir().unwrap();
/// dev::write_dev_certs_with(dir.path(), &["orders"], Existing::Refuse).unwrap();
/// let again = dev::write_dev_certs_with(dir.path(), &["orders"], Existing::Refuse);
/// assert!(matches!(again, Err(TlsError::Write { source, .. }) if source.kind() == std::io::ErrorKind::AlreadyExists));
/// ```
///
/// # Errors
/// As [`write_dev_certs`]; with [`Existing::Refuse`], [`TlsError::Write`] of kind
/// `AlreadyExists` naming the first file in place.
pub fn write_dev_certs_with(
    dir: &Path,
    services: &[&str],
    existing: Existing,
) -> Result<Vec<TlsFiles>, TlsError> {
    // A service name becomes a file name: a DNS name has no `/` and no `..`, so each file
    // stays inside `dir`.
    for service in services {
        if !matches!(ServerName::try_from(*service), Ok(ServerName::DnsName(_))) {
            return Err(TlsError::Generate(format!(
                "invalid service name `{service}`: not a DNS name"
            )));
        }
    }
    std::fs::create_dir_all(dir)
        .map_err(|source| TlsError::Write { path: dir.to_owned(), source })?;
    // (No let chain: the crate builds on Rust 1.85.)
    let in_place = match existing {
        Existing::Refuse => dev_cert_paths(dir, services).into_iter().find(|p| p.exists()),
        Existing::Replace => None,
    };
    if let Some(path) = in_place {
        let source = std::io::Error::from(std::io::ErrorKind::AlreadyExists);
        return Err(TlsError::Write { path, source });
    }
    let ca = DevCa::new("levee development CA")?;
    let ca_path = write(dir.join("ca.pem"), ca.cert_pem(), false, existing)?;
    write(dir.join("ca-key.pem"), ca.key_pem(), true, existing)?;
    services
        .iter()
        .map(|service| {
            let cert = ca.issue(service)?;
            Ok(TlsFiles {
                ca: ca_path.clone(),
                certificate: write(
                    dir.join(format!("{service}.pem")),
                    &cert.cert_pem,
                    false,
                    existing,
                )?,
                key: write(dir.join(format!("{service}-key.pem")), &cert.key_pem, true, existing)?,
                server_name: None,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_service_name_that_is_not_a_dns_name_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["../escape", "a/b", "", "has space"] {
            let err = write_dev_certs(dir.path(), &["orders", name]).unwrap_err();
            assert!(matches!(err, TlsError::Generate(_)), "{name:?}: {err}");
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn refuse_writes_nothing_when_one_file_exists_and_replace_replaces() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("orders-key.pem"), "old").unwrap();
        let err = write_dev_certs_with(dir.path(), &["catalog", "orders"], Existing::Refuse)
            .unwrap_err();
        match err {
            TlsError::Write { path, source } => {
                assert_eq!(path, dir.path().join("orders-key.pem"));
                assert_eq!(source.kind(), std::io::ErrorKind::AlreadyExists);
            }
            other => panic!("{other:?}"),
        }
        assert!(!dir.path().join("ca.pem").exists(), "nothing written");
        let files = write_dev_certs(dir.path(), &["catalog", "orders"]).unwrap();
        let key = std::fs::read_to_string(&files[1].key).unwrap();
        assert!(key.contains("PRIVATE KEY"), "replaced");
        files[1].load().unwrap().server_config().unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn keys_are_the_owners_only_even_when_replacing_a_readable_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let old = dir.path().join("orders-key.pem");
        std::fs::write(&old, "old").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        let files = write_dev_certs(dir.path(), &["orders"]).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&files[0].key), 0o600);
        assert_eq!(mode(&dir.path().join("ca-key.pem")), 0o600);
        assert_eq!(mode(&files[0].certificate) & 0o600, 0o600, "certificates stay readable");
    }
}
