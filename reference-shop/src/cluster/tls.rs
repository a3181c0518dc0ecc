//! Mutual TLS for every process of the cluster (`[tls] enabled = true` in the topology): one
//! development CA and a certificate per service (`reference-shop certs`'s set, `crate::certs`),
//! each process given `[server.tls]` with its service's certificate, which it also presents
//! on its calls to the others (they verify it by the service's name).

use std::path::{Path, PathBuf};

use super::topology::{TlsTopology, Topology};

/// The identity of tools and tests (curl, the load generator) calling the cluster.
pub(crate) const CLIENT: &str = "client";

/// The certificates' directory when TLS is on (`None` when off): `tls.dir`, or `certs/` in
/// `run_dir`. A directory holding `ca.pem` is used as it is (each service's files must be
/// there); otherwise the set is made there.
///
/// # Errors
/// A service's files are missing beside an existing `ca.pem`, or the set cannot be written.
pub(crate) fn prepare(
    tls: &TlsTopology,
    topology: &Topology,
    run_dir: &Path,
) -> Result<Option<PathBuf>, String> {
    if !tls.enabled {
        return Ok(None);
    }
    let dir = tls.dir.clone().unwrap_or_else(|| run_dir.join("certs"));
    let mut names: Vec<String> = topology.services.iter().map(|s| s.name.clone()).collect();
    names.push(CLIENT.to_owned());
    if dir.join("ca.pem").is_file() {
        for name in &names {
            for file in [format!("{name}.pem"), format!("{name}-key.pem")] {
                if !dir.join(&file).is_file() {
                    return Err(format!(
                        "{} has a ca.pem but no {file}: remove the directory, or make the set with `reference-shop certs --out {} --force`",
                        dir.display(),
                        dir.display()
                    ));
                }
            }
        }
        return Ok(Some(dir));
    }
    crate::certs::write(&dir, &names, false)
        .map_err(|e| format!("cannot make certificates in {}: {e}", dir.display()))?;
    Ok(Some(dir))
}

/// `[server.tls]` for a process of `service`, as its environment.
pub(crate) fn env(dir: &Path, service: &str) -> [(String, String); 3] {
    let file = |name: String| dir.join(name).display().to_string();
    [
        ("SHOP_SERVER__TLS__CA".to_owned(), file("ca.pem".to_owned())),
        ("SHOP_SERVER__TLS__CERT".to_owned(), file(format!("{service}.pem"))),
        ("SHOP_SERVER__TLS__KEY".to_owned(), file(format!("{service}-key.pem"))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn off_makes_nothing_and_on_makes_or_reuses_a_set() {
        let run = tempfile::tempdir().unwrap();
        let topology =
            Topology::parse("[services.catalog]\n[services.gateway]\n[tls]\nenabled = true", "t")
                .unwrap();
        assert_eq!(prepare(&TlsTopology::default(), &topology, run.path()).unwrap(), None);
        assert!(!run.path().join("certs").exists());

        let dir = prepare(&topology.tls, &topology, run.path()).unwrap().unwrap();
        assert_eq!(dir, run.path().join("certs"));
        for service in ["catalog", "gateway", CLIENT] {
            let [ca, cert, key] = env(&dir, service).map(|(_, v)| PathBuf::from(v));
            let tls = levee::client::tls::TlsConfig::from_pem_files(&ca, &cert, &key).unwrap();
            tls.server_config().unwrap();
        }
        // Again: the same set, used as it is.
        let ca = std::fs::read(dir.join("ca.pem")).unwrap();
        assert_eq!(prepare(&topology.tls, &topology, run.path()).unwrap(), Some(dir.clone()));
        assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca);
        // A set without a service's files is refused, naming the file.
        std::fs::remove_file(dir.join("gateway-key.pem")).unwrap();
        let err = prepare(&topology.tls, &topology, run.path()).unwrap_err();
        assert!(err.contains("no gateway-key.pem"), "{err}");
    }
}
