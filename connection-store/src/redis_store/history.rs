//! [`HistoryStore`] on Redis: one stream per group, trimmed by count and age, and a hash with
//! the epoch and the offset counter.
//!
//! # Keys (prefix `P`)
//!
//! - `P:hpos:{S:G}`: hash `{epoch, offset}` of group `G` of stage `S`.
//! - `P:hist:{S:G}`: stream of its messages; entry id `{offset}-0`, fields `t` (epoch ms,
//!   Redis's clock) and `d` (the payload).
//!
//! Both carry the group's hash tag (as its member set and its channel `P:grp:{S:G}` do), so one
//! script touches them on one slot of a Redis Cluster, and offsets are cluster-wide.
//!
//! The append script draws on the epoch given by the caller only when the hash is missing (it
//! then also drops any stream left over), increments the offset, adds the entry with `MAXLEN`,
//! trims entries older than the retention's age with `MINID`, and publishes the announcement
//! with the position: one atomic step, so the messages published on the group's channel are in
//! offset order. With an age limit both keys expire after twice that age plus a minute without appends (an
//! expired hash means a new epoch, which is what a client must be told anyway).

use std::sync::LazyLock;

use async_trait::async_trait;
use redis::Script;

use super::{RedisStore, err};
use crate::history::{Announce, Appended, HistoryEntry, HistoryPage, HistoryStore, Position};
use crate::{Retention, StoreError};

/// Shared by both scripts: the epoch (created when missing) and the age trim.
const PRELUDE: &str = r"
local function epoch_of(pos, stream, candidate)
  local epoch = redis.call('HGET', pos, 'epoch')
  if not epoch then
    epoch = candidate
    redis.call('DEL', stream)
    redis.call('HSET', pos, 'epoch', epoch, 'offset', 0)
  end
  return epoch
end
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function trim_age(stream, max_age, now)
  if max_age <= 0 then return end
  local min = now - max_age
  local first = redis.call('XRANGE', stream, '-', '+', 'COUNT', 128)
  local cut = nil
  for _, entry in ipairs(first) do
    local fields = entry[2]
    local t = nil
    for i = 1, #fields, 2 do
      if fields[i] == 't' then t = tonumber(fields[i + 1]) end
    end
    if t and t >= min then cut = entry[1] break end
    cut = entry[1]
    local dash = string.find(cut, '-')
    cut = string.format('%d', tonumber(string.sub(cut, 1, dash - 1)) + 1) .. '-0'
  end
  if cut then redis.call('XTRIM', stream, 'MINID', cut) end
end
";

/// KEYS: pos, stream. ARGV: epoch candidate, payload, max messages, max age ms (0: none),
/// channel ('' : none), head. Answers `{epoch, offset, receivers (-1: none)}`.
const APPEND: &str = r"
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1])
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
local now = now_ms()
local off = string.format('%d', offset)
redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[3], off .. '-0', 't', string.format('%d', now), 'd', ARGV[2])
local max_age = tonumber(ARGV[4])
trim_age(KEYS[2], max_age, now)
if max_age > 0 then
  redis.call('PEXPIRE', KEYS[1], max_age * 2 + 60000)
  redis.call('PEXPIRE', KEYS[2], max_age * 2 + 60000)
end
local receivers = -1
if ARGV[5] ~= '' then
  local function s(x)
    local n = string.len(x)
    return string.char(math.floor(n / 256), n % 256) .. x
  end
  receivers = redis.call('PUBLISH', ARGV[5], ARGV[6] .. s(epoch) .. s(off) .. ARGV[2])
end
return {epoch, offset, receivers}
";

/// KEYS: pos, stream. ARGV: epoch candidate, after, limit, max age ms. Answers a flat list:
/// epoch, latest, earliest, then offset, time, payload for each entry.
const READ: &str = r"
local epoch = epoch_of(KEYS[1], KEYS[2], ARGV[1])
local latest = tonumber(redis.call('HGET', KEYS[1], 'offset'))
trim_age(KEYS[2], tonumber(ARGV[4]), now_ms())
local earliest = latest + 1
local first = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
if first[1] then
  local id = first[1][1]
  earliest = tonumber(string.sub(id, 1, string.find(id, '-') - 1))
end
local out = {epoch, string.format('%d', latest), string.format('%d', earliest)}
local start = '(' .. ARGV[2] .. '-0'
if tonumber(ARGV[2]) == 0 then start = '-' end
local entries = redis.call('XRANGE', KEYS[2], start, '+', 'COUNT', ARGV[3])
for _, entry in ipairs(entries) do
  local id = entry[1]
  local t, d = '0', ''
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 't' then t = fields[i + 1] end
    if fields[i] == 'd' then d = fields[i + 1] end
  end
  out[#out + 1] = string.sub(id, 1, string.find(id, '-') - 1)
  out[#out + 1] = t
  out[#out + 1] = d
end
return out
";

static APPEND_SCRIPT: LazyLock<Script> =
    LazyLock::new(|| Script::new(&format!("{PRELUDE}{APPEND}")));
static READ_SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(&format!("{PRELUDE}{READ}")));

fn age_ms(retention: &Retention) -> u64 {
    retention.max_age.map_or(0, |age| {
        u64::try_from(age.as_millis()).unwrap_or(u64::MAX).max(1)
    })
}

fn number<T: std::str::FromStr>(raw: &[u8], op: &'static str) -> Result<T, StoreError> {
    std::str::from_utf8(raw)
        .ok()
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| StoreError::Malformed { op })
}

#[async_trait]
impl HistoryStore for RedisStore {
    async fn append(
        &self,
        stage: &str,
        group: &str,
        payload: &[u8],
        retention: &Retention,
        announce: Option<Announce<'_>>,
    ) -> Result<Appended, StoreError> {
        let op = "history_append";
        let mut invocation = APPEND_SCRIPT.key(self.keys.history_position(stage, group));
        invocation
            .key(self.keys.history(stage, group))
            .arg(crate::history::new_epoch())
            .arg(payload)
            .arg(retention.max_messages.max(1))
            .arg(age_ms(retention))
            .arg(announce.map_or("", |a| a.channel))
            .arg(announce.map_or(&[][..], |a| a.head));
        let mut conn = self.conn.clone();
        let (epoch, offset, receivers): (String, u64, i64) = self
            .timed(op, async {
                invocation.invoke_async(&mut conn).await.map_err(err(op))
            })
            .await?;
        Ok(Appended {
            position: Position { epoch, offset },
            receivers: u64::try_from(receivers).ok(),
        })
    }

    async fn read(
        &self,
        stage: &str,
        group: &str,
        after: u64,
        limit: usize,
        retention: &Retention,
    ) -> Result<HistoryPage, StoreError> {
        let op = "history_read";
        let mut invocation = READ_SCRIPT.key(self.keys.history_position(stage, group));
        invocation
            .key(self.keys.history(stage, group))
            .arg(crate::history::new_epoch())
            .arg(after)
            .arg(limit.max(1))
            .arg(age_ms(retention));
        let mut conn = self.conn.clone();
        let reply: Vec<Vec<u8>> = self
            .timed(op, async {
                invocation.invoke_async(&mut conn).await.map_err(err(op))
            })
            .await?;
        let mut fields = reply.into_iter();
        let mut next = || fields.next().ok_or_else(|| StoreError::Malformed { op });
        let epoch = String::from_utf8_lossy(&next()?).into_owned();
        let latest = number(&next()?, op)?;
        let earliest = number(&next()?, op)?;
        let mut entries = Vec::new();
        loop {
            let Ok(offset) = next() else { break };
            entries.push(HistoryEntry {
                offset: number(&offset, op)?,
                at_ms: number(&next()?, op)?,
                payload: next()?,
            });
        }
        Ok(HistoryPage {
            epoch,
            latest,
            earliest,
            entries,
        })
    }
}
