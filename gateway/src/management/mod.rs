//! The management API: the subset of Amazon API Gateway's `apigatewayv2` REST API that
//! WebSocket APIs use (`/v2/apis/…`, `/v2/domainnames/…`), so that the unmodified AWS SDKs and
//! the AWS CLI (`--endpoint-url`) build this gateway's API, deploy it to a stage and roll it
//! back. Served with the admin API (wherever the callback API is, behind its authentication:
//! loopback trust, bearer tokens, or SigV4 signatures for service `apigateway` whose key's
//! policy allows `apigateway:{METHOD}` on `arn:aws:apigateway:{region}::/v2/…`) and refused
//! to browsers (a request carrying `Origin`).
//!
//! The gateway serves one API: `GetApis` lists it, with its `apiId` (`api.id`). Its routes,
//! integrations, route and integration responses, models, authorizers and stages are seeded
//! from the definition in force and changed by the calls; `CreateDeployment` turns them into a
//! definition (through the CloudFormation importer: `build`) and deploys it with `rollout`,
//! `UpdateStage` with a `deploymentId` points a stage at a deployment (deploy or roll back),
//! with `stageVariables` serves them at once, and `DeleteStage` stops serving the stage.
//! See `docs/deployments.md` for the coverage table.
//!
//! - `draft`: the resources between deployments, ids, the generic create/read/update/delete.
//! - `seed`: the definition in force as resources.
//! - `build`: the resources as a definition.
//! - `handlers`: one function per operation, but the stages'.
//! - `stages`: the stage operations, which take effect at once.

mod build;
mod draft;
mod handlers;
mod seed;
mod stages;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use http::{StatusCode, header};

use crate::callback::{self, Api};
use crate::domains::LiveDomains;
use crate::error::{CallbackError, ManagementError};
use crate::rollout::Rollout;
use crate::state::Bound;
use draft::Draft;

/// Largest request body (a model's schema or a request template is the big one).
const MAX_BODY: usize = 1024 * 1024;

/// What the management handlers share.
pub(crate) struct Management {
    api: Arc<Api>,
    rollout: Arc<Rollout>,
    /// The resources between deployments (`None` until the first request seeds them).
    draft: tokio::sync::Mutex<Option<Draft>>,
    /// The listeners' addresses (the API's `apiEndpoint`).
    bound: Arc<Bound>,
    /// The custom domains in force.
    domains: LiveDomains,
    /// The API's `createdDate` (when this gateway started).
    created: String,
}

impl std::fmt::Debug for Management {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Management")
            .field("endpoint", &self.endpoint())
            .finish_non_exhaustive()
    }
}

impl Management {
    /// The management API of the gateway whose callback API is `api`, deploying through
    /// `rollout`; `bound` has the listeners' addresses, `domains` the custom domains.
    pub(crate) fn new(
        api: Arc<Api>,
        rollout: Arc<Rollout>,
        bound: Arc<Bound>,
        domains: LiveDomains,
    ) -> Self {
        Self {
            api,
            rollout,
            draft: tokio::sync::Mutex::new(None),
            bound,
            domains,
            created: now(),
        }
    }

    /// The API's `apiEndpoint`: the domain name, else the main listener where it is now.
    fn endpoint(&self) -> String {
        let config = self.rollout.start_config();
        let scheme = if config.tls.is_some() { "wss" } else { "ws" };
        let local = self.bound.main().unwrap_or(config.listen);
        match &config.api.domain_name {
            Some(domain) => format!("{scheme}://{domain}"),
            None if local.ip().is_unspecified() => {
                format!("{scheme}://127.0.0.1:{}", local.port())
            }
            None => format!("{scheme}://{local}"),
        }
    }
}

/// The current time as the service writes dates.
fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The routes of the management API over `management` (`None`: not served).
pub(crate) fn router(management: Option<Arc<Management>>) -> Router {
    let Some(management) = management else {
        return Router::new();
    };
    Router::new()
        .route("/v2/apis", any(handle))
        .route("/v2/apis/{*rest}", any(handle))
        .route("/v2/domainnames", any(handle))
        .route("/v2/domainnames/{*rest}", any(handle))
        .with_state(management)
}

async fn handle(
    State(management): State<Arc<Management>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let (parts, body) = match admitted(&management, peer, request).await {
        Ok(admitted) => admitted,
        Err(error) => return error.into_response(),
    };
    // Run to completion on a task of its own: a caller that hangs up while a deployment is
    // being made must not leave the store changed and the draft not told.
    let call = tokio::spawn(async move {
        handlers::dispatch(&management, &parts, &body)
            .await
            .unwrap_or_else(IntoResponse::into_response)
    });
    call.await.unwrap_or_else(|_| {
        ManagementError::Unavailable("the request failed; see the gateway's log".into())
            .into_response()
    })
}

/// The request's head and body once it passed the checks: not from a browser (a page cannot
/// be made to change the API of a loopback-trusted gateway), and the callback API's
/// authentication.
async fn admitted(
    management: &Management,
    peer: SocketAddr,
    request: Request,
) -> Result<(http::request::Parts, bytes::Bytes), ManagementError> {
    if request.headers().contains_key(header::ORIGIN) {
        return Err(ManagementError::Denied(CallbackError::Forbidden(
            "Forbidden: the management API does not answer browsers (the request carries Origin)",
        )));
    }
    let (parts, body) = callback::authenticate_up_to(
        &management.api,
        peer,
        request,
        callback::auth::Scope::Management,
        MAX_BODY,
    )
    .await?;
    Ok((parts, body))
}

/// A JSON answer with `status`.
fn reply(status: StatusCode, body: &serde_json::Value) -> Response {
    (status, axum::Json(body)).into_response()
}
