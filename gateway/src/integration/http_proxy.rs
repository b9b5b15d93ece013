//! `http_proxy` integration: forward the raw message body to a URL, with the connection's context
//! in `x-wsgate-*` headers; on `$connect`, forward the upgrade request's headers (names as the
//! client spelled them) and query string.

use std::time::Duration;

use async_trait::async_trait;
use http::HeaderName;

use super::backend::{Backend, Clients, Outgoing};
use super::h1::Keep;
use super::{Integration, IntegrationError, IntegrationResponse, Invocation};
use crate::config::BackendProtocol;
use crate::events::EventKind;
use crate::transform::{Parameters, Sources};

/// Headers of the upgrade request that are about the HTTP/1 hop or the WebSocket handshake
/// itself, so they are not forwarded.
const NOT_FORWARDED: [&str; 11] = [
    "connection",
    "upgrade",
    "host",
    "content-length",
    "transfer-encoding",
    "keep-alive",
    "te",
    "trailer",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
];

/// The header lines of one call (`name: value\r\n`). A value that cannot be a header value (a
/// control character from client-controlled data, say) is left out with a warning instead of
/// failing the whole call; the rules are `http::HeaderValue`'s.
pub(super) struct ContextHeaders<'a> {
    pub(super) lines: Vec<u8>,
    connection_id: &'a str,
    route_key: &'a str,
}

impl<'a> ContextHeaders<'a> {
    pub(super) fn new(connection_id: &'a str, route_key: &'a str) -> Self {
        Self {
            lines: Vec::with_capacity(512),
            connection_id,
            route_key,
        }
    }

    /// Adds a header the gateway names (as `HeaderValue::from_str`: visible ASCII, spaces, tabs).
    pub(super) fn put(&mut self, name: &'static str, value: &str) {
        if value.bytes().all(|b| (32..127).contains(&b) || b == b'\t') {
            self.line(name.as_bytes(), value.as_bytes());
        } else {
            self.skipped(name);
        }
    }

    /// Adds a header of the upgrade request (`name` as the client spelled it; the value as
    /// `HeaderValue::from_bytes` accepts it: no control characters but tabs).
    pub(super) fn put_forwarded(&mut self, name: &str, value: &str) {
        let valid_value = value.bytes().all(|b| (b >= 32 && b != 127) || b == b'\t');
        if valid_value && HeaderName::from_bytes(name.as_bytes()).is_ok() {
            self.line(name.as_bytes(), value.as_bytes());
        } else {
            self.skipped(name);
        }
    }

    fn line(&mut self, name: &[u8], value: &[u8]) {
        self.lines.extend_from_slice(name);
        self.lines.extend_from_slice(b": ");
        self.lines.extend_from_slice(value);
        self.lines.extend_from_slice(b"\r\n");
    }

    fn skipped(&self, name: &str) {
        tracing::warn!(
            connection_id = %self.connection_id,
            route_key = %self.route_key,
            header = %name,
            "http_proxy: a value that cannot be sent as a header was left out"
        );
    }
}

#[derive(Debug)]
pub(super) struct HttpProxy {
    backend: Backend,
    timeout: Duration,
    /// Largest answer read.
    response_cap: usize,
    /// `request_parameters`, for this stage.
    parameters: Parameters,
}

impl HttpProxy {
    pub(super) fn new(
        clients: &Clients,
        uri: String,
        method: &str,
        protocol: BackendProtocol,
        timeout: Duration,
        response_cap: usize,
        parameters: Parameters,
    ) -> Result<Self, String> {
        Ok(Self {
            backend: Backend::new(clients, uri, method, &[], protocol)?,
            timeout,
            response_cap,
            parameters,
        })
    }
}

#[async_trait]
impl Integration for HttpProxy {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        let meta = inv.meta;
        let mut headers = ContextHeaders::new(&meta.connection_id, inv.route_key);
        super::context::put_common(inv, |name, value| headers.put(name, value));
        super::context::put_trace(inv, |name, value| headers.put(name, value));
        let traced = inv.trace.context().is_some();
        let mut query = None;
        let mut forwarded = false;
        let mut body: &[u8] = &[];
        match &inv.kind {
            EventKind::Connect(upgrade) => {
                query = upgrade.raw_query.as_deref().filter(|q| !q.is_empty());
                forwarded = true;
                for (name, value) in &upgrade.headers {
                    // The name as the client wrote it (the lean HTTP/1.1 client sends it so;
                    // reqwest and HTTP/2 lowercase it).
                    let skip = NOT_FORWARDED.iter().any(|n| name.eq_ignore_ascii_case(n))
                        || name
                            .get(..9)
                            .is_some_and(|p| p.eq_ignore_ascii_case("x-wsgate-"))
                        // With tracing on, the gateway's own trace context replaces the
                        // client's (which is the handshake span's parent).
                        || (traced
                            && ["traceparent", "tracestate"]
                                .iter()
                                .any(|n| name.eq_ignore_ascii_case(n)));
                    if !skip {
                        headers.put_forwarded(name, value);
                    }
                }
            }
            EventKind::Message {
                raw,
                is_base64,
                message_id,
                ..
            } => {
                let content_type = if *is_base64 {
                    "application/octet-stream"
                } else {
                    "text/plain; charset=utf-8"
                };
                headers.put("content-type", content_type);
                headers.put("x-wsgate-message-id", message_id);
                body = raw;
            }
            EventKind::Disconnect {
                status_code,
                reason,
            } => {
                headers.put("x-wsgate-disconnect-status-code", &status_code.to_string());
                headers.put(
                    "x-wsgate-disconnect-reason",
                    &super::context::encode_reason(reason),
                );
            }
            EventKind::Presence { body: json, .. } => {
                headers.put("content-type", "application/json");
                body = json.as_bytes();
            }
        }
        let mapped_query;
        if !self.parameters.is_empty() {
            let mapped = map_parameters(&self.parameters, inv, body);
            for (name, value) in &mapped.headers {
                headers.put_forwarded(name, value);
            }
            if !mapped.query.is_empty() {
                mapped_query = match query {
                    Some(client) => format!("{client}&{}", mapped.query),
                    None => mapped.query,
                };
                query = Some(&mapped_query);
            }
        }
        let out = Outgoing {
            query,
            headers: &headers.lines,
            forwarded,
            body,
        };
        // Only `$connect` reads the answer's headers (subprotocol, groups); a message's answer
        // needs its content type, and its cache control for a route cache that obeys it.
        let keep = match inv.kind {
            EventKind::Connect(_) => Keep::All,
            _ => Keep::Only(&["content-type", "cache-control"]),
        };
        let answer = self
            .backend
            .send(&out, keep, self.response_cap, self.timeout, inv)
            .await?;
        let status = answer.status;
        let binary = answer.is_binary();
        // 204 means "nothing to send back"; any other answer's body (even empty) is sent.
        let body = (status != 204).then_some(answer.body);
        Ok(IntegrationResponse {
            status,
            headers: answer.headers,
            body,
            binary,
        })
    }

    fn kind(&self) -> &'static str {
        "http_proxy"
    }
}

/// The request parameters of one call: from `body` (the message), the upgrade request
/// (`$connect`) and `$context` (built only when a parameter reads it).
pub(super) fn map_parameters(
    parameters: &Parameters,
    inv: &Invocation<'_>,
    body: &[u8],
) -> crate::transform::Mapped {
    let (headers, query) = match &inv.kind {
        EventKind::Connect(upgrade) => (upgrade.headers.as_slice(), upgrade.query.as_slice()),
        _ => (&[][..], &[][..]),
    };
    let context = parameters
        .reads_context()
        .then(|| crate::events::context_value(inv.meta, inv.route_key, inv.request_id, &inv.kind));
    parameters.map(
        &Sources {
            body,
            headers,
            query,
        },
        context.as_ref(),
    )
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;

    use super::*;

    #[test]
    fn reasons_are_percent_encoded_and_decode_back() {
        let reason = "bye\nnow ü ~-._ok%";
        let encoded = crate::integration::context::encode_reason(reason);
        assert_eq!(encoded, "bye%0Anow%20%C3%BC%20~-._ok%25");
        assert!(HeaderValue::from_str(&encoded).is_ok());
        let decoded = percent_encoding::percent_decode_str(&encoded)
            .decode_utf8()
            .expect("UTF-8");
        assert_eq!(decoded, reason);
    }

    #[test]
    fn unusable_values_are_left_out_and_the_rest_kept() {
        let mut headers = ContextHeaders::new("id", "$default");
        headers.put("x-wsgate-source-ip", "10.0.0.1\r\nx-evil: 1");
        headers.put("x-wsgate-stage", "prod");
        headers.put_forwarded("user-agent", "agent\u{7f}");
        headers.put_forwarded("bad name", "v");
        headers.put_forwarded("X-Ok", "caf\u{e9}");
        assert_eq!(
            headers.lines,
            "x-wsgate-stage: prod\r\nX-Ok: caf\u{e9}\r\n".as_bytes()
        );
        // The same rules as the header types the general client takes.
        assert!(HeaderValue::from_str("10.0.0.1\r\nx-evil: 1").is_err());
        assert!(HeaderValue::from_bytes("agent\u{7f}".as_bytes()).is_err());
        assert!(HeaderValue::from_bytes("caf\u{e9}".as_bytes()).is_ok());
    }
}
