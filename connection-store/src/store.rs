//! The `ConnectionStore` seam: the six operations the gateway needs from shared connection state.

use async_trait::async_trait;

use crate::{ConnectionRecord, StoreError};

/// Where connection records live. Object-safe; the gateway holds an `Arc<dyn ConnectionStore>`
/// chosen from config (memory for one node, Redis for several).
///
/// Every implementation must pass the checks in the `conformance` module.
#[async_trait]
pub trait ConnectionStore: Send + Sync + std::fmt::Debug + 'static {
    /// Insert or replace a record (idempotent). If the id was registered on another node before,
    /// it moves to `record.node_id`.
    ///
    /// # Errors
    /// [`StoreError`] when the backend cannot be reached in time or rejects the write. After a
    /// transient error the write may still have landed, so a caller that gives the connection
    /// up should `remove` it (best effort).
    async fn register(&self, record: &ConnectionRecord) -> Result<(), StoreError>;

    /// Look a record up by connection id.
    ///
    /// # Errors
    /// [`StoreError::Corrupt`] if the stored value cannot be decoded; otherwise backend errors.
    async fn get(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Atomically remove; returns the record only to the one caller that actually removed it (so
    /// `$disconnect` can run exactly once cluster-wide when several nodes race to reap). Removing
    /// an unknown id returns `Ok(None)`.
    ///
    /// # Errors
    /// Backend errors, or [`StoreError::Corrupt`] when the removed value could not be decoded
    /// (the record is gone all the same). After a transient error the removal may still have
    /// happened, with the record lost to every caller; a retry then answers `Ok(None)`.
    async fn remove(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError>;

    /// Batched `lastActiveAt` updates: `(id, epoch ms)`. Monotonic: never moves a timestamp
    /// backwards. Unknown ids are ignored (a removed record is never recreated).
    ///
    /// # Errors
    /// Backend errors; the batch may then have been applied partly.
    async fn touch(&self, updates: &[(String, i64)]) -> Result<(), StoreError>;

    /// Page through the ids of records owned by `node_id`. `cursor` `None` starts; the returned
    /// page's `next_cursor` is `None` when done. Every record present for the whole iteration is
    /// returned at least once. `limit` bounds the page size where the backend can honour it (see
    /// each store's docs).
    ///
    /// # Errors
    /// [`StoreError::InvalidCursor`] for a cursor this store did not hand out; backend errors.
    async fn list_node(
        &self,
        node_id: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// Cheap health probe (Redis `PING`); the memory store is always healthy.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] or [`StoreError::Timeout`] when the backend does not answer.
    async fn health(&self) -> Result<(), StoreError>;
}

/// One page of [`ConnectionStore::list_node`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Page {
    /// Connection ids owned by the node.
    pub ids: Vec<String>,
    /// Pass back to get the next page; `None` means the iteration is complete.
    pub next_cursor: Option<String>,
}
