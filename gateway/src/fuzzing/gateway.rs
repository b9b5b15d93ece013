//! Fuzz entry points through a whole gateway: the upgrade request on the real HTTP/1 path
//! (hyper's server running the gateway's service, as an accepted socket is served) and
//! WebSocket frames after a completed upgrade, both over in-memory streams.

use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio::runtime::Runtime;

use crate::config::Config;
use crate::server::{Gateway, Listeners};

/// The gateway every input is served by: memory store, mock integrations, small frame limits so
/// the 1009 paths are within a fuzzer's input sizes, and throttling far above a fuzzer's rate
/// (the default 500 new connections a second answered the frames target's upgrade with 429).
const CONFIG: &str = r#"
listen: 127.0.0.1:0
store: { kind: memory }
limits:
  max_frame_bytes: 1024
  max_message_bytes: 2048
throttling:
  gateway: { rate_limit: 100000, burst_limit: 100000 }
  new_connections: { rate_limit: 100000, burst_limit: 100000 }
api:
  name: fuzz
  route_selection_expression: $request.body.action
  stages:
    prod: { variables: { greeting: hello } }
  routes:
    $connect: { integration: { type: mock } }
    $disconnect: { integration: { type: mock } }
    $default:
      integration: { type: mock, response: '{"ok":true}' }
      route_response: true
    echo:
      integration:
        type: mock
        integration_responses:
          $default: { response_templates: { $default: "$input.body $stageVariables.greeting" } }
      route_response: true
"#;

/// The upgrade request the frames target sends before its frames.
const UPGRADE: &[u8] = b"GET /prod HTTP/1.1\r\nHost: fuzz.test\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// Longest an input may take end to end; longer is a hang (a finding).
const BOUND: Duration = Duration::from_secs(10);

/// The client address of every in-memory connection (loopback, so the callback API on the
/// main listener answers too).
const PEER: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 40_000);

struct Harness {
    runtime: Runtime,
    gateway: Gateway,
}

fn harness() -> &'static Harness {
    static HARNESS: OnceLock<Harness> = OnceLock::new();
    HARNESS.get_or_init(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        let config = Config::from_yaml(CONFIG).expect("the fuzz gateway's configuration");
        let gateway = runtime.block_on(async {
            let listeners = Listeners::bind(&config).await.expect("a loopback port");
            Gateway::start(config, listeners)
                .await
                .expect("the fuzz gateway starts")
        });
        Harness { runtime, gateway }
    })
}

/// Serves `stream` and runs `client` on the other end, within [`BOUND`].
fn drive<F>(client: impl FnOnce(DuplexStream) -> F) -> Vec<u8>
where
    F: std::future::Future<Output = Vec<u8>>,
{
    let harness = harness();
    let (near, far) = tokio::io::duplex(64 * 1024);
    harness.runtime.block_on(async {
        let served = harness.gateway.serve_io(far, PEER);
        let run = async { tokio::join!(served, client(near)).1 };
        tokio::time::timeout(BOUND, run)
            .await
            .expect("an in-memory connection ends once its client has sent everything")
    })
}

/// Writes `input`, closes the write side, and reads everything the gateway answers until it
/// closes (concurrently, so neither side blocks on a full buffer).
async fn exchange(stream: DuplexStream, input: Vec<u8>) -> Vec<u8> {
    let (mut read, mut write) = tokio::io::split(stream);
    let send = async move {
        if write.write_all(&input).await.is_ok() {
            let _ = write.shutdown().await;
        }
        // The write half is dropped here; the gateway sees the end of input.
    };
    let receive = async move {
        let mut out = Vec::new();
        let _ = read.read_to_end(&mut out).await;
        out
    };
    tokio::join!(send, receive).1
}

/// Sends [`UPGRADE`] and waits for the whole answer head (as a client waits for the 101 before
/// it sends frames), then [`exchange`]s `input`. Answers the head and what followed it.
async fn after_upgrade(mut stream: DuplexStream, input: Vec<u8>) -> Vec<u8> {
    let mut head = Vec::new();
    if stream.write_all(UPGRADE).await.is_err() {
        return head;
    }
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return head,
            Ok(n) => head.extend_from_slice(&chunk[..n]),
        }
    }
    head.extend(exchange(stream, input).await);
    head
}

/// Any bytes as the start of a client connection on the main listener (one or more HTTP/1
/// requests, an upgrade and whatever follows it). Checks: the connection ends once the client
/// has sent everything; anything answered starts as an HTTP/1 response; a 101 carries the
/// `Sec-WebSocket-Accept` of the request's key.
pub fn upgrade(input: &[u8]) -> Vec<u8> {
    let input = input.to_vec();
    let answer = drive(|stream| exchange(stream, input));
    if !answer.is_empty() {
        assert!(answer.starts_with(b"HTTP/1."), "not an HTTP/1 answer");
    }
    if answer.starts_with(b"HTTP/1.1 101 ") {
        let head = String::from_utf8_lossy(&answer);
        assert!(
            head.to_ascii_lowercase().contains("sec-websocket-accept: "),
            "a 101 without Sec-WebSocket-Accept"
        );
    }
    answer
}

/// Client frames after a completed upgrade to `/prod`. When the first byte is odd the rest is
/// read as a list of frames (header byte, length byte, payload; masked here, lengths of 255
/// claim a huge payload and end the input), else it is sent as it is. Checks: the connection
/// ends once the client has sent everything; server frames are unmasked; every close code the
/// gateway sends is one RFC 6455 allows on the wire.
pub fn frames(input: &[u8]) -> Vec<u16> {
    let bytes = match input.split_first() {
        Some((mode, rest)) if mode % 2 == 1 => structured(rest),
        Some((_, rest)) => rest.to_vec(),
        None => Vec::new(),
    };
    let answer = drive(|stream| after_upgrade(stream, bytes));
    assert!(
        answer.starts_with(b"HTTP/1.1 101 "),
        "the fixed upgrade request is accepted: {:?}",
        String::from_utf8_lossy(&answer[..answer.len().min(300)])
    );
    let Some(end) = answer.windows(4).position(|w| w == b"\r\n\r\n") else {
        panic!("a 101 head without its end");
    };
    let codes = close_codes(&answer[end + 4..]);
    for code in &codes {
        assert!(
            matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999),
            "close code {code} is not allowed on the wire"
        );
    }
    codes
}

/// Frames from a compact description: per frame one header byte (FIN, RSV, opcode as on the
/// wire), one length byte and that many payload bytes, masked with a fixed key.
fn structured(mut input: &[u8]) -> Vec<u8> {
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    let mut out = Vec::new();
    while let [first, len, rest @ ..] = input {
        out.push(*first);
        if *len == 255 {
            // A 64-bit length with a huge value, then whatever is left as its start.
            out.push(0x80 | 127);
            out.extend_from_slice(&u64::MAX.to_be_bytes());
            out.extend_from_slice(&KEY);
            out.extend_from_slice(rest);
            return out;
        }
        let n = usize::from(*len).min(rest.len());
        if n > 125 {
            out.push(0x80 | 126);
            out.extend_from_slice(&u16::try_from(n).unwrap_or(u16::MAX).to_be_bytes());
        } else {
            out.push(0x80 | u8::try_from(n).unwrap_or(125));
        }
        out.extend_from_slice(&KEY);
        out.extend(rest[..n].iter().zip(KEY.iter().cycle()).map(|(b, k)| b ^ k));
        input = &rest[n..];
    }
    out
}

/// The close codes among the server's frames (parsed leniently: a cut frame ends the scan).
fn close_codes(mut wire: &[u8]) -> Vec<u16> {
    let mut codes = Vec::new();
    while let [first, second, rest @ ..] = wire {
        assert_eq!(second & 0x80, 0, "a server frame is masked");
        let (len, rest) = match second & 0x7f {
            126 if rest.len() >= 2 => (
                usize::from(u16::from_be_bytes([rest[0], rest[1]])),
                &rest[2..],
            ),
            127 if rest.len() >= 8 => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&rest[..8]);
                (
                    usize::try_from(u64::from_be_bytes(b)).unwrap_or(usize::MAX),
                    &rest[8..],
                )
            }
            126 | 127 => break,
            n => (usize::from(n), rest),
        };
        let Some(payload) = rest.get(..len) else {
            break;
        };
        if first & 0x0f == 0x8 && payload.len() >= 2 {
            codes.push(u16::from_be_bytes([payload[0], payload[1]]));
        }
        wire = &rest[len..];
    }
    codes
}
