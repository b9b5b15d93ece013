//! The local registry: every connection this node holds (including ones whose `$connect` is still
//! running), each with its bounded outbox, its close signal and its last-active time.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, Ordering};
use std::sync::{Arc, OnceLock};

use dashmap::DashMap;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::events::ConnectionMeta;

const PENDING: u8 = 0;
const OPEN: u8 = 1;
const CLOSED: u8 = 2;

/// Why a message could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PushError {
    /// The connection is closed or closing.
    #[error("connection is gone")]
    Gone,
    /// The outbox is full (the client is not reading fast enough).
    #[error("outbound queue is full")]
    Full,
}

/// One connection held by this node.
#[derive(Debug)]
pub struct SessionHandle {
    /// Facts about the connection.
    pub meta: Arc<ConnectionMeta>,
    outbox: mpsc::Sender<Message>,
    state: AtomicU8,
    cancel: CancellationToken,
    close_request: OnceLock<(u16, String)>,
    last_active_ms: AtomicI64,
    dirty: AtomicBool,
}

impl SessionHandle {
    /// A pending handle and the receiving end of its outbox.
    pub fn new(
        meta: Arc<ConnectionMeta>,
        capacity: usize,
        parent: &CancellationToken,
    ) -> (Arc<Self>, mpsc::Receiver<Message>) {
        let (tx, rx) = mpsc::channel(capacity);
        let now = meta.connected_at_ms;
        let handle = Arc::new(Self {
            meta,
            outbox: tx,
            state: AtomicU8::new(PENDING),
            cancel: parent.child_token(),
            close_request: OnceLock::new(),
            last_active_ms: AtomicI64::new(now),
            dirty: AtomicBool::new(false),
        });
        (handle, rx)
    }

    /// Queues a message; never waits. While `$connect` runs, messages are held and delivered
    /// right after the upgrade.
    ///
    /// # Errors
    /// [`PushError::Gone`] when closed, [`PushError::Full`] when the outbox is full.
    pub fn push(&self, message: Message) -> Result<(), PushError> {
        if self.state.load(Ordering::Acquire) == CLOSED || self.cancel.is_cancelled() {
            return Err(PushError::Gone);
        }
        self.outbox.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PushError::Full,
            mpsc::error::TrySendError::Closed(_) => PushError::Gone,
        })
    }

    /// Queues a message for a group fan-out: like [`SessionHandle::push`], but without looking
    /// at the close signal (a lock per call, thousands of times per fan-out). A message queued
    /// for a connection that is being closed is written before its close frame when a `DELETE`
    /// closes it, and dropped with it at shutdown.
    ///
    /// # Errors
    /// [`PushError::Gone`] when closed, [`PushError::Full`] when the outbox is full.
    pub fn offer(&self, message: Message) -> Result<(), PushError> {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Err(PushError::Gone);
        }
        self.outbox.try_send(message).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => PushError::Full,
            mpsc::error::TrySendError::Closed(_) => PushError::Gone,
        })
    }

    /// Queues a message, waiting for room (used by the connection's own dispatcher).
    ///
    /// # Errors
    /// [`PushError::Gone`] when the session has ended.
    pub async fn send(&self, message: Message) -> Result<(), PushError> {
        self.outbox.send(message).await.map_err(|_| PushError::Gone)
    }

    /// Asks the session to close with `code` and `reason`; the first request wins.
    pub fn request_close(&self, code: u16, reason: impl Into<String>) {
        let _ = self.close_request.set((code, reason.into()));
        self.cancel.cancel();
    }

    /// The close requested through [`SessionHandle::request_close`], if any.
    pub fn close_request(&self) -> Option<&(u16, String)> {
        self.close_request.get()
    }

    /// Resolves when the session should close (close request or gateway shutdown).
    pub fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// True once the upgrade has completed and until the session ends.
    pub fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    /// True once the session has ended (or the handshake was abandoned).
    pub fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// Marks the upgrade complete.
    pub fn mark_open(&self) {
        let _ = self
            .state
            .compare_exchange(PENDING, OPEN, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Marks the session ended; later pushes answer Gone.
    pub fn mark_closed(&self) {
        self.state.store(CLOSED, Ordering::Release);
    }

    /// Records activity now (epoch ms); flushed to the store in batches.
    pub fn touch(&self, now_ms: i64) {
        self.last_active_ms.fetch_max(now_ms, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Last activity, epoch ms.
    pub fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }
}

/// All connections of this node by id.
#[derive(Debug, Default)]
pub struct Registry {
    sessions: DashMap<String, Arc<SessionHandle>>,
}

impl Registry {
    /// Adds a connection.
    pub fn insert(&self, handle: Arc<SessionHandle>) {
        self.sessions
            .insert(handle.meta.connection_id.clone(), handle);
    }

    /// Looks a connection up.
    pub fn get(&self, id: &str) -> Option<Arc<SessionHandle>> {
        self.sessions.get(id).map(|entry| Arc::clone(entry.value()))
    }

    /// Removes a connection.
    pub fn remove(&self, id: &str) -> Option<Arc<SessionHandle>> {
        self.sessions.remove(id).map(|(_, handle)| handle)
    }

    /// Connections held (pending and open).
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    /// True when no connection is held.
    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    /// Open connections whose last-active time changed since the previous call.
    pub fn take_touched(&self) -> Vec<(String, i64)> {
        self.sessions
            .iter()
            .filter(|entry| entry.is_open() && entry.take_dirty())
            .map(|entry| (entry.key().clone(), entry.last_active_ms()))
            .collect()
    }

    /// Calls `f` for every held connection, without collecting them (`f` must not block).
    pub fn for_each(&self, mut f: impl FnMut(&Arc<SessionHandle>)) {
        for entry in &self.sessions {
            f(entry.value());
        }
    }

    /// Every held connection (for shutdown).
    pub fn all(&self) -> Vec<Arc<SessionHandle>> {
        self.sessions
            .iter()
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }
}
