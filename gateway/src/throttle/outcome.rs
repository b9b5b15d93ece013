//! What a refusal says: the level that refused and when to try again.

use std::time::Duration;

/// Which level refused a request (the `scope` label of `wsgate_throttled_total`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Level {
    /// `throttling.gateway`.
    Gateway,
    /// A route's bucket (its own settings or the stage default).
    Route,
    /// `throttling.per_connection`.
    Connection,
    /// `throttling.new_connections`.
    NewConnections,
    /// `throttling.callback`.
    Callback,
    /// The rate and burst of the API key's usage plan.
    UsagePlan,
    /// The quota of the API key's usage plan.
    Quota,
}

impl Level {
    /// The metric label.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Self::Gateway => "gateway",
            Self::Route => "route",
            Self::Connection => "connection",
            Self::NewConnections => "new_connections",
            Self::Callback => "callback",
            Self::UsagePlan => "usage_plan",
            Self::Quota => "quota",
        }
    }
}

/// A refused request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("throttled by the {} limit", level.label())]
pub(crate) struct Throttled {
    /// The level that refused.
    pub level: Level,
    /// When a token is back (saturates for limits that admit nothing).
    pub retry_after: Duration,
}

impl Throttled {
    /// Whole seconds for `Retry-After`: the wait rounded up, between 1 s and 31 days.
    pub(crate) fn retry_after_secs(&self) -> u64 {
        let whole = self.retry_after.as_secs();
        let secs = if self.retry_after.subsec_nanos() > 0 {
            whole.saturating_add(1)
        } else {
            whole
        };
        secs.clamp(1, 31 * 86_400)
    }
}
