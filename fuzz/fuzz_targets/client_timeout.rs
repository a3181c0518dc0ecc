//! levee-client's parser of the `levee-timeout` / `grpc-timeout` header, on arbitrary
//! bytes: a duration or a typed error, never a panic; a parsed value written back with
//! `format_timeout` parses to the same duration (a value the parser accepts is exact in its
//! own unit, and the writer picks the finest unit that holds it, so nothing is lost).
#![no_main]

use levee_client::deadline::{format_timeout, parse_timeout};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(timeout) = parse_timeout(data) {
        let written = format_timeout(timeout);
        let back = parse_timeout(written.as_bytes()).expect("what the writer writes parses");
        assert_eq!(back, timeout, "{written}");
    }
});
