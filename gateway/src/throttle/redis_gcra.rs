//! Shared buckets in Redis (one server or a Redis Cluster): one key per bucket holding its GCRA theoretical arrival time, updated
//! by a Lua script that reads the time from Redis (`TIME`), so node clocks never matter.
//!
//! Keys are `{prefix}:throttle:{<bucket>}`; the braces are a Redis Cluster hash tag, so keys that
//! belong together (a usage plan's rate and quota) land in one slot. Each call touches one key.

use std::time::Duration;

use async_trait::async_trait;
use redis::Script;
use wsgate_connection_store::redis_conn::{self, ConnectError, RedisConn as Conn, RedisTarget};

use super::gcra::{Limit, Take};
use super::shared::{SharedBucketError, SharedBuckets};

/// GCRA with partial grants. ARGV: interval (µs, may be fractional), burst, tokens wanted.
/// Returns `{granted, retry_after_us}`; the key expires once the bucket would be full again.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local want = tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
if tat < now then tat = now end
local available = math.floor((now + burst * interval - tat) / interval + 1e-9)
if available < 1 then
  return {0, math.ceil(tat + interval - burst * interval - now)}
end
local granted = math.min(want, available)
tat = tat + granted * interval
redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil((tat - now) / 1000) + 1000)
return {granted, 0}
";

/// [`SharedBuckets`] on one Redis server or a Redis Cluster.
#[derive(Clone)]
pub(crate) struct RedisBuckets {
    conn: Conn,
    prefix: String,
    script: Script,
    timeout: Duration,
}

impl std::fmt::Debug for RedisBuckets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisBuckets")
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisBuckets {
    /// Connects to the server at `seeds[0]`, or with `cluster` to the Redis Cluster the seeds
    /// belong to; every call is bounded by `timeout`.
    ///
    /// # Errors
    /// A malformed URL, or no connection within `connect_timeout`.
    pub(crate) async fn connect(
        seeds: &[String],
        cluster: bool,
        prefix: &str,
        timeout: Duration,
        connect_timeout: Duration,
    ) -> Result<Self, SharedBucketError> {
        let target = RedisTarget {
            seeds: seeds.to_vec(),
            cluster,
            timeout,
            connect_timeout,
        };
        let conn = redis_conn::connect(&target, None)
            .await
            .map_err(|error| match error {
                ConnectError::Timeout(after) => SharedBucketError::Timeout(after),
                ConnectError::Redis(e) => SharedBucketError::Redis(e),
            })?;
        Ok(Self {
            conn,
            prefix: prefix.to_string(),
            script: Script::new(SCRIPT),
            timeout,
        })
    }

    /// Runs a single-key script under the timeout; the answer is a list of integers.
    pub(super) async fn run(
        &self,
        script: &Script,
        key: String,
        args: &[String],
    ) -> Result<Vec<i64>, SharedBucketError> {
        let mut invocation = script.key(key);
        for arg in args {
            invocation.arg(arg);
        }
        let call = async {
            let mut conn: Conn = self.conn.clone();
            invocation.invoke_async::<Vec<i64>>(&mut conn).await
        };
        tokio::time::timeout(self.timeout, call)
            .await
            .map_err(|_| SharedBucketError::Timeout(self.timeout))?
            .map_err(SharedBucketError::Redis)
    }

    /// The key prefix.
    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The Redis key of bucket `name`.
    pub(crate) fn key(&self, name: &str) -> String {
        format!("{}:throttle:{{{name}}}", self.prefix)
    }
}

#[async_trait]
impl SharedBuckets for RedisBuckets {
    async fn take(&self, key: &str, limit: Limit, want: u32) -> Result<Take, SharedBucketError> {
        if limit.blocks_all() {
            return Ok(Take::Denied {
                retry_after_ns: u64::MAX,
            });
        }
        let args = [
            format!("{:.3}", limit.interval_ns() as f64 / 1000.0),
            limit.burst().to_string(),
            want.max(1).to_string(),
        ];
        let answer = self.run(&self.script, self.key(key), &args).await?;
        match answer[..] {
            [granted, _] if granted > 0 => Ok(Take::Granted(
                u32::try_from(granted).map_err(|_| SharedBucketError::Malformed)?,
            )),
            [0, retry_us] => Ok(Take::Denied {
                retry_after_ns: u64::try_from(retry_us)
                    .unwrap_or(0)
                    .saturating_mul(1000)
                    .max(1),
            }),
            _ => Err(SharedBucketError::Malformed),
        }
    }
}
