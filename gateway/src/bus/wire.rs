//! What nodes send each other on the bus, and its compact binary encoding.
//!
//! A frame is one tag byte followed by the fields in order: integers big-endian, strings as a
//! `u16` length and UTF-8 bytes, and a `Post` payload as the rest of the frame (so a payload is
//! never copied or re-encoded). `Acks` carries a `u16` count and then each answer as an `Ack`
//! does (request and outcome). `Batch` carries whole frames, each as a `u32` length and its
//! bytes, to the end of the frame (a batch holds no batch). `Traced` (tracing on) carries a
//! W3C `traceparent` and `tracestate` and then one whole frame (neither a batch nor traced) as
//! the rest, so the owner's span continues the sender's trace.
//!
//! Mixed versions: a node that predates a tag drops frames carrying it as malformed (counted in
//! `wsgate_bus_errors_total{op="decode"}`), and the sender answers 503 when no `Ack` comes. So
//! `Traced` frames go out only with `tracing.enabled`: upgrade every node before turning it on.

use bytes::{BufMut, Bytes, BytesMut};

const POST: u8 = 1;
const DELETE: u8 = 2;
const ACK: u8 = 3;
const PROBE: u8 = 4;
const JOIN: u8 = 5;
const LEAVE: u8 = 6;
const ACKS: u8 = 7;
const BATCH: u8 = 8;
const TRACED: u8 = 9;

/// Answers one `Acks` frame carries at most.
pub(crate) const MAX_ACKS: usize = u16::MAX as usize;

/// What the owner of a connection answers to a forwarded callback.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Queued for the client (POST) or close requested (DELETE).
    Done,
    /// The owner does not hold this connection (any more).
    Gone,
    /// The connection's outbound queue is full (POST only).
    Full,
    /// The connection is in as many groups as allowed (Join only).
    TooManyGroups,
    /// The owner could not record the change (Redis failed; Join and Leave only).
    Unavailable,
}

impl Outcome {
    fn code(self) -> u8 {
        match self {
            Self::Done => 0,
            Self::Gone => 1,
            Self::Full => 2,
            Self::TooManyGroups => 3,
            Self::Unavailable => 4,
        }
    }

    fn from_code(code: u8) -> Result<Self, WireError> {
        match code {
            0 => Ok(Self::Done),
            1 => Ok(Self::Gone),
            2 => Ok(Self::Full),
            3 => Ok(Self::TooManyGroups),
            4 => Ok(Self::Unavailable),
            other => Err(WireError::UnknownOutcome(other)),
        }
    }
}

/// One message between nodes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Envelope {
    /// Queue `payload` for `connection_id`; answer with an `Ack` to `reply_to`.
    Post {
        /// Matches the `Ack`.
        request: u64,
        /// The node waiting for the `Ack`.
        reply_to: String,
        /// The connection.
        connection_id: String,
        /// The callback body (text when valid UTF-8, else binary, as for a local post).
        payload: Bytes,
    },
    /// Close `connection_id` with `code` and `reason`; answer with an `Ack` to `reply_to`.
    Delete {
        /// Matches the `Ack`.
        request: u64,
        /// The node waiting for the `Ack`.
        reply_to: String,
        /// The connection.
        connection_id: String,
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// Add `connection_id` to `group` (`join`) or remove it; answer with an `Ack` to `reply_to`.
    Membership {
        /// Matches the `Ack`.
        request: u64,
        /// The node waiting for the `Ack`.
        reply_to: String,
        /// The connection.
        connection_id: String,
        /// The group.
        group: String,
        /// Join (true) or leave.
        join: bool,
    },
    /// The owner's answer to a `Post`, `Delete` or `Membership`.
    Ack {
        /// The request answered.
        request: u64,
        /// What happened.
        outcome: Outcome,
    },
    /// Several `Ack`s for one node in one frame (at most [`MAX_ACKS`]), in the order the
    /// owner applied their requests.
    Acks {
        /// The requests answered and what happened to each.
        answers: Vec<(u64, Outcome)>,
    },
    /// Several frames for one node in one message, to be applied in this order (none of them
    /// a `Batch`). Built with [`batch`]; each frame is decoded on its own.
    Batch {
        /// The frames.
        frames: Vec<Bytes>,
    },
    /// One frame (not a `Batch`, not `Traced`) sent within a trace. Built with [`traced`].
    Traced {
        /// W3C `traceparent` of the sender's span.
        traceparent: String,
        /// W3C `tracestate` (may be empty).
        tracestate: String,
        /// The frame, decoded on its own.
        frame: Bytes,
    },
    /// A node's message to itself, proving that its subscription still receives.
    Probe {
        /// Sequence number of the probe.
        seq: u64,
    },
}

/// Why a frame could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The frame ends before its fields do.
    #[error("frame truncated")]
    Truncated,
    /// The first byte names no known message.
    #[error("unknown message tag {0}")]
    UnknownTag(u8),
    /// An `Ack` carries an unknown outcome.
    #[error("unknown outcome {0}")]
    UnknownOutcome(u8),
    /// A `Batch` holds a `Batch`, or a `Traced` frame a `Batch` or a `Traced`.
    #[error("batch inside a batch")]
    NestedBatch,
    /// A string field is not UTF-8.
    #[error("string field is not UTF-8")]
    Utf8,
    /// A string field is longer than a frame allows (64 KiB), or an `Acks` frame holds more
    /// than [`MAX_ACKS`] answers.
    #[error("string field or answer list too long")]
    TooLong,
}

impl Envelope {
    /// Encodes the message into one frame.
    ///
    /// # Errors
    /// [`WireError::TooLong`] for a string field over 64 KiB (ids and reasons are far shorter).
    pub(crate) fn encode(&self) -> Result<Bytes, WireError> {
        let mut out = BytesMut::new();
        match self {
            Self::Post {
                request,
                reply_to,
                connection_id,
                payload,
            } => return post(*request, reply_to, connection_id, payload),
            Self::Delete {
                request,
                reply_to,
                connection_id,
                code,
                reason,
            } => {
                out.put_u8(DELETE);
                out.put_u64(*request);
                put_str(&mut out, reply_to)?;
                put_str(&mut out, connection_id)?;
                out.put_u16(*code);
                put_str(&mut out, reason)?;
            }
            Self::Membership {
                request,
                reply_to,
                connection_id,
                group,
                join,
            } => {
                out.put_u8(if *join { JOIN } else { LEAVE });
                out.put_u64(*request);
                put_str(&mut out, reply_to)?;
                put_str(&mut out, connection_id)?;
                put_str(&mut out, group)?;
            }
            Self::Ack { request, outcome } => {
                out.put_u8(ACK);
                out.put_u64(*request);
                out.put_u8(outcome.code());
            }
            Self::Acks { answers } => {
                let count = u16::try_from(answers.len()).map_err(|_| WireError::TooLong)?;
                out.reserve(3 + answers.len() * 9);
                out.put_u8(ACKS);
                out.put_u16(count);
                for (request, outcome) in answers {
                    out.put_u64(*request);
                    out.put_u8(outcome.code());
                }
            }
            Self::Batch { frames } => return batch(frames.iter().map(AsRef::as_ref)),
            Self::Traced {
                traceparent,
                tracestate,
                frame,
            } => return traced(traceparent, tracestate, frame),
            Self::Probe { seq } => {
                out.put_u8(PROBE);
                out.put_u64(*seq);
            }
        }
        Ok(out.freeze())
    }

    /// Decodes one frame (the payload of a `Post` shares the frame's memory).
    ///
    /// # Errors
    /// A [`WireError`] for anything malformed.
    pub(crate) fn decode(frame: Bytes) -> Result<Self, WireError> {
        let mut r = Reader { frame, at: 0 };
        let message = match r.u8()? {
            POST => Self::Post {
                request: r.u64()?,
                reply_to: r.string()?,
                connection_id: r.string()?,
                payload: r.rest(),
            },
            DELETE => Self::Delete {
                request: r.u64()?,
                reply_to: r.string()?,
                connection_id: r.string()?,
                code: r.u16()?,
                reason: r.string()?,
            },
            ACK => Self::Ack {
                request: r.u64()?,
                outcome: Outcome::from_code(r.u8()?)?,
            },
            ACKS => {
                let count = usize::from(r.u16()?);
                // Bounded by the frame: each answer takes 9 bytes.
                if r.remaining() < count.saturating_mul(9) {
                    return Err(WireError::Truncated);
                }
                let mut answers = Vec::with_capacity(count);
                for _ in 0..count {
                    answers.push((r.u64()?, Outcome::from_code(r.u8()?)?));
                }
                Self::Acks { answers }
            }
            BATCH => {
                let mut frames = Vec::new();
                while r.remaining() > 0 {
                    let len = usize::try_from(r.u32()?).map_err(|_| WireError::Truncated)?;
                    let frame = r.bytes(len)?;
                    if frame.first() == Some(&BATCH) {
                        return Err(WireError::NestedBatch);
                    }
                    frames.push(frame);
                }
                Self::Batch { frames }
            }
            TRACED => {
                let traceparent = r.string()?;
                let tracestate = r.string()?;
                let frame = r.rest();
                if matches!(frame.first(), Some(&(BATCH | TRACED))) {
                    return Err(WireError::NestedBatch);
                }
                Self::Traced {
                    traceparent,
                    tracestate,
                    frame,
                }
            }
            PROBE => Self::Probe { seq: r.u64()? },
            tag @ (JOIN | LEAVE) => Self::Membership {
                request: r.u64()?,
                reply_to: r.string()?,
                connection_id: r.string()?,
                group: r.string()?,
                join: tag == JOIN,
            },
            other => return Err(WireError::UnknownTag(other)),
        };
        Ok(message)
    }

    /// A short name for metrics.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Self::Post { .. } => "post",
            Self::Delete { .. } => "delete",
            Self::Ack { .. } => "ack",
            Self::Acks { .. } => "acks",
            Self::Batch { .. } => "batch",
            Self::Traced { .. } => "traced",
            Self::Probe { .. } => "probe",
            Self::Membership { join: true, .. } => "join",
            Self::Membership { join: false, .. } => "leave",
        }
    }
}

/// A `Post` frame, encoded from borrowed fields (what [`Envelope::encode`] does for a `Post`).
///
/// # Errors
/// [`WireError::TooLong`] for a string field over 64 KiB.
pub(crate) fn post(
    request: u64,
    reply_to: &str,
    connection_id: &str,
    payload: &[u8],
) -> Result<Bytes, WireError> {
    let mut out =
        BytesMut::with_capacity(1 + 8 + 4 + reply_to.len() + connection_id.len() + payload.len());
    out.put_u8(POST);
    out.put_u64(request);
    put_str(&mut out, reply_to)?;
    put_str(&mut out, connection_id)?;
    out.put_slice(payload);
    Ok(out.freeze())
}

/// A `Traced` frame: `frame` (neither a `Batch` nor `Traced`) within the trace of
/// `traceparent` and `tracestate`.
///
/// # Errors
/// [`WireError::TooLong`] for a header value over 64 KiB; [`WireError::NestedBatch`] for a
/// batch or a traced frame.
pub(crate) fn traced(
    traceparent: &str,
    tracestate: &str,
    frame: &[u8],
) -> Result<Bytes, WireError> {
    if matches!(frame.first(), Some(&(BATCH | TRACED))) {
        return Err(WireError::NestedBatch);
    }
    let mut out = BytesMut::with_capacity(5 + traceparent.len() + tracestate.len() + frame.len());
    out.put_u8(TRACED);
    put_str(&mut out, traceparent)?;
    put_str(&mut out, tracestate)?;
    out.put_slice(frame);
    Ok(out.freeze())
}

/// Whether `frame` is an `Ack` or `Acks` (the answers a waiting handler takes at once).
pub(crate) fn is_answer(frame: &[u8]) -> bool {
    matches!(frame.first(), Some(&(ACK | ACKS)))
}

/// One `Batch` frame holding `frames` (encoded frames, none of them a `Batch`), in order.
///
/// # Errors
/// [`WireError::TooLong`] for a frame over 4 GiB; [`WireError::NestedBatch`] for a batch.
pub(crate) fn batch<'a>(
    frames: impl Iterator<Item = &'a [u8]> + Clone,
) -> Result<Bytes, WireError> {
    let size: usize = frames.clone().map(|f| 4 + f.len()).sum();
    let mut out = BytesMut::with_capacity(1 + size);
    out.put_u8(BATCH);
    for frame in frames {
        if frame.first() == Some(&BATCH) {
            return Err(WireError::NestedBatch);
        }
        out.put_u32(u32::try_from(frame.len()).map_err(|_| WireError::TooLong)?);
        out.put_slice(frame);
    }
    Ok(out.freeze())
}

fn put_str(out: &mut BytesMut, text: &str) -> Result<(), WireError> {
    let len = u16::try_from(text.len()).map_err(|_| WireError::TooLong)?;
    out.put_u16(len);
    out.put_slice(text.as_bytes());
    Ok(())
}

struct Reader {
    frame: Bytes,
    at: usize,
}

impl Reader {
    fn take(&mut self, n: usize) -> Result<&[u8], WireError> {
        let end = self.at.checked_add(n).ok_or(WireError::Truncated)?;
        let slice = self.frame.get(self.at..end).ok_or(WireError::Truncated)?;
        self.at = end;
        Ok(slice)
    }

    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    /// The next `len` bytes, sharing the frame's memory.
    fn bytes(&mut self, len: usize) -> Result<Bytes, WireError> {
        let end = self.at.checked_add(len).ok_or(WireError::Truncated)?;
        if end > self.frame.len() {
            return Err(WireError::Truncated);
        }
        let bytes = self.frame.slice(self.at..end);
        self.at = end;
        Ok(bytes)
    }

    fn u64(&mut self) -> Result<u64, WireError> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(u64::from_be_bytes(b))
    }

    fn string(&mut self) -> Result<String, WireError> {
        let len = usize::from(self.u16()?);
        let bytes = self.take(len)?;
        std::str::from_utf8(bytes)
            .map(str::to_owned)
            .map_err(|_| WireError::Utf8)
    }

    fn remaining(&self) -> usize {
        self.frame.len().saturating_sub(self.at)
    }

    fn rest(&mut self) -> Bytes {
        let rest = self.frame.slice(self.at..);
        self.at = self.frame.len();
        rest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Envelope> {
        vec![
            Envelope::Post {
                request: u64::MAX,
                reply_to: "node-a".into(),
                connection_id: "abc_DEF-123".into(),
                payload: Bytes::from_static(&[0, 255, 10, 13]),
            },
            Envelope::Post {
                request: 0,
                reply_to: String::new(),
                connection_id: "é".into(),
                payload: Bytes::new(),
            },
            Envelope::Delete {
                request: 7,
                reply_to: "node-b".into(),
                connection_id: "c".into(),
                code: 4001,
                reason: "bye ✓".into(),
            },
            Envelope::Ack {
                request: 9,
                outcome: Outcome::Full,
            },
            Envelope::Ack {
                request: 10,
                outcome: Outcome::Gone,
            },
            Envelope::Probe { seq: 3 },
            Envelope::Traced {
                traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".into(),
                tracestate: "vendor=x".into(),
                frame: Envelope::Delete {
                    request: 9,
                    reply_to: "node-b".into(),
                    connection_id: "c".into(),
                    code: 1000,
                    reason: String::new(),
                }
                .encode()
                .expect("encodes"),
            },
            Envelope::Membership {
                request: 11,
                reply_to: "node-c".into(),
                connection_id: "id".into(),
                group: "room:1".into(),
                join: true,
            },
            Envelope::Membership {
                request: 12,
                reply_to: "node-c".into(),
                connection_id: "id".into(),
                group: "g".into(),
                join: false,
            },
            Envelope::Ack {
                request: 13,
                outcome: Outcome::TooManyGroups,
            },
            Envelope::Ack {
                request: 14,
                outcome: Outcome::Unavailable,
            },
            Envelope::Acks {
                answers: vec![
                    (15, Outcome::Done),
                    (u64::MAX, Outcome::Full),
                    (0, Outcome::Gone),
                ],
            },
            Envelope::Acks {
                answers: Vec::new(),
            },
            Envelope::Batch {
                frames: vec![
                    Envelope::Probe { seq: 1 }.encode().expect("encodes"),
                    Bytes::new(),
                    Envelope::Ack {
                        request: 2,
                        outcome: Outcome::Done,
                    }
                    .encode()
                    .expect("encodes"),
                ],
            },
        ]
    }

    #[test]
    fn every_message_round_trips() {
        for message in samples() {
            let frame = message.encode().expect("encodes");
            assert_eq!(Envelope::decode(frame).expect("decodes"), message);
        }
    }

    #[test]
    fn every_truncation_is_an_error_not_a_panic() {
        for message in samples() {
            let frame = message.encode().expect("encodes");
            // A Post's payload is the rest of the frame, so only its header can be cut short.
            let header = match &message {
                Envelope::Post { payload, .. } => frame.len() - payload.len(),
                Envelope::Traced { frame: inner, .. } => frame.len() - inner.len(),
                _ => frame.len(),
            };
            // A batch cut between two of its frames is a shorter batch.
            let boundaries: Vec<usize> = match &message {
                Envelope::Batch { frames } => frames
                    .iter()
                    .scan(1, |at, f| {
                        let start = *at;
                        *at += 4 + f.len();
                        Some(start)
                    })
                    .collect(),
                _ => Vec::new(),
            };
            for len in (0..header).filter(|len| !boundaries.contains(len)) {
                assert!(
                    Envelope::decode(frame.slice(..len)).is_err(),
                    "{message:?} cut at {len}"
                );
            }
        }
    }

    #[test]
    fn garbage_is_rejected() {
        assert_eq!(
            Envelope::decode(Bytes::from_static(&[99])),
            Err(WireError::UnknownTag(99))
        );
        assert_eq!(
            Envelope::decode(Bytes::from_static(&[ACK, 0, 0, 0, 0, 0, 0, 0, 1, 7])),
            Err(WireError::UnknownOutcome(7))
        );
        let bad_utf8 = [DELETE, 0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0xff];
        assert_eq!(
            Envelope::decode(Bytes::copy_from_slice(&bad_utf8)),
            Err(WireError::Utf8)
        );
        let long = "x".repeat(70_000);
        assert_eq!(Envelope::Probe { seq: 1 }.encode().map(|_| ()), Ok(()));
        let too_long = Envelope::Delete {
            request: 1,
            reply_to: long,
            connection_id: String::new(),
            code: 1000,
            reason: String::new(),
        };
        assert_eq!(too_long.encode(), Err(WireError::TooLong));
        let too_many = Envelope::Acks {
            answers: vec![(1, Outcome::Done); MAX_ACKS + 1],
        };
        assert_eq!(too_many.encode(), Err(WireError::TooLong));
        let inner = batch([[PROBE, 0, 0, 0, 0, 0, 0, 0, 1].as_slice()].into_iter()).expect("batch");
        assert_eq!(
            batch([inner.as_ref()].into_iter()),
            Err(WireError::NestedBatch)
        );
        let mut nested = vec![BATCH, 0, 0, 0, u8::try_from(inner.len()).expect("short")];
        nested.extend_from_slice(&inner);
        assert_eq!(
            Envelope::decode(Bytes::from(nested)),
            Err(WireError::NestedBatch)
        );
        assert_eq!(
            Envelope::decode(Bytes::from_static(&[BATCH, 0, 0, 0, 9, 1])),
            Err(WireError::Truncated)
        );
        assert_eq!(traced("tp", "", &inner), Err(WireError::NestedBatch));
        let twice = traced("tp", "", &[PROBE, 0, 0, 0, 0, 0, 0, 0, 1]).expect("traced");
        assert_eq!(traced("tp", "", &twice), Err(WireError::NestedBatch));
        let mut nested = twice.to_vec();
        nested.truncate(1);
        nested.extend_from_slice(&[0, 0, 0, 0]);
        nested.extend_from_slice(&twice);
        assert_eq!(
            Envelope::decode(Bytes::from(nested)),
            Err(WireError::NestedBatch)
        );
        // A count larger than the frame holds is refused before anything is allocated for it.
        assert_eq!(
            Envelope::decode(Bytes::from_static(&[ACKS, 0xff, 0xff, 0, 0])),
            Err(WireError::Truncated)
        );
    }
}
