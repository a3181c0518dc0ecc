//! The pages over plain HTTP (the browser tests are `browser.rs`): the operator page and its
//! actions need the admin token; bad input is an HTML page with a 4xx, never a 500; values
//! are escaped; a checkout form posted twice places one order; the pages stay out of the
//! API's OpenAPI document.

mod common;

use common::{ADMIN, TestDb, TestShop};
use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, COOKIE, LOCATION, SET_COOKIE};

/// An HTML answer: status, `Location`, `Set-Cookie`, body.
#[derive(Debug)]
struct Page {
    status: StatusCode,
    location: Option<String>,
    cookie: Option<String>,
    html: String,
}

/// A client that does not follow redirects, so the tests see the `303`s.
struct Browser {
    http: reqwest::Client,
    base: String,
}

impl Browser {
    fn new(shop: &TestShop) -> Self {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .unwrap();
        Self { http, base: shop.base.clone() }
    }

    async fn send(&self, req: reqwest::RequestBuilder, cookie: Option<&str>) -> Page {
        let req = match cookie {
            Some(c) => req.header(COOKIE, c),
            None => req,
        };
        let r = req.send().await.unwrap();
        let header = |name| r.headers().get(name).map(|v| v.to_str().unwrap().to_owned());
        let (location, cookie) = (header(LOCATION), header(SET_COOKIE));
        let status = r.status();
        let html_type = header(CONTENT_TYPE).is_some_and(|t| t.starts_with("text/html"));
        let html = r.text().await.unwrap();
        assert!(html_type || status.is_redirection(), "not HTML: {status} {html}");
        Page { status, location, cookie, html }
    }

    async fn get(&self, path: &str, cookie: Option<&str>) -> Page {
        self.send(self.http.get(format!("{}{path}", self.base)), cookie).await
    }

    async fn post(&self, path: &str, form: &str, cookie: Option<&str>) -> Page {
        let req = self
            .http
            .post(format!("{}{path}", self.base))
            .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.to_owned());
        self.send(req, cookie).await
    }

    /// Signs in to the storefront as `name`; the cookie to send.
    async fn shopper(&self, name: &str) -> String {
        let p = self.post("/shop/account/new", &format!("name={name}"), None).await;
        assert_eq!(p.status, StatusCode::SEE_OTHER, "{p:?}");
        cookie_pair(&p)
    }
}

/// `name=value` of a `Set-Cookie`, checked to be `HttpOnly` and `SameSite=Strict`.
fn cookie_pair(p: &Page) -> String {
    let set = p.cookie.as_deref().expect("a cookie");
    assert!(set.contains("; HttpOnly") && set.contains("; SameSite=Strict"), "{set}");
    set.split(';').next().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_page_and_its_actions_need_the_admin_token() {
    let db = TestDb::sqlite();
    let shop = common::start(&db, |_| {}).await;
    let b = Browser::new(&shop);
    let rate = |s: &TestShop| {
        let f = s.shop().operations.faults();
        f.provider_failure_rate
    };

    // No cookie, or a wrong one: the sign-in form, and nothing changes.
    for cookie in [None, Some("levee_operator=wrong")] {
        let p = b.get("/ops", cookie).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        assert!(p.html.contains("Admin token") && !p.html.contains("breaker-state"));
        let p = b.post("/ops/faults", "provider_failure_rate=1", cookie).await;
        assert_eq!(p.status, StatusCode::UNAUTHORIZED);
        assert_eq!(b.post("/ops/dlq/replay", "", cookie).await.status, StatusCode::UNAUTHORIZED);
    }
    assert_eq!(rate(&shop), 0.0);
    let p = b.post("/ops/login", "token=wrong", None).await;
    assert_eq!((p.status, p.cookie.is_none()), (StatusCode::UNAUTHORIZED, true));

    // The right token: a cookie for /ops only; the page; the switches work.
    let p = b.post("/ops/login", &format!("token={ADMIN}"), None).await;
    assert_eq!(p.status, StatusCode::SEE_OTHER);
    assert!(p.cookie.as_deref().unwrap().contains("; Path=/ops;"));
    let ops = cookie_pair(&p);
    let p = b.get("/ops", Some(&ops)).await;
    assert_eq!(p.status, StatusCode::OK);
    assert!(p.html.contains(r#"data-state="closed""#), "{}", p.html);
    let p = b.post("/ops/faults", "provider_failure_rate=1", Some(&ops)).await;
    assert_eq!(p.location.as_deref(), Some("/ops?faults=changed"));
    assert_eq!(rate(&shop), 1.0);
    let p = b.post("/ops/dlq/replay", "", Some(&ops)).await;
    assert_eq!(p.location.as_deref(), Some("/ops?replayed=0"));
    // Signing out forgets the token.
    let p = b.post("/ops/logout", "", Some(&ops)).await;
    assert!(p.cookie.as_deref().unwrap().contains("Max-Age=0"));
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_an_html_page_with_a_4xx_and_changes_nothing() {
    let db = TestDb::sqlite();
    let shop = common::start(&db, |_| {}).await;
    let b = Browser::new(&shop);
    let ops = cookie_pair(&b.post("/ops/login", &format!("token={ADMIN}"), None).await);
    for form in ["provider_failure_rate=2", "provider_failure_rate=abc", "store_latency_ms=-1"] {
        let p = b.post("/ops/faults", form, Some(&ops)).await;
        assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{form}: {p:?}");
        assert!(p.html.contains("error-message"), "{form}: {}", p.html);
    }
    assert_eq!(shop.shop().operations.faults(), Default::default());

    let me = b.shopper("carol").await;
    for (path, status) in [
        ("/shop/products/abc", StatusCode::UNPROCESSABLE_ENTITY),
        ("/shop/products/999999", StatusCode::NOT_FOUND),
        ("/shop?offset=x", StatusCode::UNPROCESSABLE_ENTITY),
        ("/shop/orders/1", StatusCode::NOT_FOUND),
    ] {
        assert_eq!(b.get(path, Some(&me)).await.status, status, "{path}");
    }
    for form in ["product_id=1&quantity=-1", "product_id=1", "product_id=1&quantity=100000"] {
        let p = b.post("/shop/cart/items", form, Some(&me)).await;
        assert!(p.status.is_client_error(), "{form}: {p:?}");
    }
    // An empty cart cannot be checked out; a bad card is refused.
    let p = b.post("/shop/checkout", "card=tok_visa&key=k1", Some(&me)).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{p:?}");
    let p = b.post("/shop/cart/items", "product_id=1&quantity=1", Some(&me)).await;
    assert_eq!(p.location.as_deref(), Some("/shop/cart"));
    let p = b.post("/shop/checkout", "card=a%20b&key=k2", Some(&me)).await;
    assert_eq!(p.status, StatusCode::UNPROCESSABLE_ENTITY, "{p:?}");

    // Without a customer: sent to sign in; with a key nobody has: the cookie is dropped too.
    let p = b.get("/shop/cart", None).await;
    assert_eq!(p.location.as_deref(), Some("/shop/account"));
    let p = b.get("/shop/cart", Some("levee_shopper=key-nobody")).await;
    assert_eq!(p.location.as_deref(), Some("/shop/account"));
    assert!(p.cookie.unwrap().contains("Max-Age=0"));
    let p = b.post("/shop/account/sign-out", "", Some(&me)).await;
    assert!(p.cookie.unwrap().contains("Max-Age=0"));
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_are_escaped_and_a_checkout_posted_twice_places_one_order() {
    let db = TestDb::sqlite();
    let shop = common::start(&db, |_| {}).await;
    let b = Browser::new(&shop);
    let me = b.shopper("%3Cscript%3Ealert(1)%3C%2Fscript%3E").await;
    let p = b.get("/shop/account", Some(&me)).await;
    assert!(p.html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"), "{}", p.html);
    assert!(!p.html.contains("<script>"));
    // A search for markup is shown as text in the search field.
    let p = b.get("/shop?q=%22%3E%3Cb%3E", Some(&me)).await;
    assert!(p.html.contains(r#"value="&quot;&gt;&lt;b&gt;""#), "{}", p.html);

    b.post("/shop/cart/items", "product_id=3&quantity=2", Some(&me)).await;
    let first = b.post("/shop/checkout", "card=tok_visa&key=same", Some(&me)).await;
    let again = b.post("/shop/checkout", "card=tok_visa&key=same", Some(&me)).await;
    assert_eq!(first.status, StatusCode::SEE_OTHER, "{first:?}");
    assert_eq!(first.location, again.location);
    let order = first.location.unwrap();
    assert!(order.starts_with("/shop/orders/"));
    let p = b.get(&order, Some(&me)).await;
    assert_eq!(p.status, StatusCode::OK);
    let list = b.get("/shop/orders", Some(&me)).await;
    assert_eq!(list.html.matches("order-status").count(), 1, "{}", list.html);

    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_pages_are_not_in_the_api_document() {
    let db = TestDb::sqlite();
    let shop = common::start(&db, |_| {}).await;
    let doc = shop.send(shop.get("/openapi.json", None)).await.body;
    let paths = doc["paths"].as_object().unwrap();
    assert!(paths.contains_key("/orders"));
    for path in paths.keys() {
        assert!(!path.starts_with("/shop") && !path.starts_with("/ops"), "{path}");
        assert!(!path.starts_with("/pages"), "{path}");
    }
    // The style sheet the pages link to is served.
    let css = shop.http.get(format!("{}/pages/style.css", shop.base)).send().await.unwrap();
    assert_eq!(css.headers()[CONTENT_TYPE], "text/css; charset=utf-8");
    shop.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_in_counts_against_the_sign_up_limit() {
    let db = TestDb::sqlite();
    let shop = common::start(&db, |c| {
        c.limits.signup = levee::limit::Quota::per_second(1).with_burst(1);
    })
    .await;
    let b = Browser::new(&shop);
    b.shopper("first").await;
    let r = b
        .http
        .post(format!("{}/shop/account/new", shop.base))
        .header(CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("name=second")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(r.headers().contains_key("retry-after"));
    // Browsing is not a sign-up: the storefront's own limit still lets it through.
    assert_eq!(b.get("/shop", None).await.status, StatusCode::OK);
    shop.stop().await;
}
