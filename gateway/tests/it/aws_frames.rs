//! Outgoing messages over 32 KB go out in frames of at most 32 KB, as Amazon API Gateway sends
//! them: read frame by frame by a raw client after the upgrade, and reassembled byte for byte by
//! a standard one.

use tokio_tungstenite::tungstenite::Message;

use crate::support::raw_ws::{RawClient, RawFrame};
use crate::support::*;

/// AWS's frame size: "WebSocket frame size 32 KB" in the quotas of WebSocket APIs,
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html (reference file §5).
const FRAME: usize = 32_768;

/// Checks `frames` are AWS's split of a `opcode` message into frames of at most 32 KB (all but
/// the last full, the first carrying the opcode, then continuations, FIN on the last only) and
/// returns the reassembled payload.
fn assert_split(frames: &[RawFrame], opcode: u8, total: usize) -> Vec<u8> {
    let count = total.div_ceil(FRAME);
    assert_eq!(frames.len(), count, "frames of {total} bytes");
    for (i, frame) in frames.iter().enumerate() {
        let last = i + 1 == count;
        assert_eq!(
            frame.opcode,
            if i == 0 { opcode } else { 0 },
            "opcode of {i}"
        );
        assert_eq!(frame.fin, last, "FIN of {i}");
        assert!(frame.payload.len() <= FRAME, "{i}: {}", frame.payload.len());
        if !last {
            assert_eq!(frame.payload.len(), FRAME, "{i}");
        }
    }
    frames.iter().flat_map(|f| f.payload.clone()).collect()
}

/// A text payload of `len` bytes with multi-byte characters, so frame boundaries fall inside
/// UTF-8 sequences.
fn text_payload(len: usize) -> String {
    let mut text = String::with_capacity(len);
    for i in 0.. {
        let c = if i % 7 == 0 {
            '✓'
        } else {
            char::from(b'a' + (i % 26) as u8)
        };
        if text.len() + c.len_utf8() > len {
            break;
        }
        text.push(c);
    }
    while text.len() < len {
        text.push('z');
    }
    text
}

async fn post(gw: &TestGateway, id: &str, body: Vec<u8>) {
    let r = http()
        .post(gw.http_url(&format!("/prod/@connections/{id}")))
        .body(body)
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 200);
}

async fn raw_client_and_id(gw: &TestGateway, backend: &Backend) -> (RawClient, String) {
    let raw = RawClient::connect(gw).await;
    let event = backend.next_to("/connect").await.json();
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    (raw, id)
}

/// A 100 KB text and a 100 KB binary message posted through `@connections`: four frames each,
/// 32 KB, 32 KB, 32 KB and the rest. Source: the footnote of the frame-size quota on
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html, messages larger
/// than 32 KB are split into frames of at most 32 KB, also when sent through `@connections`
/// (reference file §3.1).
#[tokio::test]
async fn callback_posts_over_32_kb_go_out_in_32_kb_frames() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut raw, raw_id) = raw_client_and_id(&gw, &backend).await;
    let (mut ws, ws_id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;

    let text = text_payload(100 * 1024);
    post(&gw, &raw_id, text.clone().into_bytes()).await;
    let frames = raw.message_frames().await;
    assert_eq!(assert_split(&frames, 0x1, text.len()), text.as_bytes());
    post(&gw, &ws_id, text.clone().into_bytes()).await;
    assert_eq!(next_text(&mut ws).await, text);

    // Not UTF-8: a binary message.
    let binary: Vec<u8> = (0..100 * 1024).map(|i| (i % 251) as u8 | 0x80).collect();
    post(&gw, &raw_id, binary.clone()).await;
    let frames = raw.message_frames().await;
    assert_eq!(assert_split(&frames, 0x2, binary.len()), binary);
    post(&gw, &ws_id, binary.clone()).await;
    assert_eq!(next_frame(&mut ws).await, Message::binary(binary));

    // A message of exactly 32 KB is one frame.
    post(&gw, &raw_id, vec![b'x'; FRAME]).await;
    let frames = raw.message_frames().await;
    assert_eq!((frames.len(), frames[0].payload.len()), (1, FRAME));
}

/// A two-way route's 100 KB answer is split the same way: the frame-size quota ("WebSocket frame
/// size 32 KB", https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html,
/// reference file §5) holds for every message API Gateway sends.
#[tokio::test]
async fn two_way_answers_over_32_kb_go_out_in_32_kb_frames() {
    let answer = text_payload(100 * 1024);
    let body = answer.clone();
    let backend = Backend::start(move |r| match r.path.as_str() {
        "/default" => Reply::http(200, &body),
        _ => Reply::lambda(200, None),
    })
    .await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut raw, _) = raw_client_and_id(&gw, &backend).await;
    raw.send_text(r#"{"action":"big"}"#).await;
    let frames = raw.message_frames().await;
    assert_eq!(assert_split(&frames, 0x1, answer.len()), answer.as_bytes());

    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"big"}"#).await;
    assert_eq!(next_text(&mut ws).await, answer);
}

/// `limits.max_outbound_frame_bytes: 0` sends every message as one frame.
#[tokio::test]
async fn zero_never_splits() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(
        &backend.url(),
        "limits:\n  max_outbound_frame_bytes: 0\n",
    ))
    .await;
    let (mut raw, id) = raw_client_and_id(&gw, &backend).await;
    let text = text_payload(100 * 1024);
    post(&gw, &id, text.clone().into_bytes()).await;
    let frames = raw.message_frames().await;
    assert_eq!(frames.len(), 1);
    assert_eq!((frames[0].opcode, frames[0].fin), (0x1, true));
    assert_eq!(frames[0].payload, text.as_bytes());
}

/// A group post over 32 KB reaches every member in 32 KB frames too (fan-outs are written like
/// `@connections` posts; DG quotas page, "WebSocket frame size 32 KB").
#[tokio::test]
async fn group_posts_over_32_kb_go_out_in_32_kb_frames() {
    let backend = Backend::ok().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (mut raw, raw_id) = raw_client_and_id(&gw, &backend).await;
    let (mut ws, ws_id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    let client = http();
    let base = gw.http_url("");
    for id in [&raw_id, &ws_id] {
        assert_eq!(groups::member(&client, &base, id, "big", true).await, 204);
    }
    let text = text_payload(70 * 1024);
    let (status, _) = groups::post_group(&client, &base, "big", &text, "").await;
    assert_eq!(status, 200);
    let frames = raw.message_frames().await;
    assert_eq!(assert_split(&frames, 0x1, text.len()), text.as_bytes());
    assert_eq!(next_text(&mut ws).await, text);
}
