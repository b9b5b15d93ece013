//! Which node holds a connection of another node, remembered from its record: (stage,
//! connection id) → owner node id, bounded in entries, so that a callback for a connection this
//! node has reached before goes straight to the bus without reading the record.
//!
//! Sound because a connection never moves between nodes and an id is never reused: an entry can
//! only ever name the right owner or one that no longer holds the connection. The caller evicts
//! an entry whenever the owner does not answer as the holder (`Gone`, no subscriber, no `Ack`),
//! so the next callback reads the record again. Only positive answers fill it.
//!
//! The bounded concurrent map is `quick_cache` (S3-FIFO eviction, sharded locks, lookups by
//! borrowed key without allocating) rather than hand-written code.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use quick_cache::Equivalent;
use quick_cache::sync::Cache;

/// The key: stage and connection id.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Key {
    stage: Box<str>,
    id: Box<str>,
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        Lookup(&self.stage, &self.id).hash(state);
    }
}

/// A borrowed key for lookups; hashes as [`Key`] does.
#[derive(Hash)]
struct Lookup<'a>(&'a str, &'a str);

impl Equivalent<Key> for Lookup<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        *self.0 == *key.stage && *self.1 == *key.id
    }
}

/// The owners of connections this node forwarded to. Each entry holds three short strings (a
/// configured stage name, a gateway-made id and the owner's node id), so the entry bound also
/// bounds its memory (about 150 bytes an entry). Under churn it fills up to the bound and then
/// evicts: the one structure a heap profile of the soak saw grow (docs/reliability.md).
#[derive(Debug)]
pub(super) struct Owners {
    /// `None` when disabled (`cluster.owner_cache_entries: 0`).
    cache: Option<Cache<Key, Arc<str>>>,
}

impl Owners {
    /// A cache of at most `entries` owners (0: nothing is remembered).
    pub(super) fn new(entries: usize) -> Self {
        Self {
            cache: (entries > 0).then(|| Cache::new(entries)),
        }
    }

    /// The remembered owner of `id` on `stage`.
    pub(super) fn get(&self, stage: &str, id: &str) -> Option<Arc<str>> {
        self.cache.as_ref()?.get(&Lookup(stage, id))
    }

    /// Remembers that `owner` holds `id` on `stage`.
    pub(super) fn insert(&self, stage: &str, id: &str, owner: Arc<str>) {
        if let Some(cache) = &self.cache {
            let key = Key {
                stage: stage.into(),
                id: id.into(),
            };
            cache.insert(key, owner);
        }
    }

    /// Forgets the owner of `id` on `stage`.
    pub(super) fn forget(&self, stage: &str, id: &str) {
        if let Some(cache) = &self.cache {
            cache.remove(&Lookup(stage, id));
        }
    }

    /// Owners remembered right now.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.cache.as_ref().map_or(0, Cache::len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_by_stage_and_id_forgets_and_stays_bounded() {
        let owners = Owners::new(100);
        owners.insert("prod", "abc", Arc::from("node-a"));
        assert_eq!(owners.get("prod", "abc").as_deref(), Some("node-a"));
        assert_eq!(
            owners.get("dev", "abc"),
            None,
            "another stage is another key"
        );
        assert_eq!(owners.get("prod", "abd"), None);
        owners.forget("prod", "abc");
        assert_eq!(owners.get("prod", "abc"), None);
        for i in 0..1000 {
            owners.insert("prod", &format!("id{i}"), Arc::from("node-b"));
        }
        assert!(owners.len() <= 100, "{} entries", owners.len());
    }

    #[test]
    fn zero_entries_remembers_nothing() {
        let owners = Owners::new(0);
        owners.insert("prod", "abc", Arc::from("node-a"));
        assert_eq!(owners.get("prod", "abc"), None);
    }
}
