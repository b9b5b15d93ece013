//! Fuzz target: any bytes, split at the first NUL into a template and a body, must parse or
//! fail cleanly, and render within the output bound or fail cleanly: never panic or hang.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use wsgate_vtl::{Input, Limits, RenderError, Template};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let (src, body) = text.split_once('\0').unwrap_or((&text, r#"{"a":"x,y","b":[1,{"c":2}]}"#));
    let Ok(t) = Template::parse(src) else { return };
    let ctx = serde_json::json!({"requestId": "r", "connectionId": "c", "identity": {"sourceIp": "1.2.3.4"}});
    let stage = serde_json::json!({"s": "v"});
    let params = serde_json::json!({"header": {"h": "1"}, "querystring": {"q": "2"}, "path": {}});
    let input = Input { body, context: &ctx, stage_variables: &stage, params: &params };
    let limits = Limits {
        max_output_bytes: 4096,
        max_loop_iterations: 100,
        max_steps: 50_000,
        max_duration: Duration::from_millis(200),
    };
    match t.render(&input, &limits) {
        Ok(out) => assert!(out.len() <= limits.max_output_bytes),
        Err(RenderError::OutputTooLarge { limit }) => assert_eq!(limit, limits.max_output_bytes),
        Err(_) => {}
    }
});
