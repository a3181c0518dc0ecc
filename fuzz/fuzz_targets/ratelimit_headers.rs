//! levee-limit's IETF rate-limit header fields (draft-ietf-httpapi-ratelimit-headers-11),
//! rendered for arbitrary policy names, policies, states and refusals. A name is refused, or
//! every field parses as an RFC 9651 List (by the sfv crate, not by levee's code) whose one
//! member is the name, with exactly the draft's parameters as non-negative Integers equal to
//! the inputs: seconds rounded up, `Retry-After` the refusal's `t`, and the policy's `q / w`
//! never above the limiter's real rate.

#![no_main]

use std::time::Duration;

use arbitrary::Arbitrary;
use levee_limit::fuzz::render_fields;
use levee_limit::{LimitPolicy, LimitState};
use libfuzzer_sys::fuzz_target;
use sfv::{BareItem, ListEntry, Parser};

#[derive(Debug, Arbitrary)]
struct Input {
    name: String,
    quota: u32,
    window_ns: u64,
    remaining: u32,
    reset_ns: u64,
    retry_ns: u64,
}

/// Nanoseconds in whole seconds, rounded up.
fn ceil_secs(ns: u64) -> i64 {
    ns.div_ceil(1_000_000_000) as i64
}

/// The parameters of `field`'s one member, after checking it names `name` and carries
/// exactly `keys`, each a non-negative Integer.
fn params(field: &str, name: &str, keys: &[&str]) -> Vec<i64> {
    let list = Parser::parse_list(field.as_bytes())
        .unwrap_or_else(|e| panic!("{field:?} is not a structured field list: {e}"));
    let [ListEntry::Item(item)] = list.as_slice() else { panic!("{field:?}: not one item") };
    assert_eq!(item.bare_item, BareItem::String(name.to_owned()), "{field:?}");
    let found: Vec<&str> = item.params.keys().map(String::as_str).collect();
    assert_eq!(found, keys, "{field:?}");
    item.params
        .values()
        .map(|v| v.as_int().filter(|&i| i >= 0).unwrap_or_else(|| panic!("{field:?}: {v:?}")))
        .collect()
}

fuzz_target!(|input: Input| {
    let name = input.name.as_str();
    let policy = LimitPolicy { quota: input.quota, window: Duration::from_nanos(input.window_ns) };
    let state =
        LimitState { remaining: input.remaining, reset: Duration::from_nanos(input.reset_ns) };
    let retry = Duration::from_nanos(input.retry_ns);
    let Some([policy_field, admitted, refused, retry_after]) =
        render_fields(name, policy, state, retry)
    else {
        assert!(name.is_empty() || !name.bytes().all(|b| (0x20..=0x7e).contains(&b)));
        return;
    };

    if input.window_ns == 0 {
        assert!(policy_field.is_empty(), "no policy for an empty window");
    } else {
        let [q, w] = params(&policy_field, name, &["q", "w"])[..] else { unreachable!() };
        assert_eq!(w, ceil_secs(input.window_ns).max(1));
        // q / w <= quota / window, in integers.
        let (q, w) = (q as u128, w as u128);
        assert!(q * u128::from(input.window_ns) <= u128::from(input.quota) * w * 1_000_000_000);
    }
    let admitted = params(&admitted, name, &["r", "t"]);
    assert_eq!(admitted, [i64::from(input.remaining), ceil_secs(input.reset_ns)]);
    let wait = ceil_secs(input.retry_ns).max(1);
    assert_eq!(params(&refused, name, &["r", "t"]), [0, wait]);
    assert_eq!(retry_after, wait.to_string());
});
