//! The `ConnectionStore` seam: the operations the gateway needs from shared connection state.

use std::time::Duration;

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

    /// Like [`remove`](Self::remove), and in the same atomic step files a durable "`$disconnect`
    /// owed" entry holding the record, claimed by `claimer` until now + `claim_for`. Returns the
    /// record only to the one caller that removed it (also when racing plain `remove`). That
    /// caller runs `$disconnect` and then calls [`settle`](Self::settle); should it die first,
    /// the entry's claim expires and [`claim_owed`](Self::claim_owed) hands it to another caller.
    ///
    /// # Errors
    /// As for [`remove`](Self::remove). After a transient error the removal may have happened;
    /// the entry is then filed too and is claimed by someone else once `claim_for` has passed.
    async fn remove_owing(
        &self,
        connection_id: &str,
        claimer: &str,
        claim_for: Duration,
    ) -> Result<Option<ConnectionRecord>, StoreError>;

    /// The `$disconnect` owed for `connection_id` was delivered (or given up on): deletes the
    /// owed entry. Settling an id that owes nothing is `Ok`.
    ///
    /// # Errors
    /// Backend errors; the entry may then still exist and be claimed again after its claim
    /// expires (a second `$disconnect`).
    async fn settle(&self, connection_id: &str) -> Result<(), StoreError>;

    /// Claims up to `limit` owed entries whose claim has expired (their claimer died or gave up
    /// without settling) for `claimer` until now + `claim_for`, and returns their records. The
    /// claim is atomic: two callers never get the same entry within one claim period.
    ///
    /// An entry whose record cannot be decoded is dropped with a warning (nobody could deliver
    /// it) and not returned.
    ///
    /// # Errors
    /// Backend errors; entries claimed before the error stay claimed until `claim_for` passes.
    async fn claim_owed(
        &self,
        claimer: &str,
        claim_for: Duration,
        limit: usize,
    ) -> Result<Vec<ConnectionRecord>, StoreError>;

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
