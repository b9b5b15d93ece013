//! The index sweep, on every node: each `cluster.index_sweep_interval`, the node lists its own
//! index of connection ids page by page. Listing prunes the ids whose record is gone (a removal
//! whose index step failed during a store outage leaves one), so the index of a node that runs
//! for months cannot grow with every outage it lived through. Then, on one node, the membership
//! sweep (`orphans`) removes the group memberships of connections whose record is gone.

use std::sync::Arc;

use tokio::time::{Instant, MissedTickBehavior, interval_at};

use super::Cluster;
use super::orphans::Orphans;
use crate::state::Shared;

/// Ids listed per page.
const PAGE: usize = 256;

pub(super) async fn run(shared: Arc<Shared>, cluster: Arc<Cluster>) {
    let period = cluster.config.index_sweep_interval;
    if period.is_zero() {
        return;
    }
    let mut tick = interval_at(Instant::now() + period, period);
    tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut orphans = Orphans::default();
    loop {
        tokio::select! {
            () = cluster.stop.cancelled() => return,
            _ = tick.tick() => {
                sweep(&shared, &cluster).await;
                // Like the reaper: not while this node's own view of the store is in doubt.
                if cluster.lease.healthy_for() >= cluster.config.lease_ttl {
                    orphans.sweep(&shared, &cluster).await;
                }
            }
        }
    }
}

/// One pass over the node's index; a store error ends it until the next period.
async fn sweep(shared: &Shared, cluster: &Cluster) {
    let mut cursor = None;
    loop {
        match shared.store.list_node(&cluster.node_id, cursor, PAGE).await {
            Ok(page) => cursor = page.next_cursor,
            Err(error) => {
                tracing::warn!(%error, "index sweep failed; trying again next period");
                return;
            }
        }
        if cursor.is_none() {
            return;
        }
    }
}
