//! The shared breaker's message parser (`levee::shared_breaker::Transition::decode`), fed
//! arbitrary bytes as a peer (or anything else publishing on the topic) might send them: it
//! must return a transition or a typed error, never panic; what it accepts, written back,
//! reads the same.

#![no_main]

use levee::shared_breaker::Transition;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(t) = Transition::decode(text) {
        assert_eq!(Transition::decode(&t.encode()), Ok(t));
    }
});
