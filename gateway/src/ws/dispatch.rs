//! The inbound dispatcher of one connection: takes its messages in order, selects the route,
//! calls the integration and, for two-way routes, queues the reply. It runs in its own task so a
//! slow integration delays only this connection's later messages, never its pings or pushes.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::invoke;
use crate::events::EventKind;
use crate::ids;
use crate::integration::{IntegrationError, Invocation, StageRoutes};
use crate::registry::SessionHandle;
use crate::routing::{Selected, select};
use crate::state::Shared;
use crate::telemetry;
use crate::throttle::ConnectionBucket;

/// One message read from the client.
#[derive(Debug)]
pub(super) enum Inbound {
    /// A text message.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
}

impl Inbound {
    /// Payload bytes (what the queue and the node budget count).
    pub(super) fn len(&self) -> usize {
        match self {
            Self::Text(text) => text.len(),
            Self::Binary(bytes) => bytes.len(),
        }
    }
}

/// The bytes waiting in one dispatcher's queue (and the message it is handling), and a signal
/// each time it finishes one.
#[derive(Debug, Default)]
pub(super) struct Queued {
    pub(super) bytes: AtomicUsize,
    pub(super) progress: Notify,
}

/// The sending side of a running dispatcher and its task.
#[derive(Debug)]
pub(super) struct Dispatcher {
    pub(super) tx: mpsc::Sender<Inbound>,
    pub(super) task: JoinHandle<()>,
    pub(super) queued: Arc<Queued>,
}

/// Starts the dispatcher of a connection (lazily, on its first message).
pub(super) fn spawn(
    shared: &Arc<Shared>,
    handle: &Arc<SessionHandle>,
    routes: &Arc<StageRoutes>,
) -> Dispatcher {
    let (tx, mut rx) = mpsc::channel::<Inbound>(shared.config.limits.inbound_queue_messages);
    let queued = Arc::new(Queued::default());
    let (shared, handle, routes) = (Arc::clone(shared), Arc::clone(handle), Arc::clone(routes));
    let done = Arc::clone(&queued);
    let task = shared.tracker.clone().spawn(async move {
        let usage = (handle.meta.api_key_id.as_deref())
            .and_then(|id| Some((shared.security.usage_plan(id)?, id)));
        let bucket = shared.throttle.connection_bucket(usage);
        while let Some(message) = rx.recv().await {
            let bytes = message.len();
            handle_one(&shared, &handle, &routes, bucket.as_ref(), message).await;
            done.bytes.fetch_sub(bytes, Ordering::AcqRel);
            shared.budget.give_back(bytes);
            done.progress.notify_one();
        }
    });
    Dispatcher { tx, task, queued }
}

/// An error frame, byte for byte as Amazon API Gateway writes it: fixed key order and a space
/// after the first colon only, `{"message": "Forbidden", "connectionId":"…", "requestId":"…"}`.
/// Built by hand (a serializer would drop the space); every value is JSON-escaped.
fn error_frame(message: &str, connection_id: &str, request_id: &str) -> Message {
    Message::text(error_frame_text(message, connection_id, request_id))
}

fn error_frame_text(message: &str, connection_id: &str, request_id: &str) -> String {
    let quoted = |s: &str| serde_json::Value::from(s).to_string();
    format!(
        "{{\"message\": {}, \"connectionId\":{}, \"requestId\":{}}}",
        quoted(message),
        quoted(connection_id),
        quoted(request_id)
    )
}

async fn handle_one(
    shared: &Shared,
    handle: &SessionHandle,
    routes: &StageRoutes,
    bucket: Option<&ConnectionBucket>,
    message: Inbound,
) {
    let meta = &handle.meta;
    let request_id = ids::request_id();
    let (raw, text, is_base64): (&[u8], std::borrow::Cow<'_, str>, bool) = match &message {
        Inbound::Text(text) => (text.as_bytes(), text.as_str().into(), false),
        Inbound::Binary(bytes) => (bytes, STANDARD.encode(bytes).into(), true),
    };
    metrics::counter!(telemetry::MESSAGE_TOTAL, "stage" => meta.stage.clone(), "direction" => "in")
        .increment(1);
    let selected = select(&shared.selection, raw, |key| {
        routes.get(key).map(|r| &*r.key)
    });
    let Selected::Route(key) = selected else {
        metrics::counter!(telemetry::CLIENT_ERROR_TOTAL).increment(1);
        let _ = handle
            .send(error_frame("Forbidden", &meta.connection_id, &request_id))
            .await;
        return;
    };
    let Some(route) = routes.get(key) else { return };
    if shared
        .throttle
        .check_message(&meta.stage, key, bucket)
        .await
        .is_err()
    {
        // Not sent to the integration; the connection stays open.
        metrics::counter!(telemetry::CLIENT_ERROR_TOTAL).increment(1);
        let _ = handle
            .send(error_frame(
                "Too Many Requests",
                &meta.connection_id,
                &request_id,
            ))
            .await;
        return;
    }
    let message_id = ids::request_id();
    let invocation = Invocation {
        meta,
        route_key: key,
        request_id: &request_id,
        kind: EventKind::Message {
            body: &text,
            raw,
            is_base64,
            message_id: &message_id,
        },
    };
    match invoke(route, &invocation).await {
        Ok(response) => {
            if route.route_response
                && let Some(body) = response.body
            {
                let _ = handle.send(reply(body, response.binary)).await;
            }
        }
        Err(error) => {
            let message = match error {
                // As AWS answers an integration that passes its timeout.
                IntegrationError::Timeout(_) => "Endpoint request timed out",
                _ => "Internal server error",
            };
            let _ = handle
                .send(error_frame(message, &meta.connection_id, &request_id))
                .await;
        }
    }
}

/// The frame a two-way route sends back: text when the body is UTF-8 and not marked binary.
fn reply(body: Bytes, binary: bool) -> Message {
    if binary || std::str::from_utf8(&body).is_err() {
        return Message::Binary(body);
    }
    Utf8Bytes::try_from(body.clone()).map_or(Message::Binary(body), Message::Text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_frames_escape_their_values() {
        assert_eq!(
            error_frame_text("Forbidden", "abc=", "def="),
            r#"{"message": "Forbidden", "connectionId":"abc=", "requestId":"def="}"#
        );
        let odd = error_frame_text("a\"b", "c\\d", "e\nf");
        assert_eq!(
            odd,
            r#"{"message": "a\"b", "connectionId":"c\\d", "requestId":"e\nf"}"#
        );
        let parsed: serde_json::Value = serde_json::from_str(&odd).expect("valid JSON");
        assert_eq!(parsed["connectionId"], "c\\d");
    }
}
