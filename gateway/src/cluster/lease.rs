//! This node's lease: renewed every `lease_ttl / 3`. What a renewal finds decides the rest:
//!
//! - held: all is well; a probe is published to our own channel, and a subscription that
//!   stopped receiving probes (or has no subscriber at all) is re-created;
//! - re-acquired (the lease was gone but nobody reaped us: Redis lost its data, or it
//!   expired while nobody could reap): every open connection's record is registered again, by
//!   the re-assert task beside this loop, so renewals go on every `lease_ttl / 3` however long
//!   the re-assert of a big node takes (its peers would otherwise reap it meanwhile); a
//!   re-assert that fails in part is retried after the next held renewal;
//! - lost (a reaper claimed us while we were frozen or cut off): the node is fenced (no new
//!   records), every local socket is closed with 1012 without a second `$disconnect` (their
//!   records are gone, so `store.remove` answers `None`), leftovers are dropped, and a fresh
//!   lease is taken;
//! - error (Redis unreachable): nothing is closed; the reaper pauses until renewals have
//!   succeeded for a whole `lease_ttl` again.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::Cluster;
use super::inbox::publish;
use crate::bus::wire::Envelope;
use crate::state::Shared;
use crate::telemetry;

/// Close code for sockets of a node whose connections were reaped (RFC 6455 "Service Restart").
pub(crate) const LOST_CLOSE_CODE: u16 = 1012;
const LOST_CLOSE_REASON: &str = "Service Restart: node rejoined the cluster";
/// Upper bound on waiting for closed sockets to finish before taking a fresh lease.
const CLOSE_WAIT: Duration = Duration::from_secs(10);
const POLL: Duration = Duration::from_millis(20);
/// Records re-registered at once after a data loss.
const REASSERT_CONCURRENCY: usize = 64;

/// The lease token and health, shared by the lease and reaper tasks.
#[derive(Debug)]
pub(super) struct LeaseState {
    token: Mutex<String>,
    healthy_since: Mutex<Option<Instant>>,
    probe_sent: AtomicU64,
    probe_seen: AtomicU64,
    /// Records must be re-asserted (set by renewals, cleared by the re-assert task).
    reassert_pending: AtomicBool,
    /// Wakes the re-assert task.
    reassert_wake: Notify,
    /// A probe is in flight (at most one: it runs beside the renewals, never in their way).
    probing: AtomicBool,
    /// Until when (milliseconds after `origin`) this node's lease is certainly held: the start
    /// of its last successful take or renewal plus `lease_ttl`. Nobody can have reaped this node
    /// before then, so its connections are still its own.
    held_until_ms: AtomicU64,
    origin: Instant,
}

fn new_token() -> String {
    crate::ids::request_id()
}

impl LeaseState {
    pub(super) fn new() -> Self {
        Self {
            token: Mutex::new(new_token()),
            healthy_since: Mutex::new(Some(Instant::now())),
            probe_sent: AtomicU64::new(0),
            probe_seen: AtomicU64::new(0),
            reassert_pending: AtomicBool::new(false),
            reassert_wake: Notify::new(),
            probing: AtomicBool::new(false),
            held_until_ms: AtomicU64::new(0),
            origin: Instant::now(),
        }
    }

    /// A take or renewal that started at `started` succeeded: the lease is held for `ttl` from
    /// then (Redis set its expiry after `started`).
    pub(super) fn held_from(&self, started: Instant, ttl: Duration) {
        let until = started.saturating_duration_since(self.origin) + ttl;
        let ms = u64::try_from(until.as_millis()).unwrap_or(u64::MAX);
        self.held_until_ms.store(ms, Ordering::Release);
    }

    /// Whether this node's lease is certainly held right now, so that no other node can have
    /// reaped its connections: the owner answers for them only then.
    pub(super) fn certainly_held(&self) -> bool {
        let now = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        now < self.held_until_ms.load(Ordering::Acquire)
    }

    pub(super) fn token(&self) -> String {
        self.token.lock().map(|t| t.clone()).unwrap_or_default()
    }

    fn renew_token(&self) -> String {
        let token = new_token();
        if let Ok(mut current) = self.token.lock() {
            current.clone_from(&token);
        }
        token
    }

    /// Renewals have succeeded without a gap since this long (zero when the last one failed).
    pub(super) fn healthy_for(&self) -> Duration {
        self.healthy_since
            .lock()
            .ok()
            .and_then(|since| since.map(|s| s.elapsed()))
            .unwrap_or_default()
    }

    fn set_healthy(&self, healthy: bool, restart: bool) {
        if let Ok(mut since) = self.healthy_since.lock() {
            match (healthy, restart, since.is_some()) {
                (false, _, _) => *since = None,
                (true, true, _) | (true, false, false) => *since = Some(Instant::now()),
                (true, false, true) => {}
            }
        }
    }

    pub(super) fn probe_seen(&self, seq: u64) {
        self.probe_seen.fetch_max(seq, Ordering::Relaxed);
    }
}

pub(super) async fn run(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let period = cluster.config.lease_ttl / 3;
    let mut tick = tokio::time::interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = cluster.stop.cancelled() => break,
            _ = tick.tick() => renew(&shared, &cluster).await,
        }
    }
}

async fn renew(shared: &Shared, cluster: &Arc<Cluster>) {
    use wsgate_connection_store::LeaseRenewal;
    let started = Instant::now();
    let token = cluster.lease.token();
    let outcome = cluster
        .leases
        .renew_lease(&cluster.node_id, &token, cluster.config.lease_ttl)
        .await;
    let label = match &outcome {
        Ok(LeaseRenewal::Held) => "held",
        Ok(LeaseRenewal::Reacquired) => "reacquired",
        Ok(LeaseRenewal::Lost) => "lost",
        Err(_) => "error",
    };
    metrics::counter!(telemetry::LEASE_TOTAL, "outcome" => label).increment(1);
    match outcome {
        Ok(LeaseRenewal::Held) => {
            cluster.lease.held_from(started, cluster.config.lease_ttl);
            cluster.lease.set_healthy(true, false);
            cluster.fence.store(false, Ordering::Release);
            if cluster.lease.reassert_pending.load(Ordering::Acquire) {
                // A re-assert that failed in part: try again (a running one takes no notice).
                cluster.lease.reassert_wake.notify_one();
            }
            probe_beside(cluster);
        }
        Ok(LeaseRenewal::Reacquired) => {
            tracing::warn!(
                connections = shared.registry.len(),
                "this node's lease was gone without a reaper's mark (Redis lost its data?); re-asserting its connections"
            );
            cluster.lease.held_from(started, cluster.config.lease_ttl);
            cluster.lease.set_healthy(true, true);
            cluster.fence.store(false, Ordering::Release);
            cluster
                .lease
                .reassert_pending
                .store(true, Ordering::Release);
            cluster.lease.reassert_wake.notify_one();
            probe_beside(cluster);
        }
        Ok(LeaseRenewal::Lost) => {
            tracing::error!(
                connections = shared.registry.len(),
                "this node's connections were reaped by another node (was it frozen or cut off?); closing them and rejoining"
            );
            cluster.lease.held_until_ms.store(0, Ordering::Release);
            cluster.lease.set_healthy(false, false);
            rejoin(shared, cluster).await;
        }
        Err(error) => {
            cluster.lease.set_healthy(false, false);
            tracing::warn!(%error, "cannot renew this node's lease; keeping connections open");
        }
    }
}

/// The re-assert task: runs [`reassert`] whenever a renewal asks for it, beside the renewal
/// loop. A request that arrives while one runs (Redis lost its data again) is kept by the
/// `Notify` and served right after.
pub(super) async fn run_reassert(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    loop {
        tokio::select! {
            () = cluster.stop.cancelled() => break,
            () = cluster.lease.reassert_wake.notified() => {}
        }
        if !cluster.lease.reassert_pending.swap(false, Ordering::AcqRel) {
            continue;
        }
        let done = tokio::select! {
            () = cluster.stop.cancelled() => break,
            done = reassert(&shared) => done,
        };
        if !done {
            cluster
                .lease
                .reassert_pending
                .store(true, Ordering::Release);
        }
    }
}

/// Registers every open local connection again (after Redis lost the records), up to
/// [`REASSERT_CONCURRENCY`] at a time; true when every record was written.
async fn reassert(shared: &Shared) -> bool {
    let open: Vec<_> = shared
        .registry
        .all()
        .into_iter()
        .filter(|h| h.is_open())
        .collect();
    let results: Vec<bool> = futures_util::stream::iter(open)
        .map(|handle| async move {
            let record = crate::ws::record(shared, &handle);
            if let Err(error) = shared.store.register(&record).await {
                tracing::debug!(%error, connection_id = %record.connection_id, "cannot re-assert a record");
                return false;
            }
            if let Err(error) = shared.groups.reassert(&handle).await {
                tracing::debug!(%error, connection_id = %record.connection_id, "cannot re-assert group memberships");
                return false;
            }
            if !handle.is_open() {
                // It closed meanwhile and its own removal may have run first: undo ours.
                let _ = shared.store.remove(&record.connection_id).await;
            }
            true
        })
        .buffer_unordered(REASSERT_CONCURRENCY)
        .collect()
        .await;
    let failed = results.iter().filter(|ok| !**ok).count();
    if failed > 0 {
        tracing::warn!(
            failed,
            "some connection records could not be re-asserted; retrying at the next renewal"
        );
    }
    tracing::info!(
        connections = results.len() - failed,
        "connection records re-asserted"
    );
    failed == 0
}

/// After our connections were reaped: fence, close every socket, drop leftovers, new lease.
async fn rejoin(shared: &Shared, cluster: &Cluster) {
    cluster.fence.store(true, Ordering::Release);
    let victims = shared.registry.all();
    for handle in &victims {
        handle.request_close(LOST_CLOSE_CODE, LOST_CLOSE_REASON);
    }
    let deadline = Instant::now() + CLOSE_WAIT;
    while Instant::now() < deadline
        && victims
            .iter()
            .any(|h| shared.registry.get(&h.meta.connection_id).is_some())
    {
        tokio::time::sleep(POLL).await;
    }
    drop_leftovers(shared, cluster).await;
    let token = cluster.lease.renew_token();
    let started = Instant::now();
    match cluster
        .leases
        .acquire_lease(&cluster.node_id, &token, cluster.config.lease_ttl)
        .await
    {
        Ok(()) => {
            cluster.lease.held_from(started, cluster.config.lease_ttl);
            cluster.lease.set_healthy(true, true);
            cluster.fence.store(false, Ordering::Release);
            tracing::info!(
                closed = victims.len(),
                "rejoined the cluster with a fresh lease"
            );
        }
        Err(error) => {
            tracing::warn!(%error, "cannot take a fresh lease; staying fenced until a renewal succeeds");
        }
    }
}

/// Records still filed under this node whose socket is gone (their `$disconnect` already ran:
/// either the reaper or the session's own close removed them first, or its removal failed after
/// running it), removed silently.
async fn drop_leftovers(shared: &Shared, cluster: &Cluster) {
    let mut cursor = None;
    loop {
        let page = match shared.store.list_node(&cluster.node_id, cursor, 256).await {
            Ok(page) => page,
            Err(error) => {
                tracing::warn!(%error, "cannot list leftover records");
                return;
            }
        };
        for id in page.ids {
            if shared.registry.get(&id).is_none() {
                let _ = shared.store.remove(&id).await;
            }
        }
        cursor = page.next_cursor;
        if cursor.is_none() {
            return;
        }
    }
}

/// Starts a [`probe`] in a task of its own unless one is still running: a bus that does not
/// answer must not delay the next renewal (the probe waits up to the bus's timeout, and longer
/// while its connection is re-made).
fn probe_beside(cluster: &Arc<Cluster>) {
    if cluster.lease.probing.swap(true, Ordering::AcqRel) {
        return;
    }
    let cluster = Arc::clone(cluster);
    tokio::spawn(async move {
        probe(&cluster).await;
        cluster.lease.probing.store(false, Ordering::Release);
    });
}

/// Publishes a probe to our own channel and re-creates the subscription when nobody listens
/// on it or the last two probes never arrived.
async fn probe(cluster: &Cluster) {
    let seq = cluster.lease.probe_sent.fetch_add(1, Ordering::Relaxed) + 1;
    let Ok(frame) = (Envelope::Probe { seq }).encode() else {
        return;
    };
    let deaf = match publish(cluster, &cluster.node_id, "probe", frame).await {
        Ok(0) => true,
        Ok(_) => cluster.lease.probe_seen.load(Ordering::Relaxed) + 2 < seq,
        Err(_) => false,
    };
    if deaf {
        tracing::warn!("this node's bus subscription is not receiving; re-subscribing");
        metrics::counter!(telemetry::BUS_ERROR_TOTAL, "op" => "resubscribe").increment(1);
        match cluster.bus.resubscribe().await {
            Ok(()) => {
                cluster.lease.probe_seen.store(seq, Ordering::Relaxed);
            }
            Err(error) => tracing::warn!(%error, "re-subscribing failed; trying again later"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn the_lease_is_certainly_held_for_its_ttl_from_the_start_of_the_renewal() {
        let lease = LeaseState::new();
        assert!(!lease.certainly_held(), "not before the first take");
        let started = Instant::now();
        // The renewal's answer comes later; its expiry was set somewhere in between.
        tokio::time::advance(Duration::from_millis(400)).await;
        lease.held_from(started, Duration::from_secs(3));
        assert!(lease.certainly_held());
        tokio::time::advance(Duration::from_millis(2_599)).await;
        assert!(lease.certainly_held());
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(
            !lease.certainly_held(),
            "counted from the start, not the answer"
        );
    }
}
