//! A group message or broadcast as it travels between nodes on a group or stage channel.
//!
//! One tag byte (1 group, 2 broadcast), the message number (`u64`, big-endian), then strings as
//! a `u16` length and UTF-8 bytes: the origin node, the stage, the group (group messages only)
//! and the excluded connection id (empty for none); the payload is the rest of the frame, so it
//! is never copied.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::bus::wire::WireError;

const GROUP: u8 = 1;
const BROADCAST: u8 = 2;

/// One message for the members of a group (or every connection of a stage) on every node.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Frame {
    /// The node that published it.
    pub(crate) origin: String,
    /// Its number on that node (matches the publisher's wait for its own copy).
    pub(crate) id: u64,
    /// The stage.
    pub(crate) stage: String,
    /// The group; `None` for a broadcast to the whole stage.
    pub(crate) group: Option<String>,
    /// A connection that must not receive it (the sender).
    pub(crate) exclude: Option<String>,
    /// The callback body.
    pub(crate) payload: Bytes,
}

fn put_str(out: &mut BytesMut, text: &str) -> Result<(), WireError> {
    let len = u16::try_from(text.len()).map_err(|_| WireError::TooLong)?;
    out.put_u16(len);
    out.put_slice(text.as_bytes());
    Ok(())
}

fn take_str(frame: &mut Bytes) -> Result<String, WireError> {
    if frame.remaining() < 2 {
        return Err(WireError::Truncated);
    }
    let len = usize::from(frame.get_u16());
    if frame.remaining() < len {
        return Err(WireError::Truncated);
    }
    let bytes = frame.split_to(len);
    String::from_utf8(bytes.to_vec()).map_err(|_| WireError::Utf8)
}

impl Frame {
    /// Encodes the frame.
    ///
    /// # Errors
    /// [`WireError::TooLong`] for a string over 64 KiB (names are far shorter).
    pub(crate) fn encode(&self) -> Result<Bytes, WireError> {
        let mut out = BytesMut::with_capacity(64 + self.payload.len());
        out.put_u8(if self.group.is_some() {
            GROUP
        } else {
            BROADCAST
        });
        out.put_u64(self.id);
        put_str(&mut out, &self.origin)?;
        put_str(&mut out, &self.stage)?;
        if let Some(group) = &self.group {
            put_str(&mut out, group)?;
        }
        put_str(&mut out, self.exclude.as_deref().unwrap_or_default())?;
        out.put_slice(&self.payload);
        Ok(out.freeze())
    }

    /// Decodes a frame; the payload shares the frame's memory.
    ///
    /// # Errors
    /// A [`WireError`] for anything malformed.
    pub(crate) fn decode(mut frame: Bytes) -> Result<Self, WireError> {
        if frame.remaining() < 9 {
            return Err(WireError::Truncated);
        }
        let tag = frame.get_u8();
        if tag != GROUP && tag != BROADCAST {
            return Err(WireError::UnknownTag(tag));
        }
        let id = frame.get_u64();
        let origin = take_str(&mut frame)?;
        let stage = take_str(&mut frame)?;
        let group = if tag == GROUP {
            Some(take_str(&mut frame)?)
        } else {
            None
        };
        let exclude = Some(take_str(&mut frame)?).filter(|e| !e.is_empty());
        Ok(Self {
            origin,
            id,
            stage,
            group,
            exclude,
            payload: frame,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> [Frame; 2] {
        [
            Frame {
                origin: "node-a".into(),
                id: u64::MAX,
                stage: "prod".into(),
                group: Some("room:1".into()),
                exclude: Some("abc".into()),
                payload: Bytes::from_static(b"{\"x\":1}"),
            },
            Frame {
                origin: "n".into(),
                id: 0,
                stage: "dev".into(),
                group: None,
                exclude: None,
                payload: Bytes::from_static(&[0, 255]),
            },
        ]
    }

    #[test]
    fn frames_round_trip() {
        for frame in samples() {
            let bytes = frame.encode().expect("encodes");
            assert_eq!(Frame::decode(bytes).expect("decodes"), frame);
        }
    }

    #[test]
    fn truncated_and_unknown_frames_are_errors() {
        for frame in samples() {
            let bytes = frame.encode().expect("encodes");
            let header = bytes.len() - frame.payload.len();
            for len in 0..header {
                assert!(Frame::decode(bytes.slice(..len)).is_err(), "cut at {len}");
            }
        }
        assert_eq!(
            Frame::decode(Bytes::from_static(&[9, 0, 0, 0, 0, 0, 0, 0, 0])),
            Err(WireError::UnknownTag(9))
        );
    }
}
