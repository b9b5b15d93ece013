//! Helpers for the connect-security tests: a config with an authorizer, API keys or `security`
//! settings, and handshakes with chosen headers, subprotocols and source addresses.

use std::net::SocketAddr;

use http::{HeaderMap, HeaderName, HeaderValue};
use tokio::net::TcpSocket;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Response;

use super::{DEADLINE, Ws};

/// A config whose `$connect` route has the lines `connect_extra` (e.g. `authorizer: users`),
/// with `api_extra` inside `api:` (e.g. `authorizers: ...`) and `extra` at the top level. The
/// extra texts are written at column 0 and indented here.
pub fn secured_config(backend: &str, connect_extra: &str, api_extra: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables:
        backend: {backend}
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/connect", timeout: 2s }}
{connect}
    $disconnect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/disconnect" }}
    sendmessage:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/sendmessage", timeout: 2s }}
{api}
{extra}
"#,
        connect = indent(connect_extra, 6),
        api = indent(api_extra, 2),
    )
}

/// Indents every line of `text` by `n` spaces.
pub fn indent(text: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    text.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// What a handshake came to: a WebSocket (with the 101) or a refusal (status, headers, body).
pub enum Outcome {
    Open(Box<Ws>, Response),
    Refused(u16, HeaderMap, String),
}

impl Outcome {
    /// The status: 101 or the refusal's.
    pub fn status(&self) -> u16 {
        match self {
            Self::Open(..) => 101,
            Self::Refused(status, ..) => *status,
        }
    }

    /// The socket, failing the test on a refusal.
    pub fn open(self) -> (Ws, Response) {
        match self {
            Self::Open(ws, response) => (*ws, response),
            Self::Refused(status, _, body) => panic!("refused with {status}: {body}"),
        }
    }
}

fn request(url: &str, headers: &[(&str, &str)]) -> http::Request<()> {
    let mut request = url.into_client_request().expect("request");
    for (name, value) in headers {
        request.headers_mut().append(
            HeaderName::from_bytes(name.as_bytes()).expect("header name"),
            HeaderValue::from_str(value).expect("header value"),
        );
    }
    request
}

fn outcome(result: Result<(Ws, Response), tokio_tungstenite::tungstenite::Error>) -> Outcome {
    match result {
        Ok((ws, response)) => Outcome::Open(Box::new(ws), response),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response
                .body()
                .as_ref()
                .map(|b| String::from_utf8_lossy(b).to_string())
                .unwrap_or_default();
            Outcome::Refused(response.status().as_u16(), response.headers().clone(), body)
        }
        Err(other) => panic!("unexpected handshake error {other:?}"),
    }
}

/// A handshake with extra headers (`Sec-WebSocket-Protocol`, `Origin`, `Authorization`...).
pub async fn handshake(url: &str, headers: &[(&str, &str)]) -> Outcome {
    let result = tokio::time::timeout(
        DEADLINE,
        tokio_tungstenite::connect_async(request(url, headers)),
    )
    .await
    .expect("handshake answered within the deadline");
    outcome(result)
}

/// A handshake from the loopback address `source` (e.g. `127.0.0.2`) to `gateway`.
pub async fn handshake_from(source: &str, gateway: SocketAddr, url: &str) -> Outcome {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(format!("{source}:0").parse().expect("source address"))
        .expect("bind source");
    let result = tokio::time::timeout(DEADLINE, async {
        let stream = socket.connect(gateway).await.expect("tcp connect");
        let stream = tokio_tungstenite::MaybeTlsStream::Plain(stream);
        tokio_tungstenite::client_async(request(url, &[]), stream).await
    })
    .await
    .expect("handshake answered within the deadline");
    outcome(result)
}
