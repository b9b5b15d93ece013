//! Micro-benchmarks of the per-message integration work: building the MESSAGE event an
//! `aws_proxy` integration posts, reading the Lambda proxy answer it gets back, and the mapping
//! templates of an `http` integration.
//! Run with `cargo bench -p wsgate --bench message_path`.

use std::sync::Arc;

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
