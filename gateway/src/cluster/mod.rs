//! Several nodes as one gateway (with `store: {kind: redis}`): cross-node callbacks, node
//! leases, the reaper of dead nodes, and recovery from Redis outages and data loss.
//!
//! # Pieces
//! The frames travel on [`crate::bus`]: `Post`, `Delete`, group `Membership` changes (several
//! for one node in a `Batch`), their `Ack`s (several in `Acks`), and the `Probe` a node sends
//! itself.
//!
//! - `forward`: the callback API's path for a connection held by another node: look the
//!   record up (or find the owner remembered in `owners`), queue the frame for the owner in
//!   `outbox` (which publishes what is queued, batched per owner, in one round trip), wait
//!   (bounded) for its `Ack`.
//! - `inbox`: applies frames received from other nodes (bounded queue, one task, in order)
//!   and publishes the `Ack`s, batched per node and per read in one pipelined round trip.
//! - `lease`: renews this node's lease every `lease_ttl / 3` (one round trip that nothing else
//!   waits for), probes its own subscription, re-asserts records after Redis lost them (a task
//!   of its own, beside the renewals), and closes every socket when it learns that its
//!   connections were reaped while it was frozen or cut off.
//! - `reaper`: on every node, finds nodes whose lease expired, claims them, removes their
//!   records (each with an owed-`$disconnect` entry) and runs `$disconnect` for each record it
//!   removed (so exactly once cluster-wide); also delivers the owed `$disconnect`s of nodes
//!   that died before sending them.
//! - `sweep` and `orphans`: each node prunes its own index of connection ids; one node removes
//!   the group memberships of connections whose record is gone (a cleanup cut short).
//! - `view`: the nodes and this node's lease, as the admin page shows them.
//!
//! A memory store is one node: no cluster is built and callbacks for unknown ids answer 410.

mod forward;
mod inbox;
mod lease;
mod orphans;
mod outbox;
mod owners;
mod pending;
mod reaper;
mod sweep;
mod view;

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use wsgate_connection_store::{ConnectionStore, RedisStore, StoreError};

use self::lease::LeaseState;
use self::owners::Owners;
use self::pending::Pending;
pub(crate) use crate::bus::{BusError, ClusterBus, Receive};
use crate::config::ClusterConfig;
use crate::state::Shared;

/// How long the mark of a reaped node lives, so that a node frozen for less than this learns on
/// resuming that its connections were reaped (longer freezes look like Redis data loss).
const TOMBSTONE_TTL: Duration = Duration::from_secs(24 * 3600);
/// Batches of `Ack`s (each from one read of the receive queue, at most [`inbox::READ_BATCH`]
/// `Ack`s) waiting to be published.
const ACK_QUEUE: usize = 64;

/// This node's membership in the cluster.
#[derive(Debug)]
pub(crate) struct Cluster {
    node_id: String,
    config: ClusterConfig,
    bus: Arc<dyn ClusterBus>,
    members: RedisStore,
    /// This node's lease is taken, renewed and given back on a Redis connection of its own:
    /// store calls that pile up or time out on `members` (a burst of fan-out activity on a
    /// starved node, a reconnect) must not hold up a renewal and cost the node its sockets.
    leases: RedisStore,
    records: Arc<dyn ConnectionStore>,
    pending: Arc<Pending>,
    owners: Owners,
    outgoing: mpsc::Sender<outbox::Outgoing>,
    acks: mpsc::Sender<Vec<inbox::Ack>>,
    lease: LeaseState,
    fence: Arc<AtomicBool>,
    stop: CancellationToken,
}

/// The receiving ends that [`Cluster::spawn`] consumes once the shared state exists.
#[derive(Debug)]
pub(crate) struct Receivers {
    inbox: mpsc::Receiver<Bytes>,
    outgoing: mpsc::Receiver<outbox::Outgoing>,
    acks: mpsc::Receiver<Vec<inbox::Ack>>,
}

/// Why the cluster could not be joined.
#[derive(Debug, thiserror::Error)]
pub enum JoinError {
    /// The bus could not subscribe.
    #[error(transparent)]
    Bus(#[from] BusError),
    /// The lease could not be taken.
    #[error("cannot take this node's lease: {0}")]
    Lease(#[source] StoreError),
}

impl Cluster {
    /// Joins: takes this node's lease (on `leases`, a connection used for nothing else).
    /// `build_bus` gets what to hand received frames to.
    ///
    /// # Errors
    /// [`JoinError`] when Redis refuses or cannot be reached.
    pub(crate) async fn join<F, Fut>(
        node_id: String,
        config: ClusterConfig,
        members: RedisStore,
        leases: RedisStore,
        records: Arc<dyn ConnectionStore>,
        fence: Arc<AtomicBool>,
        build_bus: F,
    ) -> Result<(Arc<Self>, Receivers), JoinError>
    where
        F: FnOnce(Arc<dyn Receive>) -> Fut,
        Fut: Future<Output = Result<Arc<dyn ClusterBus>, BusError>>,
    {
        let (inbox_tx, inbox) = mpsc::channel(config.receive_queue_messages);
        let (acks_tx, acks) = mpsc::channel(ACK_QUEUE);
        // Each waiting forward queues one frame at most.
        let (outgoing_tx, outgoing) = mpsc::channel(config.max_pending_forwards);
        let pending = Pending::new(config.max_pending_forwards);
        let receive = inbox::Receiver::new(inbox_tx, Arc::clone(&pending));
        let bus = build_bus(Arc::new(receive)).await?;
        let lease = LeaseState::new();
        let started = tokio::time::Instant::now();
        leases
            .acquire_lease(&node_id, &lease.token(), config.lease_ttl)
            .await
            .map_err(JoinError::Lease)?;
        lease.held_from(started, config.lease_ttl);
        let cluster = Arc::new(Self {
            pending,
            owners: Owners::new(config.owner_cache_entries),
            outgoing: outgoing_tx,
            node_id,
            config,
            bus,
            members,
            leases,
            records,
            acks: acks_tx,
            lease,
            fence,
            stop: CancellationToken::new(),
        });
        Ok((
            cluster,
            Receivers {
                inbox,
                outgoing,
                acks,
            },
        ))
    }

    /// The store's Redis connection (multiplexed; shared by whoever clones it).
    pub(crate) fn redis(&self) -> wsgate_connection_store::redis_conn::RedisConn {
        self.members.connection()
    }

    /// Starts the inbox, ack, lease and reaper tasks; they run until [`Cluster::stop`].
    pub(crate) fn spawn(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        receivers: Receivers,
        tasks: &mut JoinSet<()>,
    ) {
        tasks.spawn(inbox::run(
            Arc::clone(shared),
            Arc::clone(self),
            receivers.inbox,
        ));
        tasks.spawn(outbox::run(Arc::clone(self), receivers.outgoing));
        tasks.spawn(inbox::send_acks(Arc::clone(self), receivers.acks));
        tasks.spawn(lease::run(Arc::clone(shared), Arc::clone(self)));
        tasks.spawn(lease::run_reassert(Arc::clone(shared), Arc::clone(self)));
        tasks.spawn(reaper::run(Arc::clone(shared), Arc::clone(self)));
        tasks.spawn(reaper::reap_leftovers(Arc::clone(shared), Arc::clone(self)));
        tasks.spawn(sweep::run(Arc::clone(shared), Arc::clone(self)));
    }

    /// Graceful exit, step 1, after this node's connections are closed and their records
    /// removed: stops the tasks (the caller then waits for them, so no renewal is in flight).
    pub(crate) fn stop(&self) {
        self.stop.cancel();
    }

    /// Graceful exit, step 2, once the tasks have ended: gives the lease back and leaves the
    /// node set, so no other node reaps this one.
    pub(crate) async fn release(&self) {
        if let Err(error) = self
            .leases
            .release_lease(&self.node_id, &self.lease.token())
            .await
        {
            tracing::warn!(%error, "cannot release this node's lease; it expires by itself");
        }
    }
}
