//! `MemoryStore`: connection records in process memory, for a single node and for tests.
//!
//! Two dashmaps: records by id, and a per-node index of ids (a sorted set per node). Every
//! change to the index happens while the id's entry in the record map is locked, so `register`
//! and `remove` of the same id can never leave the index pointing the wrong way. Lock order is
//! always record map, then index; no lock is held across an `.await` (there are none).

use std::collections::BTreeSet;
use std::ops::Bound;

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
    /// Group memberships (see `memory_groups`).
    pub(crate) groups: crate::memory_groups::MemoryGroups,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
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
