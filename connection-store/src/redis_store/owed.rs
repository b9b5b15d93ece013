//! Owed `$disconnect` entries on Redis: `remove_owing`, `settle` and `claim_owed`.
//!
//! # Keys
//!
//! - `{P:conn:ID}:owed`: hash `rec` (the removed record's stored value), `by` (claimer), `until`
//!   (claim deadline, epoch ms of the Redis server clock). Its hash tag is the record key's
//!   name, so it lives on the record's Redis Cluster slot and one script can move the record
//!   into it. (Connection ids must not contain `{` or `}`; gateway ids never do.)
//! - `{P}:owed`: sorted set of ids that may owe a `$disconnect`, scored by when to look at them
//!   next. Only a hint: the claim itself is decided on the entry.
//!
//! # Operations
//!
//! - `remove_owing`: first the hint (`ZADD {P}:owed now+claim_for id`), then one script on the
//!   record's slot that moves the record into the entry (`GET`, `DEL`, `HSET`), then `SREM` of
//!   the node index. Hint first, so a caller that dies in between leaves an indexed entry or
//!   no entry at all, never an entry nobody can find. When there was no record to remove (the
//!   sessions of a node that was reaped while frozen, a reaper that lost the race), the hint is
//!   taken back unless an entry exists (another remover's, whose hint ours re-scored) or the
//!   hint was moved since: otherwise each would stay until a claim pass found it due, a whole
//!   `claim_for` later.
//! - `settle`: `DEL` the entry and `ZREM` the hint.
//! - `claim_owed`: one script on `{P}:owed` takes up to `limit` ids whose hint is due and moves
//!   their hints to now+claim_for (so concurrent callers look at disjoint ids); then, per id, a
//!   script on the entry takes the claim only if the entry's own claim has expired. A due hint
//!   without an entry (settled, or its `remove_owing` found no record) is dropped, unless it
//!   was moved again meanwhile.
//!
//! Every script reads the time with `TIME` on the server, so client clocks do not matter.

use std::sync::LazyLock;
use std::time::Duration;

use futures_util::StreamExt;
use redis::Script;

use super::{RedisStore, codec, err};
use crate::{ConnectionRecord, StoreError};

/// Server time in epoch ms, as a Lua prelude.
macro_rules! lua_now {
    () => {
        "local t = redis.call('TIME')\nlocal now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    };
}

/// `KEYS`: owed index. `ARGV`: id, claim ms. The score written.
static HINT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        lua_now!(),
        "local score = string.format('%.0f', now + tonumber(ARGV[2]))\n",
        "redis.call('ZADD', KEYS[1], score, ARGV[1])\n",
        "return score\n"
    ))
});

/// `KEYS`: record, entry. `ARGV`: claimer, claim ms. The removed value, or nil.
static REMOVE_OWING: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "local v = redis.call('GET', KEYS[1])\n",
        "if not v then\n  return false\nend\n",
        "redis.call('DEL', KEYS[1])\n",
        lua_now!(),
        "redis.call('HSET', KEYS[2], 'rec', v, 'by', ARGV[1], 'until', string.format('%.0f', now + tonumber(ARGV[2])))\n",
        "return v\n"
    ))
});

/// `KEYS`: owed index. `ARGV`: claim ms, limit. `{until, id…}`: the due ids, whose hints now
/// carry `until`.
static CLAIM_HINTS: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        lua_now!(),
        "local deadline = string.format('%.0f', now + tonumber(ARGV[1]))\n",
        "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now), 'LIMIT', 0, tonumber(ARGV[2]))\n",
        "for _, id in ipairs(ids) do\n  redis.call('ZADD', KEYS[1], deadline, id)\nend\n",
        "table.insert(ids, 1, deadline)\n",
        "return ids\n"
    ))
});

/// `KEYS`: entry. `ARGV`: claimer, claim ms. `{0, ''}` no entry; `{1, ''}` claimed by someone
/// else until later; `{2, rec}` claimed now.
static CLAIM_ENTRY: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "local e = redis.call('HMGET', KEYS[1], 'rec', 'until')\n",
        "if not e[1] then\n  return {0, ''}\nend\n",
        lua_now!(),
        "local deadline = tonumber(e[2])\n",
        "if deadline and deadline > now then\n  return {1, ''}\nend\n",
        "redis.call('HSET', KEYS[1], 'by', ARGV[1], 'until', string.format('%.0f', now + tonumber(ARGV[2])))\n",
        "return {2, e[1]}\n"
    ))
});

/// `KEYS`: owed index. `ARGV`: id, score. Drops the hint only if nobody moved it since.
static DROP_HINT: LazyLock<Script> = LazyLock::new(|| {
    Script::new(concat!(
        "local s = redis.call('ZSCORE', KEYS[1], ARGV[1])\n",
        "if s and tonumber(s) == tonumber(ARGV[2]) then\n",
        "  return redis.call('ZREM', KEYS[1], ARGV[1])\nend\n",
        "return 0\n"
    ))
});

/// Entries examined at once by `claim_owed`.
const CLAIM_CONCURRENCY: usize = 32;

/// `duration` in whole milliseconds, at least 1.
fn ms(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis())
        .unwrap_or(u64::MAX)
        .max(1)
}

impl RedisStore {
    async fn run_script<T: redis::FromRedisValue>(
        &self,
        op: &'static str,
        script: &Script,
        keys: &[String],
        args: &[String],
    ) -> Result<T, StoreError> {
        let mut invocation = script.prepare_invoke();
        for key in keys {
            invocation.key(key);
        }
        for arg in args {
            invocation.arg(arg);
        }
        let mut conn = self.conn.clone();
        self.timed(op, async {
            invocation.invoke_async(&mut conn).await.map_err(err(op))
        })
        .await
    }

    pub(super) async fn owed_remove(
        &self,
        connection_id: &str,
        claimer: &str,
        claim_for: Duration,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let claim_ms = ms(claim_for).to_string();
        let hint: String = self
            .run_script(
                "remove_owing",
                &HINT,
                &[self.keys.owed_index()],
                &[connection_id.to_owned(), claim_ms.clone()],
            )
            .await?;
        let raw: Option<Vec<u8>> = self
            .run_script(
                "remove_owing",
                &REMOVE_OWING,
                &[
                    self.keys.record(connection_id),
                    self.keys.owed(connection_id),
                ],
                &[claimer.to_owned(), claim_ms],
            )
            .await?;
        let Some(raw) = raw else {
            self.take_back_hint(connection_id, &hint).await;
            return Ok(None);
        };
        // The entry is filed whatever happens below; a corrupt one is dropped by `claim_owed`.
        let record = codec::decode(connection_id, &raw)?;
        self.unindex(&record.node_id, connection_id).await;
        Ok(Some(record))
    }

    /// Drops the hint `remove_owing` wrote for a record it did not find, unless an entry for
    /// the id exists (filed by whoever removed the record, before our `GET`: its hint must stay)
    /// or the hint was moved since (a later remover, or a claim pass, owns it). Best effort: a
    /// hint left behind is dropped by a claim pass once due.
    async fn take_back_hint(&self, connection_id: &str, score: &str) {
        let mut conn = self.conn.clone();
        let mut exists = redis::cmd("EXISTS");
        exists.arg(self.keys.owed(connection_id));
        let outcome = async {
            let entry: bool = self
                .timed("remove_owing", async {
                    exists
                        .query_async(&mut conn)
                        .await
                        .map_err(err("remove_owing"))
                })
                .await?;
            if !entry {
                self.run_script::<i64>(
                    "remove_owing",
                    &DROP_HINT,
                    &[self.keys.owed_index()],
                    &[connection_id.to_owned(), score.to_owned()],
                )
                .await?;
            }
            Ok::<(), StoreError>(())
        }
        .await;
        if let Err(error) = outcome {
            tracing::debug!(%error, connection_id, "cannot take back an owed hint; a claim pass drops it");
        }
    }

    pub(super) async fn owed_settle(&self, connection_id: &str) -> Result<(), StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd("DEL").arg(self.keys.owed(connection_id)).ignore();
        pipe.cmd("ZREM")
            .arg(self.keys.owed_index())
            .arg(connection_id)
            .ignore();
        let mut conn = self.conn.clone();
        self.timed("settle", async {
            pipe.exec_async(&mut conn).await.map_err(err("settle"))
        })
        .await
    }

    pub(super) async fn owed_claim(
        &self,
        claimer: &str,
        claim_for: Duration,
        limit: usize,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let claim_ms = ms(claim_for).to_string();
        let due: Vec<String> = self
            .run_script(
                "claim_owed",
                &CLAIM_HINTS,
                &[self.keys.owed_index()],
                &[claim_ms.clone(), limit.to_string()],
            )
            .await?;
        let Some((until, ids)) = due.split_first() else {
            return Ok(Vec::new());
        };
        // Built up front: a closure inside the stream trips the `Send` check of `async_trait`.
        let pending: Vec<_> = ids
            .iter()
            .map(|id| self.claim_entry(id, claimer, &claim_ms, until))
            .collect();
        let claims = futures_util::stream::iter(pending)
            .buffer_unordered(CLAIM_CONCURRENCY)
            .collect::<Vec<_>>()
            .await;
        let mut records = Vec::new();
        for claim in claims {
            if let Some(record) = claim? {
                records.push(record);
            }
        }
        Ok(records)
    }

    /// Claims one entry whose hint was due; drops the hint when the entry is gone.
    async fn claim_entry(
        &self,
        id: &str,
        claimer: &str,
        claim_ms: &str,
        hint_until: &str,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        let (outcome, raw): (i64, Vec<u8>) = self
            .run_script(
                "claim_owed",
                &CLAIM_ENTRY,
                &[self.keys.owed(id)],
                &[claimer.to_owned(), claim_ms.to_owned()],
            )
            .await?;
        match outcome {
            2 => match codec::decode(id, &raw) {
                Ok(record) => Ok(Some(record)),
                Err(error) => {
                    tracing::warn!(%error, connection_id = id, "dropping an owed $disconnect whose record is corrupt");
                    self.owed_settle(id).await?;
                    Ok(None)
                }
            },
            0 => {
                self.run_script::<i64>(
                    "claim_owed",
                    &DROP_HINT,
                    &[self.keys.owed_index()],
                    &[id.to_owned(), hint_until.to_owned()],
                )
                .await?;
                Ok(None)
            }
            _ => Ok(None),
        }
    }
}
