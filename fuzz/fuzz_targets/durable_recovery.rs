//! Opens a durable broker over arbitrary segment files: half the input becomes well-formed
//! frames around arbitrary record bodies (so the record decoder and the recovery fold see
//! checksummed garbage), the rest raw bytes appended and flipped (torn tails, corrupt
//! middles, damaged headers). Every outcome must be a typed error or an open broker, under
//! each corruption policy; never a panic.

#![no_main]

use levee_queue::durable::fuzz::{decode_record, recover, segment};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(8192)];
    let (bodies, raw) = data.split_at(data.len() / 2);
    let bodies: Vec<&[u8]> = bodies.split(|&b| b == 0xFF).collect();
    for body in &bodies {
        let _ = decode_record(body);
    }
    let mut first = segment(0, &bodies);
    let second_base = (first.len() - 16) as u64;
    first.extend_from_slice(raw);
    if let Some(&flip) = raw.first() {
        let at = usize::from(flip) * 7 % first.len();
        first[at] ^= 0x5A;
    }
    recover(&[first.clone()]);
    recover(&[segment(0, &bodies), segment(second_base, &[raw])]);
});
