//! [`HistoryStore`] for `MemoryStore`: one bounded ring per group (count, payload bytes and
//! age), and one epoch for the life of the store (a restarted node starts a new one).

use std::collections::VecDeque;
use std::time::{SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use dashmap::DashMap;

use crate::history::{Announce, Appended, HistoryEntry, HistoryPage, HistoryStore, Position};
use crate::{MemoryStore, Retention, StoreError};

/// The histories of a [`MemoryStore`].
#[derive(Debug)]
pub(crate) struct MemoryHistory {
    epoch: String,
    rings: DashMap<(String, String), Ring>,
}

impl Default for MemoryHistory {
    fn default() -> Self {
        Self {
            epoch: crate::history::new_epoch(),
            rings: DashMap::new(),
        }
    }
}

/// One group's history.
#[derive(Debug, Default)]
struct Ring {
    latest: u64,
    entries: VecDeque<HistoryEntry>,
    bytes: u64,
}

fn now_ms() -> i64 {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    i64::try_from(ms).unwrap_or(i64::MAX)
}

impl Ring {
    /// Drops what `retention` no longer keeps.
    fn trim(&mut self, retention: &Retention, now_ms: i64) {
        let oldest_kept = retention
            .max_age
            .map(|age| now_ms.saturating_sub(i64::try_from(age.as_millis()).unwrap_or(i64::MAX)));
        while let Some(first) = self.entries.front() {
            let too_many = self.entries.len() as u64 > retention.max_messages;
            let too_big = self.bytes > retention.max_bytes && self.entries.len() > 1;
            let too_old = oldest_kept.is_some_and(|min| first.at_ms < min);
            if !(too_many || too_big || too_old) {
                break;
            }
            self.bytes -= first.payload.len() as u64;
            self.entries.pop_front();
        }
    }

    fn earliest(&self) -> u64 {
        self.entries
            .front()
            .map_or(self.latest + 1, |entry| entry.offset)
    }
}

#[async_trait]
impl HistoryStore for MemoryStore {
    async fn append(
        &self,
        stage: &str,
        group: &str,
        payload: &[u8],
        retention: &Retention,
        _announce: Option<Announce<'_>>,
    ) -> Result<Appended, StoreError> {
        let history = &self.history;
        let mut ring = history
            .rings
            .entry((stage.to_owned(), group.to_owned()))
            .or_default();
        ring.latest += 1;
        let offset = ring.latest;
        let now = now_ms();
        ring.bytes += payload.len() as u64;
        ring.entries.push_back(HistoryEntry {
            offset,
            at_ms: now,
            payload: payload.to_vec(),
        });
        ring.trim(retention, now);
        Ok(Appended {
            position: Position {
                epoch: history.epoch.clone(),
                offset,
            },
            receivers: None,
        })
    }

    async fn read(
        &self,
        stage: &str,
        group: &str,
        after: u64,
        limit: usize,
        retention: &Retention,
    ) -> Result<HistoryPage, StoreError> {
        let history = &self.history;
        let key = (stage.to_owned(), group.to_owned());
        let Some(mut ring) = history.rings.get_mut(&key) else {
            return Ok(HistoryPage {
                epoch: history.epoch.clone(),
                latest: 0,
                earliest: 1,
                entries: Vec::new(),
            });
        };
        ring.trim(retention, now_ms());
        let start = ring.entries.partition_point(|entry| entry.offset <= after);
        let entries = ring.entries.range(start..).take(limit).cloned().collect();
        Ok(HistoryPage {
            epoch: history.epoch.clone(),
            latest: ring.latest,
            earliest: ring.earliest(),
            entries,
        })
    }
}
