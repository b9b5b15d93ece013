//! Forwarded callbacks waiting for the owner's `Ack` (or for the news that their frame reached
//! no node): a bounded map from request number to the waiting handler. A guard removes the entry when the handler stops waiting (answered, timed
//! out, or its HTTP request was dropped), so nothing leaks.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use dashmap::DashMap;
use tokio::sync::oneshot;

use crate::bus::wire::Outcome;

/// What a waiting handler learns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Answer {
    /// The owner's `Ack`.
    Ack(Outcome),
    /// The frame was published, but nobody listens on the owner's channel.
    NoSubscriber,
    /// The frame could not be published (Redis failed; it may or may not have been delivered).
    NotSent,
}

/// The waiting handlers of this node.
#[derive(Debug)]
pub(crate) struct Pending {
    waiting: DashMap<u64, oneshot::Sender<Answer>>,
    /// Entries in `waiting` (counted here: `DashMap::len` locks every shard).
    count: AtomicUsize,
    next: AtomicU64,
    capacity: usize,
}

/// One waiting handler; dropping it forgets the request.
#[derive(Debug)]
pub(crate) struct Waiter {
    pending: Arc<Pending>,
    /// The request number to put in the envelope.
    pub(crate) request: u64,
    /// Resolves with the owner's answer.
    pub(crate) answer: oneshot::Receiver<Answer>,
}

impl Drop for Waiter {
    fn drop(&mut self) {
        self.pending.take(self.request);
    }
}

impl Pending {
    /// An empty map holding at most `capacity` waiting handlers. Request numbers start at a
    /// random point so that a restarted node does not take a late `Ack` as an answer.
    pub(crate) fn new(capacity: usize) -> Arc<Self> {
        Arc::new(Self {
            waiting: DashMap::new(),
            count: AtomicUsize::new(0),
            next: AtomicU64::new(rand::random()),
            capacity,
        })
    }

    /// Registers a new waiting handler, or `None` when `capacity` are already waiting.
    pub(crate) fn wait(self: &Arc<Self>) -> Option<Waiter> {
        if self
            .count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < self.capacity).then_some(n + 1)
            })
            .is_err()
        {
            return None;
        }
        let request = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.waiting.insert(request, tx);
        Some(Waiter {
            pending: Arc::clone(self),
            request,
            answer: rx,
        })
    }

    /// Hands an answer to its waiting handler (ignored when nobody waits any more).
    pub(crate) fn complete(&self, request: u64, answer: Answer) {
        if let Some(tx) = self.take(request) {
            let _ = tx.send(answer);
        }
    }

    fn take(&self, request: u64) -> Option<oneshot::Sender<Answer>> {
        let (_, tx) = self.waiting.remove(&request)?;
        self.count.fetch_sub(1, Ordering::AcqRel);
        Some(tx)
    }

    /// Handlers waiting right now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.count.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_reach_their_waiter_and_dropped_waiters_free_their_slot() {
        let pending = Pending::new(2);
        let a = pending.wait().expect("room");
        let mut b = pending.wait().expect("room");
        assert!(pending.wait().is_none(), "bounded");
        pending.complete(b.request, Answer::Ack(Outcome::Full));
        assert_eq!(
            (&mut b.answer).await.expect("answered"),
            Answer::Ack(Outcome::Full)
        );
        drop(a);
        drop(b);
        assert_eq!(pending.len(), 0);
        let c = pending.wait().expect("room again");
        pending.complete(c.request.wrapping_add(1), Answer::NoSubscriber);
        assert_eq!(pending.len(), 1, "an unknown request is ignored");
    }
}
