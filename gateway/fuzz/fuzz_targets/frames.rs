//! Fuzz target: WebSocket frames from a client after a completed upgrade (raw, or built from
//! a compact description when the first byte is odd); the session ends cleanly with a close
//! code allowed on the wire, never a panic or a hang.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = wsgate::fuzzing::frames(data);
});
