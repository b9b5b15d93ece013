//! Delivery to the members held by this node: one `try_send` into each member's bounded outbox,
//! never waiting for any member, so a slow member cannot slow the others. A member whose outbox
//! is full is counted as a drop and handled by `groups.slow_member`.

use std::sync::Arc;

use tokio_tungstenite::tungstenite::{Bytes, Message, Utf8Bytes};

use super::metrics;
use crate::config::SlowMember;
use crate::registry::{PushError, SessionHandle};

/// Close code for a member closed by the slow-member policy (Try Again Later).
pub(crate) const SLOW_CLOSE_CODE: u16 = 1013;
/// Its close reason.
pub(crate) const SLOW_CLOSE_REASON: &str = "Try again later: slow consumer";

/// What one fan-out did on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Counts {
    /// Members whose outbox took the message.
    pub delivered: u64,
    /// Members whose outbox was full (handled by the slow-member policy).
    pub dropped: u64,
}

/// The frame for a callback body: text when it is valid UTF-8, else binary (as for
/// `@connections` posts).
pub(crate) fn message(body: Bytes) -> Message {
    match Utf8Bytes::try_from(body.clone()) {
        Ok(text) => Message::Text(text),
        Err(_) => Message::Binary(body),
    }
}

/// Queues `message` for members one after another, never waiting.
#[derive(Debug)]
pub(crate) struct Fanout<'a> {
    message: &'a Message,
    exclude: Option<&'a str>,
    policy: SlowMember,
    counts: Counts,
}

impl<'a> Fanout<'a> {
    pub(crate) fn new(message: &'a Message, exclude: Option<&'a str>, policy: SlowMember) -> Self {
        Self {
            message,
            exclude,
            policy,
            counts: Counts::default(),
        }
    }

    /// Offers the message to one member.
    pub(crate) fn offer(&mut self, id: &str, handle: &Arc<SessionHandle>) {
        if self.exclude == Some(id) {
            return;
        }
        self.offer_message(id, handle, self.message);
    }

    /// Offers `message` (another form of the same message, e.g. its envelope) to one member,
    /// under the same policy.
    pub(crate) fn offer_message(
        &mut self,
        _id: &str,
        handle: &Arc<SessionHandle>,
        message: &Message,
    ) {
        match handle.offer(message.clone()) {
            Ok(()) => self.counts.delivered += 1,
            Err(PushError::Full) => {
                self.counts.dropped += 1;
                if self.policy == SlowMember::Close {
                    handle.request_close(SLOW_CLOSE_CODE, SLOW_CLOSE_REASON);
                }
            }
            // The node's budget is spent: dropped for this member, who is not to blame.
            Err(PushError::NodeFull) => self.counts.dropped += 1,
            // Closing: it is leaving its groups.
            Err(PushError::Gone) => {}
        }
    }

    /// Counts a member for whom the message is held (see `recover`) as delivered.
    pub(crate) fn count_held(&mut self) {
        self.counts.delivered += 1;
    }

    /// The totals, recorded in the metrics under `kind` (`group` or `broadcast`).
    pub(crate) fn finish(self, kind: &'static str) -> Counts {
        metrics::record_fanout(kind, self.counts);
        self.counts
    }
}
