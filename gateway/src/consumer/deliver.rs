//! Delivering one addressed message exactly as the callback API does (`POST @connections`,
//! `@groups`, `@broadcast`), and what each answer means for the broker message.

use std::sync::Arc;

use crate::cluster::Cluster;
use crate::error::CallbackError;
use crate::state::Shared;

use super::address::{Addressed, Target};

/// What became of one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Queued for the connection (or fanned out to the group or stage): acknowledge.
    Delivered,
    /// The connection is gone (410): it will never succeed; acknowledge (or dead-letter).
    Gone,
    /// Throttled, the client's queue full, or the owner node or store unreachable (429/503):
    /// try again after a pause.
    Retry(CallbackError),
    /// Refused for good (a group name that is not valid, for instance): acknowledge.
    Rejected(CallbackError),
}

impl Outcome {
    fn of(result: Result<(), CallbackError>) -> Self {
        match result {
            Ok(()) => Self::Delivered,
            Err(CallbackError::Gone) => Self::Gone,
            Err(
                e @ (CallbackError::LimitExceeded
                | CallbackError::Throttled
                | CallbackError::Unavailable
                | CallbackError::GroupPostsBusy
                | CallbackError::TooManyGroups { .. }),
            ) => Self::Retry(e),
            Err(e) => Self::Rejected(e),
        }
    }
}

/// Reaches connections as the callback API does ([`crate::callback::post_to`]), groups and
/// stages through [`crate::groups`].
#[derive(Debug, Clone)]
pub(crate) struct Deliverer {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cluster: Option<Arc<Cluster>>,
}

impl Deliverer {
    /// One attempt. Deliveries count against `throttling.callback` like callback requests.
    pub(crate) async fn deliver(&self, message: &Addressed) -> Outcome {
        let shared = &self.shared;
        let stage = message.stage.as_str();
        if (shared.definition_for(stage, false).throttle)
            .check_callback(stage)
            .await
            .is_err()
        {
            return Outcome::Retry(CallbackError::Throttled);
        }
        let data = message.data.clone();
        let result = match &message.target {
            Target::Connection(id) => {
                crate::callback::post_to(shared, self.cluster.as_deref(), stage, id, data).await
            }
            Target::Group(group) => {
                (shared.groups.post(stage, Some(group), data, None).await).map(|_| ())
            }
            Target::Broadcast => (shared.groups.post(stage, None, data, None).await).map(|_| ()),
        };
        Outcome::of(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_answers_map_to_outcomes() {
        assert_eq!(Outcome::of(Ok(())), Outcome::Delivered);
        assert_eq!(Outcome::of(Err(CallbackError::Gone)), Outcome::Gone);
        for retry in [
            CallbackError::LimitExceeded,
            CallbackError::Throttled,
            CallbackError::Unavailable,
            CallbackError::GroupPostsBusy,
        ] {
            assert!(matches!(Outcome::of(Err(retry)), Outcome::Retry(_)));
        }
        assert!(matches!(
            Outcome::of(Err(CallbackError::BadRequest("x".into()))),
            Outcome::Rejected(_)
        ));
    }
}
