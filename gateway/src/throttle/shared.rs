//! The seam between a node and buckets shared by every node: take up to `n` tokens from the
//! bucket named `key`, atomically, on the shared clock. [`super::redis_gcra::RedisBuckets`] is the
//! production implementation; [`MemoryBuckets`] stands in for it in unit tests.

use std::fmt;

use async_trait::async_trait;

use super::gcra::{Limit, Take};

/// Why the shared buckets could not answer.
#[derive(Debug, thiserror::Error)]
pub enum SharedBucketError {
    /// The URL is malformed or the server refused the command.
    #[error("redis: {0}")]
    Redis(#[source] redis::RedisError),
    /// No answer in time.
    #[error("no answer from redis within {0:?}")]
    Timeout(std::time::Duration),
    /// The script answered something else than `{granted, retry_after_us}`.
    #[error("unexpected answer from the throttling script")]
    Malformed,
}

/// Buckets shared by all nodes.
#[async_trait]
pub(crate) trait SharedBuckets: Send + Sync + fmt::Debug {
    /// Takes as many tokens as are available, up to `want` (at least 1), from the bucket `key`
    /// with `limit` (every node must use the same limit for the same key).
    async fn take(&self, key: &str, limit: Limit, want: u32) -> Result<Take, SharedBucketError>;
}

#[cfg(test)]
pub(crate) use memory::MemoryBuckets;

#[cfg(test)]
mod memory {
    use std::collections::HashMap;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

    use super::*;
    use crate::throttle::clock::Clock;
    use crate::throttle::gcra::Gcra;

    /// In-process shared buckets on an injected clock; can be told to fail, and counts calls.
    #[derive(Debug)]
    pub(crate) struct MemoryBuckets {
        clock: Clock,
        buckets: Mutex<HashMap<String, Gcra>>,
        pub(crate) failing: AtomicBool,
        pub(crate) calls: AtomicUsize,
    }

    impl MemoryBuckets {
        pub(crate) fn new(clock: Clock) -> Self {
            Self {
                clock,
                buckets: Mutex::default(),
                failing: AtomicBool::new(false),
                calls: AtomicUsize::new(0),
            }
        }
    }

    #[async_trait]
    impl SharedBuckets for MemoryBuckets {
        async fn take(
            &self,
            key: &str,
            limit: Limit,
            want: u32,
        ) -> Result<Take, SharedBucketError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if self.failing.load(Ordering::SeqCst) {
                return Err(SharedBucketError::Timeout(std::time::Duration::ZERO));
            }
            let mut buckets = self.buckets.lock().expect("lock");
            let bucket = buckets
                .entry(key.to_string())
                .or_insert_with(|| Gcra::new(limit));
            Ok(bucket.take_up_to(self.clock.now(), want))
        }
    }
}
