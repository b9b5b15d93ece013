//! Outgoing messages as frames: a message over `limits.max_outbound_frame_bytes` goes out
//! fragmented (RFC 6455 §5.4), as Amazon API Gateway sends messages over 32 KB in frames of at
//! most 32 KB; anything else stays one frame, untouched.

use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};
use tokio_tungstenite::tungstenite::{Bytes, Message};

/// How one message goes out.
pub(super) enum Outgoing {
    /// As it is (one frame, or not a data message).
    Whole(Message),
    /// In fragments.
    Split(Fragments),
}

/// `message` as it goes out with frames of at most `max` payload bytes (`0`: never split).
/// Only the length is looked at for a message that fits.
pub(super) fn outgoing(message: Message, max: usize) -> Outgoing {
    if max == 0 || message.len() <= max {
        return Outgoing::Whole(message);
    }
    let (opcode, payload) = match message {
        Message::Text(text) => (Data::Text, Bytes::from(text)),
        Message::Binary(bytes) => (Data::Binary, bytes),
        other => return Outgoing::Whole(other),
    };
    Outgoing::Split(Fragments {
        opcode,
        payload,
        max,
        at: 0,
    })
}

/// The frames of one message: the first with its opcode and FIN clear, then continuation
/// frames, the last with FIN set. Each payload is a slice of the message's buffer (no copy).
/// A text message may be cut inside a UTF-8 sequence; RFC 6455 checks text only once
/// reassembled.
pub(super) struct Fragments {
    opcode: Data,
    payload: Bytes,
    max: usize,
    at: usize,
}

impl Iterator for Fragments {
    type Item = Message;

    fn next(&mut self) -> Option<Message> {
        let len = self.payload.len();
        if self.at >= len {
            return None;
        }
        let end = len.min(self.at.saturating_add(self.max));
        let opcode = if self.at == 0 {
            self.opcode
        } else {
            Data::Continue
        };
        let frame = Frame::message(
            self.payload.slice(self.at..end),
            OpCode::Data(opcode),
            end == len,
        );
        self.at = end;
        Some(Message::Frame(frame))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(message: Message, max: usize) -> Vec<(OpCode, bool, Bytes)> {
        match outgoing(message, max) {
            Outgoing::Whole(_) => Vec::new(),
            Outgoing::Split(fragments) => fragments
                .map(|m| match m {
                    Message::Frame(f) => (f.header().opcode, f.header().is_final, f.into_payload()),
                    other => panic!("not a frame: {other:?}"),
                })
                .collect(),
        }
    }

    #[test]
    fn messages_that_fit_stay_whole() {
        for (message, max) in [
            (Message::text("x".repeat(32_768)), 32_768),
            (Message::binary(vec![0; 100_000]), 0),
            (Message::Ping(Bytes::from(vec![0; 100])), 10),
        ] {
            assert!(matches!(outgoing(message, max), Outgoing::Whole(_)));
        }
    }

    #[test]
    fn larger_messages_are_fragmented_without_copying() {
        let text = "é".repeat(50_000);
        let whole = Bytes::from(text.clone());
        let got = frames(Message::text(text), 32_768);
        assert_eq!(got.len(), 4);
        assert_eq!(got[0].0, OpCode::Data(Data::Text));
        assert!(got[1..].iter().all(|f| f.0 == OpCode::Data(Data::Continue)));
        assert_eq!(
            got.iter().map(|f| f.1).collect::<Vec<_>>(),
            [false, false, false, true]
        );
        assert_eq!(
            got.iter().map(|f| f.2.len()).collect::<Vec<_>>(),
            [32_768, 32_768, 32_768, 1_696]
        );
        let joined: Vec<u8> = got.iter().flat_map(|f| f.2.iter().copied()).collect();
        assert_eq!(joined, whole);

        let got = frames(Message::binary(vec![7; 65_536]), 32_768);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].0, OpCode::Data(Data::Binary));
        assert_eq!((got[1].0, got[1].1), (OpCode::Data(Data::Continue), true));
    }
}
