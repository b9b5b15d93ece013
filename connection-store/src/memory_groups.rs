//! [`GroupStore`] for `MemoryStore`: sorted sets in dashmaps, paged like `list_node` (the
//! cursor is the last id of the previous page; the next page starts strictly after it).
//!
//! Lock order is always connection (its set of groups) first, then group or stage sets, and no
//! lock is held across an `.await` (there are none).

use std::collections::BTreeSet;
use std::ops::Bound;

use async_trait::async_trait;
use dashmap::DashMap;

use crate::{GroupStore, Membership, MemoryStore, Page, StoreError};

/// The group records of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct MemoryGroups {
    /// `(stage, group)` to its members.
    groups: DashMap<(String, String), BTreeSet<String>>,
    /// Connection id to the groups it joined.
    joined: DashMap<String, BTreeSet<String>>,
    /// Stage to its connections.
    stages: DashMap<String, BTreeSet<String>>,
}

fn key(stage: &str, group: &str) -> (String, String) {
    (stage.to_owned(), group.to_owned())
}

/// One page of `set` after `cursor`, at most `limit` (at least 1) ids.
fn page(set: Option<&BTreeSet<String>>, cursor: Option<&str>, limit: usize) -> Page {
    let Some(set) = set else {
        return Page::default();
    };
    let limit = limit.max(1);
    let start = cursor.map_or(Bound::Unbounded, Bound::Excluded);
    let mut ids: Vec<String> = set
        .range::<str, _>((start, Bound::Unbounded))
        .take(limit + 1)
        .cloned()
        .collect();
    let next_cursor = if ids.len() > limit {
        ids.truncate(limit);
        ids.last().cloned()
    } else {
        None
    };
    Page { ids, next_cursor }
}

impl MemoryGroups {
    /// Removes `id` from one group set, dropping the set when it empties; answers the size after.
    fn remove_member(&self, stage: &str, group: &str, id: &str) -> (bool, u64) {
        let k = key(stage, group);
        let (removed, size) = match self.groups.get_mut(&k) {
            Some(mut members) => (members.remove(id), members.len() as u64),
            None => (false, 0),
        };
        self.groups.remove_if(&k, |_, members| members.is_empty());
        (removed, size)
    }
}

#[async_trait]
impl GroupStore for MemoryStore {
    async fn add_connection(&self, stage: &str, connection_id: &str) -> Result<(), StoreError> {
        self.groups
            .stages
            .entry(stage.to_owned())
            .or_default()
            .insert(connection_id.to_owned());
        Ok(())
    }

    async fn join(
        &self,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError> {
        let g = &self.groups;
        let mut joined = g.joined.entry(connection_id.to_owned()).or_default();
        joined.insert(group.to_owned());
        let mut members = g.groups.entry(key(stage, group)).or_default();
        let changed = members.insert(connection_id.to_owned());
        Ok(Membership {
            changed,
            size: members.len() as u64,
        })
    }

    async fn leave(
        &self,
        stage: &str,
        group: &str,
        connection_id: &str,
    ) -> Result<Membership, StoreError> {
        let g = &self.groups;
        if let Some(mut joined) = g.joined.get_mut(connection_id) {
            joined.remove(group);
        }
        g.joined
            .remove_if(connection_id, |_, groups| groups.is_empty());
        let (changed, size) = g.remove_member(stage, group, connection_id);
        Ok(Membership { changed, size })
    }

    async fn forget(
        &self,
        stage: &str,
        connection_id: &str,
    ) -> Result<Vec<(String, u64)>, StoreError> {
        let g = &self.groups;
        let groups = g
            .joined
            .remove(connection_id)
            .map(|(_, groups)| groups)
            .unwrap_or_default();
        let mut left: Vec<(String, u64)> = groups
            .into_iter()
            .filter_map(|group| {
                let (removed, size) = g.remove_member(stage, &group, connection_id);
                removed.then_some((group, size))
            })
            .collect();
        left.sort_unstable();
        if let Some(mut ids) = g.stages.get_mut(stage) {
            ids.remove(connection_id);
        }
        g.stages.remove_if(stage, |_, ids| ids.is_empty());
        Ok(left)
    }

    async fn group_size(&self, stage: &str, group: &str) -> Result<u64, StoreError> {
        Ok(self
            .groups
            .groups
            .get(&key(stage, group))
            .map_or(0, |m| m.len() as u64))
    }

    async fn group_members(
        &self,
        stage: &str,
        group: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let members = self.groups.groups.get(&key(stage, group));
        Ok(page(members.as_deref(), cursor.as_deref(), limit))
    }

    async fn connection_groups(
        &self,
        _stage: &str,
        connection_id: &str,
    ) -> Result<Vec<String>, StoreError> {
        Ok(self
            .groups
            .joined
            .get(connection_id)
            .map(|groups| groups.iter().cloned().collect())
            .unwrap_or_default())
    }

    async fn stage_size(&self, stage: &str) -> Result<u64, StoreError> {
        Ok(self
            .groups
            .stages
            .get(stage)
            .map_or(0, |ids| ids.len() as u64))
    }

    async fn stage_connections(
        &self,
        stage: &str,
        cursor: Option<String>,
        limit: usize,
    ) -> Result<Page, StoreError> {
        let ids = self.groups.stages.get(stage);
        Ok(page(ids.as_deref(), cursor.as_deref(), limit))
    }
}
