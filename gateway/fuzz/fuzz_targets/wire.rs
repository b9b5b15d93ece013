//! Fuzz target: frames of the node-to-node bus (first byte even) and of the group channels
//! (odd); decoding never panics and whatever decodes round-trips.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some((selector, frame)) = data.split_first() {
        wsgate::fuzzing::wire(*selector, frame);
    }
});
