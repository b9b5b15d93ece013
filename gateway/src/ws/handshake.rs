//! RFC 6455 opening handshake checks (§4.2.1) and the 101 response.

use axum::body::Body;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http::{HeaderMap, HeaderValue, Method, StatusCode, Version, header};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

use crate::error::HandshakeRejection;

/// What the handshake checks extracted.
#[derive(Debug)]
pub(crate) struct Handshake {
    /// `Sec-WebSocket-Accept` value.
    pub accept: String,
    /// Subprotocols the client offered, in order.
    pub offered_protocols: Vec<String>,
}

fn has_token(headers: &HeaderMap, name: header::HeaderName, token: &str) -> bool {
    headers
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// Checks that the request is a valid WebSocket upgrade.
///
/// # Errors
/// The [`HandshakeRejection`] to answer with.
pub(crate) fn check(
    method: &Method,
    version: Version,
    headers: &HeaderMap,
) -> Result<Handshake, HandshakeRejection> {
    if !has_token(headers, header::UPGRADE, "websocket")
        || !has_token(headers, header::CONNECTION, "upgrade")
    {
        return Err(HandshakeRejection::NotUpgrade);
    }
    if method != Method::GET {
        return Err(HandshakeRejection::BadHandshake("method must be GET"));
    }
    if version < Version::HTTP_11 {
        return Err(HandshakeRejection::BadHandshake(
            "HTTP/1.1 or later is required",
        ));
    }
    if headers
        .get(header::SEC_WEBSOCKET_VERSION)
        .map(HeaderValue::as_bytes)
        != Some(b"13")
    {
        return Err(HandshakeRejection::UnsupportedVersion);
    }
    let key = headers
        .get(header::SEC_WEBSOCKET_KEY)
        .ok_or(HandshakeRejection::BadHandshake(
            "missing Sec-WebSocket-Key",
        ))?;
    let decoded = STANDARD
        .decode(key.as_bytes())
        .map_err(|_| HandshakeRejection::BadHandshake("Sec-WebSocket-Key is not base64"))?;
    if decoded.len() != 16 {
        return Err(HandshakeRejection::BadHandshake(
            "Sec-WebSocket-Key must be 16 bytes",
        ));
    }
    let offered_protocols = headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect();
    Ok(Handshake {
        accept: derive_accept_key(key.as_bytes()),
        offered_protocols,
    })
}

/// The `101 Switching Protocols` response.
pub(crate) fn switching_protocols(accept: &str, protocol: Option<&str>) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(value) = HeaderValue::from_str(accept) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, value);
    }
    if let Some(value) = protocol.and_then(|p| HeaderValue::from_str(p).ok()) {
        headers.insert(header::SEC_WEBSOCKET_PROTOCOL, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    const GOOD: [(&str, &str); 4] = [
        ("upgrade", "websocket"),
        ("connection", "keep-alive, Upgrade"),
        ("sec-websocket-version", "13"),
        ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ];

    #[test]
    fn accepts_rfc_sample() {
        let h = check(&Method::GET, Version::HTTP_11, &headers(&GOOD)).expect("valid");
        assert_eq!(h.accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    }

    #[test]
    fn rejects_bad_handshakes() {
        let mut no_upgrade = GOOD;
        no_upgrade[0] = ("upgrade", "h2c");
        assert_eq!(
            check(&Method::GET, Version::HTTP_11, &headers(&no_upgrade)).err(),
            Some(HandshakeRejection::NotUpgrade)
        );
        let mut version = GOOD;
        version[2] = ("sec-websocket-version", "8");
        assert_eq!(
            check(&Method::GET, Version::HTTP_11, &headers(&version)).err(),
            Some(HandshakeRejection::UnsupportedVersion)
        );
        let mut key = GOOD;
        key[3] = ("sec-websocket-key", "c2hvcnQ=");
        assert!(matches!(
            check(&Method::GET, Version::HTTP_11, &headers(&key)),
            Err(HandshakeRejection::BadHandshake(_))
        ));
        assert!(matches!(
            check(&Method::POST, Version::HTTP_11, &headers(&GOOD)),
            Err(HandshakeRejection::BadHandshake(_))
        ));
        assert!(matches!(
            check(&Method::GET, Version::HTTP_10, &headers(&GOOD)),
            Err(HandshakeRejection::BadHandshake(_))
        ));
    }

    #[test]
    fn offered_protocols_are_listed() {
        let mut h = headers(&GOOD);
        h.append(
            header::SEC_WEBSOCKET_PROTOCOL,
            HeaderValue::from_static("chat, json"),
        );
        let hs = check(&Method::GET, Version::HTTP_11, &h).expect("valid");
        assert_eq!(hs.offered_protocols, ["chat", "json"]);
    }
}
