//! Micro-benchmarks of the per-message integration work: building the MESSAGE event an
//! `aws_proxy` integration posts, reading the Lambda proxy answer it gets back, validating a
//! message against a route's request model, and the mapping templates of an `http` integration.
//! Run with `cargo bench -p wsgate --bench message_path`.

use std::sync::Arc;

use wsgate::bench::RequestModels;
use wsgate::bench::parse_proxy_response;
use wsgate::bench::{ConnectionMeta, EventKind, lambda_event};

fn main() {
    divan::main();
}

fn meta() -> ConnectionMeta {
    ConnectionMeta {
        connection_id: "L0SM9cOFvHcCIhw=".into(),
        stage: "prod".into(),
        api_id: Arc::from("bench"),
        domain_name: "127.0.0.1:8080".into(),
        connected_at_ms: 1_796_494_320_000,
        source_ip: "127.0.0.2".into(),
        user_agent: Some("wsgate-load/0.1.0".into()),
        api_key: None,
        api_key_id: None,
        authorizer: None,
        iam: None,
        cache_request: None,
        canary: false,
    }
}

/// The 64-byte frame of `wsgate-load upstream`.
const FRAME: &str = r#"{"action":"echo","seq":17,"t":1796494320123456789,"data":"xxxxxx"}"#;

#[divan::bench]
fn message_event(bencher: divan::Bencher<'_, '_>) {
    let meta = meta();
    bencher.bench_local(|| {
        lambda_event(
            divan::black_box(&meta),
            "echo",
            "L0SM9cOFvHcCIhw=",
            &EventKind::Message {
                body: FRAME,
                raw: FRAME.as_bytes(),
                is_base64: false,
                message_id: "L0SM9cOFvHcCIhx=",
            },
        )
    });
}

#[divan::bench]
fn proxy_answer(bencher: divan::Bencher<'_, '_>) {
    let answer = serde_json::to_vec(&serde_json::json!({"statusCode": 200, "body": FRAME}))
        .expect("serialisable");
    bencher.bench_local(|| parse_proxy_response(divan::black_box(&answer)));
}

/// A chat message through a request template of the shape AWS's service-integration samples use
/// and a response template reading the answer: the per-message cost of an `http` integration's
/// mapping (compare with `message_event`, the `aws_proxy` event).
#[divan::bench]
fn template_mapping(bencher: divan::Bencher<'_, '_>) {
    let mapping = wsgate::bench::MessageMapping::new(
        r#"{"TableName":"$stageVariables.table","Item":{"connectionId":{"S":"$context.connectionId"},"seq":{"N":"$input.path('$.seq')"},"data":{"S":"$util.escapeJavaScript($input.path('$.data'))"},"at":{"N":"$context.requestTimeEpoch"}}}"#,
        r#"{"ok":true,"id":$input.json('$.id')}"#,
    )
    .expect("templates compile");
    let meta = meta();
    let answer = br#"{"id":"m-17","stored":true}"#;
    bencher.bench_local(|| {
        mapping
            .run(divan::black_box(&meta), FRAME, answer)
            .expect("renders")
    });
}

/// A 200-byte chat message, as a route with a request model validates it.
const CHAT: &str = r#"{"action":"sendmessage","type":"chat","room":"lobby","text":"Hello everyone, the build is green again and the release notes are up for review by Friday at noon.","client":{"id":"web-7f3a","seq":1042}}"#;

/// A small draft 4 model of [`CHAT`], picked by `$request.body.type` (falling back to
/// `$default`): parse once, select the model, validate.
#[divan::bench]
fn request_model(bencher: divan::Bencher<'_, '_>) {
    assert_eq!(CHAT.len(), 200);
    let schema = serde_json::json!({
        "type": "object",
        "required": ["action", "room", "text"],
        "properties": {
            "action": {"type": "string"},
            "type": {"enum": ["chat", "image"]},
            "room": {"type": "string", "minLength": 1, "maxLength": 64},
            "text": {"type": "string", "maxLength": 4096},
            "client": {
                "type": "object",
                "properties": {"id": {"type": "string"}, "seq": {"type": "integer", "minimum": 0}},
            },
        },
    });
    let models = RequestModels::new(&schema, Some("$request.body.type")).expect("compiles");
    models.check(CHAT.as_bytes()).expect("valid");
    bencher.bench_local(|| models.check(divan::black_box(CHAT.as_bytes())));
}

/// The parse alone of [`request_model`]: what validating adds on top of it.
#[divan::bench]
fn request_model_parse_only(bencher: divan::Bencher<'_, '_>) {
    bencher.bench_local(|| {
        serde_json::from_slice::<serde_json::Value>(divan::black_box(CHAT.as_bytes()))
    });
}
