//! `http_proxy` integration: forward the raw message body to a URL, with the connection's context
//! in `x-wsgate-*` headers; on `$connect`, forward the upgrade request's headers and query string.

use std::time::Duration;

use async_trait::async_trait;

use super::{Integration, IntegrationError, IntegrationResponse, Invocation, map_reqwest};
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

#[derive(Debug)]
pub(super) struct HttpProxy {
    client: reqwest::Client,
    uri: String,
    method: reqwest::Method,
    timeout: Duration,
}

impl HttpProxy {
    pub(super) fn new(
        client: reqwest::Client,
        uri: String,
        method: &str,
        timeout: Duration,
    ) -> Self {
        // Config validation has checked the method; POST is the documented default.
        let method =
            reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST);
        Self {
            client,
            uri,
            method,
            timeout,
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
        let mut request = self
            .client
            .request(self.method.clone(), url)
            .timeout(self.timeout)
            .header("x-wsgate-connection-id", &meta.connection_id)
            .header("x-wsgate-route-key", inv.route_key)
            .header("x-wsgate-event-type", inv.kind.event_type())
            .header("x-wsgate-stage", &meta.stage)
            .header("x-wsgate-request-id", inv.request_id)
            .header("x-wsgate-api-id", &*meta.api_id)
            .header("x-wsgate-source-ip", &meta.source_ip);
        match &inv.kind {
            EventKind::Connect(upgrade) => {
                for (name, value) in &upgrade.headers {
                    let lower = name.to_ascii_lowercase();
                    if !NOT_FORWARDED.contains(&lower.as_str()) && !lower.starts_with("x-wsgate-") {
                        request = request.header(name.as_str(), value.as_str());
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
                request = request
                    .header(http::header::CONTENT_TYPE, content_type)
                    .header("x-wsgate-message-id", *message_id)
                    .body(raw.to_vec());
            }
            EventKind::Disconnect {
                status_code,
                reason,
            } => {
                request = request
                    .header("x-wsgate-disconnect-status-code", status_code.to_string())
                    .header("x-wsgate-disconnect-reason", *reason);
            }
            EventKind::Presence { body, .. } => {
                request = request
                    .header(http::header::CONTENT_TYPE, "application/json")
                    .body(body.to_string());
            }
        }
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
        let body = response
            .bytes()
            .await
            .map_err(|e| map_reqwest(e, self.timeout))?;
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
