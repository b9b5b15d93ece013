//! One bucket of the hierarchy, node-local or shared by the cluster, behind one interface.

use super::clock::Clock;
use super::gcra::{Gcra, Take};
use super::lease::{ClusterBucket, Decision};

/// A bucket: local GCRA, or a cluster bucket with a local lease.
#[derive(Debug)]
pub(super) enum Bucket {
    /// This node only.
    Local(Gcra),
    /// Shared by every node.
    Cluster(ClusterBucket),
}

impl Bucket {
    /// Takes one token; `now` is `clock`'s current reading (read once per request).
    pub(super) async fn acquire(&self, clock: &Clock, now: u64) -> Decision {
        match self {
            Self::Local(gcra) => match gcra.try_take(now) {
                Take::Granted(_) => Decision::Allow,
                Take::Denied { retry_after_ns } => Decision::Deny(retry_after_ns),
            },
            Self::Cluster(bucket) => bucket.acquire(clock, now).await,
        }
    }

    /// Gives a token back.
    pub(super) fn refund(&self, now: u64) {
        match self {
            Self::Local(gcra) => gcra.refund(),
            Self::Cluster(bucket) => bucket.refund(now),
        }
    }
}
