//! Mutual TLS on 127.0.0.1: a server that requires client certificates refuses a plaintext
//! client and a client whose certificate another CA signed, and serves the right one; the
//! client checks the server's name. Real handshakes, so real time, bounded per call.

#![cfg(not(loom))]

use std::time::Duration;

use axum::extract::ConnectInfo;
use levee_client::tls::dev::DevCa;
use levee_client::tls::{TlsConfig, TlsListener, TlsPeer};
use levee_client::{Client, Endpoint, Error};

struct Cluster {
    ca: DevCa,
    endpoint: Endpoint,
    _task: tokio::task::JoinHandle<()>,
}

/// A "catalog" server behind mutual TLS that answers with the caller's verified identity.
async fn catalog() -> Cluster {
    let ca = DevCa::new("test CA").unwrap();
    let tls = ca.issue("catalog").unwrap().tls_config(&ca).unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = tcp.local_addr().unwrap();
    let listener = TlsListener::with_handshake_timeout(
        tcp,
        tls.server_config().unwrap(),
        Duration::from_secs(2),
    )
    .unwrap();
    let app = axum::Router::new().route(
        "/whoami",
        axum::routing::get(|ConnectInfo(peer): ConnectInfo<TlsPeer>| async move {
            let names = ["orders", "payment"];
            names.iter().find(|n| peer.is_named(n)).map_or("unknown", |n| n).to_owned()
        }),
    );
    let task = tokio::spawn(async move {
        axum::serve(listener, app.into_make_service_with_connect_info::<TlsPeer>()).await.unwrap();
    });
    let endpoint = Endpoint::new(&format!("https://{addr}")).unwrap();
    Cluster { ca, endpoint, _task: task }
}

fn client(endpoint: &Endpoint, tls: Option<TlsConfig>) -> Client {
    let mut builder = Client::builder()
        .endpoints([endpoint.clone()])
        .timeout(Duration::from_secs(5))
        .max_attempts(1);
    if let Some(tls) = tls {
        builder = builder.tls(tls);
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn the_right_certificate_is_served_and_its_identity_known() {
    let cluster = catalog().await;
    let orders = cluster.ca.issue("orders").unwrap().tls_config(&cluster.ca).unwrap();
    let response = client(&cluster.endpoint, Some(orders)).get("/whoami").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "orders");
}

#[tokio::test]
async fn a_plaintext_client_is_refused() {
    let cluster = catalog().await;
    // Plain HTTP to the TLS port: the handshake fails and no response comes back.
    let plain = Endpoint::new(&format!("http://{}", cluster.endpoint.authority())).unwrap();
    let outcome = client(&plain, None).get("/whoami").await;
    assert!(matches!(outcome, Err(Error::Transport { .. } | Error::Connect { .. })), "{outcome:?}");
}

#[tokio::test]
async fn a_client_without_a_certificate_of_the_ca_is_refused() {
    let cluster = catalog().await;
    // A certificate from another CA, which trusts the right CA to verify the server: the
    // server refuses it during the handshake.
    let other = DevCa::new("another CA").unwrap();
    let stranger = other.issue("orders").unwrap();
    let tls = TlsConfig::from_pem(
        cluster.ca.cert_pem().as_bytes(),
        stranger.cert_pem.as_bytes(),
        stranger.key_pem.as_bytes(),
    )
    .unwrap();
    let outcome = client(&cluster.endpoint, Some(tls)).get("/whoami").await;
    assert!(matches!(outcome, Err(Error::Connect { .. } | Error::Transport { .. })), "{outcome:?}");
}

#[tokio::test]
async fn the_client_verifies_the_servers_name() {
    let cluster = catalog().await;
    let orders = cluster.ca.issue("orders").unwrap().tls_config(&cluster.ca).unwrap();
    // The server is catalog: calling it as "catalog" works, as "payment" does not.
    let right = client(&cluster.endpoint, Some(orders.clone().server_name("catalog")));
    assert_eq!(right.get("/whoami").await.unwrap().status(), 200);
    let wrong = client(&cluster.endpoint, Some(orders.server_name("payment")));
    assert!(matches!(wrong.get("/whoami").await, Err(Error::Connect { .. })));
}

#[tokio::test]
async fn bad_pem_is_a_typed_error() {
    let ca = DevCa::new("test CA").unwrap();
    let cert = ca.issue("orders").unwrap();
    let err = TlsConfig::from_pem(b"nothing", cert.cert_pem.as_bytes(), cert.key_pem.as_bytes())
        .unwrap_err();
    assert!(matches!(err, levee_client::tls::TlsError::NoCertificate { what: "ca" }), "{err}");
    let err =
        TlsConfig::from_pem(ca.cert_pem().as_bytes(), cert.cert_pem.as_bytes(), b"").unwrap_err();
    assert!(matches!(err, levee_client::tls::TlsError::NoKey), "{err}");
    let missing = TlsConfig::from_pem_files("/nonexistent/ca.pem", "/x", "/y").unwrap_err();
    assert!(matches!(missing, levee_client::tls::TlsError::Read { .. }), "{missing}");
    // A key that does not belong to the certificate.
    let other = ca.issue("payment").unwrap();
    let mismatched = TlsConfig::from_pem(
        ca.cert_pem().as_bytes(),
        cert.cert_pem.as_bytes(),
        other.key_pem.as_bytes(),
    )
    .unwrap();
    assert!(mismatched.server_config().is_err());
}
