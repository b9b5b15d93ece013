//! `StoreError`, the one error type of this crate, and the decode errors it wraps.

use std::time::Duration;

/// Why a [`ConnectionStore`](crate::ConnectionStore) call failed.
///
/// `Unavailable` and `Timeout` are transient: the caller should fail the current request fast
/// (for example answer 503) and try again later. The others point at bad data or a bug.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The backend could not be reached, the connection broke, or the backend answered that it
    /// cannot serve right now (loading, failover). Retry later.
    #[error("connection store unavailable during {op}")]
    Unavailable {
        /// The store operation that failed (`"get"`, `"register"`, …).
        op: &'static str,
        /// The client error.
        #[source]
        source: redis::RedisError,
    },
    /// The backend did not answer within the configured timeout. Retry later.
    #[error("connection store did not answer {op} within {after:?}")]
    Timeout {
        /// The store operation that timed out.
        op: &'static str,
        /// The timeout that elapsed.
        after: Duration,
    },
    /// The backend answered with an error that retrying will not fix (wrong key type, missing
    /// permission, out of memory). Points at a misconfiguration or a foreign key in our prefix.
    #[error("connection store rejected {op}")]
    Rejected {
        /// The store operation that was rejected.
        op: &'static str,
        /// The error reply.
        #[source]
        source: redis::RedisError,
    },
    /// The stored value for `id` could not be decoded. The record is unusable; remove it.
    #[error("stored record for connection {id:?} is corrupt")]
    Corrupt {
        /// The connection id whose record is corrupt.
        id: String,
        /// What was wrong with it.
        #[source]
        source: DecodeError,
    },
    /// The record could not be serialized (not expected for well-formed records).
    #[error("record for connection {id:?} could not be encoded")]
    Encode {
        /// The connection id of the record.
        id: String,
        /// The serializer error.
        #[source]
        source: serde_json::Error,
    },
    /// The node may not register connections right now: it lost its cluster lease and is taking
    /// a fresh one (a wrapper in the gateway answers this). Retry later.
    #[error("node {node_id} is re-joining the cluster")]
    Fenced {
        /// This node's id.
        node_id: String,
    },
    /// The backend answered something this store cannot read (a foreign value under its keys).
    #[error("connection store answered {op} with a malformed reply")]
    Malformed {
        /// The store operation.
        op: &'static str,
    },
    /// The memory store's table of acknowledged message ids is at its bound (count or bytes)
    /// and no entry has expired yet. Retry later.
    #[error("connection store is full during {op}")]
    Full {
        /// The store operation that was refused.
        op: &'static str,
    },
    /// `list_node` was given a cursor this store did not hand out.
    #[error("invalid list cursor {cursor:?}")]
    InvalidCursor {
        /// The rejected cursor.
        cursor: String,
    },
}

/// What was wrong with a stored value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The fixed-width `lastActiveAt` header is missing or not a number.
    #[error("bad lastActiveAt header")]
    Header,
    /// The record body is not valid record JSON.
    #[error("bad record JSON")]
    Json(#[from] serde_json::Error),
}

impl StoreError {
    /// Whether retrying later may succeed (`Unavailable`, `Timeout`, `Fenced` or `Full`).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable { .. }
                | Self::Timeout { .. }
                | Self::Fenced { .. }
                | Self::Full { .. }
        )
    }

    /// Classifies a Redis client error: anything the client would retry or reconnect on is
    /// `Unavailable`; an error reply that retrying cannot fix is `Rejected`.
    pub(crate) fn from_redis(op: &'static str, source: redis::RedisError) -> Self {
        if matches!(source.retry_method(), redis::RetryMethod::NoRetry) {
            Self::Rejected { op, source }
        } else {
            Self::Unavailable { op, source }
        }
    }
}
