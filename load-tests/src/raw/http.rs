//! The raw server's HTTP side: the `@connections` callback endpoint, health and stats.

use super::Shared;
use crate::httpd::{Resp, json, read_body, resp};
use bytes::Bytes;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use percent_encoding::percent_decode_str;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc::error::TrySendError;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Utf8Bytes;

/// The callback API's payload limit.
const MAX_POST: usize = 131_072;

/// The connection id of `/{stage}/@connections/{id}` (or `%40connections`), decoded.
pub(super) fn connection_id(path: &str) -> Option<String> {
    let rest = ["/@connections/", "/%40connections/"]
        .iter()
        .find_map(|m| path.find(m).map(|i| &path[i + m.len()..]))?;
    if rest.is_empty() || rest.contains('/') {
        return None;
    }
    percent_decode_str(rest)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

fn error(status: StatusCode, kind: &'static str) -> Resp {
    let mut r = json(status, format!(r#"{{"message":"{kind}"}}"#));
    r.headers_mut().insert(
        "x-amzn-ErrorType",
        hyper::header::HeaderValue::from_static(kind),
    );
    r
}

pub(super) async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Resp {
    let path = req.uri().path();
    match (req.method(), path) {
        (&Method::GET, "/healthz") => return resp(StatusCode::OK, "ok"),
        (&Method::GET, "/stats") => {
            return json(
                StatusCode::OK,
                serde_json::to_vec(&shared.stats()).unwrap_or_default(),
            );
        }
        _ => {}
    }
    let Some(id) = connection_id(path) else {
        return resp(StatusCode::NOT_FOUND, "");
    };
    if req.method() != Method::POST {
        return resp(StatusCode::METHOD_NOT_ALLOWED, "");
    }
    let Some(body) = read_body(req.into_body(), MAX_POST).await else {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLargeException");
    };
    let tx = id
        .parse::<u64>()
        .ok()
        .and_then(|n| shared.registry.as_ref()?.get(n));
    let Some(tx) = tx else {
        shared.gone.fetch_add(1, Relaxed);
        return error(StatusCode::GONE, "GoneException");
    };
    match tx.try_send(frame(body)) {
        Ok(()) => {
            shared.pushed.fetch_add(1, Relaxed);
            resp(StatusCode::OK, "")
        }
        Err(TrySendError::Full(_)) => {
            error(StatusCode::TOO_MANY_REQUESTS, "LimitExceededException")
        }
        Err(TrySendError::Closed(_)) => {
            shared.gone.fetch_add(1, Relaxed);
            error(StatusCode::GONE, "GoneException")
        }
    }
}

fn frame(body: Bytes) -> Message {
    match Utf8Bytes::try_from(body.clone()) {
        Ok(t) => Message::Text(t),
        Err(_) => Message::Binary(body),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_callback_paths() {
        assert_eq!(
            connection_id("/prod/@connections/17").as_deref(),
            Some("17")
        );
        assert_eq!(
            connection_id("/prod/%40connections/ab%3D").as_deref(),
            Some("ab=")
        );
        assert_eq!(connection_id("/prod/@connections/"), None);
        assert_eq!(connection_id("/prod/other"), None);
    }
}
