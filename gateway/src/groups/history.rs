//! Groups with history (`groups.history`): each message posted to such a group is appended to
//! the store with a position (epoch, offset) before it is delivered, and the clients that opted
//! in receive it in the envelope below; the others still get the raw payload.
//!
//! # Envelope (text frame, JSON)
//! `{"type":"message","group":G,"epoch":E,"offset":N,"data":TEXT}`, or `"dataBase64"` instead
//! of `"data"` for a binary payload. The signal frames of recovery are in `recover`.
//!
//! # Order
//! With Redis the store's script appends and publishes in one step, and every node (the
//! poster's too) delivers only what comes back on the group's channel, so members see offset
//! order. With the memory store, appends and local deliveries of such groups happen one post at
//! a time under one lock.

use base64::Engine;
use bytes::Bytes;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use wsgate_connection_store::{HistoryEntry, Position, Retention};

use crate::config::HistoryConfig;

/// The history settings of one node.
#[derive(Debug)]
pub(crate) struct History {
    config: HistoryConfig,
    /// Memory store: one post to a group with history at a time (append, then deliver).
    pub(crate) serial: tokio::sync::Mutex<()>,
}

impl History {
    pub(crate) fn new(config: HistoryConfig) -> Self {
        Self {
            config,
            serial: tokio::sync::Mutex::new(()),
        }
    }

    /// True when no group keeps history (group delivery is then exactly as without it).
    pub(crate) fn is_off(&self) -> bool {
        self.config.groups.is_empty()
    }

    /// How much history `group` keeps; `None` when it keeps none.
    pub(crate) fn retention(&self, group: &str) -> Option<Retention> {
        self.config.rule(group).map(|rule| Retention {
            max_messages: rule.max_messages,
            max_bytes: rule.max_bytes,
            max_age: rule.max_age,
        })
    }
}

/// The payload as `"data"` (UTF-8) or `"dataBase64"` in `object`.
fn put_payload(object: &mut Value, payload: &[u8]) {
    match std::str::from_utf8(payload) {
        Ok(text) => object["data"] = Value::String(text.to_owned()),
        Err(_) => {
            object["dataBase64"] =
                Value::String(base64::engine::general_purpose::STANDARD.encode(payload));
        }
    }
}

/// The envelope of one message of `group` at `position`.
pub(crate) fn envelope(group: &str, position: &Position, payload: &[u8]) -> Message {
    let mut object = json!({
        "type": "message",
        "group": group,
        "epoch": position.epoch,
        "offset": position.offset,
    });
    put_payload(&mut object, payload);
    Message::Text(object.to_string().into())
}

/// One entry of a history page, as the history endpoint answers it.
pub(crate) fn entry_json(entry: &HistoryEntry) -> Value {
    let mut object = json!({ "offset": entry.offset, "timestamp": entry.at_ms });
    put_payload(&mut object, &entry.payload);
    object
}

/// The payload of a frame as a message for members that did not opt in.
pub(crate) fn raw(payload: Bytes) -> Message {
    super::fanout::message(payload)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn envelopes_carry_text_or_base64() {
        let position = Position {
            epoch: "e".into(),
            offset: 3,
        };
        let Message::Text(text) = envelope("room:1", &position, b"{\"a\":1}") else {
            panic!("text frame");
        };
        let value: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(
            value,
            json!({"type": "message", "group": "room:1", "epoch": "e", "offset": 3, "data": "{\"a\":1}"})
        );
        let Message::Text(text) = envelope("g", &position, &[0xff, 0]) else {
            panic!("text frame");
        };
        let value: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(value["dataBase64"], "/wA=");
        assert!(value.get("data").is_none());
    }
}
