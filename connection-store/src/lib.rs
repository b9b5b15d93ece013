//! Connection records for wsgate: where a connection lives, shared by every gateway node.
//!
//! A gateway node registers a [`ConnectionRecord`] when a client finishes `$connect`, batches
//! `lastActiveAt` updates through [`ConnectionStore::touch`], and removes the record when the
//! socket closes. Any node can look a connection up (to route a callback `POST` to its owner) and
//! any node can reap the records of a node that died ([`ConnectionStore::list_node`] followed by
//! [`ConnectionStore::remove`], which hands each record to exactly one caller).
//! [`ConnectionStore::remove_owing`] does the same and files a durable "`$disconnect` owed"
//! entry, deleted by [`ConnectionStore::settle`] once the event is delivered; should the remover
//! die first, [`ConnectionStore::claim_owed`] hands the entry to another node.
//!
//! # Layout
//!
//! - `store`: the [`ConnectionStore`] trait and the [`Page`] returned by `list_node`. The rest of
//!   the gateway sees only `Arc<dyn ConnectionStore>`.
//! - `groups`: the [`GroupStore`] trait: cluster-wide group memberships and the connections of
//!   each stage, for counts and listings (`memory_groups` and `redis_store::groups` implement
//!   it).
//! - `history`: the [`HistoryStore`] trait: each group's recent messages with their epoch and
//!   offset, for recovery on reconnect (`memory_history` and `redis_store::history` implement
//!   it; [`GroupStore`] requires it, so both seams travel together).
//! - `acks`: the [`AckStore`] trait: the client message ids acknowledged routes have seen, so a
//!   message resent after a reconnect is not handled twice (`memory_acks`, bounded by
//!   [`AckLimits`], and `redis_store::acks` implement it).
//! - `deployments`: the [`DeploymentStore`] trait: immutable deployments of the API definition,
//!   per-stage pointers (with a canary and a history) and what each node serves
//!   ([`MemoryDeployments`] and `redis_store::deployments` implement it).
//! - `record`: [`ConnectionRecord`], the stored value (camelCase JSON).
//! - `error`: [`StoreError`], the one error type of this crate, and [`DecodeError`].
//! - `memory`: [`MemoryStore`], a dashmap-backed store for a single node and for tests.
//! - `redis_store`: [`RedisStore`], the shared store for several nodes (one Redis or a Redis
//!   Cluster), with its key layout, node leases ([`RedisStore::renew_lease`] and friends),
//!   per-call timeouts and Lua scripts.
//! - `conformance` (feature `conformance`): the checks every store must pass; `tests/memory.rs`
//!   and `tests/redis.rs` run them against both stores.

mod acks;
mod deployments;
mod error;
mod groups;
mod history;
mod memory;
mod memory_acks;
mod memory_deployments;
mod memory_groups;
mod memory_history;
mod record;
pub mod redis_conn;
mod redis_store;
mod store;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use acks::{AckClaim, AckStore};
pub use deployments::{
    Canary, DeploymentInfo, DeploymentStore, HISTORY_LIMIT, NodeServing, Pointers, ServedStage,
    StagePointer, StoredDeployment,
};
pub use error::{DecodeError, StoreError};
pub use groups::{GroupStore, Membership};
pub use history::{
    Announce, Appended, HistoryEntry, HistoryPage, HistoryStore, Position, Retention, announcement,
};
pub use memory::MemoryStore;
pub use memory_acks::AckLimits;
pub use memory_deployments::MemoryDeployments;
pub use record::ConnectionRecord;
pub use redis_store::{LeaseClaim, LeaseRenewal, RedisStore, RedisStoreOptions};
pub use store::{ConnectionStore, Page};
