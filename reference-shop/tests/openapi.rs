//! The HTTP contract: the committed `reference-shop/openapi.json` is the document the code
//! generates, the shop serves it, and every error answer (protocol-level ones included) has
//! the JSON error body with the same status for the same kind of mistake. Over real HTTP on
//! 127.0.0.1.
//!
//! To regenerate the committed document after an API change:
//! `SHOP_UPDATE_OPENAPI=1 cargo test -p reference-shop --test openapi`
//! (or `cargo run -p reference-shop -- openapi > reference-shop/openapi.json`).

mod common;

use common::{TestDb, start};
use reference_shop::Config;
use reqwest::Method;
use serde_json::Value;

const COMMITTED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/openapi.json");

#[test]
fn committed_document_is_the_generated_one() {
    let generated = reference_shop::http::openapi_text(&Config::default());
    if std::env::var_os("SHOP_UPDATE_OPENAPI").is_some() {
        std::fs::write(COMMITTED, &generated).expect("write reference-shop/openapi.json");
        return;
    }
    let committed = std::fs::read_to_string(COMMITTED).unwrap_or_default();
    assert!(
        committed == generated,
        "reference-shop/openapi.json differs from the document the code generates; regenerate \
         it with `SHOP_UPDATE_OPENAPI=1 cargo test -p reference-shop --test openapi` (or \
         `cargo run -p reference-shop -- openapi > reference-shop/openapi.json`) and review \
         the diff"
    );
}

#[test]
fn document_is_openapi_3_1_with_both_security_schemes() {
    let doc = reference_shop::http::openapi_document(&Config::default());
    assert!(doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.1")), "{}", doc["openapi"]);
    let schemes = &doc["components"]["securitySchemes"];
    assert_eq!(schemes["api_key"]["name"], "X-Api-Key");
    assert_eq!(schemes["admin_token"]["name"], "X-Admin-Token");
    // The statuses are enums, the error body is one schema.
    let status = &doc["components"]["schemas"]["OrderStatus"]["enum"];
    assert_eq!(status, &serde_json::json!(["awaiting_payment", "paid", "cancelled"]));
    let detail = &doc["components"]["schemas"]["ErrorDetail"];
    assert_eq!(detail["required"], serde_json::json!(["code", "message"]));
    // The order's life as links.
    let placed = &doc["paths"]["/orders"]["post"]["responses"]["201"]["links"];
    assert_eq!(placed["GetOrder"]["operationId"], "getOrder");
    assert_eq!(placed["GetOrder"]["parameters"]["id"], "$response.body#/id");
}

#[tokio::test]
async fn the_shop_serves_the_document_for_its_settings() {
    let db = TestDb::sqlite();
    let shop = start(&db, |c| c.orders.max_quantity = 9).await;
    let r = shop.send(shop.get("/openapi.json", None)).await;
    assert_eq!(r.status, 200, "{r:?}");
    let mut config = Config::default();
    config.orders.max_quantity = 9;
    let expected = reference_shop::http::openapi_document(&config);
    assert_eq!(r.body["components"], expected["components"]);
    assert_eq!(r.body["paths"], expected["paths"]);
    let max = &r.body["components"]["schemas"]["CartItem"]["properties"]["quantity"]["maximum"];
    assert_eq!(max, 9);
    shop.stop().await;
}

/// Asserts a JSON error with `status` and `code`.
#[track_caller]
fn assert_error(r: &common::Resp, status: u16, code: &str) {
    assert_eq!(r.status, status, "{r:?}");
    assert_eq!(r.body["error"]["code"], code, "{r:?}");
    assert!(r.body["error"]["message"].is_string(), "{r:?}");
    let content_type = r.headers.get("content-type").and_then(|v| v.to_str().ok());
    assert_eq!(content_type, Some("application/json"), "{r:?}");
}

#[tokio::test]
async fn every_error_has_the_json_body_and_one_status_per_kind() {
    let db = TestDb::sqlite();
    let shop = start(&db, |c| c.server.max_body_bytes = 1024).await;
    let key = shop.customer("carol").await;
    let send = |method: Method, path: &str, content_type: Option<&str>, body: &str| {
        let mut req = shop
            .http
            .request(method, format!("{}{path}", shop.base))
            .header("x-api-key", &key)
            .header("idempotency-key", "contract")
            .body(body.to_owned());
        if let Some(t) = content_type {
            req = req.header("content-type", t);
        }
        shop.send(req)
    };
    let j = Some("application/json");

    // A JSON array (or any non-object) where an object is expected: 422, not served as the
    // struct serde would read from an array of its fields.
    let r = send(Method::POST, "/customers", j, r#"["mallory"]"#).await;
    assert_error(&r, 422, "invalid_body");
    let r = send(Method::POST, "/cart/items", j, "[1, 1]").await;
    assert_error(&r, 422, "invalid_body");
    let r = send(Method::PUT, "/admin/faults", j, "null").await;
    // The admin token is checked first: 401, with the body.
    assert_error(&r, 401, "admin_token_required");
    let r = send(Method::POST, "/orders", j, r#""items""#).await;
    assert_error(&r, 422, "invalid_body");

    // A bad value is 422 wherever it is: body, query, path.
    let r = send(Method::POST, "/cart/items", j, r#"{"product_id": 1, "quantity": "2"}"#).await;
    assert_error(&r, 422, "invalid_body");
    let r = send(Method::GET, "/products?limit=abc", None, "").await;
    assert_error(&r, 422, "invalid_query");
    let r = send(Method::GET, "/orders?offset=-1", None, "").await;
    assert_error(&r, 422, "invalid_query");
    let r = send(Method::GET, "/products?colour=red", None, "").await;
    assert_error(&r, 422, "invalid_query");
    let r = send(Method::GET, "/orders/abc", None, "").await;
    assert_error(&r, 422, "invalid_path");
    let r = send(Method::DELETE, "/cart/items/99999999999999999999", None, "").await;
    assert_error(&r, 422, "invalid_path");

    // Not JSON at all: 400; not declared JSON: 415; too large: 413.
    let r = send(Method::POST, "/customers", j, r#"{"name": "#).await;
    assert_error(&r, 400, "malformed_json");
    let r = send(Method::POST, "/customers", j, "[1,").await;
    assert_error(&r, 400, "malformed_json");
    let r = send(Method::POST, "/customers", Some("text/plain"), r#"{"name": "x"}"#).await;
    assert_error(&r, 415, "unsupported_media_type");
    let r = send(Method::POST, "/customers", None, r#"{"name": "x"}"#).await;
    assert_error(&r, 415, "unsupported_media_type");
    let big = format!(r#"{{"name": "{}"}}"#, "x".repeat(2048));
    let r = send(Method::POST, "/customers", j, &big).await;
    assert_error(&r, 413, "body_too_large");

    // Routing: 404 and 405 with the body.
    let r = send(Method::GET, "/nowhere", None, "").await;
    assert_error(&r, 404, "not_found");
    let r = send(Method::PUT, "/products", j, "{}").await;
    assert_error(&r, 405, "method_not_allowed");

    // Names: what the document's pattern and maxLength say.
    let r = send(Method::POST, "/customers", j, r#"{"name": " \t\r\n"}"#).await;
    assert_error(&r, 422, "invalid_name");
    let padded = format!(r#"{{"name": "  {}  "}}"#, "n".repeat(62));
    let r = send(Method::POST, "/customers", j, &padded).await;
    assert_error(&r, 422, "invalid_name");
    let r = send(Method::POST, "/customers", j, r#"{"name": " dave "}"#).await;
    assert_eq!((r.status, &r.body["name"]), (201, &Value::from("dave")), "{r:?}");
    shop.stop().await;
}

#[tokio::test]
async fn oversized_headers_get_431_with_the_json_body() {
    let db = TestDb::sqlite();
    let shop = start(&db, |_| {}).await;
    let addr = shop.running.addr();
    let head = format!(
        "GET /products HTTP/1.1\r\nhost: {addr}\r\nx-filler: {}\r\nconnection: close\r\n\r\n",
        "f".repeat(64 * 1024)
    );
    let r = common::raw_request(addr, head, Vec::new()).await;
    assert_error(&r, 431, "headers_too_large");
    shop.stop().await;
}
