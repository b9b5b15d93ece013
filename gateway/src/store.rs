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

/// First pause before a failed cleanup call is tried again; doubled up to [`RETRY_BACKOFF_MAX`].
pub(crate) const RETRY_BACKOFF: Duration = Duration::from_millis(100);
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Runs a cleanup call for a connection that ended (removing its record, dropping its group
/// memberships) until it succeeds, with doubling backoff, counted in
/// `wsgate_store_remove_retries_total` and logged once: a cleanup that failed is not one, and
/// nothing else removes what it leaves (a membership would outlive its connection for good). At
/// shutdown the drain timeout bounds the wait.
pub(crate) async fn until_ok<T, Fut>(
    what: &'static str,
    connection_id: &str,
    mut call: impl FnMut() -> Fut,
) -> T
where
    Fut: Future<Output = Result<T, StoreError>>,
{
    let mut pause = RETRY_BACKOFF;
    loop {
        match call().await {
            Ok(value) => return value,
            Err(error) => {
                if pause == RETRY_BACKOFF {
                    tracing::warn!(connection_id, %error, "cannot {what}; trying again");
                }
                metrics::counter!(telemetry::REMOVE_RETRY_TOTAL).increment(1);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(RETRY_BACKOFF_MAX);
            }
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
