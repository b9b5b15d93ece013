//! [`GroupStore`] on Redis.
//!
//! # Keys (prefix `P`)
//!
//! - `P:group:{S:G}`: set of the members of group `G` of stage `S`. The hash tag holds stage
//!   and group, so every group lands in a slot of its own on a Redis Cluster.
//! - `P:joined:{id}`: set of the groups connection `id` joined (for `forget`).
//! - `P:stage:{S}`: set of the connections of stage `S`.
//!
//! Join and leave change `P:joined:{id}` first, then the group with a single-key script that
//! also answers the group's size (atomic, so the size includes the change). Every command
//! touches one key, so all of this works on a Redis Cluster. Listings are `SSCAN` pages
//! (`COUNT` is a hint; members present for the whole scan are returned at least once).

use async_trait::async_trait;
use redis::aio::ConnectionLike;

use super::{RedisStore, err};
use crate::{GroupStore, Membership, Page, StoreError};

/// Adds `ARGV[1]` to the set `KEYS[1]`; answers `{added, size}`.
const JOIN: &str = "local n = redis.call('SADD', KEYS[1], ARGV[1]) \
                    return {n, redis.call('SCARD', KEYS[1])}";
/// Removes `ARGV[1]` from the set `KEYS[1]`; answers `{removed, size}`.
const LEAVE: &str = "local n = redis.call('SREM', KEYS[1], ARGV[1]) \
                     return {n, redis.call('SCARD', KEYS[1])}";

fn membership((changed, size): (i64, u64)) -> Membership {
    Membership {
        changed: changed > 0,
        size,
    }
}

fn cursor_of(cursor: Option<String>) -> Result<u64, StoreError> {
    match cursor {
        None => Ok(0),
        Some(cursor) => cursor
            .parse::<u64>()
            .map_err(|_| StoreError::InvalidCursor { cursor }),
    }
}

/// One `SSCAN` page of `key`.
async fn scan(
    conn: &mut impl ConnectionLike,
    key: &str,
    cursor: u64,
    limit: usize,
    op: &'static str,
) -> Result<Page, StoreError> {
    let (next, mut ids): (u64, Vec<String>) = redis::cmd("SSCAN")
        .arg(key)
        .arg(cursor)
        .arg("COUNT")
        .arg(limit.max(1))
        .query_async(conn)
        .await
        .map_err(err(op))?;
    ids.sort_unstable();
    ids.dedup();
    Ok(Page {
        ids,
        next_cursor: (next != 0).then(|| next.to_string()),
    })
}

impl RedisStore {
    /// Runs the join or leave `script` on a group after `first` changed the connection's set.
    async fn change(
        &self,
        op: &'static str,
        first: &'static str,
        script: &'static str,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError> {
        let mut pipe = redis::pipe();
        pipe.cmd(first)
            .arg(self.keys.joined(connection_id))
            .arg(group)
            .ignore();
        pipe.cmd("EVAL")
            .arg(script)
            .arg(1)
            .arg(self.keys.group(stage, group))
            .arg(connection_id);
        let mut conn = self.conn.clone();
        let (reply,): ((i64, u64),) = self
            .timed(op, async {
                pipe.query_async(&mut conn).await.map_err(err(op))
            })
            .await?;
        Ok(membership(reply))
    }
}

#[async_trait]
impl GroupStore for RedisStore {
    async fn add_connection(&self, stage: &str, connection_id: &str) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.timed("add_connection", async {
            redis::cmd("SADD")
                .arg(self.keys.stage(stage))
                .arg(connection_id)
                .exec_async(&mut conn)
                .await
                .map_err(err("add_connection"))
        })
        .await
    }

    async fn join(
        &self,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError> {
        self.change("group_join", "SADD", JOIN, stage, group, connection_id)
            .await
    }

    async fn leave(
        &self,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError> {
        self.change("group_leave", "SREM", LEAVE, stage, group, connection_id)
            .await
    }

    async fn forget(
        &self,
        stage: &str,
        connection_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let op = "group_forget";
        let joined_key = self.keys.joined(connection_id);
        let mut conn = self.conn.clone();
        self.timed(op, async {
            let mut groups: Vec<String> = redis::cmd("SMEMBERS")
                .arg(&joined_key)
                .query_async(&mut conn)
                .await
                .map_err(err(op))?;
            groups.sort_unstable();
            let mut pipe = redis::pipe();
            for group in &groups {
                pipe.cmd("EVAL")
                    .arg(LEAVE)
                    .arg(1)
                    .arg(self.keys.group(stage, group))
                    .arg(connection_id);
            }
            // The stage's set last: an id still in it is how a cleanup cut short is found
            // again (the gateway's membership sweep calls `forget` for it).
            pipe.cmd("DEL").arg(&joined_key).ignore();
            pipe.cmd("SREM")
                .arg(self.keys.stage(stage))
                .arg(connection_id)
                .ignore();
            let sizes: Vec<(i64, u64)> = pipe.query_async(&mut conn).await.map_err(err(op))?;
            // Only the groups this call removed it from: two forgets racing (the owner and a
            // sweep) report each group once.
            Ok(groups
                .into_iter()
                .zip(sizes)
                .filter(|(_, (removed, _))| *removed > 0)
                .map(|(group, (_, size))| (group, size))
                .collect())
        })
        .await
    }

    async fn group_size(&self, stage: &str, group: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        self.timed("group_size", async {
            redis::cmd("SCARD")
                .arg(self.keys.group(stage, group))
                .query_async(&mut conn)
                .await
                .map_err(err("group_size"))
        })
        .await
    }

    async fn group_members(
        &self,
        stage: &str,
        group: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let start = cursor_of(cursor)?;
        let key = self.keys.group(stage, group);
        let mut conn = self.conn.clone();
        self.timed(
            "group_members",
            scan(&mut conn, &key, start, limit, "group_members"),
        )
        .await
    }

    async fn connection_groups(
        &self,
        _stage: &str,
        connection_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.conn.clone();
        let mut groups: Vec<String> = self
            .timed("connection_groups", async {
                redis::cmd("SMEMBERS")
                    .arg(self.keys.joined(connection_id))
                    .query_async(&mut conn)
                    .await
                    .map_err(err("connection_groups"))
            })
            .await?;
        groups.sort_unstable();
        Ok(groups)
    }

    async fn stage_size(&self, stage: &str) -> Result<u64, StoreError> {
        let mut conn = self.conn.clone();
        self.timed("stage_size", async {
            redis::cmd("SCARD")
                .arg(self.keys.stage(stage))
                .query_async(&mut conn)
                .await
                .map_err(err("stage_size"))
        })
        .await
    }

    async fn stage_connections(
        &self,
        stage: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let start = cursor_of(cursor)?;
        let key = self.keys.stage(stage);
        let mut conn = self.conn.clone();
        self.timed(
            "stage_connections",
            scan(&mut conn, &key, start, limit, "stage_connections"),
        )
        .await
    }
}
