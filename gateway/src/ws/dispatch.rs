//! The inbound side of one connection: its messages in order, one integration call at a time,
//! driven by the connection's own task. A slow integration delays only this connection's later
//! messages, never its pings or pushes (the session polls the call beside them). Nothing is
//! allocated while no message is waiting: a ready connection costs what an idle one does.
//! On a route with `ack:` a message also goes through its id's claim (see `crate::acks`) and
//! ends with an ack, nack or pending frame; every step of that is boxed or skipped on other
//! routes, so they pay one `None` check.

use std::collections::VecDeque;
use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::Instant;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::invoke;
use crate::access_log::execution::Event;
use crate::access_log::{EventType, IntegrationOutcome, Outcome};
use crate::acks::frames::{self as ack_frames, Nack};
use crate::acks::{Admission, MessageId};
use crate::deployment::Definition;
use crate::events::EventKind;
use crate::ids;
use crate::integration::{IntegrationError, IntegrationResponse, Invocation, StageRoutes};
use crate::registry::SessionHandle;
use crate::routing::{Selected, select};
use crate::state::Shared;
use crate::telemetry;
use crate::throttle::ConnectionBucket;
use crate::traces::Span;

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

/// Why a message read from the client cannot be taken yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Refused {
    /// This connection's queue is full (`limits.inbound_queue_messages` or `_bytes`): taken
    /// once the message being handled is done.
    Full,
    /// The node's byte budget is spent: taken when any queue on the node gives bytes back.
    NodeFull,
}

/// The frames a handled message sends the client: the route's answer or an error frame, then,
/// on an acknowledged route, its ack, nack or pending frame.
#[derive(Debug, Default)]
pub(super) struct Frames {
    answer: Option<Message>,
    ack: Option<Message>,
}

impl Frames {
    /// The frames in the order they are written.
    pub(super) fn into_messages(self) -> impl Iterator<Item = Message> {
        self.answer.into_iter().chain(self.ack)
    }
}

/// One message being handled; it resolves to the frames the client gets.
type Call<'a> = Pin<Box<dyn Future<Output = Frames> + Send + 'a>>;

/// The messages of one connection that were read and not yet handled, and the one being
/// handled. Every byte counted here was taken from the node's budget and is given back when the
/// message is done or dropped.
pub(super) struct Inflow<'a> {
    shared: &'a Arc<Shared>,
    handle: &'a Arc<SessionHandle>,
    routes: &'a Arc<StageRoutes>,
    /// The connection's own throttle bucket, made at its first message (inner `None`: no
    /// per-connection limit applies).
    bucket: Option<Option<Arc<ConnectionBucket>>>,
    /// The call in progress (boxed: it exists only while a message is being handled).
    current: Option<Call<'a>>,
    current_bytes: usize,
    /// Messages waiting their turn, in order.
    waiting: VecDeque<Inbound>,
    waiting_bytes: usize,
}

impl<'a> Inflow<'a> {
    /// An empty inflow (allocates nothing).
    pub(super) fn new(
        shared: &'a Arc<Shared>,
        handle: &'a Arc<SessionHandle>,
        routes: &'a Arc<StageRoutes>,
    ) -> Self {
        Self {
            shared,
            handle,
            routes,
            bucket: None,
            current: None,
            current_bytes: 0,
            waiting: VecDeque::new(),
            waiting_bytes: 0,
        }
    }

    /// True while a message is being handled.
    pub(super) fn is_busy(&self) -> bool {
        self.current.is_some()
    }

    /// Takes a message read from the client: handled at once when nothing else is, queued
    /// otherwise. Hands it back when there is no room for it yet.
    pub(super) fn offer(&mut self, message: Inbound) -> Result<(), (Refused, Inbound)> {
        let bytes = message.len();
        if self.current.is_some() {
            let limits = &self.shared.config.limits;
            let queued = self.current_bytes + self.waiting_bytes;
            if self.waiting.len() >= limits.inbound_queue_messages
                || (queued != 0 && queued + bytes > limits.inbound_queue_bytes)
            {
                return Err((Refused::Full, message));
            }
        }
        if !self.shared.budget.try_take(bytes) {
            return Err((Refused::NodeFull, message));
        }
        if self.current.is_some() {
            self.waiting_bytes += bytes;
            self.waiting.push_back(message);
        } else {
            self.start(message);
        }
        Ok(())
    }

    /// Starts handling `message`, whose bytes are already taken from the budget.
    fn start(&mut self, message: Inbound) {
        let (shared, handle, routes) = (self.shared, self.handle, self.routes);
        let bucket = self
            .bucket
            .get_or_insert_with(|| {
                let live = shared.definition_for(&handle.meta.stage, handle.meta.canary);
                let usage = (handle.meta.api_key_id.as_deref())
                    .and_then(|id| Some((live.security.usage_plan(id)?, id)));
                live.throttle.connection_bucket(usage).map(Arc::new)
            })
            .clone();
        self.current_bytes = message.len();
        self.current = Some(Box::pin(handle_one(
            shared, handle, routes, bucket, message,
        )));
    }

    /// Resolves when the message being handled is done, with the frames the client gets (a
    /// two-way route's answer or an error frame; an acknowledged route's ack, nack or pending
    /// frame), and starts the next one waiting. Pending while nothing is being handled.
    /// Cancel-safe.
    pub(super) async fn next_done(&mut self) -> Frames {
        let frame = poll_fn(|cx| match self.current.as_mut() {
            Some(call) => call.as_mut().poll(cx),
            None => Poll::Pending,
        })
        .await;
        self.current = None;
        self.shared.budget.give_back(self.current_bytes);
        self.current_bytes = 0;
        match self.waiting.pop_front() {
            Some(next) => {
                self.waiting_bytes -= next.len();
                self.start(next);
            }
            // Nothing waits: the queue's memory goes back too.
            None => self.waiting = VecDeque::new(),
        }
        frame
    }

    /// After the client left: the message being handled and those waiting still reach the
    /// integration, in order, for at most `limits.inbound_drain_timeout`; then the rest are
    /// dropped (counted) and their bytes given back.
    pub(super) async fn drain(mut self) {
        let within = self.shared.config.limits.inbound_drain_timeout;
        let all = async {
            while self.is_busy() {
                let _ = self.next_done().await;
            }
        };
        if timeout(within, all).await.is_ok() {
            return;
        }
        let left = self.current_bytes + self.waiting_bytes;
        metrics::counter!(telemetry::INBOUND_DRAIN_CUT_TOTAL).increment(1);
        tracing::warn!(connection_id = %self.handle.meta.connection_id, dropped_bytes = left, "inbound messages dropped: limits.inbound_drain_timeout ran out after the client left");
    }
}

impl Drop for Inflow<'_> {
    fn drop(&mut self) {
        self.shared
            .budget
            .give_back(self.current_bytes + self.waiting_bytes);
    }
}

impl std::fmt::Debug for Inflow<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflow")
            .field("busy", &self.current.is_some())
            .field("current_bytes", &self.current_bytes)
            .field("waiting", &self.waiting.len())
            .field("waiting_bytes", &self.waiting_bytes)
            .finish_non_exhaustive()
    }
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

/// Handles one message; returns the frames the client gets. With an access log on the stage,
/// the message's line is written once its outcome is known. The message is routed by the
/// definition in force when it is taken (a reload changes the routes of open connections too);
/// `connected` are the routes the connection started with, used only when a reload removed
/// its stage.
async fn handle_one(
    shared: &Shared,
    handle: &SessionHandle,
    connected: &StageRoutes,
    bucket: Option<Arc<ConnectionBucket>>,
    message: Inbound,
) -> Frames {
    let live = shared.definition_for(&handle.meta.stage, handle.meta.canary);
    let routes = live.stage(&handle.meta.stage).map_or(connected, |r| &**r);
    let request_id = ids::request_id();
    // A root span per message (tracing on); its children are the steps below.
    let mut span = shared.traces.root("message");
    if span.context().is_some() {
        span.set_str("wsgate.connection_id", &handle.meta.connection_id);
        span.set_str("wsgate.stage", &handle.meta.stage);
        span.set_str("wsgate.request_id", &request_id);
    }
    let started_ms = routes.access_log.as_ref().map(|_| super::now_ms());
    let mut outcome = Outcome::default();
    let mut ack = None;
    let steps = Steps {
        live: &live,
        bucket,
        span: &mut span,
        ack: &mut ack,
    };
    let log = started_ms.is_some().then_some(&mut outcome);
    let frame = route_one(shared, handle, routes, steps, message, &request_id, log).await;
    if let (Some(access), Some(started_ms)) = (&routes.access_log, started_ms) {
        access.event(
            &handle.meta,
            EventType::Message,
            &request_id,
            started_ms,
            &outcome,
        );
    }
    Frames { answer: frame, ack }
}

/// What one message goes through besides its route: the connection's throttle bucket, the
/// message's span, and where an acknowledged route's ack, nack or pending frame goes.
struct Steps<'s> {
    /// The definition in force (selection expression, throttling).
    live: &'s Definition,
    bucket: Option<Arc<ConnectionBucket>>,
    span: &'s mut Span,
    ack: &'s mut Option<Message>,
}

/// Routes one message to its integration; fills `log` (when given) with what it came to.
async fn route_one<'r>(
    shared: &Shared,
    handle: &SessionHandle,
    routes: &'r StageRoutes,
    steps: Steps<'_>,
    message: Inbound,
    request_id: &str,
    mut log: Option<&mut Outcome<'r>>,
) -> Option<Message> {
    let Steps {
        live,
        bucket,
        span,
        ack: ack_frame,
    } = steps;
    let meta = &handle.meta;
    let (raw, text, is_base64): (&[u8], std::borrow::Cow<'_, str>, bool) = match &message {
        Inbound::Text(text) => (text.as_bytes(), text.as_str().into(), false),
        Inbound::Binary(bytes) => (bytes, STANDARD.encode(bytes).into(), true),
    };
    routes.received.increment(1);
    let selection_span = span.child("route_selection");
    let selected = select(&live.selection, raw, |key| routes.get(key).map(|r| &*r.key));
    drop(selection_span);
    let Selected::Route(key) = selected else {
        span.fail("no route matches the message");
        metrics::counter!(telemetry::CLIENT_ERROR_TOTAL).increment(1);
        let at = Event {
            meta,
            route_key: "-",
            request_id,
        };
        routes
            .execution
            .refused(at, 403, "no route matches the message");
        if let Some(log) = log {
            log.status = Some(403);
            log.error_message = Some("Forbidden");
        }
        (shared.activity).client_error(&meta.stage, &meta.connection_id, "no route matched");
        return Some(error_frame("Forbidden", &meta.connection_id, request_id));
    };
    let route = routes.get(key)?;
    let at = Event {
        meta,
        route_key: key,
        request_id,
    };
    route.execution.route_selected(at);
    if let Some(log) = log.as_deref_mut() {
        log.route_key = Some(&route.key);
    }
    span.set_str("wsgate.route_key", key);
    // An acknowledged route reads the client's message id first: every answer carries it.
    // Boxed, as the claim below: the state every message's future keeps stays two pointers.
    let acked = match route.ack.as_deref() {
        None => None,
        Some(ack) => match ack.read_id(raw) {
            Ok(id) => Some((ack, Box::new(id))),
            Err(text) => {
                span.fail("no message id");
                metrics::counter!(telemetry::CLIENT_ERROR_TOTAL).increment(1);
                route.execution.refused(at, 400, "no usable message id");
                if let Some(log) = log {
                    log.status = Some(400);
                    log.error_message = Some("Missing message id");
                }
                return Some(error_frame(&text, &meta.connection_id, request_id));
            }
        },
    };
    let mut throttle_span = span.child("throttle");
    let throttled = live
        .throttle
        .check_message(&meta.stage, key, bucket.as_deref())
        .await
        .is_err();
    if throttled {
        throttle_span.fail("throttled");
        span.fail("throttled");
    }
    drop(throttle_span);
    if throttled {
        // Not sent to the integration; the connection stays open.
        metrics::counter!(telemetry::CLIENT_ERROR_TOTAL).increment(1);
        route.execution.refused(at, 429, "throttled");
        if let Some(log) = log {
            log.status = Some(429);
            log.error_message = Some("Too Many Requests");
        }
        (shared.activity).client_error(&meta.stage, &meta.connection_id, "message throttled");
        if let Some((_, id)) = &acked {
            *ack_frame = Some(ack_frames::nack(&id.json, Nack::Throttled, request_id));
            return None;
        }
        return Some(error_frame(
            "Too Many Requests",
            &meta.connection_id,
            request_id,
        ));
    }
    let message_id = ids::request_id();
    if let Some(log) = log.as_deref_mut() {
        log.message_id = Some(message_id.clone());
    }
    // After selection and throttling, before the integration; free on a route without models.
    let validated = route.models.as_ref().map(|models| {
        let mut validation_span = span.child("validation");
        let checked = models.check(raw, is_base64);
        if checked.is_err() {
            validation_span.fail("request body failed validation");
        }
        checked
    });
    if let Some(Err(invalid)) = validated {
        span.fail("request body failed validation");
        route
            .execution
            .refused(at, 400, "request body failed validation");
        if let Some(log) = log {
            log.status = Some(400);
            log.error_message = Some("Bad request body");
            log.validation_error = Some(invalid.to_string());
        }
        let refused = crate::validate::refused(&invalid, route, meta, &message_id);
        if let Some((_, id)) = &acked {
            *ack_frame = Some(ack_frames::nack(&id.json, Nack::BadBody, request_id));
            return None;
        }
        return Some(refused);
    }
    // The one copy of an id that calls the integration holds its claim; the others are
    // answered here. Boxed: only acknowledged routes carry its state.
    let claim = match &acked {
        None => None,
        Some((ack, id)) => {
            let admitted = Box::pin(shared.acks.admit(ack.key(meta, id), ack, request_id)).await;
            match admitted {
                Admission::Run(claim) => Some(Box::new(claim)),
                other => {
                    let (frame, status) = answer_unclaimed(&other, id, request_id);
                    *ack_frame = Some(frame);
                    if let Some(log) = log {
                        log.status = Some(status);
                    }
                    return None;
                }
            }
        }
    };
    let invocation = Invocation {
        meta,
        route_key: key,
        request_id,
        trace: span.parent(),
        kind: EventKind::Message {
            body: &text,
            raw,
            is_base64,
            message_id: &message_id,
        },
    };
    let started = log.is_some().then(Instant::now);
    let answer = match &route.cache {
        None => invoke(route, &invocation).await,
        // Boxed: the cached path's state stays out of every other message's future.
        Some(cache) => Box::pin(cache.through(&invocation, invoke(route, &invocation))).await,
    };
    if let (Some(claim), Some((ack, id))) = (claim, &acked) {
        let verdict = verdict(&answer);
        Box::pin((*claim).finish(verdict.is_none(), ack)).await;
        *ack_frame = Some(match verdict {
            None => ack_frames::ack(&id.json),
            Some(why) => ack_frames::nack(&id.json, why, request_id),
        });
    }
    if let (Some(log), Some(started)) = (log, started) {
        let latency_ms = crate::access_log::millis(started.elapsed());
        let (status, integration) = match &answer {
            Ok(response) => (200, (Some(response.status), None)),
            Err(error) => (
                failure_status(error),
                (None, Some(crate::access_log::integration_error_name(error))),
            ),
        };
        log.status = Some(status);
        log.integration = Some(IntegrationOutcome {
            latency_ms,
            status: integration.0,
            error: integration.1,
        });
        if let Err(error) = &answer {
            log.error_message = Some(failure_message(error));
        }
    }
    match answer {
        Ok(response) => match response.body {
            Some(body) if route.route_response => Some(reply(body, response.binary)),
            _ => None,
        },
        // The nack carries the failure.
        Err(_) if acked.is_some() => None,
        Err(error) => Some(error_frame(
            failure_message(&error),
            &meta.connection_id,
            request_id,
        )),
    }
}

/// The frame (and access-log status) of a copy that does not call the integration.
fn answer_unclaimed(admitted: &Admission<'_>, id: &MessageId, request_id: &str) -> (Message, u16) {
    match admitted {
        Admission::Acknowledged => (ack_frames::ack(&id.json), 200),
        Admission::Pending | Admission::Run(_) => (ack_frames::pending(&id.json), 409),
        Admission::Unavailable => (
            ack_frames::nack(&id.json, Nack::Unavailable, request_id),
            503,
        ),
    }
}

/// Whether the integration accepted a message (`None`), else why not: any answer below 400 is
/// accepted; 408, 429 and 5xx answers and failed calls are worth a retry, other 4xx are not.
fn verdict(answer: &Result<IntegrationResponse, IntegrationError>) -> Option<Nack> {
    match answer {
        Ok(response) if response.status < 400 => None,
        Ok(response) if matches!(response.status, 408 | 429) || response.status >= 500 => {
            Some(Nack::Failed)
        }
        Ok(_) => Some(Nack::Rejected),
        Err(IntegrationError::Timeout(_)) => Some(Nack::TimedOut),
        Err(_) => Some(Nack::Failed),
    }
}

/// The message of the error frame a failed integration call gets.
fn failure_message(error: &IntegrationError) -> &'static str {
    match error {
        // As AWS answers an integration that passes its timeout.
        IntegrationError::Timeout(_) => "Endpoint request timed out",
        // No request template matched and the passthrough behaviour refused the payload: AWS's
        // 415 reason phrase.
        IntegrationError::UnsupportedMediaType => "Unsupported Media Type",
        _ => "Internal server error",
    }
}

/// `status` in the access log of a failed integration call.
fn failure_status(error: &IntegrationError) -> u16 {
    match error {
        IntegrationError::Timeout(_) => 504,
        IntegrationError::UnsupportedMediaType => 415,
        _ => 500,
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
