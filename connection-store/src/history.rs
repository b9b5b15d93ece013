//! The `HistoryStore` seam: the recent messages of a group, each with a position (an epoch and
//! an offset), so a client that reconnects can be sent what it missed.
//!
//! Offsets start at 1 and grow by one per message of a group, cluster-wide. The epoch is a
//! random id stored with the offset counter: it is drawn anew whenever the counter is missing
//! (Redis lost its data, the key expired, the memory store restarted), so a position from
//! before such a loss can never be mistaken for one after it.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::time::Duration;

use async_trait::async_trait;

use crate::StoreError;

/// How much history one group keeps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Retention {
    /// Messages kept (the oldest go first).
    pub max_messages: u64,
    /// Payload bytes kept (the memory store; Redis keeps `max_messages`).
    pub max_bytes: u64,
    /// Messages older than this are dropped; `None`: kept until pushed out by count.
    pub max_age: Option<Duration>,
}

/// Where a message sits in its group's history.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Position {
    /// The history's epoch (changes when history is lost).
    pub epoch: String,
    /// The message's offset (1, 2, 3... within the epoch).
    pub offset: u64,
}

/// A message to publish in the same step as the append (Redis: one script, so the order of the
/// published messages is the order of the offsets).
///
/// The published message is `head`, then the epoch and the offset in decimal, each as a
/// big-endian `u16` length and its bytes, then the payload.
#[derive(Clone, Copy, Debug)]
pub struct Announce<'a> {
    /// The pub/sub channel.
    pub channel: &'a str,
    /// The bytes before the position.
    pub head: &'a [u8],
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The message's position.
    pub position: Position,
    /// Subscribers that received the announcement (`None`: nothing was published).
    pub receivers: Option<u64>,
}

/// One stored message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HistoryEntry {
    /// Its offset.
    pub offset: u64,
    /// When it was appended, epoch ms.
    pub at_ms: i64,
    /// The payload.
    pub payload: Vec<u8>,
}

/// A slice of a group's history.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct HistoryPage {
    /// The current epoch.
    pub epoch: String,
    /// The offset of the latest message (0: none yet in this epoch).
    pub latest: u64,
    /// The offset of the oldest message still held (`latest + 1` when none is).
    pub earliest: u64,
    /// Messages after the requested offset, oldest first, at most the requested number.
    pub entries: Vec<HistoryEntry>,
}

/// Group history. Object-safe; implemented by both stores and checked by the `conformance`
/// module (`conformance::history`).
#[async_trait]
pub trait HistoryStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends `payload` to the history of `group` of `stage`, trims it to `retention`, and
    /// publishes `announce` (when given and the store has pub/sub) with the new position, all
    /// in one step.
    ///
    /// # Errors
    /// Backend errors; after a transient error the message may have been appended.
    async fn append(
        &self,
        stage: &str,
        group: &str,
        payload: &[u8],
        retention: &Retention,
        announce: Option<Announce<'_>>,
    ) -> Result<Appended, StoreError>;

    /// Up to `limit` messages with offsets above `after`, oldest first, with the epoch and the
    /// range of offsets held (after trimming to `retention`).
    ///
    /// # Errors
    /// Backend errors.
    async fn read(
        &self,
        stage: &str,
        group: &str,
        after: u64,
        limit: usize,
        retention: &Retention,
    ) -> Result<HistoryPage, StoreError>;
}

/// A fresh random epoch: 16 hex digits.
pub(crate) fn new_epoch() -> String {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_nanos(),
    );
    format!("{:016x}", hasher.finish())
}

/// The published form of an appended message (see [`Announce`]).
#[must_use]
pub fn announcement(head: &[u8], position: &Position, payload: &[u8]) -> Vec<u8> {
    let offset = position.offset.to_string();
    let mut out = Vec::with_capacity(head.len() + payload.len() + 48);
    out.extend_from_slice(head);
    for text in [position.epoch.as_str(), offset.as_str()] {
        let len = u16::try_from(text.len()).unwrap_or(u16::MAX);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(text.as_bytes());
    }
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn epochs_differ_and_announcements_carry_the_position() {
        assert_ne!(new_epoch(), new_epoch());
        assert_eq!(new_epoch().len(), 16);
        let position = Position {
            epoch: "ab".into(),
            offset: 12,
        };
        assert_eq!(
            announcement(b"H", &position, b"x"),
            b"H\x00\x02ab\x00\x0212x".to_vec()
        );
    }
}
