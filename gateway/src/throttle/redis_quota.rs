//! Quota counts in Redis: `{prefix}:quota:{<plan key>}:<period start>` holds the units handed
//! out in that period; it expires a day after the period ends. The hash tag is the one of the
//! key's rate bucket, so both live in one Cluster slot.

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;

use super::plans::period::Window;
use super::plans::quota::QuotaStore;
use super::redis_gcra::RedisBuckets;
use super::shared::SharedBucketError;

/// ARGV: limit, units wanted, expiry (epoch seconds). Returns `{granted}`.
static RESERVE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local used = tonumber(redis.call('GET', KEYS[1]) or '0') or 0
local granted = math.min(tonumber(ARGV[2]), tonumber(ARGV[1]) - used)
if granted <= 0 then return {0} end
redis.call('INCRBY', KEYS[1], granted)
redis.call('EXPIREAT', KEYS[1], ARGV[3])
return {granted}
",
    )
});

/// ARGV: units. Gives units back, never below zero, only while the period's key exists.
static RELEASE: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
local used = tonumber(redis.call('GET', KEYS[1]) or '-1') or -1
if used < 0 then return {0} end
local back = math.min(used, tonumber(ARGV[1]))
redis.call('DECRBY', KEYS[1], back)
return {back}
",
    )
});

const GRACE_SECS: i64 = 86_400;

impl RedisBuckets {
    /// The Redis key of `key`'s quota count for the period starting at `start`.
    pub(crate) fn quota_key(&self, key: &str, start: i64) -> String {
        format!("{}:quota:{{{key}}}:{start}", self.prefix())
    }
}

#[async_trait]
impl QuotaStore for RedisBuckets {
    async fn reserve(
        &self,
        key: &str,
        window: Window,
        limit: u64,
        want: u64,
    ) -> Result<u64, SharedBucketError> {
        let args = [
            limit.to_string(),
            want.max(1).to_string(),
            (window.end + GRACE_SECS).to_string(),
        ];
        let answer = self
            .run(&RESERVE, self.quota_key(key, window.start), &args)
            .await?;
        match answer[..] {
            [granted] => u64::try_from(granted).map_err(|_| SharedBucketError::Malformed),
            _ => Err(SharedBucketError::Malformed),
        }
    }

    async fn release(
        &self,
        key: &str,
        window: Window,
        units: u64,
    ) -> Result<(), SharedBucketError> {
        self.run(
            &RELEASE,
            self.quota_key(key, window.start),
            &[units.to_string()],
        )
        .await
        .map(|_| ())
    }
}
