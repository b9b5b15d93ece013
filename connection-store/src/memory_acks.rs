//! [`AckStore`] for `MemoryStore`: one table of seen ids behind a mutex, each entry with its
//! expiry, and an index ordered by expiry so expired entries are purged oldest first. The
//! table is bounded in entries and in bytes ([`AckLimits`]); when full and nothing has expired,
//! a claim answers [`StoreError::Full`] rather than forgetting an id still in its window (which
//! would let a duplicate through). The clock is tokio's, so paused-time tests can expire ids.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use tokio::time::Instant;

use crate::{AckClaim, AckStore, MemoryStore, StoreError};

/// Bookkeeping counted per entry besides its key and owner (map slot, index slot, instants).
const ENTRY_OVERHEAD: usize = 96;

/// Bounds of the memory store's table of seen message ids.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AckLimits {
    /// Most ids held at once (in flight or acknowledged).
    pub max_ids: usize,
    /// Most bytes held at once: keys (twice: table and expiry index), owner tokens, and a fixed
    /// overhead per entry.
    pub max_bytes: usize,
}

impl Default for AckLimits {
    fn default() -> Self {
        Self {
            max_ids: 100_000,
            max_bytes: 32 << 20,
        }
    }
}

#[derive(Debug)]
enum State {
    InFlight(Box<str>),
    Acknowledged,
}

#[derive(Debug)]
struct Entry {
    state: State,
    /// Its slot in the expiry index.
    until: (Instant, u64),
}

impl Entry {
    fn bytes(key: &str, state: &State) -> usize {
        let owner = match state {
            State::InFlight(owner) => owner.len(),
            State::Acknowledged => 0,
        };
        2 * key.len() + owner + ENTRY_OVERHEAD
    }
}

#[derive(Debug, Default)]
struct Table {
    entries: HashMap<Box<str>, Entry>,
    expiries: BTreeMap<(Instant, u64), Box<str>>,
    bytes: usize,
    seq: u64,
}

impl Table {
    /// Drops every entry whose time has come.
    fn purge(&mut self, now: Instant) {
        while let Some(entry) = self.expiries.first_entry() {
            if entry.key().0 > now {
                break;
            }
            let key = entry.remove();
            if let Some(gone) = self.entries.remove(&key) {
                self.bytes -= Entry::bytes(&key, &gone.state);
            }
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(gone) = self.entries.remove(key) {
            self.expiries.remove(&gone.until);
            self.bytes -= Entry::bytes(key, &gone.state);
        }
    }

    /// Sets `key` to `state` until `now + ttl`, replacing what it held.
    fn put(&mut self, key: &str, state: State, now: Instant, ttl: Duration) {
        self.remove(key);
        self.seq += 1;
        let until = (now + ttl, self.seq);
        self.bytes += Entry::bytes(key, &state);
        self.expiries.insert(until, key.into());
        self.entries.insert(key.into(), Entry { state, until });
    }
}

/// The seen ids of a [`MemoryStore`].
#[derive(Debug, Default)]
pub(crate) struct MemoryAcks {
    limits: AckLimits,
    table: Mutex<Table>,
}

impl MemoryAcks {
    pub(crate) fn new(limits: AckLimits) -> Self {
        Self {
            limits,
            table: Mutex::default(),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        // A panic while holding the lock leaves the table consistent enough to keep serving
        // (every change is a few map operations); recover instead of poisoning every caller.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ids held right now (after purging expired ones), and their bytes.
    pub(crate) fn usage(&self) -> (usize, usize) {
        let mut table = self.table();
        table.purge(Instant::now());
        (table.entries.len(), table.bytes)
    }
}

#[async_trait]
impl AckStore for MemoryStore {
    async fn ack_claim(
        &self,
        key: &str,
        owner: &str,
        hold: Duration,
    ) -> Result<AckClaim, StoreError> {
        let acks = &self.acks;
        let now = Instant::now();
        let mut table = acks.table();
        table.purge(now);
        match table.entries.get(key).map(|e| &e.state) {
            Some(State::InFlight(holder)) => {
                return Ok(AckClaim::InFlight {
                    owner: holder.to_string(),
                });
            }
            Some(State::Acknowledged) => return Ok(AckClaim::Acknowledged),
            None => {}
        }
        let state = State::InFlight(owner.into());
        if table.entries.len() >= acks.limits.max_ids
            || table.bytes + Entry::bytes(key, &state) > acks.limits.max_bytes
        {
            return Err(StoreError::Full { op: "ack_claim" });
        }
        table.put(key, state, now, hold);
        Ok(AckClaim::Claimed)
    }

    async fn ack_done(&self, key: &str, _owner: &str, window: Duration) -> Result<(), StoreError> {
        let now = Instant::now();
        let mut table = self.acks.table();
        table.purge(now);
        // Replacing an entry never grows the table beyond what the claim took (an acknowledged
        // entry is smaller than an in-flight one); a key whose claim expired meanwhile may add
        // one entry over the bound, which the next purge gives back.
        table.put(key, State::Acknowledged, now, window);
        Ok(())
    }

    async fn ack_release(&self, key: &str, owner: &str) -> Result<(), StoreError> {
        let mut table = self.acks.table();
        let ours = matches!(
            table.entries.get(key).map(|e| &e.state),
            Some(State::InFlight(holder)) if &**holder == owner
        );
        if ours {
            table.remove(key);
        }
        Ok(())
    }
}

impl MemoryStore {
    /// Ids the table of seen message ids holds right now, and their bytes (expired ones are
    /// purged first).
    pub fn ack_usage(&self) -> (usize, usize) {
        self.acks.usage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(max_ids: usize, max_bytes: usize) -> MemoryStore {
        MemoryStore::with_ack_limits(AckLimits { max_ids, max_bytes })
    }

    #[tokio::test(start_paused = true)]
    async fn ids_expire_after_their_window() {
        let store = store(10, 1 << 20);
        let hold = Duration::from_secs(30);
        assert_eq!(
            store.ack_claim("k", "a", hold).await.unwrap(),
            AckClaim::Claimed
        );
        store
            .ack_done("k", "a", Duration::from_secs(5))
            .await
            .unwrap();
        tokio::time::advance(Duration::from_millis(4_999)).await;
        assert_eq!(
            store.ack_claim("k", "b", hold).await.unwrap(),
            AckClaim::Acknowledged
        );
        tokio::time::advance(Duration::from_millis(2)).await;
        assert_eq!(
            store.ack_claim("k", "b", hold).await.unwrap(),
            AckClaim::Claimed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_claim_whose_holder_never_finishes_expires_after_hold() {
        let store = store(10, 1 << 20);
        let hold = Duration::from_secs(3);
        store.ack_claim("k", "a", hold).await.unwrap();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            store.ack_claim("k", "b", hold).await.unwrap(),
            AckClaim::InFlight { owner: "a".into() }
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(
            store.ack_claim("k", "b", hold).await.unwrap(),
            AckClaim::Claimed
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_table_refuses_until_an_entry_expires() {
        let store = store(2, 1 << 20);
        let hold = Duration::from_secs(10);
        store.ack_claim("k1", "a", hold).await.unwrap();
        store
            .ack_claim("k2", "a", Duration::from_secs(20))
            .await
            .unwrap();
        let full = store.ack_claim("k3", "a", hold).await;
        assert!(matches!(full, Err(StoreError::Full { .. })), "{full:?}");
        // Known ids are still answered while full.
        assert!(matches!(
            store.ack_claim("k1", "b", hold).await,
            Ok(AckClaim::InFlight { .. })
        ));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(
            store.ack_claim("k3", "a", hold).await.unwrap(),
            AckClaim::Claimed
        );
        assert_eq!(store.ack_usage().0, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn the_byte_bound_counts_keys_and_owners() {
        let one = Entry::bytes("k1", &State::InFlight("owner".into()));
        let store = store(100, 2 * one);
        let hold = Duration::from_secs(10);
        store.ack_claim("k1", "owner", hold).await.unwrap();
        store.ack_claim("k2", "owner", hold).await.unwrap();
        assert_eq!(store.ack_usage(), (2, 2 * one));
        assert!(matches!(
            store.ack_claim("k3", "owner", hold).await,
            Err(StoreError::Full { .. })
        ));
        store.ack_release("k1", "owner").await.unwrap();
        assert_eq!(store.ack_usage(), (1, one));
        store.ack_claim("k3", "owner", hold).await.unwrap();
        store.ack_release("k2", "owner").await.unwrap();
        store.ack_release("k3", "owner").await.unwrap();
        assert_eq!(store.ack_usage(), (0, 0));
    }
}
