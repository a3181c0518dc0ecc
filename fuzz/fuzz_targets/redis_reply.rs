//! levee-redis's decoder of the GCRA script's reply, fed arbitrary RESP bytes (parsed by the
//! redis crate, as a reply from a server that is not ours, or a corrupted one, would be): it
//! must return a typed value or a typed error, never panic; and a decoded reply, written
//! back as RESP, must decode to the same value.

#![no_main]

use levee_redis::fuzz::decode;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((granted, value, server_now)) = decode(data) {
        let secs = server_now / 1_000_000_000;
        let nanos = server_now % 1_000_000_000;
        let resp = format!("*4\r\n:{granted}\r\n:{value}\r\n:{secs}\r\n:{nanos}\r\n");
        assert_eq!(decode(resp.as_bytes()), Some((granted, value, server_now)));
    }
});
