//! The local index: for each group with members on this node, its members' handles; for each
//! connection, the groups it joined (to enforce the per-connection limit and to leave them all
//! when it closes).
//!
//! A group's member map sits behind its own lock, so a fan-out to one group never blocks joins
//! to another. Members are inserted while the group's slot in the outer map is held, and an
//! empty group is removed under that same slot, so a join can never land in a removed group.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use crate::registry::SessionHandle;

/// `stage/group`: stage names have no `/`, so the key is unambiguous.
pub(crate) fn key(stage: &str, group: &str) -> String {
    format!("{stage}/{group}")
}

/// The members of one group on this node, by connection id.
#[derive(Debug, Default)]
pub(crate) struct Members {
    map: RwLock<HashMap<String, Arc<SessionHandle>>>,
}

impl Members {
    /// Calls `f` for every member, under the read lock (so `f` must not block).
    pub(crate) fn for_each(&self, mut f: impl FnMut(&str, &Arc<SessionHandle>)) {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        for (id, handle) in map.iter() {
            f(id, handle);
        }
    }

    fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }
}

/// Why a connection could not join one more group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the connection is in {limit} groups already")]
pub(crate) struct TooMany {
    /// The configured limit.
    pub(crate) limit: usize,
}

/// Groups and memberships held by this node.
#[derive(Debug, Default)]
pub(crate) struct Index {
    groups: DashMap<String, Arc<Members>>,
    joined: DashMap<String, HashSet<String>>,
    memberships: AtomicUsize,
}

impl Index {
    /// Records that `id` joined `group`, up to `limit` groups per connection. `Ok(false)` when it
    /// was in the group already.
    pub(crate) fn note_joined(&self, id: &str, group: &str, limit: usize) -> Result<bool, TooMany> {
        let mut groups = self.joined.entry(id.to_owned()).or_default();
        if groups.contains(group) {
            return Ok(false);
        }
        if groups.len() >= limit {
            return Err(TooMany { limit });
        }
        groups.insert(group.to_owned());
        self.memberships.fetch_add(1, Ordering::Relaxed);
        Ok(true)
    }

    /// Forgets that `id` joined `group`; true when it had.
    pub(crate) fn note_left(&self, id: &str, group: &str) -> bool {
        let removed = self
            .joined
            .get_mut(id)
            .is_some_and(|mut groups| groups.remove(group));
        self.joined.remove_if(id, |_, groups| groups.is_empty());
        if removed {
            self.memberships.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    }

    /// Forgets every group of `id`; answers them.
    pub(crate) fn take_joined(&self, id: &str) -> Vec<String> {
        let groups: Vec<String> = self
            .joined
            .remove(id)
            .map(|(_, groups)| groups.into_iter().collect())
            .unwrap_or_default();
        self.memberships.fetch_sub(groups.len(), Ordering::Relaxed);
        groups
    }

    /// The groups `id` joined on this node.
    pub(crate) fn joined(&self, id: &str) -> Vec<String> {
        self.joined
            .get(id)
            .map(|groups| groups.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Adds `handle` to the group at `key`.
    pub(crate) fn insert(&self, key: &str, handle: &Arc<SessionHandle>) {
        let members = self.groups.entry(key.to_owned()).or_default();
        members
            .map
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(handle.meta.connection_id.clone(), Arc::clone(handle));
    }

    /// Removes `id` from the group at `key`, dropping the group when it empties.
    pub(crate) fn remove(&self, key: &str, id: &str) {
        if let Some(members) = self.groups.get(key) {
            members
                .map
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id);
        }
        if let Entry::Occupied(entry) = self.groups.entry(key.to_owned())
            && entry.get().len() == 0
        {
            entry.remove();
        }
    }

    /// The members at `key`, if the group has any here.
    pub(crate) fn members(&self, key: &str) -> Option<Arc<Members>> {
        self.groups.get(key).map(|m| Arc::clone(m.value()))
    }

    /// True while the group at `key` has members on this node.
    pub(crate) fn has_members(&self, key: &str) -> bool {
        self.groups.contains_key(key)
    }

    /// Groups with members on this node.
    pub(crate) fn group_count(&self) -> usize {
        self.groups.len()
    }

    /// Memberships on this node.
    pub(crate) fn membership_count(&self) -> usize {
        self.memberships.load(Ordering::Relaxed)
    }

    /// The `limit` groups with the most members on this node: `(key, members)`, largest first.
    pub(crate) fn largest(&self, limit: usize) -> Vec<(String, usize)> {
        use std::cmp::Reverse;
        let mut heap = std::collections::BinaryHeap::with_capacity(limit + 1);
        for entry in &self.groups {
            heap.push(Reverse((entry.value().len(), entry.key().clone())));
            if heap.len() > limit {
                heap.pop();
            }
        }
        let mut largest: Vec<(String, usize)> = (heap.into_iter())
            .map(|Reverse((n, key))| (key, n))
            .collect();
        largest.sort_unstable_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        largest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::ConnectionMeta;
    use tokio_util::sync::CancellationToken;

    fn handle(id: &str) -> Arc<SessionHandle> {
        let meta = ConnectionMeta::bare(id);
        SessionHandle::new(
            Arc::new(meta),
            crate::registry::QueueLimits {
                messages: 4,
                bytes: 1 << 20,
            },
            Arc::new(crate::registry::ByteBudget::new(1 << 20)),
            &CancellationToken::new(),
        )
        .0
    }

    #[test]
    fn groups_appear_with_their_first_member_and_go_with_their_last() {
        let index = Index::default();
        let (a, b) = (handle("a"), handle("b"));
        let k = key("prod", "room");
        index.insert(&k, &a);
        index.insert(&k, &b);
        assert!(index.has_members(&k));
        index.remove(&k, "a");
        assert!(index.has_members(&k));
        let mut seen = Vec::new();
        index
            .members(&k)
            .expect("members")
            .for_each(|id, _| seen.push(id.to_owned()));
        assert_eq!(seen, ["b"]);
        index.remove(&k, "b");
        assert!(!index.has_members(&k));
        assert_eq!(index.group_count(), 0);
        index.remove(&k, "b");
    }

    #[test]
    fn the_per_connection_limit_counts_distinct_groups() {
        let index = Index::default();
        assert_eq!(index.note_joined("a", "g1", 2), Ok(true));
        assert_eq!(index.note_joined("a", "g1", 2), Ok(false));
        assert_eq!(index.note_joined("a", "g2", 2), Ok(true));
        assert_eq!(index.note_joined("a", "g3", 2), Err(TooMany { limit: 2 }));
        assert_eq!(index.membership_count(), 2);
        assert!(index.note_left("a", "g1"));
        assert!(!index.note_left("a", "g1"));
        assert_eq!(index.note_joined("a", "g3", 2), Ok(true));
        let mut all = index.take_joined("a");
        all.sort();
        assert_eq!(all, ["g2", "g3"]);
        assert!(index.joined("a").is_empty());
    }
}
