//! `touch` on Redis: one pipelined round trip of single-key scripts per batch.

use redis::{ServerErrorKind, Value};

use super::{RedisStore, codec, err};
use crate::StoreError;

/// `KEYS[1]` record key, `ARGV[1]` new header (20 bytes), `ARGV[2]` TTL in ms (`0`: none).
///
/// Returns 0 for a missing key (never recreated), 1 when the record exists, -1 when its header
/// is not a number (left alone). Timestamps compare as Lua numbers (doubles), exact for
/// |t| < 2^53 ms.
pub(super) const SCRIPT: &str = r"
local cur = redis.call('GETRANGE', KEYS[1], 0, 19)
if string.len(cur) < 20 then
  return 0
end
local old = tonumber(cur)
if old == nil then
  return -1
end
if tonumber(ARGV[1]) > old then
  redis.call('SETRANGE', KEYS[1], 0, ARGV[1])
end
local ttl = tonumber(ARGV[2])
if ttl > 0 then
  redis.call('PEXPIRE', KEYS[1], ttl)
end
return 1
";

/// Sends the batch; loads the script and resends once if Redis had not cached it.
pub(super) async fn run(store: &RedisStore, updates: &[(String, i64)]) -> Result<(), StoreError> {
    let ttl_ms = store.ttl_ms().unwrap_or(0);
    let mut pipe = redis::pipe();
    // Per-command error replies come back as values, so one NOSCRIPT can be told apart.
    pipe.ignore_errors();
    for (id, at_ms) in updates {
        pipe.invoke_script(
            store
                .touch_script
                .key(store.keys.record(id))
                .arg(codec::header(*at_ms))
                .arg(ttl_ms),
        );
    }
    let mut conn = store.conn.clone();
    let mut replies: Vec<Value> = pipe.query_async(&mut conn).await.map_err(err("touch"))?;
    if replies.iter().any(is_noscript) {
        store
            .touch_script
            .load_async(&mut conn)
            .await
            .map_err(err("touch"))?;
        replies = pipe.query_async(&mut conn).await.map_err(err("touch"))?;
    }
    for ((id, _), reply) in updates.iter().zip(replies) {
        match reply {
            Value::Int(-1) => {
                tracing::warn!(connection_id = %id, "touch skipped a record with a corrupt header");
            }
            Value::ServerError(error) => return Err(StoreError::from_redis("touch", error.into())),
            _ => {}
        }
    }
    Ok(())
}

fn is_noscript(reply: &Value) -> bool {
    matches!(reply, Value::ServerError(e) if e.kind() == Some(ServerErrorKind::NoScript))
}
