//! Helpers for tests that need a real server (PostgreSQL, Redis, NATS, ...).
//!
//! levee's tests never mock a server: a test that needs one reads its address from an
//! environment variable that CI (`.ci/run`) sets after starting the real server on loopback.
//! Run locally without it, the test says it was skipped; with `CI=true` a missing server is a
//! failure, so CI can never pass by skipping.
//!
//! ```
//! // In a test: `let Some(url) = server_url("LEVEE_TEST_REDIS_URL", "redis") else { return };`
//! use levee_core::testing::server_url;
//! # if std::env::var("CI").is_err() {
//! assert_eq!(server_url("LEVEE_DOC_EXAMPLE_UNSET_URL", "an example server"), None);
//! # }
//! ```

/// The address of the server named by the environment variable `var`, if set.
///
/// When it is unset: prints `skipped: <what> tests need <var>` to stderr (straight to the
/// process's stderr, past the test harness's output capture, so that the skip shows in
/// `cargo test` output) and returns `None`; or, when the environment variable `CI` is `true`
/// or `1`, panics, so that a CI run whose server failed to start fails instead of passing by
/// skipping.
///
/// # Panics
/// When `var` is unset or empty and `CI` is `true` or `1`.
#[must_use]
pub fn server_url(var: &str, what: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if in_ci() => panic!("CI is set but {var} is not: the {what} tests must run in CI"),
        _ => {
            use std::io::Write as _;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: the {what} tests need a server; set {var} to run them"
            );
            None
        }
    }
}

/// True when the environment variable `CI` is `true` or `1` (as CI services set it).
#[must_use]
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v.eq_ignore_ascii_case("true") || v == "1")
}
