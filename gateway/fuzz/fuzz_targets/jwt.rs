//! Fuzz target: bytes split at the first NUL into a JWT and a JWKS document, verified by a
//! `jwt` authorizer; never a panic, and an accepted token's algorithm is on the allow-list.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (token, jwks) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b""[..]),
    };
    let token = String::from_utf8_lossy(token);
    let _ = wsgate::fuzzing::jwt(&token, jwks);
});
