//! What every page shares: the document around the content, answers to a form (a redirect),
//! errors as pages, prices.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, html};

use crate::api::ApiError;

/// Which part of the shop a page belongs to (its header links).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Area {
    /// `/shop`.
    Store,
    /// `/ops`.
    Operator,
}

/// The whole document: `title`, the area's header, then `content`.
pub(super) fn page(area: Area, title: &str, content: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · levee shop" }
                link rel="stylesheet" href="/pages/style.css";
            }
            body {
                header {
                    @match area {
                        Area::Store => {
                            a.brand href="/shop" { "levee shop" }
                            nav {
                                a href="/shop" { "Products" }
                                a href="/shop/cart" { "Cart" }
                                a href="/shop/orders" { "Orders" }
                                a href="/shop/account" { "Account" }
                            }
                        }
                        Area::Operator => {
                            a.brand href="/ops" { "levee shop · operator" }
                            nav { a href="/ops" { "Refresh" } a href="/shop" { "Storefront" } }
                        }
                    }
                }
                main { (content) }
            }
        }
    }
}

/// A page answering `status`.
pub(super) fn answer(status: StatusCode, markup: Markup) -> Response {
    (status, markup).into_response()
}

/// `303 See Other` to `to` (the answer to a posted form), setting `cookie` if given.
pub(super) fn see_other(to: &str, cookie: Option<HeaderValue>) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(cookie) = cookie {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// A service's refusal as a page: the API's status, its code and message, and a way back.
pub(super) fn error_page(area: Area, error: ApiError) -> Response {
    let status = error.status();
    let detail = error.into_body().error;
    let back = match area {
        Area::Store => "/shop",
        Area::Operator => "/ops",
    };
    let content = html! {
        section.error {
            h1 { (status.canonical_reason().unwrap_or("Error")) }
            p #error-message { (detail.message) }
            p.muted { "code: " code { (detail.code) } }
            @if let Some(secs) = detail.retry_after_secs {
                p { "Try again in " (secs) " s." }
            }
            p { a href=(back) { "Back" } }
        }
    };
    answer(status, page(area, "Error", &content))
}

/// Cents as a price: `1234` is `12.34`.
pub(super) fn price(cents: i64) -> String {
    let sign = if cents < 0 { "-" } else { "" };
    let cents = cents.unsigned_abs();
    format!("{sign}{}.{:02}", cents / 100, cents % 100)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prices() {
        assert_eq!(price(0), "0.00");
        assert_eq!(price(5), "0.05");
        assert_eq!(price(1234), "12.34");
        assert_eq!(price(-1234), "-12.34");
        assert_eq!(price(i64::MIN), "-92233720368547758.08");
    }

    #[test]
    fn every_value_is_escaped() {
        let hostile = "<script>alert('x')</script> & \"q\"";
        let html = page(Area::Store, hostile, &html! { p { (hostile) } }).into_string();
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert('x')&lt;/script&gt; &amp; &quot;q&quot;"));
    }
}
