//! The frames an acknowledged route answers with: `{"ack":…}`, `{"nack":…}` and
//! `{"pending":…}`, each carrying the client's message id as the client wrote it (a string or
//! an integer). Compact JSON in a fixed key order.

use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// Why a message was not acknowledged (the `message` of a nack frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Nack {
    /// The integration failed or answered 5xx, 408 or 429: retry with the same id.
    Failed,
    /// The integration did not answer in time: retry with the same id (it may have acted).
    TimedOut,
    /// The integration answered 4xx: retrying the same message will not help.
    Rejected,
    /// The message was throttled: retry later.
    Throttled,
    /// The message failed its request model: retrying it will not help.
    BadBody,
    /// The store of seen ids failed or is full: retry later.
    Unavailable,
}

impl Nack {
    fn message(self) -> &'static str {
        match self {
            Self::Failed => "Internal server error",
            Self::TimedOut => "Endpoint request timed out",
            Self::Rejected => "Rejected by the integration",
            Self::Throttled => "Too Many Requests",
            Self::BadBody => "Bad request body",
            Self::Unavailable => "Service Unavailable",
        }
    }

    /// Whether the client should resend the message (same id).
    pub(crate) fn retryable(self) -> bool {
        !matches!(self, Self::Rejected | Self::BadBody)
    }
}

/// `{"ack":ID}`: the integration accepted the message (now or within the window).
pub(crate) fn ack(id: &Value) -> Message {
    Message::text(format!("{{\"ack\":{id}}}"))
}

/// `{"nack":ID,"retryable":B,"message":"…","requestId":"…"}`.
pub(crate) fn nack(id: &Value, why: Nack, request_id: &str) -> Message {
    Message::text(format!(
        "{{\"nack\":{id},\"retryable\":{},\"message\":{},\"requestId\":{}}}",
        why.retryable(),
        Value::from(why.message()),
        Value::from(request_id)
    ))
}

/// `{"pending":ID}`: the first copy of this id is still being handled (on another node, or
/// its handler was cut off): resend later to learn its outcome.
pub(crate) fn pending(id: &Value) -> Message {
    Message::text(format!("{{\"pending\":{id}}}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(m: Message) -> String {
        m.into_text().expect("text").to_string()
    }

    #[test]
    fn frames_carry_the_id_as_given() {
        assert_eq!(text(ack(&Value::from("a\"b"))), r#"{"ack":"a\"b"}"#);
        assert_eq!(text(ack(&Value::from(42))), r#"{"ack":42}"#);
        assert_eq!(text(pending(&Value::from("x"))), r#"{"pending":"x"}"#);
        assert_eq!(
            text(nack(&Value::from("x"), Nack::Failed, "r=")),
            r#"{"nack":"x","retryable":true,"message":"Internal server error","requestId":"r="}"#
        );
        assert_eq!(
            text(nack(&Value::from(7), Nack::Rejected, "r")),
            r#"{"nack":7,"retryable":false,"message":"Rejected by the integration","requestId":"r"}"#
        );
    }
}
