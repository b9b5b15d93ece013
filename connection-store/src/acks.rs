//! The `AckStore` seam: the client message ids an acknowledged route has seen, so that a
//! message resent after a reconnect (a new connection, maybe on another node) is recognised
//! and not handled twice.
//!
//! An id moves through two states: *in flight* (claimed by one caller, whose integration call
//! runs) and *acknowledged* (the call succeeded; kept for the route's window). A failed call
//! releases the id, so the client's retry is handled afresh. Keys are opaque to the store: the
//! gateway derives them from stage, route, principal and the client's id (fixed length).

use std::time::Duration;

use async_trait::async_trait;

use crate::StoreError;

/// What [`AckStore::ack_claim`] found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AckClaim {
    /// Nobody holds the id: the caller does now (in flight, until `hold` passes) and calls the
    /// integration, then [`AckStore::ack_done`] or [`AckStore::ack_release`].
    Claimed,
    /// Another caller holds it and has not finished; `owner` is the token it claimed with.
    InFlight {
        /// The holder's claim token.
        owner: String,
    },
    /// The id was acknowledged within its window: acknowledge again, do not handle it.
    Acknowledged,
}

/// Seen client message ids. Object-safe; implemented by both stores and checked by the
/// `conformance` module (`conformance::acks`).
#[async_trait]
pub trait AckStore: Send + Sync + std::fmt::Debug + 'static {
    /// Claims `key` for `owner` (a token unique to this attempt) for `hold`, unless someone
    /// holds it or it was acknowledged: atomic, so of several callers racing on one key
    /// exactly one gets [`AckClaim::Claimed`].
    ///
    /// # Errors
    /// Backend errors (the claim may then have landed; it expires after `hold`), and
    /// [`StoreError::Full`] when the memory store's bounds are reached.
    async fn ack_claim(
        &self,
        key: &str,
        owner: &str,
        hold: Duration,
    ) -> Result<AckClaim, StoreError>;

    /// The claim of `owner` succeeded: `key` is acknowledged for `window` from now. Overwrites
    /// whatever the key holds (the claim may have expired and been taken meanwhile).
    ///
    /// # Errors
    /// Backend errors; the key then stays in flight until its `hold` passes.
    async fn ack_done(&self, key: &str, owner: &str, window: Duration) -> Result<(), StoreError>;

    /// The claim of `owner` failed: forgets `key` if `owner` still holds it (a claim taken by
    /// someone else after ours expired is left alone). Releasing a key held by nobody is `Ok`.
    ///
    /// # Errors
    /// Backend errors; the key then stays in flight until its `hold` passes.
    async fn ack_release(&self, key: &str, owner: &str) -> Result<(), StoreError>;
}
