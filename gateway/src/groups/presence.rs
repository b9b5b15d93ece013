//! Presence events: when a connection joins or leaves a group, the stage's `$join` or `$leave`
//! route (if it has one) gets a MESSAGE-like event with `eventType` `JOIN` or `LEAVE` and the
//! body `{"group": ..., "memberCount": ...}`.
//!
//! Only for groups of at most `groups.presence_max_members` members (the member itself
//! included), so large groups never flood the backend. Events run beside the join or leave (the
//! caller does not wait for the backend), at most `groups.presence_concurrency` at a time; more
//! are dropped and counted. Delivery is at most once and events of different changes are not
//! ordered with respect to each other.
//!
//! With tracing on, each event is a `presence` span (a child of the join or leave that caused
//! it when that had a trace, else a root) whose `integration` child is the call; the call is
//! made as a message's is (latency, errors and execution log of its route).

use std::sync::Arc;

use serde_json::json;
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;

use crate::events::{ConnectionMeta, EventKind};
use crate::ids;
use crate::integration::{Invocation, StageRoutes};
use crate::telemetry::GROUP_PRESENCE_TOTAL;
use crate::traces::{Parent, Traces};

/// The presence emitter of one node.
#[derive(Debug)]
pub(crate) struct Presence {
    max_members: u64,
    slots: Arc<Semaphore>,
    routes: PresenceRoutes,
}

/// The routes of a stage in the definition in force (a reload changes them).
pub(crate) type StageLookup = Arc<dyn Fn(&str) -> Option<Arc<StageRoutes>> + Send + Sync>;

/// Where presence events go: each stage's routes (`$join`, `$leave`), and the tracker their
/// calls run on (so shutdown waits for them).
#[derive(Clone)]
pub(crate) struct PresenceRoutes {
    /// Routes per stage.
    pub stages: StageLookup,
    /// Shutdown waits for the tasks on it.
    pub tracker: TaskTracker,
    /// This gateway's tracer (events without a caller's trace start their own).
    pub traces: Traces,
}

impl std::fmt::Debug for PresenceRoutes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PresenceRoutes").finish_non_exhaustive()
    }
}

impl Presence {
    pub(crate) fn new(max_members: u64, concurrency: usize, routes: PresenceRoutes) -> Self {
        Self {
            max_members,
            slots: Arc::new(Semaphore::new(concurrency)),
            routes,
        }
    }

    /// Sends the event for `meta` joining (`joined`) or leaving `group`, whose size is
    /// `size_after` once the change is made; its span is a child of `trace` when that has one.
    pub(crate) fn emit(
        &self,
        meta: &Arc<ConnectionMeta>,
        group: &str,
        joined: bool,
        size_after: u64,
        trace: Parent<'_>,
    ) {
        let size_with_member = if joined { size_after } else { size_after + 1 };
        if self.max_members == 0 || size_with_member > self.max_members {
            return;
        }
        let route_key = if joined { "$join" } else { "$leave" };
        let Some(route) =
            (self.routes.stages)(&meta.stage).and_then(|routes| routes.get(route_key).cloned())
        else {
            return;
        };
        let Ok(permit) = Arc::clone(&self.slots).try_acquire_owned() else {
            metrics::counter!(GROUP_PRESENCE_TOTAL, "outcome" => "dropped").increment(1);
            return;
        };
        let mut span = match trace.context() {
            Some(_) => trace.child("presence"),
            None => self.routes.traces.root("presence"),
        };
        span.set_str("wsgate.connection_id", &meta.connection_id);
        span.set_str("wsgate.stage", &meta.stage);
        span.set_str("wsgate.route_key", route_key);
        span.set_str("wsgate.group", group);
        span.set_int(
            "wsgate.member_count",
            i64::try_from(size_after).unwrap_or(i64::MAX),
        );
        let body = json!({ "group": group, "memberCount": size_after }).to_string();
        let meta = Arc::clone(meta);
        self.routes.tracker.spawn(async move {
            let _permit = permit;
            let request_id = ids::request_id();
            let invocation = Invocation {
                meta: &meta,
                route_key,
                request_id: &request_id,
                trace: span.parent(),
                kind: EventKind::Presence {
                    joined,
                    body: &body,
                },
            };
            let outcome = match crate::ws::invoke(&route, &invocation).await {
                Ok(response) if response.status < 400 => "sent",
                Ok(_) | Err(_) => "failed",
            };
            if outcome == "failed" {
                span.fail("the presence event failed");
            }
            metrics::counter!(GROUP_PRESENCE_TOTAL, "outcome" => outcome).increment(1);
        });
    }
}
