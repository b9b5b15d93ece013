//! `http_proxy` integration: forward the raw message body to a URL, with the connection's context
//! in `x-wsgate-*` headers; on `$connect`, forward the upgrade request's headers and query string.

use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{
    Integration, IntegrationError, IntegrationResponse, Invocation, map_reqwest, read_body,
};
use crate::events::EventKind;

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

/// What `x-wsgate-disconnect-reason` encodes: RFC 3986 unreserved characters (`A-Z a-z 0-9 - . _ ~`)
/// are kept, every other byte of the reason's UTF-8 becomes `%XX`, so any close reason (control
/// characters, non-ASCII) fits in a header and decodes back exactly.
const UNRESERVED_KEPT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The headers of one call. A value that cannot be a header value (a control character from
/// client-controlled data, say) is left out with a warning instead of failing the whole call.
struct ContextHeaders<'a> {
    map: HeaderMap,
    connection_id: &'a str,
    route_key: &'a str,
}

impl<'a> ContextHeaders<'a> {
    fn new(connection_id: &'a str, route_key: &'a str) -> Self {
        Self {
            map: HeaderMap::new(),
            connection_id,
            route_key,
        }
    }

    /// Adds a header the gateway names.
    fn put(&mut self, name: &'static str, value: &str) {
        match HeaderValue::from_str(value) {
            Ok(value) => {
                self.map.append(HeaderName::from_static(name), value);
            }
            Err(_) => self.skipped(name),
        }
    }

    /// Adds a header of the upgrade request (`name` lowercase).
    fn put_forwarded(&mut self, name: &str, value: &str) {
        match (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value.as_bytes()),
        ) {
            (Ok(name), Ok(value)) => {
                self.map.append(name, value);
            }
            _ => self.skipped(name),
        }
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
    client: reqwest::Client,
    uri: String,
    method: reqwest::Method,
    timeout: Duration,
    /// Largest answer read.
    response_cap: usize,
}

impl HttpProxy {
    pub(super) fn new(
        client: reqwest::Client,
        uri: String,
        method: &str,
        timeout: Duration,
        response_cap: usize,
    ) -> Self {
        // Config validation has checked the method; POST is the documented default.
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
        Self {
            client,
            uri,
            method,
            timeout,
            response_cap,
        }
    }
}

#[async_trait]
impl Integration for HttpProxy {
    async fn invoke(&self, inv: &Invocation<'_>) -> Result<IntegrationResponse, IntegrationError> {
        let meta = inv.meta;
        let url = match &inv.kind {
            EventKind::Connect(request) => match &request.raw_query {
                Some(query) if !query.is_empty() => {
                    let joiner = if self.uri.contains('?') { '&' } else { '?' };
                    format!("{}{joiner}{query}", self.uri)
                }
                _ => self.uri.clone(),
            },
            _ => self.uri.clone(),
        };
        let mut headers = ContextHeaders::new(&meta.connection_id, inv.route_key);
        headers.put("x-wsgate-connection-id", &meta.connection_id);
        headers.put("x-wsgate-route-key", inv.route_key);
        headers.put("x-wsgate-event-type", inv.kind.event_type());
        headers.put("x-wsgate-stage", &meta.stage);
        headers.put("x-wsgate-request-id", inv.request_id);
        headers.put("x-wsgate-api-id", &meta.api_id);
        headers.put("x-wsgate-source-ip", &meta.source_ip);
        let mut request = self
            .client
            .request(self.method.clone(), url)
            .timeout(self.timeout);
        match &inv.kind {
            EventKind::Connect(upgrade) => {
                for (name, value) in &upgrade.headers {
                    let lower = name.to_ascii_lowercase();
                    if !NOT_FORWARDED.contains(&lower.as_str()) && !lower.starts_with("x-wsgate-") {
                        headers.put_forwarded(&lower, value);
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
                request = request.body(raw.to_vec());
            }
            EventKind::Disconnect {
                status_code,
                reason,
            } => {
                headers.put("x-wsgate-disconnect-status-code", &status_code.to_string());
                headers.put(
                    "x-wsgate-disconnect-reason",
                    &utf8_percent_encode(reason, UNRESERVED_KEPT).to_string(),
                );
            }
            EventKind::Presence { body, .. } => {
                headers.put("content-type", "application/json");
                request = request.body(body.to_string());
            }
        }
        let request = request.headers(headers.map);
        let response = request
            .send()
            .await
            .map_err(|e| map_reqwest(e, self.timeout))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_string(), v.to_str().ok()?.to_string())))
            .collect::<Vec<_>>();
        let octets = headers
            .iter()
            .any(|(k, v)| k == "content-type" && v.starts_with("application/octet-stream"));
        let body = read_body(response, self.response_cap, self.timeout, inv).await?;
        let binary = octets || std::str::from_utf8(&body).is_err();
        // 204 means "nothing to send back"; any other answer's body (even empty) is sent.
        let body = (status != 204).then_some(body);
        Ok(IntegrationResponse {
            status,
            headers,
            body,
            binary,
        })
    }

    fn kind(&self) -> &'static str {
        "http_proxy"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_are_percent_encoded_and_decode_back() {
        let reason = "bye\nnow ü ~-._ok%";
        let encoded = utf8_percent_encode(reason, UNRESERVED_KEPT).to_string();
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
        headers.put_forwarded("x-ok", "caf\u{e9}");
        assert!(!headers.map.contains_key("x-wsgate-source-ip"));
        assert!(!headers.map.contains_key("user-agent"));
        assert_eq!(headers.map.len(), 2);
        assert_eq!(headers.map["x-wsgate-stage"], "prod");
        assert_eq!(headers.map["x-ok"].as_bytes(), "caf\u{e9}".as_bytes());
    }
}
