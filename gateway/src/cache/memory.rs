//! The memory kind: one moka cache per node holding every route's entries, bounded in bytes
//! (key, body and bookkeeping weighed per entry), each entry expiring after its own ttl;
//! concurrent misses of one key coalesce into one integration call (moka's
//! `or_try_insert_with`).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use moka::Expiry;
use moka::future::Cache;

use super::key::KeyHash;
use super::redis::Channel;
use super::{Answer, Entry, RouteCache, Uncached};
use crate::telemetry;

/// What an entry costs besides its body: the key, the entry, moka's own bookkeeping.
const ENTRY_OVERHEAD: usize = 160;

/// An entry's name: the route, its generation when the request came, the key's hash.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct MemKey {
    route: u32,
    generation: u64,
    hash: KeyHash,
}

/// An entry and how long it lives.
#[derive(Debug)]
struct Stored {
    entry: Entry,
    ttl: Duration,
}

fn weight(stored: &Stored) -> u32 {
    u32::try_from(stored.entry.body.len() + ENTRY_OVERHEAD).unwrap_or(u32::MAX)
}

/// Each entry lives for its own ttl from when it was stored.
struct PerEntry;

impl Expiry<MemKey, Arc<Stored>> for PerEntry {
    fn expire_after_create(
        &self,
        _key: &MemKey,
        value: &Arc<Stored>,
        _created_at: Instant,
    ) -> Option<Duration> {
        Some(value.ttl)
    }
}

/// The node's memory cache.
pub(super) struct Memory {
    cache: Cache<MemKey, Arc<Stored>>,
    /// Bytes held (by the weigher's count), kept by the insertions and the removal listener
    /// (signed: a removal may be heard before its insertion is counted).
    bytes: Arc<AtomicI64>,
    max_bytes: u64,
    gauge: metrics::Gauge,
    /// Invalidations to and from the other nodes (a Redis store only).
    pub(super) channel: Channel,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("bytes", &self.bytes.load(Ordering::Relaxed))
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Memory {
    /// A cache of at most `max_bytes`.
    pub(super) fn new(max_bytes: u64) -> Self {
        let bytes = Arc::new(AtomicI64::new(0));
        let gauge = metrics::gauge!(telemetry::CACHE_BYTES);
        let (held, shown) = (Arc::clone(&bytes), gauge.clone());
        let cache = Cache::builder()
            .max_capacity(max_bytes)
            .weigher(|_key: &MemKey, stored: &Arc<Stored>| weight(stored))
            .expire_after(PerEntry)
            .support_invalidation_closures()
            .eviction_listener(move |_key, stored: Arc<Stored>, _cause| {
                let weight = i64::from(weight(&stored));
                let left = held.fetch_sub(weight, Ordering::Relaxed) - weight;
                shown.set(left.max(0) as f64);
            })
            .build();
        Self {
            cache,
            bytes,
            max_bytes,
            gauge,
            channel: Channel::default(),
        }
    }

    /// See [`RouteCache::through`].
    pub(super) async fn through<F>(&self, route: &RouteCache, hash: KeyHash, call: F) -> Answer
    where
        F: Future<Output = Answer> + Send,
    {
        let key = MemKey {
            route: route.id,
            generation: route.generation.load(Ordering::Acquire),
            hash,
        };
        // A hit takes the plain read; only a miss goes through the coalescing entry API.
        if let Some(stored) = self.cache.get(&key).await {
            route.count(true);
            return Ok(stored.entry.response());
        }
        let mut own = None;
        let fill = async {
            let answer = call.await;
            match route.storable(&answer) {
                Some((entry, ttl)) => Ok(Arc::new(Stored { entry, ttl })),
                None => {
                    let shared = Uncached::of(&answer);
                    own = Some(answer);
                    Err(shared)
                }
            }
        };
        match self.cache.entry(key).or_try_insert_with(fill).await {
            Ok(found) => {
                let fresh = found.is_fresh();
                route.count(!fresh);
                let stored = found.into_value();
                if fresh {
                    self.added(&stored).await;
                }
                Ok(stored.entry.response())
            }
            Err(shared) => {
                route.count(false);
                own.unwrap_or_else(|| Uncached::clone(&shared).into_answer())
            }
        }
    }

    /// Counts a new entry's bytes, and evicts at once when they pass the bound.
    async fn added(&self, stored: &Stored) {
        let weight = i64::from(weight(stored));
        let held = self.bytes.fetch_add(weight, Ordering::Relaxed) + weight;
        self.gauge.set(held.max(0) as f64);
        if u64::try_from(held).is_ok_and(|held| held > self.max_bytes) {
            self.cache.run_pending_tasks().await;
        }
    }

    /// Drops one entry (`hash`) or every entry of `route` on this node.
    pub(super) async fn invalidate(&self, route: &RouteCache, hash: Option<KeyHash>) {
        match hash {
            Some(hash) => {
                let key = MemKey {
                    route: route.id,
                    generation: route.generation.load(Ordering::Acquire),
                    hash,
                };
                self.cache.invalidate(&key).await;
            }
            None => {
                let (id, before) = (
                    route.id,
                    route.generation.fetch_add(1, Ordering::AcqRel) + 1,
                );
                // The new generation already hides them; this frees their bytes.
                let dropped = self.cache.invalidate_entries_if(move |key, _| {
                    key.route == id && key.generation < before
                });
                if let Err(error) = dropped {
                    tracing::warn!(%error, "response cache: entries left to expire by their ttl");
                }
                self.cache.run_pending_tasks().await;
            }
        }
    }
}
