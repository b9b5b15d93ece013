//! The admin API of deployments ([`crate::rollout`]): what `wsgate apply`, `rollback`,
//! `deployments` and `canary` call.
//!
//! | request | answer |
//! |---|---|
//! | `GET /@admin/api/deployments` | kept deployments (newest first), stage pointers, what each node serves |
//! | `POST /@admin/api/deployments` `{"definition": YAML, "stages"?: [..], "description"?: "..", "canary"?: percent}` | 200 `{deployment, unchanged, version, stages}`; 422 not valid, 409 fixed key / conflict, 400 bad field. YAML is a whole configuration file or a definition document (`api`, `throttling`) |
//! | `GET /@admin/api/definition?stage=S` or `?deployment=ID` | 200 `{deployment, definition}` (the definition `api`/`throttling` as stored; without either, the main one in force); 404 no such stage or deployment |
//! | `POST /@admin/api/stages/{stage}/rollback` `{"to"?: id}` | 200 `{version, stages}`; 404 no such stage or deployment, 409 nothing to roll back to |
//! | `POST /@admin/api/stages/{stage}/canary/promote` | 200; 409 no canary |
//! | `DELETE /@admin/api/stages/{stage}/canary` | 200; 409 no canary |
//!
//! Errors are `{"message": "…"}`; 503 when the deployment store cannot be reached. The same
//! marker header and authentication as every admin API request.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::{Admin, answer, marked};
use crate::error::{CallbackError, ReloadError};
use crate::iam::MANAGE_CONNECTIONS;
use crate::rollout::ApplyRequest;

/// `POST /@admin/api/deployments`'s body.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ApplyBody {
    /// The configuration file's text (YAML).
    definition: String,
    #[serde(default)]
    stages: Vec<String>,
    #[serde(default)]
    description: String,
    #[serde(default)]
    canary: Option<f64>,
}

/// `POST …/rollback`'s body (optional).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RollbackBody {
    #[serde(default)]
    to: Option<String>,
}

/// Checks the marker header and the caller; answers the body (up to `limit` bytes).
async fn admitted_body(
    admin: &Admin,
    peer: SocketAddr,
    request: Request,
    limit: usize,
) -> Result<bytes::Bytes, CallbackError> {
    marked(&request)?;
    let (_, body) =
        crate::callback::authenticate_up_to(&admin.api, peer, request, MANAGE_CONNECTIONS, limit)
            .await?;
    Ok(body)
}

/// The JSON body, or a 400 naming what is wrong; an empty body is the default.
fn json_body<T: serde::de::DeserializeOwned + Default>(body: &[u8]) -> Result<T, ReloadError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(T::default());
    }
    serde_json::from_slice(body).map_err(|e| ReloadError::BadRequest(format!("body: {e}")))
}

fn outcome<T: serde::Serialize>(result: Result<T, ReloadError>) -> Response {
    match result {
        Ok(value) => axum::Json(value).into_response(),
        Err(error) => error.into_response(),
    }
}

/// `GET /@admin/api/deployments`.
pub(super) async fn list(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    answer(
        async {
            super::admitted(&admin, peer, request).await?;
            Ok(outcome(admin.rollout.listing().await))
        }
        .await,
    )
}

/// `GET /@admin/api/definition`'s query.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Which {
    stage: Option<String>,
    deployment: Option<String>,
}

/// `GET /@admin/api/definition`: what `wsgate export definition` writes.
pub(super) async fn definition(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    which: Result<Query<Which>, QueryRejection>,
    request: Request,
) -> Response {
    answer(
        async {
            super::admitted(&admin, peer, request).await?;
            let Query(which) = match which {
                Ok(which) => which,
                Err(e) => {
                    let error = ReloadError::BadRequest(format!("query: {}", e.body_text()));
                    return Ok(error.into_response());
                }
            };
            let (stage, deployment) = (which.stage.as_deref(), which.deployment.as_deref());
            Ok(outcome(admin.rollout.definition(stage, deployment).await))
        }
        .await,
    )
}

/// `POST /@admin/api/deployments`.
pub(super) async fn apply(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let limit = admin
        .rollout
        .start_config()
        .deployments
        .max_definition_bytes
        + 64 * 1024;
    answer(
        async {
            let body = admitted_body(&admin, peer, request, limit).await?;
            let body: ApplyBody = match serde_json::from_slice(&body) {
                Ok(body) => body,
                Err(e) => {
                    return Ok(ReloadError::BadRequest(format!("body: {e}")).into_response());
                }
            };
            tracing::info!(%peer, stages = ?body.stages, canary = ?body.canary, "admin API: apply");
            let start = admin.rollout.start_config();
            let config = match start.applied(&body.definition, std::env::vars()) {
                Ok(config) => config,
                Err(error) => {
                    let error = ReloadError::Invalid(error.to_string());
                    tracing::error!(%error, "apply refused; the deployments in force stay");
                    return Ok(error.into_response());
                }
            };
            let request = ApplyRequest {
                stages: body.stages,
                description: body.description,
                canary: body.canary,
            };
            let result = admin.rollout.apply(config, request).await;
            if let Err(error) = &result {
                tracing::error!(%error, "apply refused; the deployments in force stay");
            }
            Ok(outcome(result))
        }
        .await,
    )
}

/// `POST /@admin/api/stages/{stage}/rollback`.
pub(super) async fn rollback(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stage): Path<String>,
    request: Request,
) -> Response {
    answer(
        async {
            let body = admitted_body(&admin, peer, request, 64 * 1024).await?;
            let body: RollbackBody = match json_body(&body) {
                Ok(body) => body,
                Err(error) => return Ok(error.into_response()),
            };
            tracing::info!(%peer, %stage, to = ?body.to, "admin API: rollback");
            Ok(outcome(
                admin.rollout.rollback(&stage, body.to.as_deref()).await,
            ))
        }
        .await,
    )
}

/// `POST /@admin/api/stages/{stage}/canary/promote`.
pub(super) async fn promote(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stage): Path<String>,
    request: Request,
) -> Response {
    answer(
        async {
            super::admitted(&admin, peer, request).await?;
            tracing::info!(%peer, %stage, "admin API: canary promote");
            Ok(outcome(admin.rollout.promote(&stage).await))
        }
        .await,
    )
}

/// `DELETE /@admin/api/stages/{stage}/canary`.
pub(super) async fn drop_canary(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stage): Path<String>,
    request: Request,
) -> Response {
    answer(
        async {
            super::admitted(&admin, peer, request).await?;
            tracing::info!(%peer, %stage, "admin API: canary drop");
            Ok(outcome(admin.rollout.drop_canary(&stage).await))
        }
        .await,
    )
}
