//! Sending one integration request over the right client: the lean HTTP/1.1 client for
//! `http://` and `unix:` URIs, the general client (reqwest, with TLS) for `https://`, and an
//! HTTP/2 client (reqwest) for `protocol: http2`; all read the answer under the same cap, and
//! their failures map to [`IntegrationError`] here.

use std::time::Duration;

use bytes::Bytes;
use http::{HeaderMap, HeaderName, HeaderValue};

use super::h1::{self, CallError, Keep};
use super::{IntegrationError, Invocation, TransportError, map_reqwest, read_body, too_large};
use crate::config::BackendProtocol;

/// The clients integrations share.
#[derive(Debug, Clone)]
pub(crate) struct Clients {
    /// `https://` (and anything the lean client does not take).
    pub general: reqwest::Client,
    /// `http://` and `unix:`.
    pub h1: h1::Client,
    /// `protocol: http2` (built only when an integration asks for it).
    pub h2: Option<reqwest::Client>,
    /// The broker clients (`nats`, `rabbitmq`, `redis_stream`), one per URL.
    pub brokers: std::sync::Arc<super::broker::Brokers>,
}

/// Where an integration sends its requests.
#[derive(Debug)]
pub(super) enum Backend {
    /// `http://` or `unix:`.
    H1(h1::Endpoint),
    /// Anything else, through reqwest.
    General {
        client: reqwest::Client,
        uri: String,
        /// `uri` parsed once (parsing it again for every call costs more than a clone).
        url: Option<reqwest::Url>,
        method: reqwest::Method,
        /// Headers sent on every request besides the client's defaults.
        fixed: HeaderMap,
    },
}

/// One request's variable parts.
#[derive(Debug, Default)]
pub(super) struct Outgoing<'a> {
    /// The client's query string, appended to the URI (`$connect` of `http_proxy`).
    pub query: Option<&'a str>,
    /// Header lines (`name: value\r\n`, values already checked). The lean HTTP/1.1 client
    /// writes the names as they are (forwarded names keep the client's case); reqwest lowercases
    /// them, as HTTP/2 requires.
    pub headers: &'a [u8],
    /// `headers` carries the upgrade request's headers, which replace the client's own
    /// `user-agent`, `accept` and URI credentials when present.
    pub forwarded: bool,
    /// The body (none when empty).
    pub body: &'a [u8],
}

/// An answer read under the cap.
#[derive(Debug)]
pub(crate) struct Incoming {
    pub status: u16,
    /// Headers as [`Keep`] asked, names lowercase.
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

impl Incoming {
    /// The body is binary: marked `application/octet-stream`, or not UTF-8.
    pub(super) fn is_binary(&self) -> bool {
        let octets = (self.headers.iter())
            .any(|(k, v)| k == "content-type" && v.starts_with("application/octet-stream"));
        octets || std::str::from_utf8(&self.body).is_err()
    }
}

impl Backend {
    /// The backend for `uri`, sending `method` with `fixed` headers (lowercase names) over
    /// `protocol`.
    ///
    /// # Errors
    /// `protocol: http2` without an HTTP/2 client in `clients`.
    pub(super) fn new(
        clients: &Clients,
        uri: String,
        method: &str,
        fixed: &[(&'static str, &'static str)],
        protocol: BackendProtocol,
    ) -> Result<Self, String> {
        match protocol {
            BackendProtocol::Http1 => Ok(Self::http1(clients, uri, method, fixed)),
            BackendProtocol::Http2 => {
                let client = (clients.h2.clone())
                    .ok_or_else(|| format!("no HTTP/2 client was built for `{uri}`"))?;
                Ok(Self::general(client, uri, method, fixed))
            }
        }
    }

    /// The HTTP/1.1 backend for `uri`: the lean client for `http://` and `unix:`, the general
    /// client otherwise.
    pub(super) fn http1(
        clients: &Clients,
        uri: String,
        method: &str,
        fixed: &[(&'static str, &'static str)],
    ) -> Self {
        if let Ok(Some(target)) = h1::Target::parse(&uri) {
            return Self::H1(clients.h1.endpoint(target, method, fixed));
        }
        Self::general(clients.general.clone(), uri, method, fixed)
    }

    fn general(
        client: reqwest::Client,
        uri: String,
        method: &str,
        fixed: &[(&'static str, &'static str)],
    ) -> Self {
        let mut headers = HeaderMap::new();
        for (name, value) in fixed {
            headers.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        Self::General {
            client,
            url: reqwest::Url::parse(&uri).ok(),
            uri,
            // Config validation has checked the method; POST is the documented default.
            method: reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::POST),
            fixed: headers,
        }
    }

    /// Sends `out` and reads the answer under `cap`, within `timeout`.
    ///
    /// # Errors
    /// [`IntegrationError::Timeout`], [`IntegrationError::ResponseTooLarge`] (counted and
    /// logged) or [`IntegrationError::Transport`].
    pub(super) async fn send(
        &self,
        out: &Outgoing<'_>,
        keep: Keep,
        cap: usize,
        timeout: Duration,
        inv: &Invocation<'_>,
    ) -> Result<Incoming, IntegrationError> {
        match self {
            Self::H1(endpoint) => {
                let request = h1::Request {
                    query: out.query,
                    headers: out.headers,
                    replaces_defaults: out.forwarded,
                    body: out.body,
                };
                match endpoint.call(&request, timeout, cap, keep).await {
                    Ok(answer) => Ok(Incoming {
                        status: answer.status,
                        headers: answer.headers,
                        body: answer.body,
                    }),
                    Err(CallError::Timeout) => Err(IntegrationError::Timeout(timeout)),
                    Err(CallError::TooLarge { limit }) => Err(too_large(inv, limit)),
                    Err(CallError::Failed(e)) => {
                        Err(IntegrationError::Transport(TransportError::H1(e)))
                    }
                }
            }
            Self::General {
                client,
                uri,
                url,
                method,
                fixed,
            } => {
                let mut request = match (out.query, url) {
                    (Some(query), _) if !query.is_empty() => {
                        let joiner = if uri.contains('?') { '&' } else { '?' };
                        client.request(method.clone(), format!("{uri}{joiner}{query}"))
                    }
                    (_, Some(url)) => client.request(method.clone(), url.clone()),
                    (_, None) => client.request(method.clone(), uri.as_str()),
                };
                request = request.timeout(timeout);
                if !fixed.is_empty() {
                    request = request.headers(fixed.clone());
                }
                if !out.headers.is_empty() {
                    request = request.headers(header_map(out.headers));
                }
                if !out.body.is_empty() {
                    request = request.body(out.body.to_vec());
                }
                let response = request.send().await.map_err(|e| map_reqwest(e, timeout))?;
                let status = response.status().as_u16();
                let headers = match keep {
                    Keep::All => response
                        .headers()
                        .iter()
                        .filter_map(|(k, v)| {
                            Some((k.as_str().to_string(), v.to_str().ok()?.to_string()))
                        })
                        .collect(),
                    Keep::Only(names) => (names.iter())
                        .flat_map(|name| {
                            response.headers().get_all(*name).iter().map(|v| {
                                (
                                    name.to_string(),
                                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                                )
                            })
                        })
                        .collect(),
                };
                let body = read_body(response, cap, timeout, inv).await?;
                Ok(Incoming {
                    status,
                    headers,
                    body,
                })
            }
        }
    }
}

/// The header lines as a map (values were checked when the lines were written).
fn header_map(lines: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in lines.split(|b| *b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        let value = line[colon + 1..]
            .strip_prefix(b" ")
            .unwrap_or(&line[colon + 1..]);
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_lines_become_a_map() {
        let map = header_map(b"x-a: 1\r\nx-b: two words\r\nx-a: 2\r\nuser-agent: caf\xc3\xa9\r\n");
        assert_eq!(map.get_all("x-a").iter().count(), 2);
        assert_eq!(map["x-b"], "two words");
        assert_eq!(map["user-agent"].as_bytes(), "caf\u{e9}".as_bytes());
    }
}
