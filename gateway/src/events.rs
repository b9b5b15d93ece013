//! The Lambda proxy event JSON for CONNECT, MESSAGE and DISCONNECT, in the exact shapes Amazon API
//! Gateway delivers (see the fixtures in the tests), and the facts about a connection they carry.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;
use serde_json::{Map, Value};

/// Immutable facts about one connection, shared by its session, its integration calls and the registry.
/// `Debug` leaves out the API key and the authorizer context.
#[derive(Clone)]
pub struct ConnectionMeta {
    /// The connection id.
    pub connection_id: String,
    /// Stage name.
    pub stage: String,
    /// `apiId` in events.
    pub api_id: Arc<str>,
    /// `domainName` in events.
    pub domain_name: String,
    /// Epoch milliseconds.
    pub connected_at_ms: i64,
    /// Client address.
    pub source_ip: String,
    /// `User-Agent` of the upgrade request.
    pub user_agent: Option<String>,
    /// API key used on `$connect`.
    pub api_key: Option<String>,
    /// Id of that API key.
    pub api_key_id: Option<String>,
    /// `principalId` and context of the authorizer, carried on every event.
    pub authorizer: Option<Map<String, Value>>,
    /// The IAM caller that signed `$connect` on an `AWS_IAM` route, carried on every event.
    pub iam: Option<Arc<CallerIdentity>>,
    /// The upgrade request's header and query values that some route's cache key names, in
    /// the order the response cache captures them; `None` (one null pointer) when no cache key
    /// names any. Boxed twice so the field stays one pointer wide.
    #[allow(clippy::box_collection)]
    pub cache_request: Option<Box<Vec<Option<Box<str>>>>>,
    /// The connection picked its stage's canary deployment (`requestContext.canary: true`, a
    /// wsgate extension; see `docs/deployments.md`).
    pub canary: bool,
}

/// Who signed a request with SigV4: the `identity` fields AWS fills for IAM callers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallerIdentity {
    /// `identity.accessKey`: the access key id.
    pub access_key: String,
    /// `identity.accountId`: the caller's account.
    pub account_id: String,
    /// `identity.caller`: the principal id (`AIDA…`, `AROA…:session`).
    pub caller: String,
    /// `identity.user`: the principal id as well.
    pub user: String,
    /// `identity.userArn`.
    pub user_arn: String,
}

impl ConnectionMeta {
    /// A connection with only its id, on stage `prod` of API `api` from 127.0.0.1: what unit tests
    /// and micro-benchmarks build.
    pub(crate) fn bare(connection_id: &str) -> Self {
        Self {
            connection_id: connection_id.into(),
            stage: "prod".into(),
            api_id: Arc::from("api"),
            domain_name: "localhost".into(),
            connected_at_ms: 0,
            source_ip: "127.0.0.1".into(),
            user_agent: None,
            api_key: None,
            api_key_id: None,
            authorizer: None,
            iam: None,
            cache_request: None,
            canary: false,
        }
    }
}

impl std::fmt::Debug for ConnectionMeta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectionMeta")
            .field("connection_id", &self.connection_id)
            .field("stage", &self.stage)
            .field("source_ip", &self.source_ip)
            .field("connected_at_ms", &self.connected_at_ms)
            .field("api_key", &self.api_key.as_ref().map(|_| "***"))
            .field("api_key_id", &self.api_key_id)
            .field("authorizer", &self.authorizer.as_ref().map(|_| "(set)"))
            .field("iam", &self.iam.as_ref().map(|i| &i.user_arn))
            .field("canary", &self.canary)
            .finish_non_exhaustive()
    }
}

/// The parts of the upgrade request a CONNECT event carries.
#[derive(Debug, Clone, Default)]
pub struct ConnectRequest {
    /// Headers in arrival order, names as the client spelled them.
    pub headers: Vec<(String, String)>,
    /// Query parameters in arrival order, decoded.
    pub query: Vec<(String, String)>,
    /// The raw query string (for `http_proxy`).
    pub raw_query: Option<String>,
}

/// What happened, with the per-kind fields.
#[derive(Debug, Clone, Copy)]
pub enum EventKind<'a> {
    /// The upgrade request, while the handshake is pending.
    Connect(&'a ConnectRequest),
    /// One message from the client.
    Message {
        /// Text, or base64 of binary.
        body: &'a str,
        /// The payload as received (for integrations that forward raw bytes).
        raw: &'a [u8],
        /// True for binary frames.
        is_base64: bool,
        /// `messageId`.
        message_id: &'a str,
    },
    /// The connection has closed.
    Disconnect {
        /// WebSocket close code.
        status_code: u16,
        /// Close reason.
        reason: &'a str,
    },
    /// The connection joined (`$join`) or left (`$leave`) a group.
    Presence {
        /// True for a join.
        joined: bool,
        /// `{"group": ..., "memberCount": ...}`.
        body: &'a str,
    },
}

impl EventKind<'_> {
    /// `CONNECT`, `MESSAGE` or `DISCONNECT`.
    pub fn event_type(&self) -> &'static str {
        match self {
            Self::Connect(_) => "CONNECT",
            Self::Message { .. } => "MESSAGE",
            Self::Disconnect { .. } => "DISCONNECT",
            Self::Presence { joined: true, .. } => "JOIN",
            Self::Presence { joined: false, .. } => "LEAVE",
        }
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Identity<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    access_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    account_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    caller: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_arn: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key_id: Option<&'a str>,
    source_ip: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user_agent: Option<&'a str>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext<'a> {
    route_key: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    message_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnect_status_code: Option<u16>,
    event_type: &'static str,
    extended_request_id: &'a str,
    request_time: RequestTime,
    message_direction: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    disconnect_reason: Option<&'a str>,
    stage: &'a str,
    connected_at: i64,
    request_time_epoch: i64,
    identity: Identity<'a>,
    request_id: &'a str,
    domain_name: &'a str,
    connection_id: &'a str,
    api_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    authorizer: Option<&'a Map<String, Value>>,
    /// wsgate extension: only on connections that picked their stage's canary deployment.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    canary: bool,
}

type Single<'a> = BTreeMap<&'a str, &'a str>;
type Multi<'a> = BTreeMap<&'a str, Vec<&'a str>>;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Event<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<Single<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_value_headers: Option<Multi<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    query_string_parameters: Option<Single<'a>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    multi_value_query_string_parameters: Option<Multi<'a>>,
    request_context: RequestContext<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    is_base64_encoded: bool,
}

fn single_and_multi(pairs: &[(String, String)]) -> (Single<'_>, Multi<'_>) {
    let mut single = Single::new();
    let mut multi = Multi::new();
    for (k, v) in pairs {
        single.insert(k, v);
        multi.entry(k.as_str()).or_default().push(v);
    }
    (single, multi)
}

/// The fixed header set Amazon API Gateway puts on DISCONNECT events.
const DISCONNECT_HEADERS: [(&str, &str); 4] = [
    ("Host", ""),
    ("x-api-key", ""),
    ("X-Forwarded-For", ""),
    ("x-restapi", ""),
];

/// Serialises the Lambda proxy event for `kind` on `meta`'s connection. A presence event has
/// the shape of a MESSAGE event without `messageId`.
pub fn lambda_event(
    meta: &ConnectionMeta,
    route_key: &str,
    request_id: &str,
    kind: &EventKind<'_>,
) -> Vec<u8> {
    let request_context = request_context(meta, route_key, request_id, kind);
    let disconnect_headers;
    let event = match kind {
        EventKind::Connect(request) => {
            let (headers, multi_value_headers) = single_and_multi(&request.headers);
            let (query, multi_query) = single_and_multi(&request.query);
            let has_query = !request.query.is_empty();
            Event {
                headers: Some(headers),
                multi_value_headers: Some(multi_value_headers),
                query_string_parameters: has_query.then_some(query),
                multi_value_query_string_parameters: has_query.then_some(multi_query),
                request_context,
                body: None,
                is_base64_encoded: false,
            }
        }
        EventKind::Message {
            body, is_base64, ..
        } => Event {
            headers: None,
            multi_value_headers: None,
            query_string_parameters: None,
            multi_value_query_string_parameters: None,
            request_context,
            body: Some(body),
            is_base64_encoded: *is_base64,
        },
        EventKind::Presence { body, .. } => Event {
            headers: None,
            multi_value_headers: None,
            query_string_parameters: None,
            multi_value_query_string_parameters: None,
            request_context,
            body: Some(body),
            is_base64_encoded: false,
        },
        EventKind::Disconnect { .. } => {
            disconnect_headers = DISCONNECT_HEADERS.map(|(k, v)| {
                (
                    k.to_string(),
                    if k == "Host" {
                        meta.domain_name.clone()
                    } else {
                        v.to_string()
                    },
                )
            });
            let (headers, multi_value_headers) = single_and_multi(&disconnect_headers);
            Event {
                headers: Some(headers),
                multi_value_headers: Some(multi_value_headers),
                query_string_parameters: None,
                multi_value_query_string_parameters: None,
                request_context,
                body: None,
                is_base64_encoded: false,
            }
        }
    };
    // Sized for the whole event up front: growing from empty took eight reallocations.
    let mut out = Vec::with_capacity(EVENT_BASE_BYTES + event.body.map_or(0, str::len));
    // Serialising these borrowed structs into a Vec cannot fail (no maps with non-string keys).
    serde_json::to_writer(&mut out, &event).unwrap_or_default();
    out
}

/// Room for an event without its body: the MESSAGE event of the load tests is ~470 bytes plus
/// the body; CONNECT events with many headers grow past it once.
const EVENT_BASE_BYTES: usize = 768;

/// `requestTime` (`05/Dec/2026:18:12:00 +0000`): formatted once per second per thread, because
/// formatting it with a strftime pattern on every event cost more than the rest of the
/// `requestContext`.
#[derive(Clone, Copy)]
struct RequestTime {
    text: [u8; REQUEST_TIME_LEN],
}

const REQUEST_TIME_LEN: usize = 26;

thread_local! {
    static LAST_REQUEST_TIME: std::cell::Cell<Option<(i64, RequestTime)>> =
        const { std::cell::Cell::new(None) };
}

impl RequestTime {
    /// The text for epoch second `secs` (UTC).
    fn at(secs: i64) -> Self {
        if let Some((cached, time)) = LAST_REQUEST_TIME.get()
            && cached == secs
        {
            return time;
        }
        let time = Self::format(secs);
        LAST_REQUEST_TIME.set(Some((secs, time)));
        time
    }

    fn format(secs: i64) -> Self {
        let mut text = [b' '; REQUEST_TIME_LEN];
        if let Some(at) = chrono::DateTime::from_timestamp(secs, 0) {
            let formatted = at.format("%d/%b/%Y:%H:%M:%S %z").to_string();
            let n = formatted.len().min(REQUEST_TIME_LEN);
            text[..n].copy_from_slice(&formatted.as_bytes()[..n]);
        }
        Self { text }
    }

    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.text)
            .unwrap_or_default()
            .trim_end()
    }
}

impl Serialize for RequestTime {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// `$context` of mapping templates and request parameters: the event's `requestContext` as
/// JSON (`connectionId`, `routeKey`, `identity.sourceIp`, `authorizer.principalId`, ...).
pub(crate) fn context_value(
    meta: &ConnectionMeta,
    route_key: &str,
    request_id: &str,
    kind: &EventKind<'_>,
) -> Value {
    // Serialising these borrowed structs cannot fail (string keys only).
    serde_json::to_value(request_context(meta, route_key, request_id, kind)).unwrap_or_default()
}

/// The `requestContext` of an event of `kind` on `meta`'s connection.
fn request_context<'a>(
    meta: &'a ConnectionMeta,
    route_key: &'a str,
    request_id: &'a str,
    kind: &EventKind<'a>,
) -> RequestContext<'a> {
    let now = chrono::Utc::now();
    let iam = meta.iam.as_deref();
    let identity = Identity {
        access_key: iam.map(|i| i.access_key.as_str()),
        account_id: iam.map(|i| i.account_id.as_str()),
        caller: iam.map(|i| i.caller.as_str()),
        user: iam.map(|i| i.user.as_str()),
        user_arn: iam.map(|i| i.user_arn.as_str()),
        api_key: meta.api_key.as_deref(),
        api_key_id: meta.api_key_id.as_deref(),
        source_ip: &meta.source_ip,
        user_agent: meta.user_agent.as_deref(),
    };
    let (message_id, disconnect_status_code, disconnect_reason) = match kind {
        EventKind::Message { message_id, .. } => (Some(*message_id), None, None),
        EventKind::Disconnect {
            status_code,
            reason,
        } => (None, Some(*status_code), Some(*reason)),
        EventKind::Connect(_) | EventKind::Presence { .. } => (None, None, None),
    };
    RequestContext {
        route_key,
        message_id,
        disconnect_status_code,
        event_type: kind.event_type(),
        extended_request_id: request_id,
        request_time: RequestTime::at(now.timestamp()),
        message_direction: "IN",
        disconnect_reason,
        stage: &meta.stage,
        connected_at: meta.connected_at_ms,
        request_time_epoch: now.timestamp_millis(),
        identity,
        request_id,
        domain_name: &meta.domain_name,
        connection_id: &meta.connection_id,
        api_id: &meta.api_id,
        authorizer: meta.authorizer.as_ref(),
        canary: meta.canary,
    }
}

mod authorizer;

pub(crate) use authorizer::authorizer_event;

#[cfg(test)]
mod tests;
