//! The gateway (`serve --service gateway`): the shop's edge in split mode, routing each
//! customer request by its path to the service that serves it.
//!
//! In front of the routes stands the all-in-one shop's edge, unchanged
//! (`http::behind_edge`): who the request counts against (a verified API key, else the client's
//! address), the per-client rate limit, the body read in time, the request deadline, the
//! bulkhead and the admission controller. Sign-up (`POST /customers`) is served here, on the
//! shared store. Every other customer route goes to its upstream group ([`ROUTES`]) through
//! levee's service client, one client per group (`[gateway]`):
//!
//! - power of two choices on peak-EWMA latency among the group's primaries, a breaker per
//!   endpoint whose open state ejects it, the standbys when every primary is ejected;
//! - retries on another endpoint, within a budget, for what is safe to send again: a request
//!   never sent, or an idempotent one (`GET`, `PUT`, `DELETE`, or one with an
//!   `Idempotency-Key`);
//! - the time left of this request's deadline (the smaller of the gateway's own
//!   `server.clients.request_timeout` and the caller's `levee-timeout`) sent as
//!   `levee-timeout`, which the service honours in turn ([`crate::http::deadline`]).
//!
//! A group that cannot answer gets a JSON error, never a hang: 503 `upstream_unavailable`
//! (with `Retry-After`) when every endpoint is ejected, 504 `upstream_timeout` when the
//! deadline passed, 502 `upstream_failed` when the exchange failed. An unknown route is the
//! shop's JSON 404. The service's own answer (a 404 for an unknown product, a 422, a 429)
//! goes back as it came.
//!
//! `GET /admin/upstreams` (admin token) shows each endpoint: its group (0 primary, 1
//! standby), whether it is ejected, requests in flight, latency estimate and breaker.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get};
use levee::client::{Client, Deadline, Error as ClientError, GRPC_TIMEOUT_HEADER, TIMEOUT_HEADER};
use serde::Serialize;

use crate::api::{ApiError, retry_after_secs};
use crate::app::{Shop, StartError};
use crate::config::{GatewayConfig, SettingError, TlsSettings};
use crate::http::{Admin, ClientAddr, assemble, behind_edge, signup};

/// An upstream group: the service a route belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Group {
    /// Products.
    Catalog,
    /// Carts and orders.
    Orders,
    /// What was sent about a cart or an order.
    Notification,
}

impl Group {
    /// The name in settings and messages.
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Catalog => "catalog",
            Self::Orders => "orders",
            Self::Notification => "notification",
        }
    }
}

/// Which group serves each customer route: the paths of the services' routers
/// (`crate::http::{catalog_routes, order_routes, notification_routes}`), every method.
pub const ROUTES: [(&str, Group); 12] = [
    ("/products", Group::Catalog),
    ("/products/{id}", Group::Catalog),
    ("/cart", Group::Orders),
    ("/cart/items", Group::Orders),
    ("/cart/items/{product_id}", Group::Orders),
    ("/orders", Group::Orders),
    ("/orders/{id}", Group::Orders),
    ("/orders/{id}/pay", Group::Orders),
    ("/orders/{id}/checkout", Group::Orders),
    ("/orders/{id}/cancel", Group::Orders),
    ("/cart/notifications", Group::Notification),
    ("/orders/{id}/notifications", Group::Notification),
];

/// Headers of one connection, not of the request (RFC 9110 section 7.6.1), and those the
/// gateway writes itself: never forwarded either way.
const NOT_FORWARDED: [&str; 12] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
    "x-forwarded-for",
];

/// The clients of the three groups.
#[derive(Debug, Clone)]
pub struct Upstreams {
    catalog: Client,
    orders: Client,
    notification: Client,
}

impl Upstreams {
    /// One client per group of `config`, with `config.client`'s settings; over mutual TLS
    /// when `tls` (`[server.tls]`) is set, each group's servers verified by its service name
    /// (`catalog`, `orders`, `notification`: the names `reference-shop certs` issues).
    ///
    /// # Errors
    /// An address or a client setting that does not work, named by its path; unreadable
    /// TLS files.
    pub fn new(config: &GatewayConfig, tls: &TlsSettings) -> Result<Self, StartError> {
        let [catalog, orders, notification] = config.groups().map(|group| {
            let endpoints = group.endpoints()?;
            let mut builder = Client::builder().settings(&config.client).endpoints(endpoints);
            if let Some(tls) = tls.client(Some(group.name))? {
                builder = builder.tls(tls);
            }
            builder.build().map_err(|e| {
                StartError::Config(SettingError {
                    section: "gateway",
                    error: levee::core::ConfigError::new("client", e.to_string()),
                })
            })
        });
        Ok(Self { catalog: catalog?, orders: orders?, notification: notification? })
    }

    /// The client of `group`.
    #[must_use]
    pub fn client(&self, group: Group) -> &Client {
        match group {
            Group::Catalog => &self.catalog,
            Group::Orders => &self.orders,
            Group::Notification => &self.notification,
        }
    }
}

/// The gateway's API: the edge and sign-up, every customer route forwarded to its group,
/// `/admin/upstreams`, and the routes every process serves.
///
/// # Errors
/// The `[gateway]` settings do not make working clients.
pub fn router(shop: Arc<Shop>) -> Result<Router, StartError> {
    let upstreams = Arc::new(Upstreams::new(&shop.config.gateway, &shop.config.server.tls)?);
    let mut routes = Router::new();
    for (path, group) in ROUTES {
        let upstreams = Arc::clone(&upstreams);
        routes = routes.route(
            path,
            any(move |req: Request| {
                let upstreams = Arc::clone(&upstreams);
                async move { forward(upstreams.client(group), group, req).await }
            }),
        );
    }
    let api = behind_edge(&shop, routes, shop.edge.rate_limit()).merge(signup(&shop));
    let admin = Router::new().route(
        "/admin/upstreams",
        get(move |_: Admin| std::future::ready(axum::Json(stats(&upstreams)))),
    );
    Ok(assemble(shop, api.merge(admin)))
}

/// `GET /admin/upstreams`: each group's endpoints.
#[derive(Debug, Serialize)]
struct UpstreamsStatus {
    catalog: Vec<EndpointStatus>,
    orders: Vec<EndpointStatus>,
    notification: Vec<EndpointStatus>,
}

/// One endpoint as `/admin/upstreams` shows it.
#[derive(Debug, Serialize)]
struct EndpointStatus {
    /// `http://host:port`.
    url: String,
    /// 0 primary, 1 standby.
    priority: u8,
    /// Out of rotation now (breaker open, or marked unhealthy).
    ejected: bool,
    /// levee-client's snapshot: in flight, latency, breaker, requests, failures.
    stats: levee::client::EndpointStats,
}

fn stats(upstreams: &Upstreams) -> UpstreamsStatus {
    let of = |group| {
        upstreams
            .client(group)
            .stats()
            .into_iter()
            .map(|s| EndpointStatus {
                url: format!("{}://{}", s.endpoint.scheme(), s.endpoint.authority()),
                priority: s.endpoint.priority(),
                ejected: s.is_ejected(),
                stats: s,
            })
            .collect()
    };
    UpstreamsStatus {
        catalog: of(Group::Catalog),
        orders: of(Group::Orders),
        notification: of(Group::Notification),
    }
}

/// Sends `req` to `group` through `client` and answers with what came back.
async fn forward(client: &Client, group: Group, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    // The edge read the whole body already (`read_body`): this only takes it out.
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => {
            return ApiError::bad_request(
                "unreadable_body",
                format!("the body could not be read: {e}"),
            )
            .into_response();
        }
    };
    let mut out = axum::http::Request::new(body);
    *out.method_mut() = parts.method;
    *out.uri_mut() =
        parts.uri.path_and_query().map_or_else(|| Uri::from_static("/"), |p| Uri::from(p.clone()));
    copy_end_to_end(&parts.headers, out.headers_mut());
    // Incoming `levee-timeout`/`grpc-timeout` are in the deadline already: the client sends
    // what is left of it.
    for name in [TIMEOUT_HEADER, GRPC_TIMEOUT_HEADER] {
        out.headers_mut().remove(name);
    }
    // The client as the edge identified it: a service that trusts the gateway
    // (`limits.trusted_proxies`) limits the client, not the gateway.
    if let Some(ClientAddr(addr)) = parts.extensions.get::<ClientAddr>()
        && let Ok(value) = HeaderValue::from_str(&addr.to_string())
    {
        out.headers_mut().insert(HeaderName::from_static("x-forwarded-for"), value);
    }
    if let Some(deadline) = parts.extensions.get::<Deadline>() {
        out.extensions_mut().insert(deadline.clone());
    }
    match client.send(out).await {
        Ok(response) => {
            let (parts, body) = response.into_parts();
            let mut answer = Response::new(Body::from(body));
            *answer.status_mut() = parts.status;
            copy_end_to_end(&parts.headers, answer.headers_mut());
            answer
        }
        Err(e) => {
            tracing::warn!(group = group.name(), error = %e, "upstream call failed");
            upstream_error(group, &e).into_response()
        }
    }
}

fn copy_end_to_end(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        if !NOT_FORWARDED.contains(&name.as_str()) {
            to.append(name.clone(), value.clone());
        }
    }
}

/// The JSON answer for a call that got no response. The message names the group, not its
/// addresses (those are for `/admin/upstreams` and the log).
fn upstream_error(group: Group, e: &ClientError) -> ApiError {
    let name = group.name();
    match e {
        ClientError::NoEndpoints | ClientError::AllEjected { .. } => {
            let wait = match e {
                ClientError::AllEjected { retry_after: Some(wait) } => retry_after_secs(*wait),
                _ => 1,
            };
            ApiError::unavailable(
                "upstream_unavailable",
                format!("no {name} service can take the request now"),
                wait,
            )
        }
        ClientError::DeadlineExceeded | ClientError::Timeout { .. } => ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "upstream_timeout",
            format!("the {name} service did not answer in time"),
        ),
        _ => ApiError::new(
            StatusCode::BAD_GATEWAY,
            "upstream_failed",
            format!("the {name} service did not answer"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use axum::http::header;

    use super::*;
    use crate::config::Config;

    #[test]
    fn every_customer_route_of_the_shop_has_one_group() {
        let doc = crate::http::openapi_document(&Config::default());
        let customer: BTreeSet<String> = doc["paths"]
            .as_object()
            .unwrap()
            .keys()
            .filter(|p| {
                !["/health", "/metrics", "/admin", "/openapi.json", "/customers"]
                    .iter()
                    .any(|ops| p.starts_with(ops))
            })
            .cloned()
            .collect();
        let routed: BTreeSet<String> = ROUTES.iter().map(|(p, _)| (*p).to_owned()).collect();
        assert_eq!(routed.len(), ROUTES.len(), "each path once");
        assert_eq!(customer, routed);
    }

    #[test]
    fn a_call_without_a_response_is_a_json_error_by_kind() {
        let unavailable = upstream_error(
            Group::Catalog,
            &ClientError::AllEjected { retry_after: Some(std::time::Duration::from_millis(1500)) },
        )
        .into_response();
        assert_eq!(unavailable.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(unavailable.headers()[header::RETRY_AFTER], "2");
        let cases = [
            (ClientError::NoEndpoints, StatusCode::SERVICE_UNAVAILABLE),
            (ClientError::DeadlineExceeded, StatusCode::GATEWAY_TIMEOUT),
            (ClientError::InvalidRequest("x"), StatusCode::BAD_GATEWAY),
        ];
        for (e, status) in cases {
            assert_eq!(upstream_error(Group::Orders, &e).into_response().status(), status, "{e}");
        }
    }

    #[test]
    fn connection_headers_stay_on_their_hop() {
        let mut from = HeaderMap::new();
        for (k, v) in [
            ("connection", "close"),
            ("x-api-key", "k"),
            ("idempotency-key", "i"),
            ("host", "gw"),
            ("x-forwarded-for", "6.6.6.6"),
            ("content-type", "application/json"),
        ] {
            from.append(k, HeaderValue::from_static(v));
        }
        let mut to = HeaderMap::new();
        copy_end_to_end(&from, &mut to);
        let mut kept: Vec<&str> = to.keys().map(HeaderName::as_str).collect();
        kept.sort_unstable();
        assert_eq!(kept, ["content-type", "idempotency-key", "x-api-key"]);
    }
}
