//! Bad input gets a 4xx with a JSON error body, never a 500; customers cannot see each other's
//! orders; admin endpoints need the token.

mod common;

use common::{TestDb, TestShop, start};
use reqwest::Method;
use serde_json::json;

/// Asserts a JSON error with `status` (and `code`, when given).
#[track_caller]
fn assert_error(r: &common::Resp, status: u16, code: Option<&str>) {
    assert_eq!(r.status, status, "{r:?}");
    assert!(r.body["error"]["code"].is_string(), "not a JSON error: {r:?}");
    assert!(r.body["error"]["message"].is_string(), "{r:?}");
    if let Some(code) = code {
        assert_eq!(r.body["error"]["code"], code, "{r:?}");
    }
}

async fn raw(
    shop: &TestShop,
    method: Method,
    path: &str,
    content_type: &str,
    body: Vec<u8>,
) -> common::Resp {
    shop.send(
        shop.http
            .request(method, format!("{}{path}", shop.base))
            .header("x-api-key", "demo-alice")
            .header("idempotency-key", "bad-input")
            .header("content-type", content_type)
            .body(body),
    )
    .await
}

/// method, path, content type, body, expected status, expected error code.
type Case = (Method, &'static str, &'static str, Vec<u8>, u16, Option<&'static str>);

async fn bad_input_is_a_4xx_json_error(db: TestDb) {
    let shop = start(&db, |c| c.server.max_body_bytes = 16 * 1024).await;
    let j = "application/json";
    let cases: Vec<Case> = vec![
        (Method::POST, "/orders", j, b"{not json".to_vec(), 400, Some("malformed_json")),
        (Method::POST, "/orders", j, b"".to_vec(), 400, Some("malformed_json")),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": 1, "quantity": 1}], "coupon": "FREE"}"#.to_vec(),
            422,
            Some("invalid_body"),
        ),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": 1, "quantity": -1}]}"#.to_vec(),
            422,
            Some("invalid_body"),
        ),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": 1, "quantity": 0}]}"#.to_vec(),
            422,
            Some("invalid_quantity"),
        ),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": 1, "quantity": 100000}]}"#.to_vec(),
            422,
            Some("invalid_quantity"),
        ),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": 1, "quantity": 99999999999}]}"#.to_vec(),
            422,
            Some("invalid_body"),
        ),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": "one", "quantity": 1}]}"#.to_vec(),
            422,
            Some("invalid_body"),
        ),
        (Method::POST, "/orders", j, br#"{"items": []}"#.to_vec(), 422, Some("empty_order")),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": 1, "quantity": 1}, {"product_id": 1, "quantity": 2}]}"#
                .to_vec(),
            422,
            Some("duplicate_product"),
        ),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": 999999, "quantity": 1}]}"#.to_vec(),
            404,
            Some("unknown_product"),
        ),
        (
            Method::POST,
            "/orders",
            j,
            br#"{"items": [{"product_id": 1, "quantity": 1}], "card": ""}"#.to_vec(),
            422,
            Some("invalid_card"),
        ),
        (Method::POST, "/orders", j, br#"[1, 2, 3]"#.to_vec(), 422, Some("invalid_body")),
        (
            Method::POST,
            "/orders",
            "text/plain",
            br#"{"items": []}"#.to_vec(),
            415,
            Some("unsupported_media_type"),
        ),
        (
            Method::POST,
            "/cart/items",
            j,
            br#"{"product_id": 1, "quantity": -5}"#.to_vec(),
            422,
            Some("invalid_body"),
        ),
        (
            Method::POST,
            "/cart/items",
            j,
            br#"{"product_id": 424242, "quantity": 1}"#.to_vec(),
            404,
            Some("not_found"),
        ),
        (Method::POST, "/customers", j, br#"{"name": ""}"#.to_vec(), 422, Some("invalid_name")),
        (
            Method::POST,
            "/customers",
            j,
            br#"{"name": "x", "admin": true}"#.to_vec(),
            422,
            Some("invalid_body"),
        ),
        (Method::GET, "/products/abc", j, Vec::new(), 422, Some("invalid_path")),
        (
            Method::GET,
            "/products/99999999999999999999999",
            j,
            Vec::new(),
            422,
            Some("invalid_path"),
        ),
        (Method::GET, "/products/424242", j, Vec::new(), 404, Some("not_found")),
        (Method::GET, "/products?limit=1000", j, Vec::new(), 422, Some("invalid_limit")),
        (Method::GET, "/products?limit=-1", j, Vec::new(), 422, Some("invalid_query")),
        (Method::GET, "/products?sort=price", j, Vec::new(), 422, Some("invalid_query")),
        (Method::GET, "/orders/-1", j, Vec::new(), 404, Some("not_found")),
        (Method::GET, "/nowhere", j, Vec::new(), 404, Some("not_found")),
        (Method::DELETE, "/products", j, Vec::new(), 405, Some("method_not_allowed")),
    ];
    for (method, path, content_type, body, status, code) in cases {
        let r = raw(&shop, method.clone(), path, content_type, body).await;
        assert!(r.status < 500, "{method} {path}: {r:?}");
        assert_error(&r, status, code);
    }
    // Huge bodies, on a customer and on an admin endpoint, declared and chunked.
    let addr = shop.running.addr();
    let huge = |method: &str, path: &str, auth: &str, framing: &str| {
        format!(
            "{method} {path} HTTP/1.1\r\nhost: {addr}\r\n{auth}\r\nidempotency-key: huge\r\n\
             content-type: application/json\r\n{framing}\r\n"
        )
    };
    let mut chunked = format!("{:x}\r\n", 1024 * 1024).into_bytes();
    chunked.extend(std::iter::repeat_n(b' ', 1024 * 1024));
    chunked.extend_from_slice(b"\r\n0\r\n\r\n");
    let admin = format!("x-admin-token: {}", common::ADMIN);
    for (head, body) in [
        (
            huge("POST", "/orders", "x-api-key: demo-alice", "content-length: 1048576\r\n"),
            vec![b' '; 1024 * 1024],
        ),
        (
            huge("POST", "/orders", "x-api-key: demo-alice", "transfer-encoding: chunked\r\n"),
            chunked,
        ),
        (
            huge("PUT", "/admin/faults", &admin, "content-length: 1048576\r\n"),
            vec![b'9'; 1024 * 1024],
        ),
    ] {
        let r = common::raw_request(addr, head, body).await;
        assert_error(&r, 413, Some("body_too_large"));
    }
    let r = shop
        .send(
            shop.admin(Method::PUT, "/admin/faults").json(&json!({ "provider_failure_rate": 2.0 })),
        )
        .await;
    assert_error(&r, 422, Some("invalid_fault"));
    let r = shop
        .send(shop.admin(Method::PATCH, "/admin/products/1").json(&json!({ "stock": -1 })))
        .await;
    assert_error(&r, 422, Some("invalid_product_change"));
    shop.stop().await;
}

async fn customers_see_only_their_own(db: TestDb) {
    let shop = start(&db, |_| {}).await;
    let alice = shop.customer("alice2").await;
    let bob = shop.customer("bob2").await;
    let order =
        shop.place(&alice, "a-1", &json!({ "items": [{ "product_id": 1, "quantity": 1 }] })).await;
    assert_eq!(order.status, 201);
    let id = order.body["id"].as_i64().unwrap();
    shop.send(shop.post("/cart/items", Some(&alice), &json!({ "product_id": 2, "quantity": 1 })))
        .await;

    for path in [format!("/orders/{id}"), format!("/orders/{id}/notifications")] {
        assert_error(&shop.send(shop.get(&path, Some(&bob))).await, 404, Some("not_found"));
    }
    for path in [format!("/orders/{id}/pay"), format!("/orders/{id}/cancel")] {
        let r = shop.send(shop.post(&path, Some(&bob), &json!({ "card": "tok_visa" }))).await;
        assert_error(&r, 404, Some("not_found"));
    }
    let bobs = shop.send(shop.get("/orders", Some(&bob))).await;
    assert!(bobs.body["orders"].as_array().unwrap().is_empty());
    let bobs_cart = shop.send(shop.get("/cart", Some(&bob))).await;
    assert!(bobs_cart.body["lines"].as_array().unwrap().is_empty());
    // Alice's order is untouched by Bob's attempts.
    assert_eq!(shop.order(&alice, id).await["status"], "awaiting_payment");

    assert_error(&shop.send(shop.get("/orders", None)).await, 401, Some("missing_api_key"));
    assert_error(&shop.send(shop.get("/orders", Some("nope"))).await, 401, Some("invalid_api_key"));
    assert_error(
        &shop.send(shop.get("/admin/status", Some(&alice))).await,
        401,
        Some("admin_token_required"),
    );
    let wrong = shop
        .send(shop.http.get(format!("{}/admin/dlq", shop.base)).header("x-admin-token", "guess"))
        .await;
    assert_error(&wrong, 401, Some("admin_token_required"));
    shop.stop().await;
}

on_both_databases!(bad_input_is_a_4xx_json_error, customers_see_only_their_own);
