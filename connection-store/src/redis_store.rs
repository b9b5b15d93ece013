//! `RedisStore`: connection records in Redis, shared by every gateway node.
//!
//! # Key layout
//!
//! All keys start with the configured prefix (`P` below). Record keys carry no hash tag and
//! every record command or script touches exactly one key, so records spread over the slots of
//! a Redis Cluster. The node-membership keys (see `lease`) are hash-tagged `{P}` because their
//! scripts touch several of them at once. Keep `{`/`}` out of the prefix.
//!
//! - `P:conn:{connection_id}`: string. A 20-byte zero-padded signed decimal `lastActiveAt`
//!   header (epoch ms) followed by the record's camelCase JSON. The header is authoritative
//!   for `lastActiveAtMs`: `touch` overwrites it in place with `SETRANGE`, so a touch never
//!   rewrites the JSON. Carries a `PX` TTL when `record_ttl` is set, refreshed by `touch`.
//! - `P:node:{node_id}`: set of the connection ids registered on that node. No TTL (a set
//!   cannot be expired safely while any of its records lives); ids leave it through `remove`,
//!   or through `list_node`, which prunes ids whose record is gone (expired or corrupt).
//! - `{P:conn:{connection_id}}:owed` and `{P}:owed`: owed `$disconnect` entries and their
//!   index (see `owed`).
//!
//! # Operations
//!
//! - `register`: `SET conn PX ttl GET`, then `SADD node` once the record is written (never in
//!   the other order: `list_node` pruning relies on it). If the old value named another node,
//!   the id is also removed from that node's set.
//! - `get`: `GET conn`.
//! - `remove`: `GETDEL conn` (atomic: only one caller receives the value), then `SREM node`.
//! - `remove_owing`, `settle`, `claim_owed`: see `owed`.
//! - `touch`: one pipeline of `EVALSHA` calls, one per id, of a single-key script that only
//!   moves an existing record's header forward and refreshes its TTL. On `NOSCRIPT` (after a
//!   restart or failover) the script is loaded and the batch sent once more; touch is
//!   idempotent, so the retry is safe.
//! - `list_node`: `SSCAN node` (the cursor is Redis's), then `EXISTS` per id to drop and prune
//!   ids whose record is gone.
//!
//! Group memberships and the connections of each stage (the `GroupStore` side) are described
//! in `groups`, group histories (streams) in `history`, and the seen client message ids of
//! acknowledged routes (the `AckStore` side) in `acks`, deployments and stage pointers (the
//! `DeploymentStore` side) in `deployments`.
//!
//! Needs Redis 6.2 or later (`GETDEL`, `SET … GET`).
//!
//! # Redis Cluster
//!
//! [`RedisStore::connect_cluster_with`] talks to a Redis Cluster (masters reached from any
//! seed URL; topology changes followed). Pipelines are sent command by command there (see
//! `backend`), since their keys live in different slots.
//!
//! Every call runs under [`RedisStoreOptions::timeout`], so an outage answers
//! [`StoreError::Timeout`] or [`StoreError::Unavailable`] quickly; the connection manager
//! reconnects in the background and the next call after Redis returns succeeds.

mod acks;
mod codec;
mod deployments;
mod groups;
mod history;
mod lease;
mod list;
mod owed;
mod touch;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use redis::{RedisError, Script};

use crate::redis_conn::{self, ConnectError, RedisConn as Backend, RedisTarget};
use crate::{ConnectionRecord, ConnectionStore, Page, StoreError};
use codec::Keys;
pub use lease::{LeaseClaim, LeaseRenewal};

/// Tuning of a [`RedisStore`].
#[derive(Clone, Debug)]
pub struct RedisStoreOptions {
    /// Upper bound on every store call, connection attempts included. Default 2 s.
    pub timeout: Duration,
    /// TTL of each record, set on `register` and refreshed on `touch`, so the records of a
    /// cluster that died without reaping expire. The owning node must touch (or re-register)
    /// every live record more often than this. `None` (default): records never expire.
    pub record_ttl: Option<Duration>,
}

impl Default for RedisStoreOptions {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(2),
            record_ttl: None,
        }
    }
}

/// [`ConnectionStore`] on Redis; see the module docs for the key layout.
#[derive(Clone)]
pub struct RedisStore {
    conn: Backend,
    keys: Keys,
    options: RedisStoreOptions,
    touch_script: Script,
}

impl std::fmt::Debug for RedisStore {
    // The URL may carry a password, so only the prefix and options are shown.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("prefix", &self.keys.prefix())
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl RedisStore {
    /// Connects to the Redis at `url` with default options; keys start with `prefix`.
    ///
    /// # Errors
    /// [`StoreError::Rejected`] for a malformed URL; [`StoreError::Unavailable`] or
    /// [`StoreError::Timeout`] if Redis does not answer within the default timeout.
    pub async fn connect(url: &str, prefix: &str) -> Result<Self, StoreError> {
        Self::connect_with(url, prefix, RedisStoreOptions::default()).await
    }

    /// Like [`connect`](Self::connect), with explicit options.
    ///
    /// # Errors
    /// As for [`connect`](Self::connect).
    pub async fn connect_with(
        url: &str,
        prefix: &str,
        options: RedisStoreOptions,
    ) -> Result<Self, StoreError> {
        let target = RedisTarget::new(vec![url.to_string()], false, options.timeout);
        let conn = redis_conn::connect(&target, None)
            .await
            .map_err(connect_error)?;
        Ok(Self::with_backend(conn, prefix, options))
    }

    /// Connects to a Redis Cluster through any of the `urls` (seed nodes; the rest of the
    /// topology is discovered); keys start with `prefix`.
    ///
    /// # Errors
    /// As for [`connect`](Self::connect); [`StoreError::Rejected`] also when `urls` is empty.
    pub async fn connect_cluster_with(
        urls: &[String],
        prefix: &str,
        options: RedisStoreOptions,
    ) -> Result<Self, StoreError> {
        let target = RedisTarget::new(urls.to_vec(), true, options.timeout);
        let conn = redis_conn::connect(&target, None)
            .await
            .map_err(connect_error)?;
        Ok(Self::with_backend(conn, prefix, options))
    }

    fn with_backend(conn: Backend, prefix: &str, options: RedisStoreOptions) -> Self {
        Self {
            conn,
            keys: Keys::new(prefix),
            options,
            touch_script: Script::new(touch::SCRIPT),
        }
    }

    /// The store's connection (multiplexed, reconnecting), for other users of the same Redis.
    #[must_use]
    pub fn connection(&self) -> crate::redis_conn::RedisConn {
        self.conn.clone()
    }

    /// The record TTL in whole milliseconds (at least 1), if one is configured.
    fn ttl_ms(&self) -> Option<u64> {
        self.options
            .record_ttl
            .map(|ttl| u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1))
    }

    /// Runs `fut` under the configured timeout.
    async fn timed<T>(
        &self,
        op: &'static str,
        fut: impl Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let after = self.options.timeout;
        tokio::time::timeout(after, fut)
            .await
            .unwrap_or(Err(StoreError::Timeout { op, after }))
    }

    /// Best-effort `SREM`: a leftover index entry is pruned by a later `list_node`, so a failure
    /// here is logged rather than failing an operation that already took effect.
    async fn unindex(&self, node_id: &str, connection_id: &str) {
        let mut conn = self.conn.clone();
        let mut srem = redis::cmd("SREM");
        srem.arg(self.keys.node(node_id)).arg(connection_id);
        let outcome = self
            .timed("unindex", async {
                srem.exec_async(&mut conn).await.map_err(err("unindex"))
            })
            .await;
        if let Err(error) = outcome {
            tracing::warn!(
                %error,
                connection_id,
                node_id,
                "could not drop index entry; a later list_node prunes it"
            );
        }
    }
}

/// Maps a Redis error of operation `op`.
fn err(op: &'static str) -> impl Fn(RedisError) -> StoreError {
    move |e| StoreError::from_redis(op, e)
}

#[async_trait]
impl ConnectionStore for RedisStore {
    async fn register(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        let id = record.connection_id.as_str();
        let value = codec::encode(record)?;
        let mut set = redis::cmd("SET");
        set.arg(self.keys.record(id)).arg(value);
        if let Some(ttl) = self.ttl_ms() {
            set.arg("PX").arg(ttl);
        }
        set.arg("GET");
        let mut conn = self.conn.clone();
        let old: Option<Vec<u8>> = self
            .timed("register", async {
                let old = set.query_async(&mut conn).await.map_err(err("register"))?;
                redis::cmd("SADD")
                    .arg(self.keys.node(&record.node_id))
                    .arg(id)
                    .exec_async(&mut conn)
                    .await
                    .map_err(err("register"))?;
                Ok(old)
            })
            .await?;
        match old.as_deref().map(|raw| codec::decode(id, raw)) {
            Some(Ok(old)) if old.node_id != record.node_id => self.unindex(&old.node_id, id).await,
            Some(Err(error)) => {
                tracing::warn!(%error, connection_id = id, "replaced a corrupt record");
            }
            _ => {}
        }
        Ok(())
    }

    async fn get(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self
            .timed("get", async {
                redis::cmd("GET")
                    .arg(self.keys.record(connection_id))
                    .query_async(&mut conn)
                    .await
                    .map_err(err("get"))
            })
            .await?;
        raw.map(|raw| codec::decode(connection_id, &raw))
            .transpose()
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        let mut conn = self.conn.clone();
        let raw: Option<Vec<u8>> = self
            .timed("remove", async {
                redis::cmd("GETDEL")
                    .arg(self.keys.record(connection_id))
                    .query_async(&mut conn)
                    .await
                    .map_err(err("remove"))
            })
            .await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        // From here on this caller owns the removal, so nothing below may lose the record.
        let record = codec::decode(connection_id, &raw)?;
        self.unindex(&record.node_id, connection_id).await;
        Ok(Some(record))
    }

    async fn remove_owing(
        &self,
        connection_id: &str,
        claimer: &str,
        claim_for: Duration,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        self.owed_remove(connection_id, claimer, claim_for).await
    }

    async fn settle(&self, connection_id: &str) -> Result<(), StoreError> {
        self.owed_settle(connection_id).await
    }

    async fn claim_owed(
        &self,
        claimer: &str,
        claim_for: Duration,
        limit: usize,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        self.owed_claim(claimer, claim_for, limit).await
    }

    async fn touch(&self, updates: &[(String, i64)]) -> Result<(), StoreError> {
        if updates.is_empty() {
            return Ok(());
        }
        self.timed("touch", touch::run(self, updates)).await
    }

    async fn list_node(
        &self,
        node_id: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let start = match cursor {
            None => 0,
            Some(cursor) => cursor
                .parse::<u64>()
                .map_err(|_| StoreError::InvalidCursor { cursor })?,
        };
        self.timed("list_node", list::page(self, node_id, start, limit))
            .await
    }

    async fn health(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        self.timed("health", async {
            redis::cmd("PING")
                .exec_async(&mut conn)
                .await
                .map_err(err("health"))
        })
        .await
    }
}

/// A failed connect as the store reports it.
fn connect_error(error: ConnectError) -> StoreError {
    match error {
        ConnectError::Timeout(after) => StoreError::Timeout {
            op: "connect",
            after,
        },
        ConnectError::Redis(e) => StoreError::from_redis("connect", e),
    }
}
