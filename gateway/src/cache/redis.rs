//! The Redis side of caching: the Redis kind's shared entries (on the store's own connection),
//! and the channel that carries memory-cache invalidations between the nodes of a cluster.
//!
//! # Layout (Redis kind)
//! Per route, in one Redis Cluster slot (hash tag `{prefix:stage:route}`):
//! - `{prefix}:cache:{prefix:stage:route}:gen`: the route's generation (absent: 0); `INCR`
//!   invalidates every entry of the route in O(1), old entries expire by their ttl;
//! - `{prefix}:cache:{prefix:stage:route}:{sha256 hex}`: `<generation>:<t|b><status><body>`,
//!   written with `SET ... PX ttl`.
//!
//! A lookup reads the generation and the entry in one round trip (a Lua script); an entry of
//! another generation is a miss. The fill is written under the generation the lookup read, so
//! an invalidation between lookup and fill hides the fill too. Redis failing never fails a
//! message: the lookup is a miss, the answer comes from the integration (counted in
//! `wsgate_cache_errors_total`), and for a second after a failure lookups skip Redis, so an
//! unreachable Redis costs one `store.timeout` per second rather than one per message. Concurrent misses of one key coalesce on each node; across
//! nodes each node may call the integration once for the same key (a cross-node lock would
//! put a Redis round trip and a poll in every miss's path to save at most one call per node).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use redis::Script;
use serde::{Deserialize, Serialize};
use tokio::sync::{OnceCell, mpsc};
use wsgate_connection_store::redis_conn::{RedisConn, RedisTarget};

use super::key::KeyHash;
use super::{Answer, Entry, InvalidateError, ResponseCache, RouteCache, Uncached, redis_failed};
use crate::bus::BusError;
use crate::bus::channels::Channels;
use crate::bus::redis_channels::RedisChannels;
use crate::config::{RedisStoreConfig, StoreConfig};

/// Reads a route's generation and an entry (KEYS: generation, entry); answers
/// `{generation}` or `{generation, entry without its generation}` when the entry is of it.
const LOOKUP: &str = r"
local g = redis.call('GET', KEYS[1]) or '0'
local v = redis.call('GET', KEYS[2])
if v then
  local sep = string.find(v, ':', 1, true)
  if sep and string.sub(v, 1, sep - 1) == g then
    return {g, string.sub(v, sep + 1)}
  end
end
return {g}
";

/// After a failed lookup or store, how long lookups skip Redis (misses at once, counted as
/// `op="bypassed"`), so an unreachable Redis costs one timeout per interval, not one per message.
const BYPASS_AFTER_FAILURE: Duration = Duration::from_secs(1);

/// Invalidations from other nodes waiting to be applied; more are dropped (counted in
/// `wsgate_bus_dropped_total`) and the entries they name live until their ttl.
const CHANNEL_QUEUE: usize = 1024;

/// Why the cache could not be set up on Redis.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AttachError {
    /// The invalidation channel could not be subscribed.
    #[error("cache: cannot subscribe to the invalidation channel: {0}")]
    Channel(#[from] BusError),
}

/// What one miss's call ended with, as the requests that waited for it get it.
#[derive(Debug, Clone)]
enum Flight {
    Cached(Arc<Entry>),
    Uncached(Uncached),
}

type Flights = Mutex<HashMap<(u32, KeyHash), Arc<OnceCell<Flight>>>>;

/// The Redis kind's entries.
pub(super) struct Shared {
    conn: OnceLock<RedisConn>,
    timeout: Duration,
    lookup: Script,
    /// Misses being filled on this node, by route and key.
    flights: Flights,
    /// Lookups skip Redis until this many milliseconds after `started` (see
    /// [`BYPASS_AFTER_FAILURE`]).
    bypass_until_ms: AtomicU64,
    started: Instant,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

/// Takes a finished (or abandoned) flight out of the map, unless a newer one replaced it.
struct Landing<'a> {
    flights: &'a Flights,
    key: (u32, KeyHash),
    cell: Arc<OnceCell<Flight>>,
}

impl Drop for Landing<'_> {
    fn drop(&mut self) {
        let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
        if flights
            .get(&self.key)
            .is_some_and(|cell| Arc::ptr_eq(cell, &self.cell))
        {
            flights.remove(&self.key);
        }
    }
}

impl Shared {
    /// Not connected yet: [`Shared::attach`] gives it the store's connection.
    pub(super) fn new(store: &StoreConfig) -> Self {
        let timeout = match store {
            StoreConfig::Redis(redis) => redis.timeout,
            StoreConfig::Memory => Duration::from_secs(2),
        };
        Self {
            conn: OnceLock::new(),
            timeout,
            lookup: Script::new(LOOKUP),
            flights: Mutex::default(),
            bypass_until_ms: AtomicU64::new(0),
            started: Instant::now(),
        }
    }

    /// Uses `conn` (the store's connection); without one every lookup is a miss, counted.
    pub(super) fn attach(&self, conn: Option<RedisConn>) {
        if let Some(conn) = conn {
            let _ = self.conn.set(conn);
        }
    }

    /// See [`RouteCache::through`].
    pub(super) async fn through<F>(&self, route: &RouteCache, hash: KeyHash, call: F) -> Answer
    where
        F: Future<Output = Answer> + Send,
    {
        let key = (route.id, hash);
        let cell = {
            let mut flights = self.flights.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(flights.entry(key).or_default())
        };
        let _landing = Landing {
            flights: &self.flights,
            key,
            cell: Arc::clone(&cell),
        };
        let mut own = None;
        let fill = async {
            let (answer, hit, entry) = self.fetch(route, hash, call).await;
            let flight = match entry {
                Some(entry) => Flight::Cached(entry),
                None => Flight::Uncached(Uncached::of(&answer)),
            };
            own = Some((answer, hit));
            flight
        };
        let flight = cell.get_or_init(|| fill).await.clone();
        if let Some((answer, hit)) = own {
            route.count(hit);
            return answer;
        }
        match flight {
            Flight::Cached(entry) => {
                route.count(true);
                Ok(entry.response())
            }
            Flight::Uncached(uncached) => {
                route.count(false);
                uncached.into_answer()
            }
        }
    }

    /// Looks the key up; on a miss calls the integration and stores a storable answer. Answers
    /// the answer, whether it came from Redis, and the entry all waiters may share.
    async fn fetch<F>(
        &self,
        route: &RouteCache,
        hash: KeyHash,
        call: F,
    ) -> (Answer, bool, Option<Arc<Entry>>)
    where
        F: Future<Output = Answer> + Send,
    {
        let entry_key = format!("{}:{}", route.redis_base, hex::encode(hash));
        let conn = self.conn.get().cloned().filter(|_| !self.bypassing());
        let generation = match &conn {
            None => {
                redis_failed("bypassed", &"Redis failed less than a second ago");
                None
            }
            Some(conn) => match self.lookup(conn, &route.redis_base, &entry_key).await {
                Ok(mut parts) => {
                    if let Some(entry) = parts.get(1).and_then(|stored| decode(stored)) {
                        let entry = Arc::new(entry);
                        return (Ok(entry.response()), true, Some(entry));
                    }
                    parts.drain(..).next()
                }
                Err(error) => {
                    redis_failed("lookup", &error);
                    self.bypass();
                    None
                }
            },
        };
        let answer = call.await;
        let Some((entry, ttl)) = route.storable(&answer) else {
            return (answer, false, None);
        };
        if let (Some(generation), Some(conn)) = (generation, conn) {
            let mut value = generation;
            value.push(b':');
            value.push(if entry.binary { b'b' } else { b't' });
            value.extend_from_slice(format!("{:03}", entry.status).as_bytes());
            value.extend_from_slice(&entry.body);
            let mut set = redis::cmd("SET");
            let ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX).max(1);
            set.arg(&entry_key).arg(value).arg("PX").arg(ms);
            if let Err(error) = self.run::<()>(&conn, &set).await {
                redis_failed("store", &error);
                self.bypass();
            }
        }
        (answer, false, Some(Arc::new(entry)))
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn bypassing(&self) -> bool {
        self.now_ms() < self.bypass_until_ms.load(Ordering::Relaxed)
    }

    fn bypass(&self) {
        let until = self.now_ms() + u64::try_from(BYPASS_AFTER_FAILURE.as_millis()).unwrap_or(0);
        self.bypass_until_ms.fetch_max(until, Ordering::Relaxed);
    }

    async fn lookup(
        &self,
        conn: &RedisConn,
        base: &str,
        entry_key: &str,
    ) -> Result<Vec<Vec<u8>>, String> {
        let mut invocation = self.lookup.key(format!("{base}:gen"));
        invocation.key(entry_key);
        let mut conn = conn.clone();
        let call = invocation.invoke_async::<Vec<Vec<u8>>>(&mut conn);
        match tokio::time::timeout(self.timeout, call).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    async fn run<T: redis::FromRedisValue>(
        &self,
        conn: &RedisConn,
        cmd: &redis::Cmd,
    ) -> Result<T, String> {
        let mut conn = conn.clone();
        match tokio::time::timeout(self.timeout, cmd.query_async::<T>(&mut conn)).await {
            Ok(result) => result.map_err(|e| e.to_string()),
            Err(_) => Err(format!("no answer within {:?}", self.timeout)),
        }
    }

    /// Drops one entry (`hash`, of the single route) or every entry of `routes`.
    pub(super) async fn invalidate(
        &self,
        routes: &[&Arc<RouteCache>],
        hash: Option<KeyHash>,
    ) -> Result<(), InvalidateError> {
        let conn = (self.conn.get())
            .ok_or_else(|| InvalidateError::Unavailable("not connected to Redis".into()))?;
        for route in routes {
            let cmd = match hash {
                Some(hash) => {
                    let mut del = redis::cmd("DEL");
                    del.arg(format!("{}:{}", route.redis_base, hex::encode(hash)));
                    del
                }
                None => {
                    let mut incr = redis::cmd("INCR");
                    incr.arg(format!("{}:gen", route.redis_base));
                    incr
                }
            };
            self.run::<i64>(conn, &cmd).await.map_err(|error| {
                redis_failed("invalidate", &error);
                InvalidateError::Unavailable(error)
            })?;
        }
        Ok(())
    }
}

/// An entry as stored after its generation: `t|b`, three status digits, the body.
fn decode(stored: &[u8]) -> Option<Entry> {
    let (&kind, rest) = stored.split_first()?;
    let status = std::str::from_utf8(rest.get(..3)?).ok()?.parse().ok()?;
    Some(Entry {
        status,
        body: Bytes::copy_from_slice(&rest[3..]),
        binary: kind == b'b',
    })
}

/// An invalidation as published between nodes.
#[derive(Debug, Serialize, Deserialize)]
pub(super) struct Published {
    /// The node that published it (it applied it already).
    node: String,
    /// The stage.
    pub(super) stage: String,
    /// The routes whose entries are dropped.
    pub(super) routes: Vec<String>,
    /// One entry only (its key's hash, hex).
    #[serde(with = "hex_key")]
    pub(super) key: Option<KeyHash>,
}

mod hex_key {
    use serde::{Deserialize, Deserializer, Serializer, de};

    use super::KeyHash;

    pub(super) fn serialize<S: Serializer>(key: &Option<KeyHash>, s: S) -> Result<S::Ok, S::Error> {
        match key {
            Some(key) => s.serialize_some(&hex::encode(key)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<KeyHash>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => {
                let mut key = [0u8; 32];
                hex::decode_to_slice(text, &mut key).map_err(de::Error::custom)?;
                Ok(Some(key))
            }
        }
    }
}

/// The memory kind's invalidation channel between nodes (`{prefix}:cache:invalidate`), set up
/// on a Redis store only. A node applies its own invalidations at once and publishes them;
/// the others apply them when they arrive (milliseconds). A node whose subscription is down at
/// that moment misses it: its entries live until their ttl.
#[derive(Default)]
pub(super) struct Channel {
    attached: OnceLock<Attached>,
}

struct Attached {
    channels: RedisChannels,
    name: String,
    node_id: String,
}

impl std::fmt::Debug for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Channel")
            .field("attached", &self.attached.get().map(|a| &a.name))
            .finish()
    }
}

impl Channel {
    /// Subscribes this node (`node_id`) to the channel of `store`; answers what it receives.
    pub(super) async fn attach(
        &self,
        store: &RedisStoreConfig,
        node_id: String,
    ) -> Result<mpsc::Receiver<Bytes>, AttachError> {
        let (tx, rx) = mpsc::channel(CHANNEL_QUEUE);
        let target = RedisTarget::new(store.seeds(), store.is_cluster(), store.timeout);
        let channels = RedisChannels::connect(target, &tx).await?;
        let name = format!("{}:cache:invalidate", store.prefix);
        channels.subscribe(&name).await?;
        let _ = self.attached.set(Attached {
            channels,
            name,
            node_id,
        });
        Ok(rx)
    }

    /// Tells the other nodes (nothing to do without a channel).
    pub(super) async fn publish<'a>(
        &self,
        stage: &str,
        routes: impl Iterator<Item = &'a str>,
        key: Option<KeyHash>,
    ) -> Result<(), InvalidateError> {
        let Some(attached) = self.attached.get() else {
            return Ok(());
        };
        let frame = Published {
            node: attached.node_id.clone(),
            stage: stage.to_string(),
            routes: routes.map(str::to_string).collect(),
            key,
        };
        let frame =
            serde_json::to_vec(&frame).map_err(|e| InvalidateError::Unavailable(e.to_string()))?;
        attached
            .channels
            .publish(&attached.name, Bytes::from(frame))
            .await
            .map(|_| ())
            .map_err(|error| {
                redis_failed("publish", &error);
                InvalidateError::Unavailable(error.to_string())
            })
    }

    /// Applies the invalidations other nodes publish, until the channel closes.
    pub(super) async fn read(mut inbox: mpsc::Receiver<Bytes>, cache: Arc<ResponseCache>) {
        let own = match &*cache.backend {
            super::Backend::Memory(memory) => {
                memory.channel.attached.get().map(|a| a.node_id.clone())
            }
            super::Backend::Redis(_) => None,
        };
        while let Some(frame) = inbox.recv().await {
            match serde_json::from_slice::<Published>(&frame) {
                Ok(published) if Some(&published.node) != own.as_ref() => {
                    cache.apply_local(published).await;
                }
                Ok(_) => {}
                Err(error) => redis_failed("decode", &error),
            }
        }
    }
}
