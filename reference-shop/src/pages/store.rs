//! The storefront: browse and search, a product page, the cart, checkout with a test card,
//! the order's status. Each handler calls one service the way the JSON handlers do.

use std::sync::Arc;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::cookie;
use super::extract::{PageForm, PageId, PageQuery};
use super::layout::{Area, answer, error_page, page, price, see_other};
use crate::api::{ApiError, CartItem, NewCustomer, Page, PlaceOrder, ProductSearch};
use crate::app::Shop;
use crate::domain::{Customer, OrderStatus};

/// Products on one page of the list.
const PER_PAGE: u32 = 20;

/// The card the checkout form offers: the simulated provider charges it.
const TEST_CARD: &str = "tok_visa";

/// A signed-in customer (the API key in the storefront's cookie). Without one, the visitor is
/// sent to the sign-in page.
pub(super) struct Shopper(Customer);

impl FromRequestParts<Arc<Shop>> for Shopper {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, shop: &Arc<Shop>) -> Result<Self, Response> {
        let Some(key) = cookie::get(&parts.headers, cookie::SHOPPER) else {
            return Err(see_other("/shop/account", None));
        };
        match shop.customers.authenticate(Some(key)).await {
            Ok(customer) => Ok(Self(customer)),
            // A key nobody has (another shop's, or a database started afresh): sign in again.
            Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
                Err(see_other("/shop/account", Some(cookie::clear(cookie::SHOPPER, "/shop"))))
            }
            Err(e) => Err(error_page(Area::Store, e)),
        }
    }
}

/// `GET /shop` query: the search words and where the page starts.
#[derive(Debug, Default, Deserialize)]
pub(super) struct Browse {
    #[serde(default)]
    q: String,
    #[serde(default)]
    offset: u32,
}

/// `GET /shop`: the products, or those matching `q`.
pub(super) async fn browse(
    State(shop): State<Arc<Shop>>,
    PageQuery(Browse { q, offset }): PageQuery<Browse>,
) -> Response {
    let words = q.trim();
    let search = ProductSearch {
        q: (!words.is_empty()).then(|| words.to_owned()),
        category: None,
        limit: Some(PER_PAGE),
        offset: Some(offset),
    };
    let found = match shop.catalog.search(search).await {
        Ok(found) => found,
        Err(e) => return error_page(Area::Store, e),
    };
    let more = found.products.len() == PER_PAGE as usize;
    let content = html! {
        form.search method="get" action="/shop" {
            input #search type="search" name="q" value=(words) placeholder="Search products"
                maxlength="100";
            button type="submit" { "Search" }
        }
        @if found.products.is_empty() {
            p #no-products { "No products match." }
        } @else {
            table #products {
                thead { tr { th { "Product" } th { "Category" } th.num { "Price" } th.num { "In stock" } } }
                tbody {
                    @for p in &found.products {
                        tr.product {
                            td { a href={ "/shop/products/" (p.id) } { (p.name) } }
                            td { (p.category) }
                            td.num { (price(p.price_cents)) }
                            td.num { (p.stock) }
                        }
                    }
                }
            }
        }
        nav.pages {
            @if offset > 0 {
                (page_link(words, offset.saturating_sub(PER_PAGE), "Previous"))
            }
            @if more {
                (page_link(words, offset.saturating_add(PER_PAGE), "Next"))
            }
        }
    };
    answer(StatusCode::OK, page(Area::Store, "Products", &content))
}

/// A link to another page of the list, as a GET form (the browser encodes the words).
fn page_link(words: &str, offset: u32, label: &str) -> Markup {
    html! {
        form.inline method="get" action="/shop" {
            input type="hidden" name="q" value=(words);
            input type="hidden" name="offset" value=(offset);
            button type="submit" { (label) }
        }
    }
}

/// `GET /shop/products/{id}`.
pub(super) async fn product(State(shop): State<Arc<Shop>>, PageId(id): PageId) -> Response {
    let p = match shop.catalog.product(id).await {
        Ok(p) => p,
        Err(e) => return error_page(Area::Store, e),
    };
    let most = p.stock.clamp(0, i64::from(shop.config.orders.max_quantity));
    let content = html! {
        article.product {
            h1 #product-name { (p.name) }
            p.muted { (p.category) " · SKU " (p.sku) }
            p.price { (price(p.price_cents)) }
            p { (p.stock) " in stock" }
            @if most > 0 {
                form method="post" action="/shop/cart/items" {
                    input type="hidden" name="product_id" value=(p.id);
                    label { "Quantity " input #quantity type="number" name="quantity" value="1"
                        min="1" max=(most) required; }
                    button #add-to-cart type="submit" { "Add to cart" }
                }
            } @else {
                p.warn { "Sold out." }
            }
        }
    };
    answer(StatusCode::OK, page(Area::Store, &p.name, &content))
}

/// `GET /shop/account`: who is signed in, or the sign-in form.
pub(super) async fn account(State(shop): State<Arc<Shop>>, headers: HeaderMap) -> Response {
    let key = cookie::get(&headers, cookie::SHOPPER);
    let customer = match key {
        Some(key) => shop.customers.authenticate(Some(key)).await.ok(),
        None => None,
    };
    let content = html! {
        @if let Some(c) = customer {
            h1 { "Account" }
            p #signed-in { "Signed in as " strong { (c.name) } "." }
            form method="post" action="/shop/account/sign-out" {
                button #sign-out type="submit" { "Sign out" }
            }
        } @else {
            h1 { "Sign in" }
            p { "A name is all the demo shop asks for: it makes you a new customer." }
            form method="post" action="/shop/account/new" {
                label { "Your name " input #name type="text" name="name" required maxlength="64"; }
                button #sign-in type="submit" { "Sign in" }
            }
        }
    };
    answer(StatusCode::OK, page(Area::Store, "Account", &content))
}

/// `POST /shop/account/new` form: the new customer's name.
#[derive(Debug, Deserialize)]
pub(super) struct SignIn {
    name: String,
}

/// `POST /shop/account/new`: creates a customer and keeps its key in the cookie.
pub(super) async fn sign_in(
    State(shop): State<Arc<Shop>>,
    PageForm(form): PageForm<SignIn>,
) -> Response {
    let customer = match shop.customers.create(NewCustomer { name: form.name }).await {
        Ok(c) => c,
        Err(e) => return error_page(Area::Store, e),
    };
    match cookie::set(cookie::SHOPPER, &customer.api_key, "/shop") {
        Some(c) => see_other("/shop", Some(c)),
        None => error_page(Area::Store, ApiError::internal()),
    }
}

/// `POST /shop/account/sign-out`: forgets the customer's key.
pub(super) async fn sign_out() -> Response {
    see_other("/shop", Some(cookie::clear(cookie::SHOPPER, "/shop")))
}

/// `GET /shop/cart`: the lines, the total and the checkout form.
pub(super) async fn cart(State(shop): State<Arc<Shop>>, Shopper(c): Shopper) -> Response {
    let cart = match shop.carts.view(c.id).await {
        Ok(cart) => cart,
        Err(e) => return error_page(Area::Store, e),
    };
    // One key per rendered form: a form posted twice places one order.
    let key = format!("page-{:016x}", levee::core::random::next_u64());
    let content = html! {
        h1 { "Cart" }
        @if cart.lines.is_empty() {
            p #empty-cart { "Your cart is empty. " a href="/shop" { "Browse the products." } }
        } @else {
            table #cart {
                thead { tr { th { "Product" } th.num { "Units" } th.num { "Price" } th { } } }
                tbody {
                    @for line in &cart.lines {
                        tr.line {
                            td { a href={ "/shop/products/" (line.product_id) } { (line.name) } }
                            td.num { (line.quantity) }
                            td.num { (price(line.price_cents.saturating_mul(line.quantity))) }
                            td {
                                form.inline method="post" action="/shop/cart/remove" {
                                    input type="hidden" name="product_id" value=(line.product_id);
                                    button.link type="submit" { "Remove" }
                                }
                            }
                        }
                    }
                }
                tfoot { tr { th { "Total" } td { } td.num #cart-total { (price(cart.total_cents)) } td { } } }
            }
            h2 { "Checkout" }
            form #checkout-form method="post" action="/shop/checkout" {
                input type="hidden" name="key" value=(key);
                label { "Card " input #card type="text" name="card" value=(TEST_CARD) required
                    maxlength="64"; }
                button #checkout type="submit" { "Place order and pay" }
            }
            p.muted {
                "Test cards: " code { (TEST_CARD) } " is charged, " code { "tok_declined" }
                " is declined."
            }
        }
    };
    answer(StatusCode::OK, page(Area::Store, "Cart", &content))
}

/// `POST /shop/cart/items` form.
#[derive(Debug, Deserialize)]
pub(super) struct AddItem {
    product_id: i64,
    quantity: u32,
}

/// `POST /shop/cart/items`: adds `quantity` units to the line (reserving them).
pub(super) async fn add_to_cart(
    State(shop): State<Arc<Shop>>,
    Shopper(c): Shopper,
    PageForm(item): PageForm<AddItem>,
) -> Response {
    let held = match shop.carts.view(c.id).await {
        Ok(cart) => {
            cart.lines.iter().find(|l| l.product_id == item.product_id).map_or(0, |l| l.quantity)
        }
        Err(e) => return error_page(Area::Store, e),
    };
    let quantity = u32::try_from(held).unwrap_or(u32::MAX).saturating_add(item.quantity);
    match shop.carts.set_item(c.id, CartItem { product_id: item.product_id, quantity }).await {
        Ok(_) => see_other("/shop/cart", None),
        Err(e) => error_page(Area::Store, e),
    }
}

/// `POST /shop/cart/remove` form.
#[derive(Debug, Deserialize)]
pub(super) struct RemoveItem {
    product_id: i64,
}

/// `POST /shop/cart/remove`: drops a line and its reservation.
pub(super) async fn remove_from_cart(
    State(shop): State<Arc<Shop>>,
    Shopper(c): Shopper,
    PageForm(item): PageForm<RemoveItem>,
) -> Response {
    match shop.carts.remove_item(c.id, item.product_id).await {
        Ok(_) => see_other("/shop/cart", None),
        Err(e) => error_page(Area::Store, e),
    }
}

/// `POST /shop/checkout` form: the card and the form's idempotency key.
#[derive(Debug, Deserialize)]
pub(super) struct Checkout {
    card: String,
    key: String,
}

/// `POST /shop/checkout`: places the cart as an order paid with the card (the order-placing
/// path of `POST /orders`), then shows the order.
pub(super) async fn checkout(
    State(shop): State<Arc<Shop>>,
    Shopper(c): Shopper,
    PageForm(form): PageForm<Checkout>,
) -> Response {
    let order = PlaceOrder { items: None, card: Some(form.card.trim().to_owned()) };
    match shop.orders.place(c.id, Some(&form.key), order).await {
        Ok(placed) => see_other(&format!("/shop/orders/{}", placed.order.id), None),
        Err(e) => error_page(Area::Store, e),
    }
}

/// `GET /shop/orders`: the customer's orders, newest first.
pub(super) async fn orders(State(shop): State<Arc<Shop>>, Shopper(c): Shopper) -> Response {
    let list = match shop.orders.list(c.id, Page { limit: Some(50), offset: None }).await {
        Ok(list) => list,
        Err(e) => return error_page(Area::Store, e),
    };
    let content = html! {
        h1 { "Orders" }
        @if list.orders.is_empty() {
            p { "No orders yet." }
        } @else {
            table #orders {
                thead { tr { th { "Order" } th { "Status" } th.num { "Total" } } }
                tbody {
                    @for o in &list.orders {
                        tr {
                            td { a href={ "/shop/orders/" (o.id) } { "#" (o.id) } }
                            td { (status_badge(o.status)) }
                            td.num { (price(o.total_cents)) }
                        }
                    }
                }
            }
        }
    };
    answer(StatusCode::OK, page(Area::Store, "Orders", &content))
}

/// `GET /shop/orders/{id}`: the order's status (the page reloads itself every two seconds
/// while the payment is under way) and what the customer was told.
pub(super) async fn order(
    State(shop): State<Arc<Shop>>,
    Shopper(c): Shopper,
    PageId(id): PageId,
) -> Response {
    let order = match shop.orders.get(c.id, id).await {
        Ok(order) => order,
        Err(e) => return error_page(Area::Store, e),
    };
    let notes = match shop.notifications.for_order(order.id).await {
        Ok(list) => list.notifications,
        Err(e) => return error_page(Area::Store, e),
    };
    // The lines' names from the catalog (through its cache); a product gone since is its id.
    let mut names = Vec::with_capacity(order.lines.len());
    for line in &order.lines {
        let name = shop.catalog.product(line.product_id).await.map(|p| p.name);
        names.push(name.unwrap_or_else(|_| format!("#{}", line.product_id)));
    }
    let pending = order.status == OrderStatus::AwaitingPayment;
    let content = html! {
        @if pending { meta http-equiv="refresh" content="2"; }
        h1 { "Order #" (order.id) }
        p { "Status: " (status_badge(order.status)) }
        @if let Some(error) = &order.payment_error {
            @if pending { p.warn #payment-error { "Payment pending: " (error) } }
        }
        @if let Some(reason) = &order.cancel_reason { p.warn { "Cancelled: " (reason) } }
        table {
            thead { tr { th { "Product" } th.num { "Units" } th.num { "Unit price" } } }
            tbody {
                @for (line, name) in order.lines.iter().zip(&names) {
                    tr {
                        td { a href={ "/shop/products/" (line.product_id) } { (name) } }
                        td.num { (line.quantity) }
                        td.num { (price(line.unit_price_cents)) }
                    }
                }
            }
            tfoot { tr { th { "Total" } td { } td.num #order-total { (price(order.total_cents)) } } }
        }
        @if !notes.is_empty() {
            h2 { "Messages" }
            ul #notifications { @for n in &notes { li { (n.message) } } }
        }
    };
    answer(StatusCode::OK, page(Area::Store, &format!("Order #{}", order.id), &content))
}

/// An order's status as a badge; `data-status` holds the API's spelling.
fn status_badge(status: OrderStatus) -> Markup {
    let label = match status {
        OrderStatus::AwaitingPayment => "awaiting payment",
        OrderStatus::Paid => "paid",
        OrderStatus::Cancelled => "cancelled",
    };
    html! { span.badge.order-status.(status.as_str()) data-status=(status.as_str()) { (label) } }
}
