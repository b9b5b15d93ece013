//! Outgoing messages over 32 KB go out in frames of at most 32 KB, as Amazon API Gateway sends
//! them: read frame by frame by a raw client after the upgrade, and reassembled byte for byte by
//! a standard one.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// AWS's frame size: "WebSocket frame size 32 KB" in the quotas of WebSocket APIs,
/// https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html (reference file §5).
const FRAME: usize = 32_768;

/// One frame as it came over the wire.
#[derive(Debug)]
struct RawFrame {
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

/// A WebSocket client that reads frames, not messages.
struct RawClient {
    tcp: TcpStream,
}

impl RawClient {
    /// Upgrades a plain TCP connection to `/prod`.
    async fn connect(gw: &TestGateway) -> Self {
        let mut tcp = TcpStream::connect(gw.addr).await.expect("tcp");
        let request = format!(
            "GET /prod HTTP/1.1\r\nHost: {}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            gw.addr
        );
        tcp.write_all(request.as_bytes()).await.expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = tokio::time::timeout(DEADLINE, tcp.read(&mut byte))
                .await
                .expect("answer within the deadline")
                .expect("read");
            assert_eq!(n, 1, "connection closed before the answer");
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head);
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        Self { tcp }
    }

    /// The next frame from the server (pings skipped).
    async fn frame(&mut self) -> RawFrame {
        loop {
            let frame = tokio::time::timeout(DEADLINE, self.read_frame())
                .await
                .expect("a frame within the deadline");
            if frame.opcode != 0x9 {
                return frame;
            }
        }
    }

    async fn read_frame(&mut self) -> RawFrame {
        let mut head = [0u8; 2];
        self.tcp.read_exact(&mut head).await.expect("frame head");
        assert_eq!(head[1] & 0x80, 0, "server frames are not masked");
        assert_eq!(head[0] & 0x70, 0, "no RSV bits (no compression)");
        let len = match head[1] & 0x7f {
            126 => usize::from(self.tcp.read_u16().await.expect("length")),
            127 => usize::try_from(self.tcp.read_u64().await.expect("length")).expect("fits"),
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        self.tcp.read_exact(&mut payload).await.expect("payload");
        RawFrame {
            fin: head[0] & 0x80 != 0,
            opcode: head[0] & 0x0f,
            payload,
        }
    }

    /// The frames of the next message: all frames up to the one with FIN set.
    async fn message_frames(&mut self) -> Vec<RawFrame> {
        let mut frames = Vec::new();
        loop {
            let frame = self.frame().await;
            let fin = frame.fin;
            frames.push(frame);
            if fin {
                return frames;
            }
        }
    }

    /// Sends one masked text frame.
    async fn send_text(&mut self, text: &str) {
        let mask = [0x37, 0xfa, 0x21, 0x3d];
        let len = text.len();
        let mut frame = vec![0x81];
        match len {
            0..=125 => frame.push(0x80 | u8::try_from(len).expect("small")),
            126..=0xffff => {
                frame.push(0x80 | 126);
                frame.extend_from_slice(&u16::try_from(len).expect("fits").to_be_bytes());
            }
            _ => {
                frame.push(0x80 | 127);
                frame.extend_from_slice(&(len as u64).to_be_bytes());
            }
        }
        frame.extend_from_slice(&mask);
        frame.extend(text.bytes().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        self.tcp.write_all(&frame).await.expect("send");
    }
}

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
