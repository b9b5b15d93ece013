//! The group store as the gateway uses it: every call timed into
//! `wsgate_store_operation_seconds` and counted in `wsgate_store_errors_total` when it fails,
//! like the connection store's calls, under an `op` of its own (the store's names:
//! `add_connection`, `group_join`, `group_leave`, `group_forget`, `group_size`,
//! `group_members`, `connection_groups`, `stage_size`, `stage_connections`, `history_append`,
//! `history_read`).

use std::sync::Arc;

use async_trait::async_trait;
use wsgate_connection_store::{
    Announce, Appended, GroupStore, HistoryPage, HistoryStore, Membership, Page, Retention,
    StoreError,
};

use crate::store::metered;

/// A [`GroupStore`] wrapper with metrics.
#[derive(Debug)]
pub(crate) struct MeteredGroups {
    inner: Arc<dyn GroupStore>,
}

impl MeteredGroups {
    /// Wraps `inner`.
    pub(crate) fn new(inner: Arc<dyn GroupStore>) -> Self {
        Self { inner }
    }
}

#[async_trait]
impl HistoryStore for MeteredGroups {
    async fn append(
        &self,
        stage: &str,
        group: &str,
        payload: &[u8],
        retention: &Retention,
        announce: Option<Announce<'_>>,
    ) -> Result<Appended, StoreError> {
        metered(
            "history_append",
            (self.inner).append(stage, group, payload, retention, announce),
        )
        .await
    }

    async fn read(
        &self,
        stage: &str,
        group: &str,
        after: u64,
        limit: usize,
        retention: &Retention,
    ) -> Result<HistoryPage, StoreError> {
        metered(
            "history_read",
            (self.inner).read(stage, group, after, limit, retention),
        )
        .await
    }
}

#[async_trait]
impl GroupStore for MeteredGroups {
    async fn add_connection(&self, stage: &str, connection_id: &str) -> Result<(), StoreError> {
        metered(
            "add_connection",
            self.inner.add_connection(stage, connection_id),
        )
        .await
    }

    async fn join(
        &self,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError> {
        metered("group_join", self.inner.join(stage, group, connection_id)).await
    }

    async fn leave(
        &self,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError> {
        metered("group_leave", self.inner.leave(stage, group, connection_id)).await
    }

    async fn forget(
        &self,
        stage: &str,
        connection_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        metered("group_forget", self.inner.forget(stage, connection_id)).await
    }

    async fn group_size(&self, stage: &str, group: &str) -> Result<u64, StoreError> {
        metered("group_size", self.inner.group_size(stage, group)).await
    }

    async fn group_members(
        &self,
        stage: &str,
        group: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        metered(
            "group_members",
            (self.inner).group_members(stage, group, cursor, limit),
        )
        .await
    }

    async fn connection_groups(
        &self,
        stage: &str,
        connection_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        metered(
            "connection_groups",
            self.inner.connection_groups(stage, connection_id),
        )
        .await
    }

    async fn stage_size(&self, stage: &str) -> Result<u64, StoreError> {
        metered("stage_size", self.inner.stage_size(stage)).await
    }

    async fn stage_connections(
        &self,
        stage: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        metered(
            "stage_connections",
            (self.inner).stage_connections(stage, cursor, limit),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wsgate_connection_store::MemoryStore;

    /// Every method reaches the wrapped store (the conformance checks run through the wrapper).
    #[tokio::test]
    async fn the_wrapper_is_a_conforming_group_store() {
        let store = Arc::new(MeteredGroups::new(Arc::new(MemoryStore::new())));
        wsgate_connection_store::conformance::groups::run_all(Arc::clone(&store) as _).await;
        wsgate_connection_store::conformance::history::run_all(store).await;
    }
}
