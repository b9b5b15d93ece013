//! The HTTP/1.1 client of `http://` and `unix:` integrations against raw backends: keep-alive
//! reuse, connections the backend closes (stale, `Connection: close`, HTTP/1.0), chunked and
//! close-delimited answers, the size cap, malformed answers, timeouts and Unix sockets.

use serde_json::Value;

use crate::response_caps::too_large_count;
use crate::support::raw::{Act, RawBackend, RawRequest, answer};
use crate::support::*;

const LAMBDA_OK: &str = r#"{"statusCode":200,"body":"pong"}"#;

/// Routes to `base` (`http://host:port` or `unix:/path:`): `$connect`/`$disconnect` and `echo`
/// (`aws_proxy`), `$default` and `slow` (`http_proxy`).
fn yaml(base: &str, limits: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: h1
  route_selection_expression: $request.body.action
  stages: {{ prod: {{ variables: {{ b: "{base}" }} }} }}
  routes:
    $connect: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/connect", timeout: 2s }} }}
    $disconnect: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/disconnect", timeout: 2s }} }}
    echo: {{ integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/echo", timeout: 2s }}, route_response: true }}
    $default: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/default?fixed=1", timeout: 2s }}, route_response: true }}
    slow: {{ integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/slow", timeout: 200ms }}, route_response: true }}
{limits}
"#
    )
}

/// Answers `$connect`/`$disconnect`/`echo` as a Lambda would; `/default` with `default`.
fn lambda_or(
    default: impl Fn(&RawRequest) -> Act + Send + Sync + 'static,
) -> impl Fn(&RawRequest) -> Act + Send + Sync + 'static {
    move |r| match r.target.split('?').next().unwrap_or_default() {
        "/connect" | "/disconnect" => Act::Answer(answer(200, "", r#"{"statusCode":200}"#)),
        "/echo" => Act::Answer(answer(200, "", LAMBDA_OK)),
        "/slow" => Act::Hang,
        _ => default(r),
    }
}

async fn error_message(ws: &mut Ws) -> String {
    let frame: Value = serde_json::from_str(&next_text(ws).await).expect("json frame");
    frame["message"].as_str().expect("message").to_string()
}

#[tokio::test]
async fn sequential_messages_reuse_one_connection() {
    let backend = RawBackend::tcp(lambda_or(|_| Act::Answer(answer(200, "", "plain")))).await;
    let gw = TestGateway::start(&yaml(&backend.base, "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let connect = backend.next().await;
    assert_eq!(connect.method, "POST");
    assert_eq!(connect.target, "/connect");
    assert_eq!(connect.header("content-type"), Some("application/json"));
    assert_eq!(
        connect.header("user-agent"),
        Some(concat!("wsgate/", env!("CARGO_PKG_VERSION")))
    );
    assert_eq!(
        connect.header("host"),
        Some(&backend.base["http://".len()..])
    );
    for _ in 0..5 {
        send_text(&mut ws, r#"{"action":"echo"}"#).await;
        assert_eq!(next_text(&mut ws).await, "pong");
        send_text(&mut ws, "hello").await;
        assert_eq!(next_text(&mut ws).await, "plain");
    }
    for _ in 0..10 {
        let request = backend.next().await;
        assert_eq!(request.conn, 0, "{} on a new connection", request.target);
    }
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn a_connection_the_backend_closes_after_its_answer_is_not_reused() {
    // Every answer on `/default` is followed by the backend closing, without saying so.
    let backend = RawBackend::tcp(lambda_or(|r| {
        Act::AnswerAndClose(answer(200, "", &format!("conn {}", r.conn)))
    }))
    .await;
    let gw = TestGateway::start(&yaml(&backend.base, "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, "one").await;
    assert_eq!(next_text(&mut ws).await, "conn 0");
    send_text(&mut ws, "two").await;
    assert_eq!(next_text(&mut ws).await, "conn 1");
    send_text(&mut ws, r#"{"action":"echo"}"#).await;
    assert_eq!(next_text(&mut ws).await, "pong");
    assert_eq!(backend.accepted(), 3);
}

#[tokio::test]
async fn a_stale_idle_connection_is_replaced() {
    let backend = RawBackend::tcp(lambda_or(|r| {
        Act::Answer(answer(200, "", &format!("conn {}", r.conn)))
    }))
    .await;
    let gw = TestGateway::start(&yaml(&backend.base, "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, "one").await;
    assert_eq!(next_text(&mut ws).await, "conn 0");
    // The backend closes the keep-alive connection while it is idle in the pool.
    backend.close_idle(1).await;
    send_text(&mut ws, "two").await;
    assert_eq!(next_text(&mut ws).await, "conn 1");
    send_text(&mut ws, "three").await;
    assert_eq!(next_text(&mut ws).await, "conn 1");
    assert_eq!(backend.accepted(), 2);
}

#[tokio::test]
async fn connection_close_and_http_1_0_answers_end_their_connection() {
    let backend = RawBackend::tcp(lambda_or(|r| match r.body.as_slice() {
        // Says close, but the backend keeps the socket open: the gateway must not reuse it.
        b"close" => Act::Answer(answer(200, "connection: close\r\n", "closing")),
        // HTTP/1.0 without a length: the body runs to the end of the stream.
        b"old" => Act::AnswerAndClose(
            b"HTTP/1.0 200 OK\r\ncontent-type: text/plain\r\n\r\nold style".to_vec(),
        ),
        // HTTP/1.1 without a length.
        _ => Act::AnswerAndClose(b"HTTP/1.1 200 OK\r\n\r\nuntil close".to_vec()),
    }))
    .await;
    let gw = TestGateway::start(&yaml(&backend.base, "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, "close").await;
    assert_eq!(next_text(&mut ws).await, "closing");
    send_text(&mut ws, "old").await;
    assert_eq!(next_text(&mut ws).await, "old style");
    send_text(&mut ws, "eof").await;
    assert_eq!(next_text(&mut ws).await, "until close");
    // `$connect` opened the first connection and left it idle; each of these needed its own.
    let conns: Vec<usize> = [
        backend.next().await,
        backend.next().await,
        backend.next().await,
        backend.next().await,
    ]
    .iter()
    .map(|r| r.conn)
    .collect();
    assert_eq!(conns, [0, 0, 1, 2]);
}

#[tokio::test]
async fn chunked_answers_with_interim_answers_and_trailers() {
    let backend = RawBackend::tcp(lambda_or(|_| {
        Act::Answer(
            b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-Custom: Yes\r\n\r\n\
              5;name=value\r\nhello\r\n6\r\n world\r\n0\r\nx-trailer: t\r\n\r\n"
                .to_vec(),
        )
    }))
    .await;
    let gw = TestGateway::start(&yaml(&backend.base, "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for _ in 0..3 {
        send_text(&mut ws, "chunks").await;
        assert_eq!(next_text(&mut ws).await, "hello world");
    }
    // The trailers were consumed: the connection carried every request.
    assert_eq!(backend.accepted(), 1);
}

#[tokio::test]
async fn answers_over_the_cap_are_refused_by_length_and_by_chunks() {
    let backend = RawBackend::tcp(lambda_or(|r| match r.body.as_slice() {
        b"sized" => Act::Answer(answer(200, "", &"y".repeat(1001))),
        b"chunked" => {
            let mut bytes = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n".to_vec();
            for _ in 0..4 {
                bytes.extend_from_slice(format!("12c\r\n{}\r\n", "z".repeat(300)).as_bytes());
            }
            bytes.extend_from_slice(b"0\r\n\r\n");
            Act::Answer(bytes)
        }
        // A length far beyond the cap, refused before its body is read.
        b"huge" => Act::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 99999999999\r\n\r\n".to_vec()),
        _ => Act::Answer(answer(200, "", "small")),
    }))
    .await;
    let limits = "limits:\n  max_integration_response_bytes: 1000";
    let gw = TestGateway::start(&yaml(&backend.base, limits)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for (n, body) in ["sized", "chunked", "huge"].into_iter().enumerate() {
        send_text(&mut ws, body).await;
        assert_eq!(
            error_message(&mut ws).await,
            "Internal server error",
            "{body}"
        );
        assert_eq!(
            too_large_count(&gw, "$default").await,
            n as u64 + 1,
            "{body}"
        );
        send_text(&mut ws, "fine").await;
        assert_eq!(next_text(&mut ws).await, "small");
    }
}

#[tokio::test]
async fn malformed_answers_give_the_error_frame() {
    let backend = RawBackend::tcp(lambda_or(|r| match r.body.as_slice() {
        b"status" => Act::Answer(b"HTTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".to_vec()),
        b"length" => Act::Answer(b"HTTP/1.1 200 OK\r\ncontent-length: 2, 3\r\n\r\nok".to_vec()),
        b"chunk" => Act::Answer(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n".to_vec(),
        ),
        b"short" => {
            Act::AnswerAndClose(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nok".to_vec())
        }
        _ => Act::Answer(answer(200, "", "good")),
    }))
    .await;
    let gw = TestGateway::start(&yaml(&backend.base, "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    for body in ["status", "length", "chunk", "short"] {
        send_text(&mut ws, body).await;
        assert_eq!(
            error_message(&mut ws).await,
            "Internal server error",
            "{body}"
        );
        send_text(&mut ws, "fine").await;
        assert_eq!(next_text(&mut ws).await, "good", "after {body}");
    }
}

#[tokio::test]
async fn a_backend_that_does_not_answer_times_out() {
    let backend = RawBackend::tcp(lambda_or(|_| Act::Answer(answer(200, "", "fine")))).await;
    let gw = TestGateway::start(&yaml(&backend.base, "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"slow"}"#).await;
    assert_eq!(error_message(&mut ws).await, "Endpoint request timed out");
    send_text(&mut ws, "after").await;
    assert_eq!(next_text(&mut ws).await, "fine");
}

#[tokio::test]
async fn unix_socket_backends_serve_connect_messages_and_disconnect() {
    let backend = RawBackend::unix(lambda_or(|r| {
        Act::Answer(answer(
            200,
            "",
            &format!("{} {}", r.target, r.header("host").unwrap_or_default()),
        ))
    }))
    .await;
    let gw = TestGateway::start(&yaml(&backend.base, "")).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let connect = backend.next().await;
    assert_eq!(connect.target, "/connect");
    assert_eq!(connect.header("host"), Some("localhost"));
    let event: Value = serde_json::from_slice(&connect.body).expect("event JSON");
    assert_eq!(event["requestContext"]["eventType"], "CONNECT");
    send_text(&mut ws, r#"{"action":"echo"}"#).await;
    assert_eq!(next_text(&mut ws).await, "pong");
    send_text(&mut ws, "raw").await;
    assert_eq!(next_text(&mut ws).await, "/default?fixed=1 localhost");
    ws.close(None).await.expect("close");
    loop {
        let request = backend.next().await;
        if request.target == "/disconnect" {
            break;
        }
    }
    assert_eq!(backend.accepted(), 1);
}
