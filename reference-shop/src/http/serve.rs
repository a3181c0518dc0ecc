//! The listener: accepts connections, refuses those over the connection limits at once, and
//! serves the rest with hyper's HTTP/1 server, whose header read timeout closes a connection
//! that does not send its request headers in time (a half-sent request, or an idle
//! keep-alive connection).
//!
//! `axum::serve` cannot do either: it has no connection limit, and it sets no timer, so
//! hyper's header timeout never runs. The connection loop here is axum's (one task per
//! connection, the client address as `ConnectInfo`), with the limits of
//! [`Connections`] in front. HTTP/1 only: hyper's automatic HTTP/1-or-2 detection reads the
//! connection's first bytes with no timeout, so a silent connection would be held forever.
//!
//! With `[server.tls]` ([`ServerTls`]) each admitted connection first completes a mutual-TLS
//! handshake in its own task, within `server.tls.handshake_timeout`, holding its connection
//! permit meanwhile (so a silent client counts against the limits and is closed in bounded
//! time); a plaintext client, or one without a certificate signed by the CA, fails the
//! handshake and never reaches HTTP. Both are counted ([`Connections`]). The refusal over
//! the limits is then a plain close: a TLS client could not read a plaintext 503.
//!
//! The read timeouts run on tokio's timer, as the sockets do: they bound how long a client
//! may take, which the shop clock (a manual clock in tests) has nothing to say about.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::connections::{Connections, Refused};
use crate::api::ApiError;
use crate::config::{ClientLimits, ServerTls};

/// Serves `app` on `listener` (over mutual TLS when `tls` is given) until `stop` turns true
/// (or its sender is dropped); then stops accepting, lets each connection finish the request
/// it is serving, and returns when all have closed. Dropping the returned future closes
/// every connection at once.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    connections: Arc<Connections>,
    limits: &ClientLimits,
    tls: Option<ServerTls>,
    mut stop: watch::Receiver<bool>,
) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new()).header_read_timeout(limits.header_read_timeout);
    let http = Arc::new(http);
    let graceful = GracefulShutdown::new();
    // Owned here, so that dropping this future (the shop's shutdown after its grace period)
    // aborts every connection.
    let mut open = JoinSet::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    accept_failed(&e).await;
                    continue;
                }
            },
            Some(_) = open.join_next(), if !open.is_empty() => continue,
            // (The guard `wait_for` returns is not `Send`: dropped inside.)
            () = async { drop(stop.wait_for(|stop| *stop).await) } => break,
        };
        let permit = match connections.admit(peer.ip()) {
            Ok(permit) => permit,
            Err(refused) => {
                tracing::debug!(%peer, %refused, "connection refused");
                if tls.is_none() {
                    refuse(&stream, refused);
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let (http, watcher, connections) =
            (Arc::clone(&http), graceful.watcher(), Arc::clone(&connections));
        match &tls {
            None => open.spawn(async move {
                let _permit = permit;
                serve_connection(&http, stream, app, watcher, &connections, peer).await;
            }),
            Some(tls) => {
                let tls = tls.clone();
                open.spawn(async move {
                    let _permit = permit;
                    let handshake = tls.acceptor.accept(stream);
                    match tokio::time::timeout(tls.handshake_timeout, handshake).await {
                        Ok(Ok(stream)) => {
                            serve_connection(&http, stream, app, watcher, &connections, peer).await;
                        }
                        Ok(Err(e)) => {
                            connections.tls_handshake_failed();
                            tracing::debug!(%peer, error = %e, "TLS handshake refused");
                        }
                        Err(_) => {
                            connections.tls_handshake_timed_out();
                            tracing::debug!(%peer, "TLS handshake timed out");
                        }
                    }
                })
            }
        };
    }
    drop(listener);
    graceful.shutdown().await;
    while open.join_next().await.is_some() {}
}

/// Serves one connection's requests until it closes, counting a header read timeout.
async fn serve_connection<I>(
    http: &hyper::server::conn::http1::Builder,
    io: I,
    app: Router,
    watcher: Watcher,
    connections: &Connections,
    peer: std::net::SocketAddr,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let app = tower::ServiceExt::map_request(app, move |mut req: HyperRequest| {
        req.extensions_mut().insert(ConnectInfo(peer));
        req
    });
    let conn = http.serve_connection(TokioIo::new(io), TowerToHyperService::new(app));
    match watcher.watch(conn).await {
        Ok(()) => {}
        Err(e) if e.is_timeout() => connections.header_timed_out(),
        Err(e) => tracing::debug!(%peer, error = %e, "connection closed"),
    }
}

/// A request as hyper hands it over (the router reads its body as it is).
type HyperRequest = hyper::Request<Incoming>;

/// Answers a refused connection 503 with the JSON error body if its socket takes it now, and
/// closes it: a refusal never waits on the client.
fn refuse(stream: &TcpStream, refused: Refused) {
    let body = ApiError::unavailable(
        "too_many_connections",
        format!("connection refused: {refused}; retry shortly"),
        1,
    )
    .into_body();
    let body = serde_json::to_string(&body).unwrap_or_default();
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nretry-after: 1\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.try_write(answer.as_bytes());
}

/// After a failed accept: a connection that failed before it was accepted is skipped; any
/// other error (out of file descriptors) pauses accepting for a moment, as `axum::serve`
/// does, rather than spinning.
async fn accept_failed(e: &std::io::Error) {
    use std::io::ErrorKind as K;
    if matches!(e.kind(), K::ConnectionRefused | K::ConnectionAborted | K::ConnectionReset) {
        return;
    }
    tracing::error!(error = %e, "accept failed; pausing");
    tokio::time::sleep(Duration::from_millis(100)).await;
}
