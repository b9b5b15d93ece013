//! What a broker integration publishes for one event: the payload (the body, or the Lambda
//! proxy event JSON) and the connection's context as `x-wsgate-*` fields, with the names and
//! values `http_proxy` sends as HTTP headers.

use bytes::Bytes;

use super::super::{Invocation, context};
use crate::config::PayloadKind;
use crate::events::{EventKind, lambda_event};

/// One message for a broker.
#[derive(Debug)]
pub(super) struct Outgoing {
    /// The payload.
    pub payload: Bytes,
    /// `content-type` of the payload.
    pub content_type: &'static str,
    /// `x-wsgate-*` fields (values are visible ASCII, spaces or tabs), `content-type` last.
    pub fields: Vec<(&'static str, String)>,
    /// A unique id of the event (its `requestId`), for broker-side deduplication.
    pub id: String,
}

impl Outgoing {
    /// The message for `inv`; `payload` overrides the default (the body on message routes, the
    /// event JSON on the others).
    pub(super) fn new(inv: &Invocation<'_>, payload: Option<PayloadKind>) -> Self {
        let meta = inv.meta;
        let mut fields: Vec<(&'static str, String)> = Vec::with_capacity(11);
        let mut put = |name: &'static str, value: &str| {
            if value.bytes().all(|b| (32..127).contains(&b) || b == b'\t') {
                fields.push((name, value.to_owned()));
            } else {
                tracing::warn!(
                    connection_id = %meta.connection_id,
                    route_key = %inv.route_key,
                    field = name,
                    "broker integration: a value that cannot be sent as a header was left out"
                );
            }
        };
        context::put_common(inv, &mut put);
        let default = match inv.kind {
            EventKind::Message { .. } => PayloadKind::Body,
            _ => PayloadKind::Event,
        };
        let (body, body_type): (&[u8], &'static str) = match &inv.kind {
            EventKind::Connect(_) => (&[], "application/octet-stream"),
            EventKind::Message {
                raw,
                is_base64,
                message_id,
                ..
            } => {
                put("x-wsgate-message-id", message_id);
                let content_type = if *is_base64 {
                    "application/octet-stream"
                } else {
                    "text/plain; charset=utf-8"
                };
                (raw, content_type)
            }
            EventKind::Disconnect {
                status_code,
                reason,
            } => {
                put("x-wsgate-disconnect-status-code", &status_code.to_string());
                put(
                    "x-wsgate-disconnect-reason",
                    &context::encode_reason(reason),
                );
                (&[], "application/octet-stream")
            }
            EventKind::Presence { body, .. } => (body.as_bytes(), "application/json"),
        };
        let (payload, content_type) = match payload.unwrap_or(default) {
            PayloadKind::Body => (Bytes::copy_from_slice(body), body_type),
            PayloadKind::Event => (
                Bytes::from(lambda_event(meta, inv.route_key, inv.request_id, &inv.kind)),
                "application/json",
            ),
        };
        fields.push(("content-type", content_type.to_owned()));
        Self {
            payload,
            content_type,
            fields,
            id: inv.request_id.to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{ConnectRequest, ConnectionMeta};

    fn field<'a>(out: &'a Outgoing, name: &str) -> Option<&'a str> {
        out.fields
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn a_message_is_its_body_with_the_context() {
        let meta = ConnectionMeta::bare("conn-1");
        let inv = Invocation {
            meta: &meta,
            route_key: "chat",
            request_id: "req-1",
            trace: crate::traces::Parent::NONE,
            kind: EventKind::Message {
                body: "hello",
                raw: b"hello",
                is_base64: false,
                message_id: "msg-1",
            },
        };
        let out = Outgoing::new(&inv, None);
        assert_eq!(&out.payload[..], b"hello");
        assert_eq!(field(&out, "x-wsgate-connection-id"), Some("conn-1"));
        assert_eq!(field(&out, "x-wsgate-route-key"), Some("chat"));
        assert_eq!(field(&out, "x-wsgate-event-type"), Some("MESSAGE"));
        assert_eq!(field(&out, "x-wsgate-message-id"), Some("msg-1"));
        assert_eq!(
            field(&out, "content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(out.id, "req-1");
        let event = Outgoing::new(&inv, Some(PayloadKind::Event));
        let json: serde_json::Value = serde_json::from_slice(&event.payload).unwrap();
        assert_eq!(json["body"], "hello");
        assert_eq!(event.content_type, "application/json");
    }

    #[test]
    fn connect_and_disconnect_are_events_by_default() {
        let meta = ConnectionMeta::bare("conn-2");
        let request = ConnectRequest::default();
        let inv = Invocation {
            meta: &meta,
            route_key: "$connect",
            request_id: "req-2",
            trace: crate::traces::Parent::NONE,
            kind: EventKind::Connect(&request),
        };
        let out = Outgoing::new(&inv, None);
        let json: serde_json::Value = serde_json::from_slice(&out.payload).unwrap();
        assert_eq!(json["requestContext"]["eventType"], "CONNECT");
        assert_eq!(json["requestContext"]["connectionId"], "conn-2");
        let inv = Invocation {
            meta: &meta,
            route_key: "$disconnect",
            request_id: "req-3",
            trace: crate::traces::Parent::NONE,
            kind: EventKind::Disconnect {
                status_code: 1001,
                reason: "going away\r\n",
            },
        };
        let out = Outgoing::new(&inv, None);
        assert_eq!(field(&out, "x-wsgate-disconnect-status-code"), Some("1001"));
        assert_eq!(
            field(&out, "x-wsgate-disconnect-reason"),
            Some("going%20away%0D%0A")
        );
        assert!(
            Outgoing::new(&inv, Some(PayloadKind::Body))
                .payload
                .is_empty()
        );
    }
}
