//! WebSocket client side: connect (bound to a source address), learn the connection id, close.

use crate::net::tcp_connect;
use futures_util::{SinkExt, StreamExt};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::timeout;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

/// A client WebSocket over plain TCP.
pub type Ws = WebSocketStream<TcpStream>;

/// Read buffer of every WebSocket this tool opens (client and raw server alike).
pub const READ_BUFFER: usize = 4096;

/// The WebSocket settings of the raw baseline and of the load clients: a 4 KiB read buffer
/// and `write_buffer_size` 0 (every frame is written at once).
pub fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(READ_BUFFER)
        .write_buffer_size(0)
}

/// Why a connection attempt or a request on it failed, in a form that can be counted.
#[derive(Debug)]
pub enum ConnError {
    /// Did not complete within the timeout.
    Timeout(&'static str),
    /// TCP-level failure.
    Io(io::ErrorKind),
    /// The upgrade was answered with this HTTP status.
    Http(u16),
    /// Any other WebSocket protocol failure.
    Ws(String),
    /// The connection closed before the expected frame.
    Closed,
    /// A frame arrived that could not be understood.
    BadReply,
}

impl ConnError {
    /// A short label for error counts.
    pub fn kind(&self) -> String {
        match self {
            Self::Timeout(what) => format!("{what}_timeout"),
            Self::Io(k) => format!("io_{k:?}").to_lowercase(),
            Self::Http(s) => format!("http_{s}"),
            Self::Ws(_) => "ws_protocol".to_owned(),
            Self::Closed => "closed".to_owned(),
            Self::BadReply => "bad_reply".to_owned(),
        }
    }
}

impl std::fmt::Display for ConnError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Ws(s) => write!(f, "websocket: {s}"),
            other => f.write_str(&other.kind()),
        }
    }
}

impl From<WsError> for ConnError {
    fn from(e: WsError) -> Self {
        match e {
            WsError::Io(e) => Self::Io(e.kind()),
            WsError::Http(r) => Self::Http(r.status().as_u16()),
            WsError::ConnectionClosed | WsError::AlreadyClosed => Self::Closed,
            other => Self::Ws(other.to_string()),
        }
    }
}

/// Connects to `url` (which resolves to `addr`) from `src`, and performs the upgrade.
pub async fn open(
    url: &str,
    addr: SocketAddr,
    src: Option<IpAddr>,
    limit: Duration,
) -> Result<Ws, ConnError> {
    let fut = async {
        let tcp = tcp_connect(addr, src)
            .await
            .map_err(|e| ConnError::Io(e.kind()))?;
        let req = url
            .into_client_request()
            .map_err(|e| ConnError::Ws(e.to_string()))?;
        let (ws, _resp) =
            tokio_tungstenite::client_async_with_config(req, tcp, Some(ws_config())).await?;
        Ok(ws)
    };
    timeout(limit, fut)
        .await
        .map_err(|_| ConnError::Timeout("connect"))?
}

/// Sends `{"action":"whoami"}` and returns the `connectionId` of the reply.
pub async fn whoami(ws: &mut Ws, limit: Duration) -> Result<String, ConnError> {
    let fut = async {
        ws.send(Message::text(r#"{"action":"whoami"}"#)).await?;
        while let Some(msg) = ws.next().await {
            match msg? {
                Message::Text(t) => {
                    return parse_connection_id(t.as_str()).ok_or(ConnError::BadReply);
                }
                Message::Close(_) => return Err(ConnError::Closed),
                _ => {}
            }
        }
        Err(ConnError::Closed)
    };
    timeout(limit, fut)
        .await
        .map_err(|_| ConnError::Timeout("whoami"))?
}

/// Extracts `connectionId` from a `{"connectionId":"..."}` reply.
pub fn parse_connection_id(text: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(text).ok()?;
    v.get("connectionId")?.as_str().map(str::to_owned)
}

/// Closes with a close handshake, waiting at most `limit` for the server's close frame.
pub async fn close_gracefully(mut ws: Ws, limit: Duration) {
    let _ = timeout(limit, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

/// Parses the decimal number after `key` (for example `"t":`) in a frame.
pub fn field_u64(text: &str, key: &str) -> Option<u64> {
    let start = text.find(key)? + key.len();
    let digits: &str = &text[start..];
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fields() {
        assert_eq!(
            field_u64(
                r#"{"action":"echo","seq":3,"t":12345,"data":"x"}"#,
                r#""t":"#
            ),
            Some(12345)
        );
        assert_eq!(field_u64("P:7:99:xxxx", "P:7:"), Some(99));
        assert_eq!(
            parse_connection_id(r#"{"connectionId":"abc="}"#).as_deref(),
            Some("abc=")
        );
        assert_eq!(ConnError::Http(403).kind(), "http_403");
    }
}
