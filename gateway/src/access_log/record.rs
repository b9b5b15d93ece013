//! What one access log line is made of: borrowed views of what the gateway already holds, built
//! only when the stage has an access log.

use crate::events::ConnectionMeta;

/// `$context.eventType`: AWS's three, and `CALLBACK` for `@connections` calls (AWS does not log
/// them in the API's access log; the gateway does, with this type).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventType {
    Connect,
    Message,
    Disconnect,
    Callback,
}

impl EventType {
    /// The name written to the log.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Connect => "CONNECT",
            Self::Message => "MESSAGE",
            Self::Disconnect => "DISCONNECT",
            Self::Callback => "CALLBACK",
        }
    }
}

/// What the integration did for the event, when it was called.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IntegrationOutcome {
    /// `integrationLatency`, in milliseconds.
    pub latency_ms: u64,
    /// `integration.status`: the backend's status (`None`: no answer).
    pub status: Option<u16>,
    /// `integration.error`: why there was no usable answer (never a body).
    pub error: Option<&'static str>,
}

/// One access log record.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    /// `apiId`.
    pub api_id: Option<&'a str>,
    /// `stage`.
    pub stage: &'a str,
    /// `eventType`.
    pub event_type: EventType,
    /// `connectionId` (the target of a callback call).
    pub connection_id: Option<&'a str>,
    /// `routeKey`.
    pub route_key: Option<&'a str>,
    /// `requestId` and `extendedRequestId`.
    pub request_id: &'a str,
    /// `messageId` (MESSAGE events that reached their route).
    pub message_id: Option<&'a str>,
    /// When the event started, epoch milliseconds (`requestTime`, `requestTimeEpoch`).
    pub request_time_ms: i64,
    /// `status`: what the gateway answered.
    pub status: Option<u16>,
    /// `identity.sourceIp` (the caller of a callback call).
    pub source_ip: Option<&'a str>,
    /// `identity.userAgent`.
    pub user_agent: Option<&'a str>,
    /// The connection, for `connectedAt`, `domainName`, the authorizer and IAM identity
    /// (`None` for refused handshakes and callback calls).
    pub meta: Option<&'a ConnectionMeta>,
    /// The integration's part.
    pub integration: Option<IntegrationOutcome>,
    /// `error.message`.
    pub error_message: Option<&'a str>,
    /// `error.responseType`.
    pub error_type: Option<&'a str>,
    /// `error.validationErrorString`.
    pub validation_error: Option<&'a str>,
}

impl<'a> Record<'a> {
    /// A record of `event` on `meta`'s connection, the other fields empty.
    pub(crate) fn on(
        meta: &'a ConnectionMeta,
        event_type: EventType,
        request_id: &'a str,
        request_time_ms: i64,
    ) -> Self {
        Self {
            api_id: Some(&meta.api_id),
            stage: &meta.stage,
            event_type,
            connection_id: Some(&meta.connection_id),
            route_key: None,
            request_id,
            message_id: None,
            request_time_ms,
            status: None,
            source_ip: Some(&meta.source_ip),
            user_agent: meta.user_agent.as_deref(),
            meta: Some(meta),
            integration: None,
            error_message: None,
            error_type: None,
            validation_error: None,
        }
    }
}
