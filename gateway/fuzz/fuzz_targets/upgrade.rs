//! Fuzz target: any bytes as a client connection on the main listener, served by the real
//! HTTP/1 path and the gateway's routes (upgrade, callback API, health); never a panic or a
//! hang, always an HTTP/1 answer or none.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wsgate::fuzzing::upgrade(data);
});
