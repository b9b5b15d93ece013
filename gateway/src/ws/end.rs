//! The end of a connection's life, owned by its task: leave the registry and groups, give queued
//! inbound messages a bounded drain, settle the store record, and run the `$disconnect` owed to a
//! connection whose `$connect` succeeded: exactly once cluster-wide, with bounded retries.

use std::time::Duration;

use tokio::time::{Instant, sleep};

use super::dispatch::Inflow;
use super::invoke;
use crate::access_log::{EventType, IntegrationOutcome, Outcome};
use crate::error::CloseReason;
use crate::events::{ConnectionMeta, EventKind};
use crate::ids;
use crate::integration::{Invocation, StageRoutes};
use crate::registry::SessionHandle;
use crate::state::Shared;
use crate::store::{RETRY_BACKOFF, until_ok};
use crate::telemetry;

/// First pause before a failed `$disconnect` is tried again; doubled each time.
const DISCONNECT_BACKOFF: Duration = Duration::from_millis(500);
/// Tries at forgetting an owed entry.
const SETTLE_ATTEMPTS: u32 = 3;

/// Whether the connection's record was written to the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Recorded {
    /// Never written: the `$disconnect` is this task's alone.
    No,
    /// Written: whoever removes it (this task, or a reaper after this node was lost) owes the
    /// `$disconnect`.
    Yes,
    /// The write failed, perhaps halfway: the `$disconnect` is ours, then whatever was written
    /// is removed.
    Maybe,
}

/// Marks a connection closed and takes it out of this node's registry (pushes and callbacks
/// answer 410 from here on).
pub(super) fn unlist(shared: &Shared, handle: &SessionHandle) {
    handle.mark_closed();
    shared.groups.forget_recovery(handle);
    shared.registry.remove(&handle.meta.connection_id);
    metrics::gauge!(telemetry::CONNECTIONS_CURRENT).set(shared.registry.len() as f64);
}

/// The `code` label of `wsgate_disconnect_total`. A client may close with any of the 2000
/// application codes (3000–4999), so the codes it chooses are counted as `3xxx` or `4xxx`
/// (and anything else outside the protocol's range as `other`), keeping the number of series
/// bounded; the gateway's own codes and those a backend gives on `DELETE` stay exact.
fn code_label(reason: &CloseReason) -> String {
    match reason {
        CloseReason::ByClient { code, .. } => match code {
            1000..=1015 => code.to_string(),
            3000..=3999 => "3xxx".to_owned(),
            4000..=4999 => "4xxx".to_owned(),
            _ => "other".to_owned(),
        },
        other => other.code().to_string(),
    }
}

/// Ends a connection: every path out of a connection whose `$connect` succeeded comes here once.
pub(super) async fn finish(
    shared: &Shared,
    handle: &SessionHandle,
    routes: &StageRoutes,
    reason: CloseReason,
    inflow: Option<Inflow<'_>>,
    recorded: Recorded,
) {
    let meta = &handle.meta;
    unlist(shared, handle);
    // Memberships exist in the store only once it recorded the connection. One attempt here;
    // a failed one is repeated after the `$disconnect` until the store takes it.
    let forgotten = shared
        .groups
        .forget(handle, recorded == Recorded::Yes)
        .await;
    metrics::counter!(telemetry::DISCONNECT_TOTAL, "code" => code_label(&reason)).increment(1);
    // Messages already read still reach the integration, in order, before `$disconnect`.
    if let Some(inflow) = inflow {
        inflow.drain().await;
    }
    // A removed record leaves an owed entry in the store until the `$disconnect` is settled:
    // if this node dies first, a live node claims it after `cluster.disconnect_claim_ttl`.
    let removed = match recorded {
        Recorded::Yes => remove_record(shared, &meta.connection_id).await,
        Recorded::No | Recorded::Maybe => false,
    };
    let owed = removed || recorded != Recorded::Yes;
    tracing::debug!(connection_id = %meta.connection_id, code = reason.code(), reason = reason.reason(), owed, "disconnected");
    if owed {
        // The definition in force when it closes, as for a message (the stage's routes it
        // connected with only when a reload removed the stage).
        let live = shared.definition_for(&meta.stage, meta.canary);
        let routes = live.stage(&meta.stage).map_or(routes, |r| &**r);
        run_disconnect(shared, routes, meta, reason.code(), reason.reason()).await;
    }
    if removed {
        settle(shared, &meta.connection_id).await;
    }
    if !forgotten {
        shared.groups.forget_in_store(&handle.meta).await;
    }
    if recorded == Recorded::Maybe {
        // The store failed while recording it (often because it is down): the `$disconnect`
        // went out at once, and a record perhaps written halfway is removed once the store
        // answers. (Should this node die before that, a reaper could send a second one.)
        remove_leftover(shared, &meta.connection_id).await;
    }
}

/// Forgets the owed entry once its `$disconnect` was delivered or given up (the owner and the
/// reaper both end with this).
pub(crate) async fn settle(shared: &Shared, connection_id: &str) {
    let mut pause = RETRY_BACKOFF;
    for attempt in 1..=SETTLE_ATTEMPTS {
        match shared.store.settle(connection_id).await {
            Ok(()) => return,
            Err(error) if attempt == SETTLE_ATTEMPTS => {
                tracing::warn!(connection_id, %error, "cannot settle a delivered $disconnect; another node may send it again");
            }
            Err(_) => {
                sleep(pause).await;
                pause *= 2;
            }
        }
    }
}

/// Removes the record, trying again with backoff while the store fails (a failed removal is not
/// a removal: deciding either way would lose or double the `$disconnect`). True when this call
/// removed it; false when it was already gone (a reaper took it and owes the `$disconnect`).
/// At shutdown the drain timeout bounds the wait; a record left then is reaped by another node.
async fn remove_record(shared: &Shared, connection_id: &str) -> bool {
    let claim_for = shared.config.cluster.disconnect_claim_ttl;
    until_ok("remove the connection record", connection_id, || {
        (shared.store).remove_owing(connection_id, &shared.node_id, claim_for)
    })
    .await
    .is_some()
}

/// Removes a record a failed registration may have left, trying again while the store fails.
async fn remove_leftover(shared: &Shared, connection_id: &str) {
    until_ok("remove the connection record", connection_id, || {
        shared.store.remove(connection_id)
    })
    .await;
}

/// Calls the stage's `$disconnect` integration (if it has one) for `meta`, trying again with
/// backoff on a transport error, a timeout, 429 or 5xx: at most `limits.disconnect_attempts`
/// calls, all within `limits.disconnect_retry_within`. Only the owner of the `$disconnect` (see
/// [`finish`] and the reaper) calls this. True when the backend took it (or there is no route).
pub(crate) async fn run_disconnect(
    shared: &Shared,
    routes: &StageRoutes,
    meta: &ConnectionMeta,
    status_code: u16,
    reason: &str,
) -> bool {
    let started_ms = routes.access_log.as_ref().map(|_| super::now_ms());
    let Some(route) = routes.get("$disconnect") else {
        log_disconnect(routes, meta, &ids::request_id(), started_ms, None, true);
        return true;
    };
    let limits = &shared.config.limits;
    let started = Instant::now();
    let mut pause = DISCONNECT_BACKOFF;
    let mut attempt = 1;
    // A root span (a connection outlives any trace), one `integration` child per attempt.
    let mut span = shared.traces.root("disconnect");
    if span.context().is_some() {
        span.set_str("wsgate.connection_id", &meta.connection_id);
        span.set_str("wsgate.stage", &meta.stage);
        span.set_int("wsgate.close_code", i64::from(status_code));
    }
    loop {
        let request_id = ids::request_id();
        let invocation = Invocation {
            meta,
            route_key: "$disconnect",
            request_id: &request_id,
            trace: span.parent(),
            kind: EventKind::Disconnect {
                status_code,
                reason,
            },
        };
        let called = Instant::now();
        let result = invoke(route, &invocation).await;
        let integration = started_ms.map(|_| IntegrationOutcome {
            latency_ms: crate::access_log::millis(called.elapsed()),
            status: result.as_ref().ok().map(|r| r.status),
            error: (result.as_ref().err()).map(crate::access_log::integration_error_name),
        });
        let failure = match result {
            Ok(response) if response.status == 429 || response.status >= 500 => {
                format!("status {}", response.status)
            }
            Ok(_) => {
                log_disconnect(routes, meta, &request_id, started_ms, integration, true);
                return true;
            }
            Err(error) => error.to_string(),
        };
        let next_at = Instant::now() + pause;
        if attempt >= limits.disconnect_attempts
            || next_at.duration_since(started) >= limits.disconnect_retry_within
        {
            metrics::counter!(telemetry::DISCONNECT_FAILED_TOTAL).increment(1);
            tracing::warn!(connection_id = %meta.connection_id, attempts = attempt, %failure, "$disconnect failed; giving up");
            span.fail(&failure);
            log_disconnect(routes, meta, &request_id, started_ms, integration, false);
            return false;
        }
        metrics::counter!(telemetry::DISCONNECT_RETRY_TOTAL).increment(1);
        tracing::info!(connection_id = %meta.connection_id, attempt, %failure, "$disconnect failed; trying again");
        sleep(pause).await;
        pause *= 2;
        attempt += 1;
    }
}

/// Writes the DISCONNECT access log line (one per `$disconnect` owed, after its last attempt):
/// status 200 when the backend took it (or there is no route), 500 when it was given up.
fn log_disconnect(
    routes: &StageRoutes,
    meta: &ConnectionMeta,
    request_id: &str,
    started_ms: Option<i64>,
    integration: Option<IntegrationOutcome>,
    delivered: bool,
) {
    let (Some(access), Some(started_ms)) = (&routes.access_log, started_ms) else {
        return;
    };
    let outcome = Outcome {
        route_key: Some("$disconnect"),
        status: Some(if delivered { 200 } else { 500 }),
        integration,
        error_message: (!delivered).then_some("Internal server error"),
        ..Outcome::default()
    };
    access.event(
        meta,
        EventType::Disconnect,
        request_id,
        started_ms,
        &outcome,
    );
}
