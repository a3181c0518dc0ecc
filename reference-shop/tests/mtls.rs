//! Mutual TLS with the real binary (issue 18, item 4): `reference-shop certs` writes a usable
//! set and refuses to overwrite it; a shop with `[server.tls]` answers a client presenting
//! the `client` certificate (levee's service client, built from the shop's own
//! `TlsSettings::client`), and refuses, at the handshake, a plaintext client, a client with
//! another CA's certificate and a client with none, counting each in `/admin/status` and
//! `/metrics`; a connection that never completes its handshake, or completes it and then
//! sends nothing, is closed in bounded time; unusable `[server.tls]` files stop the start
//! with exit code 2, naming the setting and the file.

mod process;

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use levee::client::tls::TlsConfig;
use levee::client::tls::dev::DevCa;
use levee::client::{Client, Endpoint};
use process::Scratch;
use reference_shop::config::TlsSettings;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "mtls-test-token";

/// `reference-shop certs` with `args`: exit status, stdout, stderr.
fn certs(args: &[&str]) -> (bool, String, String) {
    let out = process::binary().arg("certs").args(args).stdin(Stdio::null()).output().unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (out.status.success(), text(&out.stdout), text(&out.stderr))
}

#[cfg(unix)]
fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn certs_writes_a_usable_set_and_refuses_to_overwrite_it() {
    let scratch = Scratch::new("mtls-certs");
    let dir = scratch.0.join("certs");
    let out = dir.to_str().unwrap();
    let (ok, stdout, stderr) = certs(&["--out", out]);
    assert!(ok, "{stderr}");
    let services =
        ["gateway", "catalog", "orders", "payment", "notification", "provider", "client"];
    for service in services {
        let (cert, key) =
            (dir.join(format!("{service}.pem")), dir.join(format!("{service}-key.pem")));
        assert!(stdout.contains(&cert.display().to_string()), "{stdout}");
        assert!(stdout.contains(&key.display().to_string()), "{stdout}");
        #[cfg(unix)]
        assert_eq!(mode(&key), 0o600, "{service}'s key is the owner's only");
        // Each is an identity both ends of mutual TLS accept.
        let tls = TlsConfig::from_pem_files(dir.join("ca.pem"), &cert, &key).unwrap();
        tls.server_config().unwrap();
        tls.client_config().unwrap();
    }
    #[cfg(unix)]
    assert_eq!(mode(&dir.join("ca-key.pem")), 0o600);

    // Again: refused, naming a file, and nothing changed.
    let ca = std::fs::read(dir.join("ca.pem")).unwrap();
    let (ok, _, stderr) = certs(&["--out", out, "--service", "orders"]);
    assert!(!ok);
    assert!(stderr.contains("already exists") && stderr.contains("--force"), "{stderr}");
    assert_eq!(std::fs::read(dir.join("ca.pem")).unwrap(), ca);
    // With --force: a new CA, and only the services asked for.
    let (ok, stdout, stderr) = certs(&["--out", out, "--service", "orders", "--force"]);
    assert!(ok, "{stderr}");
    assert!(stdout.contains("orders.pem") && !stdout.contains("catalog.pem"), "{stdout}");
    assert_ne!(std::fs::read(dir.join("ca.pem")).unwrap(), ca);
    // A name that is not a DNS name would put a file outside the directory: refused.
    let (ok, _, stderr) = certs(&["--out", out, "--service", "../escape", "--force"]);
    assert!(!ok);
    assert!(stderr.contains("invalid service name `../escape`"), "{stderr}");
    assert!(!scratch.0.join("escape.pem").exists());
}

/// A shop process on `dir`'s `gateway` identity.
struct TlsShop {
    child: Child,
    addr: String,
}

impl Drop for TlsShop {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn tls_settings(dir: &Path, identity: &str) -> TlsSettings {
    TlsSettings {
        ca: Some(dir.join("ca.pem")),
        cert: Some(dir.join(format!("{identity}.pem"))),
        key: Some(dir.join(format!("{identity}-key.pem"))),
        ..TlsSettings::default()
    }
}

fn start_tls_shop(dir: &Path, data: &Path) -> TlsShop {
    let mut cmd = process::serve(None, TOKEN, data);
    cmd.env("SHOP_STORAGE__SEED_PRODUCTS", "10")
        .env("SHOP_SERVER__TLS__CA", dir.join("ca.pem"))
        .env("SHOP_SERVER__TLS__CERT", dir.join("gateway.pem"))
        .env("SHOP_SERVER__TLS__KEY", dir.join("gateway-key.pem"))
        .env("SHOP_SERVER__TLS__HANDSHAKE_TIMEOUT", "1s")
        .env("SHOP_SERVER__CLIENTS__HEADER_READ_TIMEOUT", "1s")
        .env("SHOP_SERVER__CLIENTS__MAX_CONNECTIONS_PER_ADDRESS", "3");
    let (child, url) = process::spawn_announced(&mut cmd);
    let addr =
        url.strip_prefix("https://").unwrap_or_else(|| panic!("not https: {url}")).to_owned();
    TlsShop { child, addr }
}

/// One HTTP/1.1 request on `io`, and everything the server sent until it closed.
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    addr: &str,
    path: &str,
) -> std::io::Result<String> {
    let request = format!(
        "GET {path} HTTP/1.1\r\nhost: {addr}\r\nx-admin-token: {TOKEN}\r\nconnection: close\r\n\r\n"
    );
    io.write_all(request.as_bytes()).await?;
    let mut answer = Vec::new();
    io.read_to_end(&mut answer).await?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

/// `path` over TLS with `config`: the handshake and the exchange, bounded.
async fn https(config: rustls::ClientConfig, addr: &str, path: &str) -> std::io::Result<String> {
    let connect = async {
        let tcp = TcpStream::connect(addr).await?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = ServerName::try_from("127.0.0.1").unwrap();
        let tls = connector.connect(name, tcp).await?;
        exchange(tls, addr, path).await
    };
    tokio::time::timeout(Duration::from_secs(10), connect)
        .await
        .expect("answered or refused in time")
}

fn assert_refused(outcome: std::io::Result<String>, who: &str) {
    match outcome {
        // The shop's TLS alert, as rustls reports it to the client.
        Err(e) => assert!(e.to_string().contains("alert"), "{who}: refused without an alert: {e}"),
        Ok(answer) => panic!("{who} was answered: {answer:?}"),
    }
}

/// `/admin/status`'s `connections` (this request's own connection open among them).
async fn connections(config: &rustls::ClientConfig, addr: &str) -> serde_json::Value {
    let status = https(config.clone(), addr, "/admin/status").await.unwrap();
    let body = status.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or_default();
    let status: serde_json::Value =
        serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {status}"));
    status["connections"].clone()
}

/// rustls's ring provider, as levee's TLS uses (levee-client's `tls` module says why, and
/// why rustls deprecates it).
#[allow(deprecated)]
fn ring() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A counter of `/metrics` with its labels, e.g. `shop_tls_handshakes_refused_total{reason="failed"}`.
fn metric(text: &str, series: &str) -> u64 {
    text.lines()
        .find_map(|l| l.strip_prefix(series).and_then(|v| v.trim().parse().ok()))
        .unwrap_or_else(|| panic!("{series} not in /metrics:\n{text}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_shop_answers_its_ca_clients_and_refuses_the_rest_at_the_handshake() {
    let scratch = Scratch::new("mtls-serve");
    let dir = scratch.0.join("certs");
    let (ok, _, stderr) = certs(&["--out", dir.to_str().unwrap()]);
    assert!(ok, "{stderr}");
    let shop = start_tls_shop(&dir, &scratch.0.join("data"));
    let addr = shop.addr.clone();

    // The `client` identity through the shop's own client hook and levee's service client.
    let tls = tls_settings(&dir, "client").client(None).unwrap().expect("TLS is on");
    let client = Client::builder()
        .endpoints([Endpoint::new(&format!("https://{addr}")).unwrap()])
        .tls(tls.clone())
        .build()
        .unwrap();
    let health = client.get("/health").await.unwrap();
    assert_eq!(health.status(), 200, "{:?}", health.body());
    let products = client.get("/products?limit=2").await.unwrap();
    assert_eq!(products.status(), 200);
    assert!(String::from_utf8_lossy(products.body()).contains("\"id\""), "{products:?}");
    // Its idle keep-alive connection closes now, not by the header timeout counted below.
    drop(client);

    // Plaintext HTTP to the TLS port: no HTTP answer.
    let plain = async {
        let tcp = TcpStream::connect(&addr).await?;
        exchange(tcp, &addr, "/health").await
    };
    match tokio::time::timeout(Duration::from_secs(10), plain).await.expect("closed in time") {
        Ok(answer) => assert!(!answer.starts_with("HTTP/"), "plaintext answered: {answer:?}"),
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    // A certificate from another CA (trusting the shop's CA, so only the shop can refuse).
    let other = DevCa::new("another CA").unwrap();
    let stranger = other.issue("client").unwrap();
    let ca_pem = std::fs::read(dir.join("ca.pem")).unwrap();
    let stranger =
        TlsConfig::from_pem(&ca_pem, stranger.cert_pem.as_bytes(), stranger.key_pem.as_bytes())
            .unwrap()
            .client_config()
            .unwrap();
    assert_refused(https(stranger, &addr, "/health").await, "another CA's client");

    // No certificate at all.
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_slice_iter(&ca_pem) {
        roots.add(cert.unwrap()).unwrap();
    }
    let anonymous = rustls::ClientConfig::builder_with_provider(ring())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    assert_refused(https(anonymous, &addr, "/health").await, "a client without a certificate");

    // Connections that never start their handshake hold their places in the connection
    // limits (3 per address here): a fourth is closed at once; the three are closed after
    // the handshake timeout (1 s), not held.
    let config = tls.client_config().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while connections(&config, &addr).await["open"] != 1 {
        assert!(Instant::now() < deadline, "the refused clients' connections stay open");
        tokio::task::yield_now().await;
    }
    let started = Instant::now();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push(TcpStream::connect(&addr).await.unwrap());
    }
    let mut fourth = TcpStream::connect(&addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(10), fourth.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed, not answered: {read:?}");
    assert!(started.elapsed() < Duration::from_millis(800), "at once: {:?}", started.elapsed());
    for mut connection in silent {
        let read = tokio::time::timeout(Duration::from_secs(10), connection.read(&mut buf)).await;
        assert!(matches!(read, Ok(Ok(0) | Err(_))), "closed, not answered: {read:?}");
    }
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(800), "closed by the timeout, not at once: {waited:?}");
    assert!(waited < Duration::from_secs(5), "{waited:?}");

    // A connection that completes its handshake and sends no request: the header read
    // timeout (1 s) still closes it.
    let started = Instant::now();
    let tcp = TcpStream::connect(&addr).await.unwrap();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config.clone()));
    let mut idle =
        connector.connect(ServerName::try_from("127.0.0.1").unwrap(), tcp).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), idle.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "closed in time");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // Counted: three refused handshakes (plaintext, stranger, anonymous), three timed out,
    // one refused by the per-address limit, one header timeout, in `/admin/status` and
    // `/metrics` alike.
    let conn = connections(&config, &addr).await;
    assert_eq!(conn["tls_handshakes_failed"], 3, "{conn}");
    assert_eq!(conn["tls_handshake_timeouts"], 3, "{conn}");
    assert_eq!(conn["refused_per_address"], 1, "{conn}");
    assert_eq!(conn["header_timeouts"], 1, "{conn}");
    let metrics = https(config, &addr, "/metrics").await.unwrap();
    assert_eq!(metric(&metrics, "shop_tls_handshakes_refused_total{reason=\"failed\"}"), 3);
    assert_eq!(metric(&metrics, "shop_tls_handshakes_refused_total{reason=\"timeout\"}"), 3);
    drop(shop);
}

/// The shop refuses to start on `[server.tls]` settings: exit code 2 and stderr.
fn refused_start(data: &Path, settings: &[(&str, PathBuf)]) -> String {
    let mut cmd = process::serve(None, TOKEN, data);
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    for (name, value) in settings {
        cmd.env(name, value);
    }
    let out = cmd.output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn unusable_tls_settings_stop_the_start_naming_the_setting_and_the_file() {
    let scratch = Scratch::new("mtls-settings");
    let dir = scratch.0.join("certs");
    let (ok, _, stderr) =
        certs(&["--out", dir.to_str().unwrap(), "--service", "gateway", "--service", "orders"]);
    assert!(ok, "{stderr}");
    let data = scratch.0.join("data");
    let (ca, cert, key) =
        (dir.join("ca.pem"), dir.join("gateway.pem"), dir.join("gateway-key.pem"));

    let err = refused_start(&data, &[("SHOP_SERVER__TLS__CA", ca.clone())]);
    assert!(err.contains("`server.tls.cert`") && err.contains("is missing"), "{err}");

    let absent = dir.join("absent.pem");
    let err = refused_start(
        &data,
        &[
            ("SHOP_SERVER__TLS__CA", ca.clone()),
            ("SHOP_SERVER__TLS__CERT", absent.clone()),
            ("SHOP_SERVER__TLS__KEY", key.clone()),
        ],
    );
    assert!(
        err.contains("`server.tls.cert`") && err.contains(&absent.display().to_string()),
        "{err}"
    );

    let err = refused_start(
        &data,
        &[
            ("SHOP_SERVER__TLS__CA", key.clone()),
            ("SHOP_SERVER__TLS__CERT", cert.clone()),
            ("SHOP_SERVER__TLS__KEY", key.clone()),
        ],
    );
    assert!(err.contains("`server.tls.ca`") && err.contains("no valid PEM certificate"), "{err}");

    let other_key = dir.join("orders-key.pem");
    let err = refused_start(
        &data,
        &[
            ("SHOP_SERVER__TLS__CA", ca),
            ("SHOP_SERVER__TLS__CERT", cert),
            ("SHOP_SERVER__TLS__KEY", other_key.clone()),
        ],
    );
    assert!(
        err.contains("`server.tls.key`") && err.contains(&other_key.display().to_string()),
        "{err}"
    );
    assert!(!data.join("shop.db").exists(), "refused before the store was opened");
}
