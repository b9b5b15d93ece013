//! [`AckStore`] on Redis.
//!
//! # Keys (prefix `P`)
//!
//! - `P:ack:{K}`: one string per seen id (`K` is the gateway's fixed-length key), hash-tagged
//!   by itself so ids spread over the slots of a Redis Cluster. Value `f:{owner}` while in
//!   flight (`PX` hold), `a` once acknowledged (`PX` window).
//!
//! A claim is one single-key script (`GET`, then `SET … PX` when absent), so of several nodes
//! racing on one id exactly one claims it; a release deletes the key only when it still holds
//! the releasing owner's claim.

use std::time::Duration;

use async_trait::async_trait;

use super::{RedisStore, err};
use crate::{AckClaim, AckStore, StoreError};

/// Answers the key's value, or sets it to `ARGV[1]` for `ARGV[2]` ms and answers nil.
const CLAIM: &str = "local v = redis.call('GET', KEYS[1]) \
                     if v then return v end \
                     redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) \
                     return false";
/// Deletes the key when it holds `ARGV[1]`.
const RELEASE: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
                       return redis.call('DEL', KEYS[1]) end return 0";

const IN_FLIGHT: &str = "f:";
const ACKNOWLEDGED: &str = "a";

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

#[async_trait]
impl AckStore for RedisStore {
    async fn ack_claim(
        &self,
        key: &str,
        owner: &str,
        hold: Duration,
    ) -> Result<AckClaim, StoreError> {
        let op = "ack_claim";
        let mut conn = self.conn.clone();
        let found: Option<String> = self
            .timed(op, async {
                redis::cmd("EVAL")
                    .arg(CLAIM)
                    .arg(1)
                    .arg(self.keys.ack(key))
                    .arg(format!("{IN_FLIGHT}{owner}"))
                    .arg(millis(hold))
                    .query_async(&mut conn)
                    .await
                    .map_err(err(op))
            })
            .await?;
        Ok(match found {
            None => AckClaim::Claimed,
            Some(value) => match value.strip_prefix(IN_FLIGHT) {
                Some(owner) => AckClaim::InFlight {
                    owner: owner.to_owned(),
                },
                None => AckClaim::Acknowledged,
            },
        })
    }

    async fn ack_done(&self, key: &str, _owner: &str, window: Duration) -> Result<(), StoreError> {
        let op = "ack_done";
        let mut conn = self.conn.clone();
        self.timed(op, async {
            redis::cmd("SET")
                .arg(self.keys.ack(key))
                .arg(ACKNOWLEDGED)
                .arg("PX")
                .arg(millis(window))
                .exec_async(&mut conn)
                .await
                .map_err(err(op))
        })
        .await
    }

    async fn ack_release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let op = "ack_release";
        let mut conn = self.conn.clone();
        self.timed(op, async {
            redis::cmd("EVAL")
                .arg(RELEASE)
                .arg(1)
                .arg(self.keys.ack(key))
                .arg(format!("{IN_FLIGHT}{owner}"))
                .exec_async(&mut conn)
                .await
                .map_err(err(op))
        })
        .await
    }
}
