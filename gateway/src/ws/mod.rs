//! The WebSocket side: the handshake checks, the connect path (`$connect` before the 101), the
//! per-connection session loop, and the inbound flow that routes its messages to integrations.

pub(crate) mod connect;
pub(crate) mod connections;
mod dispatch;
mod end;
mod frames;
pub(crate) mod handshake;
mod io;
mod session;
mod woken;

pub(crate) use end::{run_disconnect, settle};
pub(crate) use session::record;

use std::time::Instant;

use crate::access_log::execution::Event;
use crate::activity::CallOutcome;
use crate::events::EventKind;
use crate::integration::{IntegrationError, IntegrationResponse, Invocation, Route};

/// Calls a route's integration, records latency and error metrics, and writes the route's
/// execution log; with tracing on, in an `integration` span (child of `invocation.trace`) that
/// the integration propagates. Also the call of a group's `$join`/`$leave` event.
pub(crate) async fn invoke(
    route: &Route,
    invocation: &Invocation<'_>,
) -> Result<IntegrationResponse, IntegrationError> {
    let mut span = invocation.trace.child("integration");
    let traced;
    let invocation = match span.context() {
        None => invocation,
        Some(_) => {
            traced = Invocation {
                trace: span.parent(),
                ..*invocation
            };
            &traced
        }
    };
    let started = span.context().map(|_| Instant::now());
    let result = call(route, invocation).await;
    if let Some(started) = started {
        span.set_str("wsgate.route_key", &route.key);
        span.set_str("wsgate.integration.type", route.integration.kind());
        span.set_int(
            "wsgate.integration.latency_ms",
            i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
        );
        match &result {
            Ok(response) => {
                span.set_int("http.response.status_code", i64::from(response.status));
                if response.status >= 500 {
                    span.fail("integration answered 5xx");
                }
            }
            Err(error) => span.fail(&error.to_string()),
        }
    }
    result
}

/// [`invoke`] without its span.
async fn call(
    route: &Route,
    invocation: &Invocation<'_>,
) -> Result<IntegrationResponse, IntegrationError> {
    let at = Event {
        meta: invocation.meta,
        route_key: invocation.route_key,
        request_id: invocation.request_id,
    };
    if let EventKind::Message { body, .. } = &invocation.kind {
        route.execution.request_body(at, body.as_bytes());
    }
    let started = Instant::now();
    let result = route.integration.invoke(invocation).await;
    let elapsed = started.elapsed();
    route
        .execution
        .integration(at, route.integration.kind(), &result, elapsed);
    let metrics = &route.metrics;
    let latency = (route.integration.kind() != "mock").then(|| started.elapsed());
    if let Some(latency) = latency {
        metrics.latency.record(latency.as_secs_f64());
    }
    let outcome = match &result {
        Ok(response) => CallOutcome::Answered(response.status),
        Err(error) => CallOutcome::Failed(error),
    };
    let meta = invocation.meta;
    (metrics.activity).call(
        &metrics.tally,
        latency,
        &outcome,
        (&meta.stage, &route.key, &meta.connection_id),
    );
    match &result {
        Ok(response) if response.status >= 400 => metrics.integration_errors.increment(1),
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(
                connection_id = %invocation.meta.connection_id,
                route_key = %route.key,
                request_id = %invocation.request_id,
                %error,
                "integration call failed"
            );
            metrics.execution_errors.increment(1);
        }
    }
    result
}

/// Epoch milliseconds now.
pub(crate) fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
