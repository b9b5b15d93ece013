//! Node membership on Redis: every gateway node holds a lease that it renews, and the other
//! nodes reap the connections of a node whose lease expired.
//!
//! # Keys (all hash-tagged `{P}`, so every script runs on one Redis Cluster slot)
//!
//! - `{P}:lease:{node}`: string, the node's current lease token, with a `PX` TTL.
//! - `{P}:nodes`: hash `node → token` of every node that registered and was not yet forgotten.
//! - `{P}:reaped:{node}`: tombstone holding the token whose lease a reaper claimed; it tells a
//!   node that comes back from a freeze that its connections were reaped (as opposed to Redis
//!   having lost its data, after which the node re-asserts its records instead).
//!
//! Every operation is one Lua script (or one command), so a renewal and a claim can never
//! interleave: either the node renews first (the claim finds a lease) or the claim writes the
//! tombstone first (the renewal reports [`LeaseRenewal::Lost`]).

use std::time::Duration;

use super::{RedisStore, err};
use crate::StoreError;

/// `KEYS`: lease, reaped, nodes. `ARGV`: node, token, ttl ms.
const ACQUIRE: &str = r"
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('DEL', KEYS[2])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 1
";

/// `KEYS`: lease, reaped, nodes. `ARGV`: node, token, ttl ms.
/// 1 renewed; 0 lease was missing and nobody claimed it (re-acquired); -1 claimed by a reaper
/// or held under another token.
const RENEW: &str = r"
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if cur then
  return -1
end
if redis.call('GET', KEYS[2]) == ARGV[2] then
  return -1
end
redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 0
";

/// `KEYS`: lease, reaped, nodes. `ARGV`: node, tombstone ttl ms.
/// 0 the lease is alive; 1 claimed (tombstone written when the token is known).
const CLAIM: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
local token = redis.call('HGET', KEYS[3], ARGV[1])
if token then
  redis.call('SET', KEYS[2], token, 'PX', ARGV[2])
end
return 1
";

/// `KEYS`: lease, nodes. `ARGV`: node. Drops the node from the hash unless it has a lease again.
const FORGET: &str = r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  return 0
end
return redis.call('HDEL', KEYS[2], ARGV[1])
";

/// `KEYS`: lease, nodes. `ARGV`: node, token. Graceful exit: only our own lease is dropped.
const RELEASE: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[2] then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
";

/// What a renewal found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseRenewal {
    /// The lease was ours and is extended.
    Held,
    /// The lease was gone and nobody had claimed it (Redis lost its data, or it expired while
    /// Redis or this node was unreachable and no reaper acted): it is ours again. The node's
    /// records may be gone too and must be re-asserted.
    Reacquired,
    /// A reaper claimed the lease (or another process holds it): this node's connections were,
    /// or are being, reaped. Close them without `$disconnect` and acquire a fresh lease.
    Lost,
}

/// What a reaper's claim on another node found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LeaseClaim {
    /// The node's lease is alive: leave it alone.
    Alive,
    /// The lease is gone and the node is now marked reaped: remove its records.
    Claimed,
}

fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl RedisStore {
    async fn eval(
        &self,
        op: &'static str,
        script: &str,
        keys: &[String],
        args: &[String],
    ) -> Result<i64, StoreError> {
        let mut cmd = redis::cmd("EVAL");
        cmd.arg(script).arg(keys.len()).arg(keys).arg(args);
        let mut conn = self.conn.clone();
        self.timed(op, async {
            cmd.query_async(&mut conn).await.map_err(err(op))
        })
        .await
    }

    fn lease_keys(&self, node_id: &str) -> Vec<String> {
        vec![
            self.keys.lease(node_id),
            self.keys.reaped(node_id),
            self.keys.nodes(),
        ]
    }

    /// Takes the lease of `node_id` under `token` for `ttl`, unconditionally, and registers the
    /// node (clearing any tombstone).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn acquire_lease(
        &self,
        node_id: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<(), StoreError> {
        let args = [node_id.to_owned(), token.to_owned(), ms(ttl).to_string()];
        self.eval("acquire_lease", ACQUIRE, &self.lease_keys(node_id), &args)
            .await
            .map(drop)
    }

    /// Extends the lease of `node_id` if `token` still holds it; see [`LeaseRenewal`].
    ///
    /// # Errors
    /// Backend errors (nothing is known then: keep the connections, try again).
    pub async fn renew_lease(
        &self,
        node_id: &str,
        token: &str,
        ttl: Duration,
    ) -> Result<LeaseRenewal, StoreError> {
        let args = [node_id.to_owned(), token.to_owned(), ms(ttl).to_string()];
        let outcome = self
            .eval("renew_lease", RENEW, &self.lease_keys(node_id), &args)
            .await?;
        Ok(match outcome {
            1 => LeaseRenewal::Held,
            0 => LeaseRenewal::Reacquired,
            _ => LeaseRenewal::Lost,
        })
    }

    /// Drops the lease of `node_id` if `token` holds it, and unregisters the node (graceful
    /// shutdown, after its records are gone).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn release_lease(&self, node_id: &str, token: &str) -> Result<(), StoreError> {
        let keys = [self.keys.lease(node_id), self.keys.nodes()];
        let args = [node_id.to_owned(), token.to_owned()];
        self.eval("release_lease", RELEASE, &keys, &args)
            .await
            .map(drop)
    }

    /// Every registered node id (alive or not yet reaped).
    ///
    /// # Errors
    /// Backend errors.
    pub async fn lease_nodes(&self) -> Result<Vec<String>, StoreError> {
        let mut cmd = redis::cmd("HKEYS");
        cmd.arg(self.keys.nodes());
        let mut conn = self.conn.clone();
        self.timed("lease_nodes", async {
            cmd.query_async(&mut conn).await.map_err(err("lease_nodes"))
        })
        .await
    }

    /// Whether `node_id` holds a lease right now.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn lease_alive(&self, node_id: &str) -> Result<bool, StoreError> {
        let mut cmd = redis::cmd("EXISTS");
        cmd.arg(self.keys.lease(node_id));
        let mut conn = self.conn.clone();
        self.timed("lease_alive", async {
            cmd.query_async(&mut conn).await.map_err(err("lease_alive"))
        })
        .await
    }

    /// A reaper's claim on `node_id`: if its lease is gone, marks it reaped (the tombstone lives
    /// for `tombstone_ttl`) so the node, should it come back, knows its connections are gone.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn claim_dead(
        &self,
        node_id: &str,
        tombstone_ttl: Duration,
    ) -> Result<LeaseClaim, StoreError> {
        let args = [node_id.to_owned(), ms(tombstone_ttl).to_string()];
        let outcome = self
            .eval("claim_dead", CLAIM, &self.lease_keys(node_id), &args)
            .await?;
        Ok(if outcome == 1 {
            LeaseClaim::Claimed
        } else {
            LeaseClaim::Alive
        })
    }

    /// Unregisters a reaped node, unless it acquired a lease again meanwhile. True if dropped.
    ///
    /// # Errors
    /// Backend errors.
    pub async fn forget_dead(&self, node_id: &str) -> Result<bool, StoreError> {
        let keys = [self.keys.lease(node_id), self.keys.nodes()];
        let args = [node_id.to_owned()];
        self.eval("forget_dead", FORGET, &keys, &args)
            .await
            .map(|n| n == 1)
    }
}
