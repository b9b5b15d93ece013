//! Fuzz target: text as a configuration file (YAML, then after a NUL `WSGATE_*=value`
//! overrides); loading and checking never panic and fail with an error naming the key.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = wsgate::fuzzing::config(&text);
});
