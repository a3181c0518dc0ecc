//! Sends arbitrary requests (method, path with arbitrary ids and segments, query, headers,
//! API keys and admin tokens valid or not, JSON bodies with the fields the shop reads or
//! arbitrary bytes) through the reference shop's axum router, in process, one input a short
//! sequence of requests. Mixed in are well-formed requests with fuzzed values (create a
//! customer, fill a cart, place, pay and cancel orders, change products and faults, replay
//! dead letters) that use the API keys and order ids earlier answers returned, so the fuzzer
//! reaches the states behind them quickly. Every answer must be:
//! - no 5xx (a panic would be caught and become a 500, so this covers panics too), and
//!   within 30 s;
//! - for every error (4xx), JSON of the shop's error shape:
//!   `{"error": {"code": "...", "message": "...", ...}}`.
//!
//! The shop is built once per process over SQLite in a fresh directory under the temporary
//! directory (`$TMPDIR`), on a manual clock, and driven on a current-thread tokio runtime
//! with `tower::ServiceExt::oneshot`; its consumers run in between. Fault injection would
//! slow or fail what follows by design, so every change the fuzzer makes to it is undone
//! after its request.
#![no_main]

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use axum::Router;
use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use libfuzzer_sys::fuzz_target;
use reference_shop::faults::{FaultPatch, FaultSettings};
use reference_shop::{Config, Shop, ShopClock};
use serde_json::Value;
use tower::ServiceExt;

const ADMIN_TOKEN: &str = "fuzz-admin-token";

struct Fuzzed {
    runtime: tokio::runtime::Runtime,
    router: Router,
    shop: Arc<Shop>,
    /// API keys of customers that exist.
    keys: Vec<String>,
    faults: FaultSettings,
    max_body: usize,
}

fn fuzzed() -> &'static Fuzzed {
    static SHOP: OnceLock<Fuzzed> = OnceLock::new();
    SHOP.get_or_init(|| {
        let dir = std::env::temp_dir().join(format!("levee-fuzz-shop-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("a temporary directory for the shop's database");
        let mut config = Config::default();
        config.storage.data_dir = dir;
        config.storage.database_url = None;
        config.storage.seed_products = 20;
        config.server.admin_token = ADMIN_TOKEN.to_owned();
        // The edge limits are not what is fuzzed here: one client sends everything.
        config.edge.rate.count = 1_000_000_000;
        config.edge.rate.burst = Some(1_000_000_000);
        config.edge.bulkhead.max_concurrent = 1_000_000;
        config.limits.signup.count = 1_000_000_000;
        config.limits.signup.burst = Some(1_000_000_000);
        let max_body = config.server.max_body_bytes;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let clock = ShopClock::manual(levee_core::ManualClock::new());
        let shop = runtime.block_on(Shop::build(config, clock)).expect("the shop builds");
        let mut keys = Vec::new();
        for name in ["ada", "grace"] {
            let new = reference_shop::api::NewCustomer { name: name.into() };
            let customer = runtime.block_on(shop.customers.create(new)).expect("a customer");
            keys.push(customer.api_key);
        }
        let router = reference_shop::http::router(Arc::clone(&shop));
        let faults = shop.operations.faults();
        Fuzzed { runtime, router, shop, keys, faults, max_body }
    })
}

#[derive(Debug, Arbitrary)]
enum Verb {
    Get,
    Post,
    Put,
    Patch,
    Delete,
    Head,
    Options,
    Other(String),
}

#[derive(Debug, Arbitrary)]
enum Id {
    Small(u8),
    Any(i64),
    Text(String),
    Empty,
}

#[derive(Debug, Arbitrary)]
enum Path {
    Customers,
    Products,
    Product(Id),
    Cart,
    CartItems,
    CartItem(Id),
    Orders,
    Order(Id),
    Pay(Id),
    Cancel(Id),
    Notifications(Id),
    Health,
    Metrics,
    OpenApi,
    AdminStatus,
    AdminFaults,
    AdminDlq,
    AdminReplay,
    AdminProduct(Id),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Secret {
    Valid(u8),
    Arbitrary(Vec<u8>),
}

#[derive(Debug, Arbitrary)]
enum Field {
    Name,
    ProductId,
    Quantity,
    Items,
    Card,
    Ids,
    PriceCents,
    Stock,
    ProviderLatencyMs,
    ProviderFailureRate,
    StoreLatencyMs,
    Q,
    Category,
    Limit,
    Offset,
    Other(String),
}

impl Field {
    fn name(&self) -> &str {
        match self {
            Self::Name => "name",
            Self::ProductId => "product_id",
            Self::Quantity => "quantity",
            Self::Items => "items",
            Self::Card => "card",
            Self::Ids => "ids",
            Self::PriceCents => "price_cents",
            Self::Stock => "stock",
            Self::ProviderLatencyMs => "provider_latency_ms",
            Self::ProviderFailureRate => "provider_failure_rate",
            Self::StoreLatencyMs => "store_latency_ms",
            Self::Q => "q",
            Self::Category => "category",
            Self::Limit => "limit",
            Self::Offset => "offset",
            Self::Other(name) => name,
        }
    }
}

#[derive(Debug, Arbitrary)]
enum Json {
    Null,
    Bool(bool),
    Int(i64),
    Small(u8),
    Float(f64),
    Str(String),
    Card,
    Array(Vec<Json>),
    Object(Vec<(Field, Json)>),
}

impl Json {
    fn value(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::from(*b),
            Self::Int(n) => Value::from(*n),
            Self::Small(n) => Value::from(*n),
            Self::Float(x) => serde_json::Number::from_f64(*x).map_or(Value::Null, Value::Number),
            Self::Str(s) => Value::from(s.as_str()),
            Self::Card => Value::from("tok_visa"),
            Self::Array(items) => items.iter().map(Self::value).collect(),
            Self::Object(fields) => {
                fields.iter().map(|(k, v)| (k.name().to_owned(), v.value())).collect()
            }
        }
    }
}

#[derive(Debug, Arbitrary)]
enum BodyKind {
    None,
    Json(Json),
    Bytes(Vec<u8>),
    /// One byte over the body limit.
    TooLarge,
}

#[derive(Debug, Arbitrary)]
struct Call {
    verb: Verb,
    path: Path,
    query: Option<Vec<(Field, String)>>,
    api_key: Option<Secret>,
    bearer: Option<Secret>,
    admin: Option<Secret>,
    idempotency_key: Option<Vec<u8>>,
    content_type: Option<Vec<u8>>,
    headers: Vec<(String, Vec<u8>)>,
    body: BodyKind,
}

/// A well-formed request with fuzzed values; keys and order ids come from earlier answers.
#[derive(Debug, Arbitrary)]
enum Action {
    CreateCustomer(String),
    SetCartItem { customer: u8, product: u8, quantity: u8 },
    PlaceOrder { customer: u8, idempotency: u8, items: Option<Vec<(u8, u8)>>, card: bool },
    Pay { customer: u8, order: u8, card: bool },
    Cancel { customer: u8, order: u8 },
    Order { customer: u8, order: u8, notifications: bool },
    UpdateProduct { product: u8, price_cents: Option<i64>, stock: Option<i64> },
    Faults { failure_rate: Option<f64>, latency_ms: Option<u64> },
    Replay(Option<Vec<u64>>),
}

#[derive(Debug, Arbitrary)]
enum Step {
    Call(Call),
    Action(Action),
}

/// What earlier answers of this input returned.
#[derive(Debug, Default)]
struct Known {
    keys: Vec<String>,
    orders: Vec<i64>,
}

impl Known {
    fn key(&self, i: u8) -> &str {
        &self.keys[usize::from(i) % self.keys.len()]
    }

    fn order(&self, i: u8) -> i64 {
        match self.orders.len() {
            0 => i64::from(i),
            n => self.orders[usize::from(i) % n],
        }
    }
}

fn action(a: &Action, known: &Known) -> Option<Request<Body>> {
    let json = |method: Method, uri: String, key: Option<&str>, body: Value| {
        {
            let mut req = Request::builder()
                .method(method)
                .uri(uri)
                .header(header::CONTENT_TYPE, "application/json");
            if let Some(key) = key {
                req = req.header("x-api-key", key);
            }
            req
        }
        .body(Body::from(body.to_string()))
        .ok()
    };
    let admin = |method: Method, uri: String, body: Value| {
        Request::builder()
            .method(method)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header("x-admin-token", ADMIN_TOKEN)
            .body(Body::from(body.to_string()))
            .ok()
    };
    let product = |p: u8| i64::from(p % 24);
    let card = |yes: bool| if yes { Value::from("tok_visa") } else { Value::Null };
    match a {
        Action::CreateCustomer(name) => {
            json(Method::POST, "/customers".into(), None, serde_json::json!({ "name": name }))
        }
        Action::SetCartItem { customer, product: p, quantity } => json(
            Method::POST,
            "/cart/items".into(),
            Some(known.key(*customer)),
            serde_json::json!({ "product_id": product(*p), "quantity": quantity % 8 }),
        ),
        Action::PlaceOrder { customer, idempotency, items, card: c } => {
            let items = items.as_ref().map(|items| {
                items
                    .iter()
                    .take(6)
                    .map(|(p, q)| serde_json::json!({ "product_id": product(*p), "quantity": q % 8 }))
                    .collect::<Vec<_>>()
            });
            let mut req = json(
                Method::POST,
                "/orders".into(),
                Some(known.key(*customer)),
                serde_json::json!({ "items": items, "card": card(*c) }),
            )?;
            let idempotency = HeaderValue::from_str(&format!("fuzz-{idempotency}")).ok()?;
            req.headers_mut().insert("idempotency-key", idempotency);
            Some(req)
        }
        Action::Pay { customer, order, card: c } => json(
            Method::POST,
            format!("/orders/{}/pay", known.order(*order)),
            Some(known.key(*customer)),
            serde_json::json!({ "card": if *c { "tok_visa" } else { "tok_declined" } }),
        ),
        Action::Cancel { customer, order } => json(
            Method::POST,
            format!("/orders/{}/cancel", known.order(*order)),
            Some(known.key(*customer)),
            Value::Null,
        ),
        Action::Order { customer, order, notifications } => {
            let tail = if *notifications { "/notifications" } else { "" };
            let uri = format!("/orders/{}{tail}", known.order(*order));
            let mut req = json(Method::GET, uri, Some(known.key(*customer)), Value::Null)?;
            *req.body_mut() = Body::empty();
            Some(req)
        }
        Action::UpdateProduct { product: p, price_cents, stock } => admin(
            Method::PATCH,
            format!("/admin/products/{}", product(*p)),
            serde_json::json!({ "price_cents": price_cents, "stock": stock }),
        ),
        Action::Faults { failure_rate, latency_ms } => admin(
            Method::PUT,
            "/admin/faults".into(),
            serde_json::json!({
                "provider_failure_rate": failure_rate,
                "provider_latency_ms": latency_ms,
                "store_latency_ms": latency_ms,
            }),
        ),
        Action::Replay(ids) => {
            admin(Method::POST, "/admin/dlq/replay".into(), serde_json::json!({ "ids": ids }))
        }
    }
}

/// Percent-encodes every byte that is not unreserved.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn id(id: &Id) -> String {
    match id {
        Id::Small(n) => n.to_string(),
        Id::Any(n) => n.to_string(),
        Id::Text(s) => encode(s),
        Id::Empty => String::new(),
    }
}

fn path(p: &Path) -> String {
    match p {
        Path::Customers => "/customers".into(),
        Path::Products => "/products".into(),
        Path::Product(i) => format!("/products/{}", id(i)),
        Path::Cart => "/cart".into(),
        Path::CartItems => "/cart/items".into(),
        Path::CartItem(i) => format!("/cart/items/{}", id(i)),
        Path::Orders => "/orders".into(),
        Path::Order(i) => format!("/orders/{}", id(i)),
        Path::Pay(i) => format!("/orders/{}/pay", id(i)),
        Path::Cancel(i) => format!("/orders/{}/cancel", id(i)),
        Path::Notifications(i) => format!("/orders/{}/notifications", id(i)),
        Path::Health => "/health".into(),
        Path::Metrics => "/metrics".into(),
        Path::OpenApi => "/openapi.json".into(),
        Path::AdminStatus => "/admin/status".into(),
        Path::AdminFaults => "/admin/faults".into(),
        Path::AdminDlq => "/admin/dlq".into(),
        Path::AdminReplay => "/admin/dlq/replay".into(),
        Path::AdminProduct(i) => format!("/admin/products/{}", id(i)),
        Path::Raw(raw) => format!("/{}", raw.split('/').map(encode).collect::<Vec<_>>().join("/")),
    }
}

fn secret(s: &Secret, valid: &[&str]) -> Option<HeaderValue> {
    match s {
        Secret::Valid(i) => HeaderValue::from_str(valid[usize::from(*i) % valid.len()]).ok(),
        Secret::Arbitrary(bytes) => HeaderValue::from_bytes(bytes).ok(),
    }
}

fn request(call: &Call, f: &Fuzzed, known: &Known) -> Option<Request<Body>> {
    let method = match &call.verb {
        Verb::Get => Method::GET,
        Verb::Post => Method::POST,
        Verb::Put => Method::PUT,
        Verb::Patch => Method::PATCH,
        Verb::Delete => Method::DELETE,
        Verb::Head => Method::HEAD,
        Verb::Options => Method::OPTIONS,
        Verb::Other(m) => Method::from_bytes(m.as_bytes()).ok()?,
    };
    let mut uri = path(&call.path);
    if let Some(query) = &call.query {
        let pairs: Vec<String> =
            query.iter().map(|(k, v)| format!("{}={}", encode(k.name()), encode(v))).collect();
        uri = format!("{uri}?{}", pairs.join("&"));
    }
    let mut req = Request::builder().method(method).uri(uri);
    let keys: Vec<&str> = known.keys.iter().map(String::as_str).collect();
    let headers = req.headers_mut()?;
    if let Some(v) = call.api_key.as_ref().and_then(|s| secret(s, &keys)) {
        headers.insert("x-api-key", v);
    }
    if let Some(s) = &call.bearer {
        let token = secret(s, &keys).and_then(|v| v.to_str().ok().map(str::to_owned));
        if let Some(v) = token.and_then(|t| HeaderValue::from_str(&format!("Bearer {t}")).ok()) {
            headers.insert(header::AUTHORIZATION, v);
        }
    }
    if let Some(v) = call.admin.as_ref().and_then(|s| secret(s, &[ADMIN_TOKEN])) {
        headers.insert("x-admin-token", v);
    }
    if let Some(v) = call.idempotency_key.as_ref().and_then(|k| HeaderValue::from_bytes(k).ok()) {
        headers.insert("idempotency-key", v);
    }
    let json = HeaderValue::from_static("application/json");
    let content_type = match &call.content_type {
        Some(ct) => HeaderValue::from_bytes(ct).ok(),
        None => matches!(call.body, BodyKind::Json(_)).then_some(json),
    };
    if let Some(v) = content_type {
        headers.insert(header::CONTENT_TYPE, v);
    }
    for (name, value) in call.headers.iter().take(4) {
        if let (Ok(n), Ok(v)) =
            (HeaderName::from_bytes(name.as_bytes()), HeaderValue::from_bytes(value))
        {
            headers.append(n, v);
        }
    }
    let body = match &call.body {
        BodyKind::None => Body::empty(),
        BodyKind::Json(j) => Body::from(j.value().to_string()),
        BodyKind::Bytes(b) => Body::from(b.clone()),
        BodyKind::TooLarge => Body::from(vec![b' '; f.max_body + 1]),
    };
    req.body(body).ok()
}

/// The shop's error shape: `{"error": {"code": string, "message": string, ...}}`.
fn is_error_body(body: &Value) -> bool {
    let error = &body["error"];
    body.as_object().is_some_and(|o| o.len() == 1)
        && error["code"].as_str().is_some_and(|c| !c.is_empty())
        && error["message"].is_string()
}

fuzz_target!(|steps: Vec<Step>| {
    let f = fuzzed();
    let mut known = Known { keys: f.keys.clone(), orders: Vec::new() };
    for step in steps.iter().take(8) {
        let req = match step {
            Step::Call(call) => request(call, f, &known),
            Step::Action(a) => action(a, &known),
        };
        let Some(req) = req else { continue };
        let (method, uri) = (req.method().clone(), req.uri().clone());
        let (status, content_type, body) = f.runtime.block_on(async {
            let response =
                tokio::time::timeout(Duration::from_secs(30), f.router.clone().oneshot(req))
                    .await
                    .unwrap_or_else(|_| panic!("{method} {uri}: no answer within 30 s"))
                    .expect("the router is infallible");
            let status = response.status();
            let content_type = response.headers().get(header::CONTENT_TYPE).cloned();
            let body = axum::body::to_bytes(response.into_body(), usize::MAX).await;
            (status, content_type, body.expect("a readable body"))
        });
        if uri.path() == "/admin/faults" {
            let s = f.faults;
            let restore = FaultPatch {
                provider_latency_ms: Some(s.provider_latency_ms),
                provider_failure_rate: Some(s.provider_failure_rate),
                store_latency_ms: Some(s.store_latency_ms),
            };
            f.shop.operations.set_faults(restore).expect("the initial faults are valid");
        }
        let text = String::from_utf8_lossy(&body);
        assert!(!status.is_server_error(), "{method} {uri}: {status} {text}");
        if status.is_client_error() && method != Method::HEAD {
            assert_eq!(
                content_type.as_ref().and_then(|v| v.to_str().ok()),
                Some("application/json"),
                "{method} {uri}: {status} {text}"
            );
            let json: Value = serde_json::from_slice(&body)
                .unwrap_or_else(|e| panic!("{method} {uri}: {status}, not JSON ({e}): {text}"));
            assert!(is_error_body(&json), "{method} {uri}: {status}, not the error shape: {text}");
        }
        // Remember what the shop handed out, for the steps that follow.
        if status.is_success() && method == Method::POST {
            let json: Value = serde_json::from_slice(&body).unwrap_or_default();
            if let Some(key) = json["api_key"].as_str() {
                known.keys.push(key.to_owned());
            }
            if uri.path() == "/orders"
                && let Some(id) = json["id"].as_i64()
            {
                known.orders.push(id);
            }
        }
    }
});
