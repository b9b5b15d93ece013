//! `list_node` on Redis: `SSCAN` over a node's index set, pruning ids whose record is gone.
//!
//! `SSCAN` returns every member present for the whole scan at least once, may repeat members
//! across pages, and treats `COUNT` (our `limit`) as a hint: a page can be larger than `limit`,
//! or empty while `next_cursor` is still `Some`.

use redis::aio::ConnectionLike;

use super::{RedisStore, err};
use crate::{Page, StoreError};

pub(super) async fn page(
    store: &RedisStore,
    node_id: &str,
    cursor: u64,
    limit: usize,
) -> Result<Page, StoreError> {
    let set_key = store.keys.node(node_id);
    let mut conn = store.conn.clone();
    let (next, mut ids): (u64, Vec<String>) = redis::cmd("SSCAN")
        .arg(&set_key)
        .arg(cursor)
        .arg("COUNT")
        .arg(limit.max(1))
        .query_async(&mut conn)
        .await
        .map_err(err("list_node"))?;
    ids.sort_unstable();
    ids.dedup();
    let exists = exist(&mut conn, store, &ids)
        .await
        .map_err(err("list_node"))?;
    let (live, gone): (Vec<_>, Vec<_>) = ids.into_iter().zip(exists).partition(|(_, e)| *e);
    let gone: Vec<String> = gone.into_iter().map(|(id, _)| id).collect();
    if !gone.is_empty()
        && let Err(error) = prune(&mut conn, store, &set_key, &gone).await
    {
        tracing::warn!(%error, node_id, "could not prune index entries of gone records");
    }
    Ok(Page {
        ids: live.into_iter().map(|(id, _)| id).collect(),
        next_cursor: (next != 0).then(|| next.to_string()),
    })
}

/// One `EXISTS` per id, pipelined (each command is single-key, so this splits per slot).
async fn exist(
    conn: &mut impl ConnectionLike,
    store: &RedisStore,
    ids: &[String],
) -> redis::RedisResult<Vec<bool>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("EXISTS").arg(store.keys.record(id));
    }
    pipe.query_async(conn).await
}

/// Drops `gone` from the set, then re-adds any whose record appeared meanwhile: `register`
/// writes the record before `SADD`, so a concurrent register is either re-added by its own
/// `SADD` (ours ran first) or seen by our re-check (ours ran after its record write).
async fn prune(
    conn: &mut impl ConnectionLike,
    store: &RedisStore,
    set_key: &str,
    gone: &[String],
) -> redis::RedisResult<()> {
    redis::cmd("SREM")
        .arg(set_key)
        .arg(gone)
        .exec_async(&mut *conn)
        .await?;
    let back: Vec<&String> = gone
        .iter()
        .zip(exist(conn, store, gone).await?)
        .filter_map(|(id, exists)| exists.then_some(id))
        .collect();
    if !back.is_empty() {
        redis::cmd("SADD")
            .arg(set_key)
            .arg(back)
            .exec_async(&mut *conn)
            .await?;
    }
    Ok(())
}
