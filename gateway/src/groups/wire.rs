//! A group message or broadcast as it travels between nodes on a group or stage channel.
//!
//! One tag byte (1 group, 2 broadcast), the message number (`u64`, big-endian), then strings as
//! a `u16` length and UTF-8 bytes: the origin node, the stage, the group (group messages only)
//! and the excluded connection id (empty for none); the payload is the rest of the frame, so it
//! is never copied.
//!
//! A message of a group with history has the tag 3 and, after the excluded id, its position:
//! the epoch and the offset in decimal, each as a string. The store's append script writes
//! those (see `wsgate_connection_store::Announce`), so the head before them is encoded here
//! with [`Frame::encode_head`].

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::bus::wire::WireError;

const GROUP: u8 = 1;
const BROADCAST: u8 = 2;
const POSITIONED: u8 = 3;

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
    /// The position in the group's history (groups with history only): epoch and offset.
    pub(crate) position: Option<(String, u64)>,
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
        self.put_head(&mut out)?;
        if let Some((epoch, offset)) = &self.position {
            put_str(&mut out, epoch)?;
            put_str(&mut out, &offset.to_string())?;
        }
        out.put_slice(&self.payload);
        Ok(out.freeze())
    }

    /// The bytes before the position of a message of a group with history (tag 3), for the
    /// store's append script to complete.
    ///
    /// # Errors
    /// As for [`Frame::encode`].
    pub(crate) fn encode_head(&self) -> Result<Bytes, WireError> {
        let mut out = BytesMut::with_capacity(64);
        let positioned = Self {
            position: Some((String::new(), 0)),
            payload: Bytes::new(),
            ..self.clone()
        };
        positioned.put_head(&mut out)?;
        Ok(out.freeze())
    }

    fn put_head(&self, out: &mut BytesMut) -> Result<(), WireError> {
        out.put_u8(match (&self.group, &self.position) {
            (Some(_), Some(_)) => POSITIONED,
            (Some(_), None) => GROUP,
            (None, _) => BROADCAST,
        });
        out.put_u64(self.id);
        put_str(out, &self.origin)?;
        put_str(out, &self.stage)?;
        if let Some(group) = &self.group {
            put_str(out, group)?;
        }
        put_str(out, self.exclude.as_deref().unwrap_or_default())
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
        if !matches!(tag, GROUP | BROADCAST | POSITIONED) {
            return Err(WireError::UnknownTag(tag));
        }
        let id = frame.get_u64();
        let origin = take_str(&mut frame)?;
        let stage = take_str(&mut frame)?;
        let group = if tag == BROADCAST {
            None
        } else {
            Some(take_str(&mut frame)?)
        };
        let exclude = Some(take_str(&mut frame)?).filter(|e| !e.is_empty());
        let position = if tag == POSITIONED {
            let epoch = take_str(&mut frame)?;
            let offset = take_str(&mut frame)?
                .parse::<u64>()
                .map_err(|_| WireError::Truncated)?;
            Some((epoch, offset))
        } else {
            None
        };
        Ok(Self {
            origin,
            id,
            stage,
            group,
            exclude,
            position,
            payload: frame,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> [Frame; 3] {
        [
            Frame {
                origin: "node-a".into(),
                id: u64::MAX,
                stage: "prod".into(),
                group: Some("room:1".into()),
                exclude: Some("abc".into()),
                position: None,
                payload: Bytes::from_static(b"{\"x\":1}"),
            },
            Frame {
                origin: "node-b".into(),
                id: 7,
                stage: "prod".into(),
                group: Some("room:2".into()),
                exclude: None,
                position: Some(("e1".into(), 42)),
                payload: Bytes::from_static(b"hi"),
            },
            Frame {
                origin: "n".into(),
                id: 0,
                stage: "dev".into(),
                group: None,
                exclude: None,
                position: None,
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
    fn the_store_completes_a_head_into_the_frame() {
        let frame = samples()[1].clone();
        let head = frame.encode_head().expect("head");
        let position = wsgate_connection_store::Position {
            epoch: "e1".into(),
            offset: 42,
        };
        let published = wsgate_connection_store::announcement(&head, &position, b"hi");
        assert_eq!(Frame::decode(Bytes::from(published)), Ok(frame));
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
