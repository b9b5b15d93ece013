//! What the simple mapping (no request template) reads of one event: the payload, the
//! connection's context, and the action's parameters resolved for the stage.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};

/// One event as the simple mapping sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Message<'a> {
    /// The payload (after passthrough; empty on `$connect` and `$disconnect`).
    pub payload: &'a [u8],
    /// The payload is binary.
    pub binary: bool,
    /// `connectionId`.
    pub connection_id: &'a str,
    /// `routeKey`.
    pub route_key: &'a str,
    /// `requestId`.
    pub request_id: &'a str,
    /// `stage`.
    pub stage: &'a str,
    /// `eventType` (`CONNECT`, `MESSAGE`, ...).
    pub event_type: &'a str,
}

impl Message<'_> {
    /// The payload as text for services whose messages are text: base64 when binary, `{}` when
    /// the event has no payload (SQS and SNS refuse empty messages).
    pub(crate) fn text(&self) -> String {
        if self.binary {
            STANDARD.encode(self.payload)
        } else if self.payload.is_empty() {
            "{}".into()
        } else {
            String::from_utf8_lossy(self.payload).into_owned()
        }
    }

    /// The context as (name, value) pairs, the names message attributes get.
    pub(crate) fn attributes(&self) -> Vec<(&'static str, &str)> {
        let mut pairs = vec![
            ("connectionId", self.connection_id),
            ("routeKey", self.route_key),
            ("requestId", self.request_id),
            ("stage", self.stage),
            ("eventType", self.event_type),
        ];
        if self.binary {
            pairs.push(("isBase64Encoded", "true"));
        }
        pairs
    }

    /// The payload as a JSON value: the JSON it is, else a string (base64 when binary); `null`
    /// when the event has no payload.
    pub(crate) fn body_value(&self) -> Value {
        if self.binary {
            return Value::String(STANDARD.encode(self.payload));
        }
        if self.payload.is_empty() {
            return Value::Null;
        }
        serde_json::from_slice(self.payload)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(self.payload).into_owned()))
    }

    /// `{"requestContext": {...}, "body": ..., "isBase64Encoded": ...}`: what EventBridge,
    /// Step Functions and Lambda receive, so a worker knows whom to answer.
    pub(crate) fn envelope(&self) -> Value {
        json!({
            "requestContext": {
                "connectionId": self.connection_id,
                "routeKey": self.route_key,
                "requestId": self.request_id,
                "stage": self.stage,
                "eventType": self.event_type,
            },
            "body": self.body_value(),
            "isBase64Encoded": self.binary,
        })
    }
}

/// An action's parameters with stage variables substituted.
#[derive(Debug, Clone, Default)]
pub(crate) struct Params(pub BTreeMap<String, String>);

impl Params {
    /// The value of `name`, if given.
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The value of a required parameter.
    ///
    /// # Errors
    /// Its absence, in words (only when a request template was expected to make the body and
    /// none was selected).
    pub(crate) fn need(&self, name: &str) -> Result<&str, String> {
        self.get(name).ok_or_else(|| {
            format!("no request template was selected and `parameters` has no `{name}`")
        })
    }
}
