//! Operational endpoints: `/healthz` (liveness, and the deployment served), `/readyz` (503 while draining or when the
//! connection store is unreachable) and `/metrics` (Prometheus text).

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use http::{StatusCode, header};
use serde_json::json;

use crate::state::Shared;
use crate::telemetry;

/// The operational routes.
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
}

/// Also names the deployment this node serves, and each stage's (`docs/deployments.md`).
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let serving = shared.serving();
    axum::Json(json!({
        "status": "ok",
        "deployment": &serving.main.deployment,
        "serving": serving.report(),
    }))
    .into_response()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    if shared.is_draining() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "draining" })),
        )
            .into_response();
    }
    match shared.store.health().await {
        Ok(()) => axum::Json(json!({ "status": "ready", "node": shared.node_id })).into_response(),
        Err(error) => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(json!({ "status": "store unavailable", "error": error.to_string() })),
        )
            .into_response(),
    }
}

async fn metrics() -> Response {
    let text = telemetry::prometheus().render();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response()
}
