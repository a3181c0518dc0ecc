//! An axum listener that speaks mutual TLS.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// Handshakes in progress at most; the accept loop waits for one to finish beyond this.
const MAX_HANDSHAKES: usize = 1024;

/// The other end of a mutual-TLS connection: its address and its verified certificate.
///
/// It is [`TlsListener`]'s address type, so a handler gets it with
/// `ConnectInfo<TlsPeer>` (serve with `into_make_service_with_connect_info::<TlsPeer>()`),
/// to key limits or decisions by the caller's verified identity rather than its address.
///
/// ```
/// use levee_client::tls::TlsPeer;
/// use levee_client::tls::dev::DevCa;
/// use rustls_pki_types::CertificateDer;
/// use rustls_pki_types::pem::PemObject;
///
/// // What a handler sees as `ConnectInfo<TlsPeer>` after a client presented the orders
/// // certificate (made here by hand, as the handshake would have).
/// let ca = DevCa::new("levee development CA").unwrap();
/// let orders = ca.issue("orders").unwrap();
/// let peer = TlsPeer {
///     addr: "127.0.0.1:50000".parse().unwrap(),
///     certificate: Some(CertificateDer::from_pem_slice(orders.cert_pem.as_bytes()).unwrap()),
/// };
/// assert!(peer.is_named("orders")); // key limits by the verified name, not the address
/// assert!(!peer.is_named("payments"));
/// ```
#[derive(Debug, Clone)]
pub struct TlsPeer {
    /// The peer's socket address (the local one for [`Listener::local_addr`]).
    pub addr: SocketAddr,
    /// The peer's end-entity certificate, verified against the CA during the handshake
    /// (`None` only for the local address).
    pub certificate: Option<CertificateDer<'static>>,
}

impl TlsPeer {
    /// True when the peer's verified certificate is valid for `name` (a DNS name or IP
    /// address among its subject alternative names): `peer.is_named("orders")`.
    #[must_use]
    pub fn is_named(&self, name: &str) -> bool {
        let (Some(cert), Ok(name)) = (&self.certificate, ServerName::try_from(name)) else {
            return false;
        };
        webpki::EndEntityCert::try_from(cert)
            .is_ok_and(|ee| ee.verify_is_valid_for_subject_name(&name).is_ok())
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for TlsPeer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A TCP listener whose connections must complete a mutual-TLS handshake before axum sees
/// them: `axum::serve(TlsListener::new(tcp, config), app)`.
///
/// Handshakes run concurrently in their own tasks (a slow or silent client holds no one
/// else up), each bounded by a timeout (10 s by default), at most 1024 at once. A client
/// that sends plaintext, presents no certificate or one the CA did not sign fails its
/// handshake and never reaches the app; [`rejected`](Self::rejected) counts them.
///
/// ```no_run
/// use levee_client::tls::{TlsConfig, TlsListener};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let tls = TlsConfig::from_pem_files("certs/ca.pem", "certs/catalog.pem", "certs/catalog-key.pem")?;
/// let tcp = tokio::net::TcpListener::bind("127.0.0.1:8443").await?;
/// let app = axum::Router::new().route("/health", axum::routing::get(|| async { "ok" }));
/// axum::serve(TlsListener::new(tcp, tls.server_config()?)?, app).await?;
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct TlsListener {
    accepted: mpsc::Receiver<(TlsStream<TcpStream>, TlsPeer)>,
    local: SocketAddr,
    rejected: Arc<AtomicU64>,
    task: JoinHandle<()>,
}

impl TlsListener {
    /// Accepts on `tcp`, handshaking with `config` (which should require client
    /// certificates: [`TlsConfig::server_config`](super::TlsConfig::server_config)). Must
    /// be called inside a tokio runtime: it spawns the accept loop.
    ///
    /// # Errors
    /// When the listener's local address cannot be read.
    pub fn new(tcp: TcpListener, config: rustls::ServerConfig) -> std::io::Result<Self> {
        Self::with_handshake_timeout(tcp, config, Duration::from_secs(10))
    }

    /// Like [`new`](Self::new), giving each handshake at most `timeout`.
    ///
    /// # Errors
    /// As [`new`](Self::new).
    pub fn with_handshake_timeout(
        tcp: TcpListener,
        config: rustls::ServerConfig,
        timeout: Duration,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let (tx, accepted) = mpsc::channel(64);
        let rejected = Arc::new(AtomicU64::new(0));
        let task = tokio::spawn(accept_loop(
            tcp,
            TlsAcceptor::from(Arc::new(config)),
            timeout,
            tx,
            rejected.clone(),
        ));
        Ok(Self { accepted, local, rejected, task })
    }

    /// Handshakes that failed or timed out so far.
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn accept_loop(
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    timeout: Duration,
    tx: mpsc::Sender<(TlsStream<TcpStream>, TlsPeer)>,
    rejected: Arc<AtomicU64>,
) {
    let slots = Arc::new(Semaphore::new(MAX_HANDSHAKES));
    loop {
        let Ok(slot) = slots.clone().acquire_owned().await else { return };
        let (stream, addr) = match tcp.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let (acceptor, tx, rejected) = (acceptor.clone(), tx.clone(), rejected.clone());
        tokio::spawn(async move {
            let _slot = slot;
            match tokio::time::timeout(timeout, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => {
                    let certificate = tls
                        .get_ref()
                        .1
                        .peer_certificates()
                        .and_then(|chain| chain.first())
                        .map(|c| c.clone().into_owned());
                    // A closed channel means the listener is gone: drop the connection.
                    let _ = tx.send((tls, TlsPeer { addr, certificate })).await;
                }
                Ok(Err(e)) => {
                    rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %addr, error = %e, "TLS handshake refused");
                }
                Err(_) => {
                    rejected.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(peer = %addr, "TLS handshake timed out");
                }
            }
        });
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = TlsPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.accepted.recv().await {
            Some(connection) => connection,
            // The accept loop only ends when the listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<TlsPeer> {
        Ok(TlsPeer { addr: self.local, certificate: None })
    }
}
