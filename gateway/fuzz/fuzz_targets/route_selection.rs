//! Fuzz target: bytes split at the first NUL into a route selection expression and a message
//! body; parsing and selection never panic, are deterministic, and never pick a reserved key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (expression, body) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &b"{\"action\":\"join\",\"a\":[1,{\"b\":\"c\"}]}"[..]),
    };
    let expression = String::from_utf8_lossy(expression);
    let _ = wsgate::fuzzing::route_selection(&expression, body);
});
