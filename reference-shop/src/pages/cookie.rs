//! The pages' two session cookies: the customer's API key (`/shop`) and the operator's admin
//! token (`/ops`). Both `HttpOnly` (no script reads them) and `SameSite=Strict` (no other
//! site's form posts with them).

use axum::http::{HeaderMap, HeaderValue, header};

/// The storefront's cookie: the signed-in customer's API key.
pub(super) const SHOPPER: &str = "levee_shopper";
/// The operator page's cookie: the admin token.
pub(super) const OPERATOR: &str = "levee_operator";

/// The value of the cookie `name` in the request's `Cookie` headers, if any.
pub(super) fn get<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(n, _)| *n == name)
        .map(|(_, v)| v.trim_matches('"'))
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value that keeps `value` for the pages under `path`; `None` when `value`
/// cannot be a cookie value (RFC 6265's `cookie-octet`s only: the keys and tokens the shop
/// issues are, a token from the settings may not be).
pub(super) fn set(name: &str, value: &str, path: &str) -> Option<HeaderValue> {
    let octets = |c: char| c.is_ascii_graphic() && !matches!(c, '"' | ',' | ';' | '\\');
    if value.is_empty() || !value.chars().all(octets) {
        return None;
    }
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; HttpOnly; SameSite=Strict")).ok()
}

/// A `Set-Cookie` value that removes the cookie `name` under `path`.
pub(super) fn clear(name: &str, path: &str) -> HeaderValue {
    HeaderValue::from_str(&format!("{name}=; Path={path}; HttpOnly; SameSite=Strict; Max-Age=0"))
        .unwrap_or_else(|_| HeaderValue::from_static(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_named_cookie_among_others_and_across_headers() {
        let mut headers = HeaderMap::new();
        headers.append(header::COOKIE, HeaderValue::from_static("a=1; levee_shopper=key-ab"));
        headers.append(header::COOKIE, HeaderValue::from_static("levee_operator=\"tok\""));
        assert_eq!(get(&headers, SHOPPER), Some("key-ab"));
        assert_eq!(get(&headers, OPERATOR), Some("tok"));
        assert_eq!(get(&headers, "a"), Some("1"));
        assert_eq!(get(&headers, "levee"), None);
        headers.insert(header::COOKIE, HeaderValue::from_static("levee_shopper=; x"));
        assert_eq!(get(&headers, SHOPPER), None);
    }

    #[test]
    fn refuses_values_that_would_break_the_header() {
        let set = |v| set(SHOPPER, v, "/shop").map(|h| h.to_str().unwrap().to_owned());
        assert_eq!(
            set("key-0a").as_deref(),
            Some("levee_shopper=key-0a; Path=/shop; HttpOnly; SameSite=Strict")
        );
        for bad in ["", "a b", "a;b", "a\"b", "a,b", "é", "a\nb"] {
            assert_eq!(set(bad), None, "{bad:?}");
        }
        assert!(clear(OPERATOR, "/ops").to_str().unwrap().contains("Max-Age=0"));
    }
}
