//! `MemoryStore`: connection records in process memory, for a single node and for tests.
//!
//! Two dashmaps: records by id, and a per-node index of ids (a sorted set per node). Every
//! change to the index happens while the id's entry in the record map is locked, so `register`
//! and `remove` of the same id can never leave the index pointing the wrong way. Lock order is
//! always record map, then index; no lock is held across an `.await` (there are none).
//!
//! Owed `$disconnect` entries live in a third map, written while the record's entry is locked
//! (so `remove_owing` is atomic) and claimed under the owed entry's own lock.

use std::collections::BTreeSet;
use std::ops::Bound;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::{ConnectionRecord, ConnectionStore, Page, StoreError};

/// In-process [`ConnectionStore`]. Records never expire; a single node has no dead peers.
///
/// `list_node` pages over the node's ids in sorted order. The cursor is the last id of the
/// previous page and the next page starts strictly after it, so ids present for the whole
/// iteration are returned exactly once, and ids added or removed meanwhile are returned at most
/// once. `limit` is honoured exactly (a `limit` of 0 is treated as 1).
#[derive(Debug, Default)]
pub struct MemoryStore {
    records: DashMap<String, ConnectionRecord>,
    by_node: DashMap<String, BTreeSet<String>>,
    owed: DashMap<String, Owed>,
    /// Group memberships (see `memory_groups`).
    pub(crate) groups: crate::memory_groups::MemoryGroups,
    /// Group histories (see `memory_history`).
    pub(crate) history: crate::memory_history::MemoryHistory,
    /// Seen client message ids of acknowledged routes (see `memory_acks`).
    pub(crate) acks: crate::memory_acks::MemoryAcks,
}

/// A `$disconnect` owed for a removed record, and until when its current claim runs (the
/// claimer's name is not needed in one process).
#[derive(Debug)]
struct Owed {
    record: ConnectionRecord,
    until: Instant,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty store whose table of seen message ids keeps within `limits`.
    pub fn with_ack_limits(limits: crate::AckLimits) -> Self {
        Self {
            acks: crate::memory_acks::MemoryAcks::new(limits),
            ..Self::default()
        }
    }

    fn index_add(&self, node_id: &str, id: &str) {
        self.by_node
            .entry(node_id.to_owned())
            .or_default()
            .insert(id.to_owned());
    }

    fn index_remove(&self, node_id: &str, id: &str) {
        if let Some(mut ids) = self.by_node.get_mut(node_id) {
            ids.remove(id);
        }
        // Drop empty sets so dead nodes leave nothing behind; checked under the shard lock.
        self.by_node.remove_if(node_id, |_, ids| ids.is_empty());
    }
}

#[async_trait]
impl ConnectionStore for MemoryStore {
    async fn register(&self, record: &ConnectionRecord) -> Result<(), StoreError> {
        match self.records.entry(record.connection_id.clone()) {
            Entry::Occupied(mut entry) => {
                let old_node = entry.get().node_id.clone();
                if old_node != record.node_id {
                    self.index_remove(&old_node, &record.connection_id);
                    self.index_add(&record.node_id, &record.connection_id);
                }
                entry.insert(record.clone());
            }
            Entry::Vacant(entry) => {
                self.index_add(&record.node_id, &record.connection_id);
                entry.insert(record.clone());
            }
        }
        Ok(())
    }

    async fn get(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        Ok(self.records.get(connection_id).map(|r| r.value().clone()))
    }

    async fn remove(&self, connection_id: &str) -> Result<Option<ConnectionRecord>, StoreError> {
        match self.records.entry(connection_id.to_owned()) {
            Entry::Occupied(entry) => {
                self.index_remove(&entry.get().node_id, connection_id);
                Ok(Some(entry.remove()))
            }
            Entry::Vacant(_) => Ok(None),
        }
    }

    async fn remove_owing(
        &self,
        connection_id: &str,
        _claimer: &str,
        claim_for: Duration,
    ) -> Result<Option<ConnectionRecord>, StoreError> {
        match self.records.entry(connection_id.to_owned()) {
            Entry::Occupied(entry) => {
                self.index_remove(&entry.get().node_id, connection_id);
                let record = entry.remove();
                self.owed.insert(
                    connection_id.to_owned(),
                    Owed {
                        record: record.clone(),
                        until: deadline(claim_for),
                    },
                );
                Ok(Some(record))
            }
            Entry::Vacant(_) => Ok(None),
        }
    }

    async fn settle(&self, connection_id: &str) -> Result<(), StoreError> {
        self.owed.remove(connection_id);
        Ok(())
    }

    async fn claim_owed(
        &self,
        _claimer: &str,
        claim_for: Duration,
        limit: usize,
    ) -> Result<Vec<ConnectionRecord>, StoreError> {
        let now = Instant::now();
        let until = deadline(claim_for);
        let mut claimed = Vec::new();
        // `iter_mut` write-locks each shard while visiting it, so checking and extending a
        // claim is atomic against other claimers.
        for mut entry in self.owed.iter_mut() {
            if claimed.len() >= limit {
                break;
            }
            if entry.until <= now {
                entry.until = until;
                claimed.push(entry.record.clone());
            }
        }
        Ok(claimed)
    }

    async fn touch(&self, updates: &[(String, i64)]) -> Result<(), StoreError> {
        for (id, at_ms) in updates {
            if let Some(mut record) = self.records.get_mut(id)
                && *at_ms > record.last_active_at_ms
            {
                record.last_active_at_ms = *at_ms;
            }
        }
        Ok(())
    }

    async fn list_node(
        &self,
        node_id: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let limit = limit.max(1);
        let Some(ids) = self.by_node.get(node_id) else {
            return Ok(Page::default());
        };
        let start = match &cursor {
            Some(after) => Bound::Excluded(after.as_str()),
            None => Bound::Unbounded,
        };
        // Take one more than asked to learn whether another page exists.
        let mut page: Vec<String> = ids
            .range::<str, _>((start, Bound::Unbounded))
            .take(limit + 1)
            .cloned()
            .collect();
        let next_cursor = if page.len() > limit {
            page.truncate(limit);
            page.last().cloned()
        } else {
            None
        };
        Ok(Page {
            ids: page,
            next_cursor,
        })
    }

    async fn health(&self) -> Result<(), StoreError> {
        Ok(())
    }
}

/// Now + `claim_for`, saturating far in the future.
fn deadline(claim_for: Duration) -> Instant {
    let now = Instant::now();
    now.checked_add(claim_for)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
}
