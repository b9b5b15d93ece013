//! The gateway's view of the connection store: every call is timed and counted for `/metrics`,
//! and `register` is refused while this node is fenced (it lost its cluster lease and is
//! taking a fresh one, so a new connection must not be recorded under the old one).

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use wsgate_connection_store::{ConnectionRecord, ConnectionStore, Page, StoreError};

use crate::telemetry;

/// A [`ConnectionStore`] wrapper with metrics and the cluster fence.
#[derive(Debug)]
pub(crate) struct GatewayStore {
    inner: Arc<dyn ConnectionStore>,
    node_id: String,
    fence: Arc<AtomicBool>,
}

impl GatewayStore {
    /// Wraps `inner`; `fence` (shared with the cluster lease task) refuses registrations while set.
    pub(crate) fn new(
        inner: Arc<dyn ConnectionStore>,
        node_id: String,
        fence: Arc<AtomicBool>,
    ) -> Self {
        Self {
            inner,
            node_id,
            fence,
        }
    }
}

/// Runs a store call, timed into `wsgate_store_operation_seconds` and counted in
/// `wsgate_store_errors_total` when it fails, under `op`.
pub(crate) async fn metered<T>(
    op: &'static str,
    call: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    let started = Instant::now();
    let result = call.await;
    metrics::histogram!(telemetry::STORE_LATENCY, "op" => op)
        .record(started.elapsed().as_secs_f64());
    if result.is_err() {
        metrics::counter!(telemetry::STORE_ERROR_TOTAL, "op" => op).increment(1);
    }
    result
}

#[async_trait]
impl ConnectionStore for GatewayStore {
    async fn register(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        if self.fence.load(Ordering::Acquire) {
            metrics::counter!(telemetry::STORE_ERROR_TOTAL, "op" => "register").increment(1);
            return Err(StoreError::Fenced {
                node_id: self.node_id.clone(),
            });
        }
        metered("register", self.inner.register(record)).await
    }

    async fn get(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        metered("get", self.inner.get(connection_id)).await
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        metered("remove", self.inner.remove(connection_id)).await
    }

    async fn remove_owing(
        &self,
        connection_id: &str,
        claimer: &str,
        claim_for: Duration,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        metered(
            "remove_owing",
            self.inner.remove_owing(connection_id, claimer, claim_for),
        )
        .await
    }

    async fn settle(&self, connection_id: &str) -> Result<(), StoreError> {
        metered("settle", self.inner.settle(connection_id)).await
    }

    async fn claim_owed(
        &self,
        claimer: &str,
        claim_for: Duration,
        limit: usize,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        metered(
            "claim_owed",
            self.inner.claim_owed(claimer, claim_for, limit),
        )
        .await
    }

    async fn touch(&self, updates: &[(String, i64)]) -> Result<(), StoreError> {
        metered("touch", self.inner.touch(updates)).await
    }

    async fn list_node(
        &self,
        node_id: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        metered("list_node", self.inner.list_node(node_id, cursor, limit)).await
    }

    async fn health(&self) -> Result<(), StoreError> {
        metered("health", self.inner.health()).await
    }
}
