//! `reference-shop certs --out DIR [--service NAME ...] [--force]`: a development CA and a
//! certificate + key per service, for `[server.tls]` on this machine (issue 18, item 4).
//!
//! Each certificate is valid for its service's name, `localhost`, `127.0.0.1` and `::1`, for
//! both ends of mutual TLS (one file serves a service's listener and its calls to the
//! others); `client` is the identity of tools and tests (curl, the load generator). Keys are
//! created readable by their owner only (0600). Existing files are never replaced without
//! `--force`: nothing is written when any of them is in place. Never for production: the
//! CA's key sits beside the certificates it signs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use levee::client::TlsFiles;
use levee::client::tls::TlsError;
use levee::client::tls::dev::{Existing, write_dev_certs_with};

/// The services `certs` writes a certificate for by default: every process of the split
/// mode, and `client` for tools and tests.
pub const DEFAULT_SERVICES: [&str; 7] =
    ["gateway", "catalog", "orders", "payment", "notification", "provider", "client"];

/// `reference-shop certs`.
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    /// The directory to write into (created if missing).
    #[arg(long)]
    pub out: PathBuf,
    /// A service to make a certificate for (repeat for several); default: gateway, catalog,
    /// orders, payment, notification, provider and client.
    #[arg(long = "service", value_name = "NAME")]
    pub services: Vec<String>,
    /// Replace files already in the directory.
    #[arg(long)]
    pub force: bool,
}

/// Why no certificates were written.
#[derive(Debug, thiserror::Error)]
pub enum CertsError {
    /// A file is already in place and `--force` was not given; nothing was written.
    #[error("{} already exists; nothing written (pass --force to replace the set)", path.display())]
    Exists {
        /// The first file found in place.
        path: PathBuf,
    },
    /// A service name that cannot name a certificate (not a DNS name: letters, digits,
    /// `-` and `.` only), or the certificates could not be made.
    #[error("{0}")]
    Generate(String),
    /// A file or the directory could not be written.
    #[error(transparent)]
    Write(TlsError),
}

/// Writes the CA and one certificate per service (the defaults when `services` is empty)
/// into `out`, and returns each service's files, in order.
///
/// # Errors
/// [`CertsError::Exists`] when a file is in place and `force` is false (nothing written),
/// [`CertsError::Generate`] for a service name that is not a DNS name, [`CertsError::Write`]
/// when the directory or a file cannot be written.
pub fn write(out: &Path, services: &[String], force: bool) -> Result<Vec<TlsFiles>, CertsError> {
    let mut names: Vec<&str> = services.iter().map(String::as_str).collect();
    if names.is_empty() {
        names = DEFAULT_SERVICES.to_vec();
    }
    let existing = if force { Existing::Replace } else { Existing::Refuse };
    write_dev_certs_with(out, &names, existing).map_err(|e| match e {
        TlsError::Write { path, source } if source.kind() == std::io::ErrorKind::AlreadyExists => {
            CertsError::Exists { path }
        }
        TlsError::Generate(message) => CertsError::Generate(message),
        other => CertsError::Write(other),
    })
}

/// Runs `reference-shop certs`: writes the set and prints each file it wrote.
pub fn run(args: &Args) -> ExitCode {
    match write(&args.out, &args.services, args.force) {
        Ok(files) => {
            let Some(first) = files.first() else { return ExitCode::SUCCESS };
            println!("wrote {} (the CA every service trusts)", first.ca.display());
            println!(
                "wrote {} (the CA's key: keep it, or delete it)",
                args.out.join("ca-key.pem").display()
            );
            for f in &files {
                println!("wrote {} and {}", f.certificate.display(), f.key.display());
            }
            println!(
                "use them: SHOP_SERVER__TLS__CA={} SHOP_SERVER__TLS__CERT={} SHOP_SERVER__TLS__KEY={}",
                first.ca.display(),
                first.certificate.display(),
                first.key.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("reference-shop certs: {e}");
            ExitCode::FAILURE
        }
    }
}
