//! The shop's HTTP contract: an OpenAPI 3.1 document generated from the code (utoipa), served
//! at `/openapi.json` and committed as `reference-shop/openapi.json`.
//!
//! Nothing in it is written by hand twice. The schemas are derived from the request and
//! response types of [`crate::api`] and [`crate::domain`] (with the constraints the services
//! enforce as `#[schema]`/`#[param]` attributes beside the fields); each operation, with the
//! statuses its handler can answer, is the `#[utoipa::path]` on the handler. The answers that
//! come from layers and extractors rather than from the handler are added here once, to every
//! operation they guard, the way the router applies them:
//!
//! - a JSON body ([`super::extract::ApiJson`]): 400 (not JSON), 413 (over
//!   `server.max_body_bytes`), 415 (not `application/json`), 422 (does not fit the schema);
//! - the customer API key (`api_key`) or the admin token (`admin_token`): 401;
//! - the edge (every customer route): 429 with `Retry-After` (and the IETF `RateLimit`
//!   fields when the edge sends them), 503 with `Retry-After` when it sheds load;
//! - the store (every route that reads or writes it): 503 `store_unavailable`;
//! - the request reader and deadline (`request.rs`): 408 `body_timeout` where there is a
//!   body, 504 `deadline_exceeded` behind the edge.
//!
//! Limits that come from the settings (`orders.max_quantity`, `orders.max_lines`) are written
//! into the document from the running shop's [`Config`], so the served document describes
//! the shop that serves it; the committed copy is the one for the default settings.
//!
//! The stateful links (create a customer, fill the cart, place an order, read it, cancel it)
//! let a client or a fuzzer such as Schemathesis walk an order's life from the document.

use utoipa::OpenApi;
use utoipa::openapi::header::HeaderBuilder;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::{Object, Type};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, RefOr, Response};

use super::{admin, carts, catalog, customers, orders};
use crate::api::ErrorBody;
use crate::config::Config;

/// The document's skeleton: the operations and their types.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "levee reference shop",
        description = "The levee reference shop's JSON API. Every error answer carries the \
            `ErrorBody` JSON body with a stable `code`. Customers authenticate with the API key \
            `POST /customers` returns (`X-Api-Key`, or `Authorization: Bearer <key>`); \
            operators with the admin token (`X-Admin-Token`, or `Authorization: Bearer \
            <token>`). Customer routes are rate-limited per client (429) and shed under load \
            (503), both with `Retry-After`.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        customers::create,
        catalog::search,
        catalog::product,
        carts::view,
        carts::clear,
        carts::set_item,
        carts::remove_item,
        carts::notifications,
        orders::place,
        orders::list,
        orders::get,
        orders::pay,
        orders::checkout,
        orders::cancel,
        orders::notifications,
        super::health,
        super::ready,
        super::live,
        super::metrics,
        openapi_json,
        admin::status,
        admin::faults,
        admin::set_faults,
        admin::stock,
        admin::dead_letters,
        admin::replay,
        admin::settings,
        admin::change_settings,
        catalog::change,
    ),
    components(schemas(ErrorBody)),
    modifiers(&Contract),
    tags(
        (name = "customers", description = "Sign-up: a customer and its API key"),
        (name = "catalog", description = "Products and their stock"),
        (name = "cart", description = "The caller's cart; its lines hold stock reserved"),
        (name = "orders", description = "Orders: try (reserve), confirm (pay), cancel"),
        (name = "operations", description = "Health, and the admin API (admin token)"),
    )
)]
struct ShopApi;

/// The tag of the routes outside the edge (health, metrics, this document, admin).
const OPERATIONS: &str = "operations";
/// The security scheme of customer operations.
const API_KEY: &str = "api_key";
/// The security scheme of admin operations.
const ADMIN_TOKEN: &str = "admin_token";

/// The document for a shop running with `config`, as JSON.
#[must_use]
pub fn document(config: &Config) -> serde_json::Value {
    let mut doc = serde_json::to_value(ShopApi::openapi())
        .expect("an OpenAPI document always serializes to JSON");
    let limits = [
        ("/components/schemas/CartItem/properties/quantity/maximum", config.orders.max_quantity),
        ("/components/schemas/OrderItem/properties/quantity/maximum", config.orders.max_quantity),
        (
            "/components/schemas/PlaceOrder/properties/items/maxItems",
            u32::try_from(config.orders.max_lines).unwrap_or(u32::MAX),
        ),
    ];
    for (pointer, value) in limits {
        if let Some(slot) = doc.pointer_mut(pointer) {
            *slot = value.into();
        }
    }
    // The element bound utoipa cannot attach to a `Vec<u64>` field: ids are whole `u64`s.
    if let Some(ids) = doc.pointer_mut("/components/schemas/Replay/properties/ids/items") {
        ids["maximum"] = u64::MAX.into();
    }
    doc
}

/// The document as the committed file holds it: pretty JSON with a final newline.
#[must_use]
pub fn document_text(config: &Config) -> String {
    let mut text =
        serde_json::to_string_pretty(&document(config)).expect("a JSON value always serializes");
    text.push('\n');
    text
}

/// `GET /openapi.json`: this document. (Only its description: the route is [`serve`].)
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    tag = "operations",
    responses((status = 200, description = "This document, for the shop's settings", body = Object))
)]
#[allow(dead_code)]
fn openapi_json() {}

/// The `GET /openapi.json` handler: the document for `config`, rendered once.
pub(super) fn serve(
    config: &Config,
) -> impl Fn() -> std::future::Ready<axum::response::Response> + Clone + Send + Sync + 'static {
    use axum::response::IntoResponse;
    let body = axum::body::Bytes::from(document_text(config));
    move || {
        let json = [(axum::http::header::CONTENT_TYPE, "application/json")];
        std::future::ready((json, body.clone()).into_response())
    }
}

/// Adds what layers and extractors answer, the security schemes and the links.
struct Contract;

impl utoipa::Modify for Contract {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Api-Key",
                "A customer's API key, from `POST /customers` (also accepted as \
                 `Authorization: Bearer <key>`)",
            ))),
        );
        components.add_security_scheme(
            ADMIN_TOKEN,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                "X-Admin-Token",
                "The operator token, `server.admin_token` (also accepted as \
                 `Authorization: Bearer <token>`)",
            ))),
        );
        let customer = SecurityRequirement::new(API_KEY, Vec::<String>::new());
        let admin = SecurityRequirement::new(ADMIN_TOKEN, Vec::<String>::new());
        for (path, item) in &mut openapi.paths.paths {
            for op in operations(item) {
                // The customer routes are behind the edge; the operations routes are not.
                let edge = op.tags.as_ref().is_some_and(|t| !t.iter().any(|t| t == OPERATIONS));
                let secured = |r: &SecurityRequirement| {
                    op.security.as_ref().is_some_and(|s| s.iter().any(|x| x == r))
                };
                let (is_customer, is_admin) = (secured(&customer), secured(&admin));
                if op.request_body.is_some() {
                    add(op, 400, "A body that is not JSON (`malformed_json`, `unreadable_body`)");
                    add(op, 413, "A body over `server.max_body_bytes` (`body_too_large`)");
                    add(
                        op,
                        408,
                        "The body did not arrive within `server.clients.body_read_timeout` \
                         (`body_timeout`; the connection is closed)",
                    );
                    add(
                        op,
                        415,
                        "A body that is not `application/json` (`unsupported_media_type`)",
                    );
                    add(
                        op,
                        422,
                        "A body that does not fit the schema: not an object, a field of the wrong \
                         type or range, a missing or unknown field (`invalid_body`)",
                    );
                }
                if is_customer {
                    add(
                        op,
                        401,
                        "No API key (`missing_api_key`) or an unknown one (`invalid_api_key`)",
                    );
                }
                if is_admin {
                    add(op, 401, "No admin token or a wrong one (`admin_token_required`)");
                }
                if edge {
                    op.responses.responses.insert("429".into(), rate_limited().into());
                    add(
                        op,
                        504,
                        "Not answered within `server.clients.request_timeout` of the body being \
                         read (`deadline_exceeded`)",
                    );
                }
                // Routes that read the store answer 503 when it is busy or unreachable.
                if edge || path.starts_with("/admin/products") || path == "/admin/stock" {
                    op.responses.responses.insert("503".into(), unavailable().into());
                }
            }
        }
        links(openapi);
    }
}

/// The operations of a path.
fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.put, &mut item.post, &mut item.delete, &mut item.patch]
        .into_iter()
        .filter_map(Option::as_mut)
}

/// An error answer with the error body.
fn error(description: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", Content::new(Some(RefOr::Ref(error_ref()))))
}

fn error_ref() -> utoipa::openapi::Ref {
    utoipa::openapi::Ref::from_schema_name("ErrorBody")
}

/// Adds an error answer unless the handler documents that status itself (with the codes it
/// gives).
fn add(op: &mut Operation, status: u16, description: &str) {
    op.responses
        .responses
        .entry(status.to_string())
        .or_insert_with(|| error(description).build().into());
}

/// A header whose value is a whole number of seconds.
fn seconds(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(Object::builder().schema_type(Type::Integer).minimum(Some(1))))
        .description(Some(description))
        .build()
}

/// A header whose value is text (a Structured Field).
fn text(description: &str) -> utoipa::openapi::header::Header {
    HeaderBuilder::new()
        .schema(Some(Object::builder().schema_type(Type::String)))
        .description(Some(description))
        .build()
}

/// 429 from the edge's per-client rate limit.
fn rate_limited() -> Response {
    error(
        "Over the client's rate (`rate_limited`, with `retry_after_secs`): wait `Retry-After` \
         seconds",
    )
    .header("Retry-After", seconds("Seconds to wait before the next request is admitted"))
    .header(
        "RateLimit-Policy",
        text(
            "The client's quota, `\"<policy>\";q=<requests>;w=<seconds>` \
             (draft-ietf-httpapi-ratelimit-headers), when the edge sends the rate-limit fields",
        ),
    )
    .header(
        "RateLimit",
        text(
            "What is left, `\"<policy>\";r=0;t=<seconds>` (draft-ietf-httpapi-ratelimit-headers), \
             when the edge sends the rate-limit fields",
        ),
    )
    .build()
}

/// 503: the edge sheds load, or the store is busy.
fn unavailable() -> Response {
    error(
        "The shop is at capacity and shed the request (`overloaded`), or the database is busy \
         (`store_unavailable`): retry after `Retry-After` seconds",
    )
    .header("Retry-After", seconds("Seconds to wait before retrying"))
    .build()
}

/// The order's life as links: create a customer, fill the cart, place an order, read it,
/// cancel it.
fn links(openapi: &mut utoipa::openapi::OpenApi) {
    let id = "$response.body#/id";
    // (the operation, its answer, the link's name, where it leads)
    let steps = [
        (
            "createCustomer",
            "201",
            "AddToCart",
            LinkBuilder::new()
                .operation_id("setCartItem")
                .request_body(Some(serde_json::json!({ "product_id": 1, "quantity": 1 })))
                .description("Put a unit of product 1 in the cart"),
        ),
        (
            "setCartItem",
            "200",
            "PlaceOrder",
            LinkBuilder::new()
                .operation_id("placeOrder")
                .request_body(Some(serde_json::json!({})))
                .description("Order what the cart holds"),
        ),
        (
            "placeOrder",
            "201",
            "GetOrder",
            LinkBuilder::new()
                .operation_id("getOrder")
                .parameter("id", id)
                .description("Read the order just placed"),
        ),
        (
            "placeOrder",
            "201",
            "PayOrder",
            LinkBuilder::new()
                .operation_id("payOrder")
                .parameter("id", id)
                .description("Pay the order just placed"),
        ),
        (
            "getOrder",
            "200",
            "CancelOrder",
            LinkBuilder::new()
                .operation_id("cancelOrder")
                .parameter("id", id)
                .description("Cancel the order (409 once it is paid)"),
        ),
    ];
    for (operation_id, status, name, link) in steps {
        let response = openapi
            .paths
            .paths
            .values_mut()
            .flat_map(operations)
            .find(|op| op.operation_id.as_deref() == Some(operation_id))
            .and_then(|op| op.responses.responses.get_mut(status));
        if let Some(RefOr::T(response)) = response {
            response.links.insert(name.into(), link.build().into());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_follow_the_settings() {
        let mut config = Config::default();
        config.orders.max_quantity = 7;
        config.orders.max_lines = 3;
        let doc = document(&config);
        let at = |p: &str| doc.pointer(p).cloned();
        assert_eq!(at("/components/schemas/CartItem/properties/quantity/maximum"), Some(7.into()));
        assert_eq!(at("/components/schemas/OrderItem/properties/quantity/maximum"), Some(7.into()));
        assert_eq!(at("/components/schemas/PlaceOrder/properties/items/maxItems"), Some(3.into()));
    }

    #[test]
    fn every_operation_says_how_it_fails() {
        let doc = document(&Config::default());
        let paths = doc["paths"].as_object().unwrap();
        let mut checked = 0;
        for (path, item) in paths {
            for (method, op) in item.as_object().unwrap() {
                let responses = op["responses"].as_object().unwrap();
                let has = |s: &str| responses.contains_key(s);
                let what = format!("{method} {path}");
                if op.get("requestBody").is_some() {
                    for s in ["400", "413", "415", "422"] {
                        assert!(has(s), "{what} lacks {s}");
                    }
                }
                if op.get("security").is_some() {
                    assert!(has("401"), "{what} lacks 401");
                }
                if op["tags"][0] == "operations" {
                    assert!(!has("429"), "{what} is not behind the edge");
                } else {
                    let limited = &responses["429"]["headers"];
                    assert!(limited.get("Retry-After").is_some(), "{what}");
                    assert!(limited.get("RateLimit").is_some(), "{what}");
                    assert!(has("503"), "{what} lacks 503");
                }
                checked += 1;
            }
        }
        assert!(checked >= 20, "{checked} operations");
    }
}
