//! The monotonic clock of the limiters: nanoseconds since the clock was made. Production reads
//! `tokio::time::Instant` (so tests with paused tokio time drive it); unit tests may use a manual
//! clock they move by hand.

#[cfg(test)]
use std::sync::Arc;
#[cfg(test)]
use std::sync::atomic::{AtomicU64, Ordering};
#[cfg(test)]
use std::time::Duration;

/// A source of "now" for the limiters.
#[derive(Debug, Clone)]
pub(crate) enum Clock {
    /// Time since `start`, as tokio sees it.
    Tokio(tokio::time::Instant),
    /// Time set by hand (tests).
    #[cfg(test)]
    Manual(Arc<AtomicU64>),
}

impl Clock {
    /// A clock starting now.
    pub(crate) fn new() -> Self {
        Self::Tokio(tokio::time::Instant::now())
    }

    #[cfg(test)]
    /// A manual clock at zero.
    pub(crate) fn manual() -> Self {
        Self::Manual(Arc::new(AtomicU64::new(0)))
    }

    /// Nanoseconds since the clock's start.
    pub(crate) fn now(&self) -> u64 {
        match self {
            Self::Tokio(start) => u64::try_from(start.elapsed().as_nanos()).unwrap_or(u64::MAX),
            #[cfg(test)]
            Self::Manual(now) => now.load(Ordering::Acquire),
        }
    }

    #[cfg(test)]
    /// Moves a manual clock forward (no effect on a tokio clock).
    pub(crate) fn advance(&self, by: Duration) {
        if let Self::Manual(now) = self {
            let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
            now.fetch_add(by, Ordering::AcqRel);
        }
    }
}

impl Default for Clock {
    fn default() -> Self {
        Self::new()
    }
}
