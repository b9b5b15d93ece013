//! Fuzz target: an HTTP/1.1 request head and body checked as a SigV4-signed request
//! (canonicalisation, `Authorization` and presigned query parsing); never a panic, and a head
//! refused early is never accepted in full.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wsgate::fuzzing::sigv4(data);
});
