//! Feeds arbitrary bytes to levee-nats' parsers of what it reads back from the server:
//! key tokens, delivered subjects, dead-letter records and failure records. None may panic;
//! tokens round-trip and subjects split back into what they were built from.

#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    levee_nats::fuzz::parsers(&data[..data.len().min(4096)]);
});
