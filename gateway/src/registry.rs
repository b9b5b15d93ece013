//! The local registry: every connection this node holds (including ones whose `$connect` is still
//! running), each with its outbox (bounded in messages and bytes, and by the node's byte budget),
//! its close signal and its last-active time.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, PoisonError};

use dashmap::DashMap;
use futures_util::task::AtomicWaker;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::events::ConnectionMeta;

const PENDING: u8 = 0;
const OPEN: u8 = 1;
const CLOSED: u8 = 2;

/// Why a message could not be queued for a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PushError {
    /// The connection is closed or closing.
    #[error("connection is gone")]
    Gone,
    /// The outbox is full (the client is not reading fast enough).
    #[error("outbound queue is full")]
    Full,
    /// The node's queue budget (`limits.node_queue_bytes`) is spent: no fault of this client.
    #[error("the node's queue budget is spent")]
    NodeFull,
}

/// How often a sender refused by the node's byte budget looks again.
pub(crate) const BUDGET_RETRY: std::time::Duration = std::time::Duration::from_millis(10);

/// A queue whose capacity grew beyond this many frames is given back once it is empty.
const SHRINK_ABOVE: usize = 16;

/// The bytes queued on this node, in every connection's inbound and outbound queues, against
/// `limits.node_queue_bytes`.
#[derive(Debug)]
pub(crate) struct ByteBudget {
    used: AtomicUsize,
    limit: usize,
}

impl ByteBudget {
    /// A budget of `limit` bytes.
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            used: AtomicUsize::new(0),
            limit,
        }
    }

    /// Takes `bytes` from the budget; false (and nothing taken) when that would pass the limit.
    pub(crate) fn try_take(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|total| *total <= self.limit)
            })
            .is_ok()
    }

    /// Gives `bytes` back.
    pub(crate) fn give_back(&self, bytes: usize) {
        self.used.fetch_sub(bytes, Ordering::AcqRel);
    }

    #[cfg(test)]
    /// Bytes taken now.
    pub(crate) fn used(&self) -> usize {
        self.used.load(Ordering::Acquire)
    }
}

/// How much one connection's outbox may hold.
#[derive(Debug, Clone, Copy)]
pub(crate) struct QueueLimits {
    /// Frames.
    pub messages: usize,
    /// Bytes of payload (one frame is always accepted into an empty queue).
    pub bytes: usize,
}

/// The frames waiting for one connection's socket, their payload bytes, and whether its session
/// still reads them.
#[derive(Debug, Default)]
struct Frames {
    queue: VecDeque<Message>,
    bytes: usize,
    closed: bool,
}

/// One connection held by this node.
///
/// The outbox is a bounded queue inside the handle (many producers: callbacks, group
/// fan-outs; one consumer: the session, through [`Outbox`]). It allocates
/// nothing until a frame is queued, where a `tokio::sync::mpsc` channel would allocate about
/// 2.3 KiB per connection up front (its shared state and a first block of 32 slots).
#[derive(Debug)]
pub(crate) struct SessionHandle {
    /// Facts about the connection.
    pub meta: Arc<ConnectionMeta>,
    frames: Mutex<Frames>,
    limits: QueueLimits,
    budget: Arc<ByteBudget>,
    /// Wakes the session when a frame is queued (one consumer: a lock-free waker slot rather
    /// than a `Notify`, whose waiter list takes a lock on every wait and wake).
    ready: AtomicWaker,
    state: AtomicU8,
    cancel: CancellationToken,
    close_request: OnceLock<(u16, String)>,
    last_active_ms: AtomicI64,
    dirty: AtomicBool,
}

impl SessionHandle {
    /// A pending handle and the receiving end of its outbox (bounded by `limits` and by the
    /// node's `budget`).
    pub(crate) fn new(
        meta: Arc<ConnectionMeta>,
        limits: QueueLimits,
        budget: Arc<ByteBudget>,
        parent: &CancellationToken,
    ) -> (Arc<Self>, Outbox) {
        let now = meta.connected_at_ms;
        let handle = Arc::new(Self {
            meta,
            frames: Mutex::default(),
            limits: QueueLimits {
                messages: limits.messages.max(1),
                bytes: limits.bytes,
            },
            budget,
            ready: AtomicWaker::new(),
            state: AtomicU8::new(PENDING),
            cancel: parent.child_token(),
            close_request: OnceLock::new(),
            last_active_ms: AtomicI64::new(now),
            dirty: AtomicBool::new(false),
        });
        let outbox = Outbox {
            handle: Arc::clone(&handle),
        };
        (handle, outbox)
    }

    fn frames(&self) -> MutexGuard<'_, Frames> {
        self.frames.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `message` unless the outbox is closed or full; hands it back when full.
    fn enqueue(&self, message: Message) -> Result<(), (PushError, Message)> {
        let mut frames = self.frames();
        if frames.closed {
            return Err((PushError::Gone, message));
        }
        let bytes = message.len();
        if frames.queue.len() >= self.limits.messages
            || (!frames.queue.is_empty() && frames.bytes + bytes > self.limits.bytes)
        {
            return Err((PushError::Full, message));
        }
        if !self.budget.try_take(bytes) {
            return Err((PushError::NodeFull, message));
        }
        frames.bytes += bytes;
        frames.queue.push_back(message);
        drop(frames);
        self.ready.wake();
        Ok(())
    }

    /// Queues a message; never waits. While `$connect` runs, messages are held and delivered
    /// right after the upgrade.
    ///
    /// # Errors
    /// [`PushError::Gone`] when closed, [`PushError::Full`] when the outbox is full.
    pub(crate) fn push(&self, message: Message) -> Result<(), PushError> {
        if self.state.load(Ordering::Acquire) == CLOSED || self.cancel.is_cancelled() {
            return Err(PushError::Gone);
        }
        self.enqueue(message).map_err(|(error, _)| error)
    }

    /// Queues a message for a group fan-out: like [`SessionHandle::push`], but without looking
    /// at the close signal (a lock per call, thousands of times per fan-out). A message queued
    /// for a connection that is being closed is written before its close frame when a `DELETE`
    /// closes it, and dropped with it at shutdown.
    ///
    /// # Errors
    /// [`PushError::Gone`] when closed, [`PushError::Full`] when the outbox is full.
    pub(crate) fn offer(&self, message: Message) -> Result<(), PushError> {
        if self.state.load(Ordering::Acquire) == CLOSED {
            return Err(PushError::Gone);
        }
        self.enqueue(message).map_err(|(error, _)| error)
    }

    /// The node's byte budget this outbox counts in.
    pub(crate) fn budget(&self) -> &ByteBudget {
        &self.budget
    }

    /// The outbox's bounds.
    pub(crate) fn limits(&self) -> QueueLimits {
        self.limits
    }

    /// Frames and payload bytes queued now.
    pub(crate) fn queued(&self) -> (usize, usize) {
        let frames = self.frames();
        (frames.queue.len(), frames.bytes)
    }

    /// Asks the session to close with `code` and `reason`; the first request wins.
    pub(crate) fn request_close(&self, code: u16, reason: impl Into<String>) {
        let _ = self.close_request.set((code, reason.into()));
        self.cancel.cancel();
    }

    /// The close requested through [`SessionHandle::request_close`], if any.
    pub(crate) fn close_request(&self) -> Option<&(u16, String)> {
        self.close_request.get()
    }

    /// Resolves when the session should close (close request or gateway shutdown).
    pub(crate) fn cancelled(&self) -> tokio_util::sync::WaitForCancellationFuture<'_> {
        self.cancel.cancelled()
    }

    /// True once the upgrade has completed and until the session ends.
    pub(crate) fn is_open(&self) -> bool {
        self.state.load(Ordering::Acquire) == OPEN
    }

    /// True once the session has ended (or the handshake was abandoned).
    pub(crate) fn is_closed(&self) -> bool {
        self.state.load(Ordering::Acquire) == CLOSED
    }

    /// Marks the upgrade complete.
    pub(crate) fn mark_open(&self) {
        let _ = self
            .state
            .compare_exchange(PENDING, OPEN, Ordering::AcqRel, Ordering::Acquire);
    }

    /// Marks the session ended; later pushes answer Gone.
    pub(crate) fn mark_closed(&self) {
        self.state.store(CLOSED, Ordering::Release);
    }

    /// Records activity now (epoch ms); flushed to the store in batches.
    pub(crate) fn touch(&self, now_ms: i64) {
        self.last_active_ms.fetch_max(now_ms, Ordering::Relaxed);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Last activity, epoch ms.
    pub(crate) fn last_active_ms(&self) -> i64 {
        self.last_active_ms.load(Ordering::Relaxed)
    }

    fn take_dirty(&self) -> bool {
        self.dirty.swap(false, Ordering::Relaxed)
    }
}

/// The receiving end of a connection's outbox, owned by its session. Dropping it closes the
/// outbox: later pushes answer [`PushError::Gone`] and queued frames are dropped.
#[derive(Debug)]
pub(crate) struct Outbox {
    handle: Arc<SessionHandle>,
}

impl Outbox {
    /// Takes the next queued frame, if any; never waits.
    pub(crate) fn try_recv(&mut self) -> Option<Message> {
        let handle = &self.handle;
        let mut frames = handle.frames();
        let message = frames.queue.pop_front()?;
        let bytes = message.len();
        frames.bytes -= bytes;
        handle.budget.give_back(bytes);
        if frames.queue.is_empty() && frames.queue.capacity() > SHRINK_ABOVE {
            frames.queue = VecDeque::new();
        }
        drop(frames);
        Some(message)
    }

    /// Waits for the next frame (cancel-safe: a frame is only taken when this returns).
    pub(crate) async fn recv(&mut self) -> Message {
        std::future::poll_fn(|cx| {
            // The waker is registered before the look, so a push after the look wakes this
            // task and none is missed.
            self.handle.ready.register(cx.waker());
            match self.try_recv() {
                Some(message) => std::task::Poll::Ready(message),
                None => std::task::Poll::Pending,
            }
        })
        .await
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        let mut frames = self.handle.frames();
        frames.closed = true;
        let dropped = std::mem::take(&mut frames.queue);
        self.handle
            .budget
            .give_back(std::mem::take(&mut frames.bytes));
        drop(frames);
        drop(dropped);
    }
}

/// All connections of this node by id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    sessions: DashMap<String, Arc<SessionHandle>>,
}

impl Registry {
    /// Adds a connection.
    pub(crate) fn insert(&self, handle: Arc<SessionHandle>) {
        self.sessions
            .insert(handle.meta.connection_id.clone(), handle);
    }

    /// Looks a connection up.
    pub(crate) fn get(&self, id: &str) -> Option<Arc<SessionHandle>> {
        self.sessions.get(id).map(|entry| Arc::clone(entry.value()))
    }

    /// Removes a connection.
    pub(crate) fn remove(&self, id: &str) -> Option<Arc<SessionHandle>> {
        self.sessions.remove(id).map(|(_, handle)| handle)
    }

    /// Connections held (pending and open).
    pub(crate) fn len(&self) -> usize {
        self.sessions.len()
    }

    /// Open connections whose last-active time changed since the previous call.
    pub(crate) fn take_touched(&self) -> Vec<(String, i64)> {
        self.sessions
            .iter()
            .filter(|entry| entry.is_open() && entry.take_dirty())
            .map(|entry| (entry.key().clone(), entry.last_active_ms()))
            .collect()
    }

    /// Calls `f` for every held connection, without collecting them (`f` must not block).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&Arc<SessionHandle>)) {
        for entry in &self.sessions {
            f(entry.value());
        }
    }

    /// Every held connection (for shutdown).
    pub(crate) fn all(&self) -> Vec<Arc<SessionHandle>> {
        self.sessions
            .iter()
            .map(|entry| Arc::clone(entry.value()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle(capacity: usize) -> (Arc<SessionHandle>, Outbox) {
        handle_with(capacity, usize::MAX, Arc::new(ByteBudget::new(usize::MAX)))
    }

    fn handle_with(
        messages: usize,
        bytes: usize,
        budget: Arc<ByteBudget>,
    ) -> (Arc<SessionHandle>, Outbox) {
        let meta = ConnectionMeta::bare("id");
        SessionHandle::new(
            Arc::new(meta),
            QueueLimits { messages, bytes },
            budget,
            &CancellationToken::new(),
        )
    }

    #[test]
    fn outbox_is_bounded_in_bytes_and_by_the_node_budget() {
        let budget = Arc::new(ByteBudget::new(10_000));
        let (a, mut a_out) = handle_with(100, 4_000, Arc::clone(&budget));
        let chunk = || Message::binary(vec![0u8; 1_500]);
        a.push(chunk()).unwrap();
        a.push(chunk()).unwrap();
        assert_eq!(a.push(chunk()), Err(PushError::Full), "4,500 > 4,000 bytes");
        // A frame larger than the limit still goes into an empty queue.
        let (b, b_out) = handle_with(100, 4_000, Arc::clone(&budget));
        b.push(Message::binary(vec![0u8; 6_000])).unwrap();
        assert_eq!(budget.used(), 9_000);
        let (c, _c_out) = handle_with(100, 4_000, Arc::clone(&budget));
        assert_eq!(
            c.push(chunk()),
            Err(PushError::NodeFull),
            "node budget spent"
        );
        drop(b_out);
        assert_eq!(
            budget.used(),
            3_000,
            "a dropped outbox gives its bytes back"
        );
        c.push(chunk()).unwrap();
        assert!(a_out.try_recv().is_some());
        assert_eq!(budget.used(), 3_000);
        a.push(chunk()).unwrap();
    }

    #[test]
    fn outbox_is_bounded_and_keeps_order() {
        let (handle, mut outbox) = handle(2);
        handle.push(Message::text("a")).unwrap();
        handle.push(Message::text("b")).unwrap();
        assert_eq!(handle.push(Message::text("c")), Err(PushError::Full));
        assert_eq!(outbox.try_recv(), Some(Message::text("a")));
        handle.push(Message::text("c")).unwrap();
        assert_eq!(outbox.try_recv(), Some(Message::text("b")));
        assert_eq!(outbox.try_recv(), Some(Message::text("c")));
        assert_eq!(outbox.try_recv(), None);
    }

    #[test]
    fn a_dropped_outbox_answers_gone() {
        let (handle, outbox) = handle(4);
        handle.push(Message::text("queued")).unwrap();
        drop(outbox);
        assert_eq!(handle.push(Message::text("late")), Err(PushError::Gone));
    }

    #[test]
    fn an_emptied_queue_gives_its_memory_back() {
        let (handle, mut outbox) = handle(100);
        for i in 0..50 {
            handle.push(Message::text(i.to_string())).unwrap();
        }
        while outbox.try_recv().is_some() {}
        assert_eq!(handle.frames().queue.capacity(), 0);
    }

    #[tokio::test]
    async fn recv_waits_for_a_push() {
        let (handle, mut outbox) = handle(4);
        let pusher = Arc::clone(&handle);
        let task = tokio::spawn(async move { outbox.recv().await });
        tokio::task::yield_now().await;
        pusher.push(Message::text("hello")).unwrap();
        assert_eq!(task.await.unwrap(), Message::text("hello"));
    }
}
