//! The `GroupStore` seam: cluster-wide records of which connections belong to which named
//! groups of a stage, and of every connection of a stage, for counts and paginated listings.
//!
//! The gateway keeps its own local index for delivery; this store is only the cluster-wide view
//! (member counts, member listings, the groups of a connection, and cleanup of a dead node's
//! memberships by the reaper).

use async_trait::async_trait;

use crate::{Page, StoreError};

/// The outcome of a join or leave.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Membership {
    /// The call changed the membership (false: it was already a member, or was not one).
    pub changed: bool,
    /// Members of the group right after the call, cluster-wide.
    pub size: u64,
}

/// Group membership records. Object-safe; implemented by both stores and checked by the
/// `conformance` module (`conformance::groups`).
///
/// Names are opaque to the store: the gateway validates them (no `{`, `}` or whitespace).
#[async_trait]
pub trait GroupStore: crate::HistoryStore + Send + Sync + std::fmt::Debug + 'static {
    /// Records `connection_id` as a connection of `stage` (for [`GroupStore::stage_connections`]).
    /// Idempotent.
    ///
    /// # Errors
    /// Backend errors.
    async fn add_connection(&self, stage: &str, connection_id: &str) -> Result<(), StoreError>;

    /// Adds `connection_id` to `group` of `stage` (idempotent).
    ///
    /// # Errors
    /// Backend errors; after a transient error the join may have landed.
    async fn join(
        &self,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError>;

    /// Removes `connection_id` from `group` of `stage` (idempotent).
    ///
    /// # Errors
    /// Backend errors.
    async fn leave(
        &self,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError>;

    /// Removes `connection_id` from every group it joined and from the stage's connections (when
    /// it closes, or when the reaper removes a dead node's connection). Answers each group this
    /// call removed it from with its size afterwards, sorted by name (so of two calls racing,
    /// each group is answered by one).
    ///
    /// # Errors
    /// Backend errors; the cleanup may then be partial and a retry finishes it. The stage's
    /// connections are changed last: while a partial cleanup leaves anything, the id is still
    /// listed by [`GroupStore::stage_connections`].
    async fn forget(
        &self,
        stage: &str,
        connection_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError>;

    /// Members of `group`, cluster-wide.
    ///
    /// # Errors
    /// Backend errors.
    async fn group_size(&self, stage: &str, group: &str) -> Result<u64, StoreError>;

    /// One page of the ids of `group`'s members. `cursor` `None` starts; the page's
    /// `next_cursor` is `None` at the end. Every member present for the whole iteration is
    /// returned at least once; `limit` is a hint where the backend only has one (Redis `SSCAN`).
    ///
    /// # Errors
    /// [`StoreError::InvalidCursor`] for a cursor this store did not hand out; backend errors.
    async fn group_members(
        &self,
        stage: &str,
        group: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError>;

    /// The groups `connection_id` belongs to, sorted.
    ///
    /// # Errors
    /// Backend errors.
    async fn connection_groups(
        &self,
        stage: &str,
        connection_id: &str,
    ) -> Result<Vec<String>, StoreError>;

    /// Connections of `stage`, cluster-wide.
    ///
    /// # Errors
    /// Backend errors.
    async fn stage_size(&self, stage: &str) -> Result<u64, StoreError>;

    /// One page of the ids of `stage`'s connections (same paging contract as
    /// [`GroupStore::group_members`]).
    ///
    /// # Errors
    /// As for [`GroupStore::group_members`].
    async fn stage_connections(
        &self,
        stage: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError>;
}
