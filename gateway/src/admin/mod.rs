//! The admin page: `GET /@admin` (one static HTML file with its script inline, embedded in the
//! binary) over a small JSON API under `/@admin/api/`, served wherever the callback API is
//! (the main listener and/or `callback.listen`) and behind the callback API's authentication.
//! Stage names cannot contain `@`, so the path never collides with a stage.
//!
//! | request | answer |
//! |---|---|
//! | `GET /@admin` | the page |
//! | `GET /@admin/api/overview` | node, connections, rates, latency, charts, groups, cluster, recent errors |
//! | `GET /@admin/api/config` | the configuration in force, secrets redacted (text) |
//! | `POST /@admin/api/reload` | re-reads the configuration file (`wsgate reload`): 200 with the new deployment, 422 or 409 with the reason it was refused |
//! | `GET`/`POST /@admin/api/deployments`, `POST /@admin/api/stages/{stage}/rollback`, `…/canary/promote`, `DELETE …/canary` | deployments and stage pointers (see `deployments`) |
//! | `DELETE /@admin/api/connections/{stage}/{id}[?code=&reason=]` | closes it, as `DELETE @connections` |
//! | `POST /@admin/api/connections/{stage}/{id}` | sends the body, as `POST @connections` |
//! | `POST /@admin/api/groups/{stage}/{group}` | sends the body to the group, as `POST @groups` |
//!
//! Every API request must carry `x-wsgate-admin: 1`: a cross-site page cannot add that header
//! without a CORS preflight, which is never granted, so a browser on the operator's machine
//! cannot be made to act on a loopback-trusted gateway. The page itself holds no data; under
//! bearer or SigV4 authentication it is served to anyone who reaches it (a browser cannot add a
//! header to a navigation) and asks for the token, which it keeps in the tab's session storage.
//!
//! This gateway's own counters, latency histogram and recent errors are kept by
//! [`crate::activity`].
//!
//! - `samples`: the one-a-second ring that rates, charts and latency windows come from.
//! - `overview`: the overview's JSON.
//! - `redact`: the configuration text.

mod deployments;
mod overview;
mod redact;
pub(crate) mod samples;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::{HeaderName, HeaderValue, StatusCode, header};
use serde_json::json;

use crate::callback::auth::{CallbackAuth, CallerRequest};
use crate::callback::{self, Api, CloseParams};
use crate::error::CallbackError;
use crate::iam::MANAGE_CONNECTIONS;
use crate::reload::Reloader;
use crate::rollout::Rollout;
use samples::Samples;

/// The page.
const PAGE: &str = include_str!("page.html");
/// The header every API request must carry (see the module docs).
const ADMIN_HEADER: &str = "x-wsgate-admin";

/// What the admin handlers share: the callback API (state, cluster, caller authentication) and
/// the sample ring.
#[derive(Debug)]
pub(crate) struct Admin {
    api: Arc<Api>,
    samples: Arc<Samples>,
    reloader: Arc<Reloader>,
    rollout: Arc<Rollout>,
}

impl Admin {
    /// The admin page over `api`, reading `samples`, reloading through `reloader`, deploying
    /// through `rollout`.
    pub(crate) fn new(
        api: Arc<Api>,
        samples: Arc<Samples>,
        reloader: Arc<Reloader>,
        rollout: Arc<Rollout>,
    ) -> Self {
        Self {
            api,
            samples,
            reloader,
            rollout,
        }
    }
}

/// The admin routes: the page and its API over `admin`, or (`None`: `admin.enabled` is off)
/// 404 for every admin path.
pub(crate) fn router(admin: Option<Arc<Admin>>) -> Router {
    let Some(admin) = admin else {
        let not_found = || async { StatusCode::NOT_FOUND };
        return Router::new()
            .route("/@admin", get(not_found))
            .route("/@admin/", get(not_found))
            .route(
                "/@admin/{*rest}",
                get(not_found).post(not_found).delete(not_found),
            );
    };
    Router::new()
        .route("/@admin", get(page))
        .route("/@admin/", get(page))
        .route("/@admin/api/overview", get(overview))
        .route("/@admin/api/config", get(config))
        .route("/@admin/api/reload", post(reload))
        .route(
            "/@admin/api/deployments",
            get(deployments::list).post(deployments::apply),
        )
        .route("/@admin/api/definition", get(deployments::definition))
        .route(
            "/@admin/api/stages/{stage}/rollback",
            post(deployments::rollback),
        )
        .route(
            "/@admin/api/stages/{stage}/canary/promote",
            post(deployments::promote),
        )
        .route(
            "/@admin/api/stages/{stage}/canary",
            axum::routing::delete(deployments::drop_canary),
        )
        .route(
            "/@admin/api/connections/{stage}/{id}",
            post(post_to_connection).delete(disconnect),
        )
        .route("/@admin/api/groups/{stage}/{group}", post(post_to_group))
        .with_state(admin)
}

/// The page: to loopback callers only under loopback trust; to anyone under bearer or SigV4
/// (the API calls are what is checked).
async fn page(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let auth = &admin.api.auth;
    if matches!(auth, CallbackAuth::LoopbackOnly(_)) {
        let caller = CallerRequest {
            peer,
            method: request.method(),
            raw_path: request.uri().path(),
            routed_path: request.uri().path(),
            raw_query: request.uri().query(),
            headers: request.headers(),
        };
        if let Err(refused) = auth.check_head(&caller) {
            return refused.into_response();
        }
    }
    let mut response = ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], PAGE).into_response();
    let headers = response.headers_mut();
    for (name, value) in [
        ("cache-control", "no-store"),
        ("x-frame-options", "DENY"),
        ("x-content-type-options", "nosniff"),
        ("referrer-policy", "no-referrer"),
        (
            "content-security-policy",
            "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; \
             connect-src 'self'; img-src data:; frame-ancestors 'none'",
        ),
    ] {
        headers.insert(
            HeaderName::from_static(name),
            HeaderValue::from_static(value),
        );
    }
    response
}

/// Refuses a request without [`ADMIN_HEADER`].
fn marked(request: &Request) -> Result<(), CallbackError> {
    if request
        .headers()
        .get(ADMIN_HEADER)
        .is_some_and(|v| v == "1")
    {
        Ok(())
    } else {
        Err(CallbackError::Forbidden(
            "Forbidden: admin API requests carry the x-wsgate-admin: 1 header",
        ))
    }
}

/// An API answer that is never cached.
fn no_store(response: impl IntoResponse) -> Response {
    let mut response = response.into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// An admin API request carries the marker header and passes the callback API's
/// authentication (`ManageConnections`).
async fn admitted(admin: &Admin, peer: SocketAddr, request: Request) -> Result<(), CallbackError> {
    marked(&request)?;
    callback::authenticate(&admin.api, peer, request, MANAGE_CONNECTIONS).await?;
    Ok(())
}

fn answer(result: Result<Response, CallbackError>) -> Response {
    no_store(result.unwrap_or_else(IntoResponse::into_response))
}

async fn overview(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    answer(
        async {
            admitted(&admin, peer, request).await?;
            let body = overview::build(&admin.api, &admin.samples, &admin.rollout).await;
            Ok(axum::Json(body).into_response())
        }
        .await,
    )
}

async fn config(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    answer(
        async {
            admitted(&admin, peer, request).await?;
            let text = redact::config_text(&admin.api.shared.definition().config);
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
        }
        .await,
    )
}

/// `POST …/reload`: re-reads the configuration file; the new deployment, or why not.
async fn reload(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    answer(
        async {
            admitted(&admin, peer, request).await?;
            Ok(match admin.reloader.reload().await {
                Ok(deployment) => axum::Json(json!({ "deployment": deployment })).into_response(),
                Err(refused) => refused.into_response(),
            })
        }
        .await,
    )
}

/// `DELETE …/connections/{stage}/{id}`: `DELETE @connections`'s code.
async fn disconnect(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    answer(
        async {
            marked(&request)?;
            let api = &admin.api;
            let (parts, _) = callback::admit(api, peer, &stage, request).await?;
            let close = CloseParams::parse(parts.uri.query());
            tracing::info!(%peer, %stage, connection_id = %id, "admin page: disconnect");
            callback::delete_connection(api, &stage, &id, close).await
        }
        .await,
    )
}

/// `POST …/connections/{stage}/{id}`: `POST @connections`'s code.
async fn post_to_connection(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    answer(
        async {
            marked(&request)?;
            let api = &admin.api;
            let (_, body) = callback::admit(api, peer, &stage, request).await?;
            tracing::info!(%peer, %stage, connection_id = %id, bytes = body.len(), "admin page: post to connection");
            callback::post_to(&api.shared, api.cluster.as_deref(), &stage, &id, body).await?;
            Ok(StatusCode::OK.into_response())
        }
        .await,
    )
}

/// `POST …/groups/{stage}/{group}`: `POST @groups`'s code.
async fn post_to_group(
    State(admin): State<Arc<Admin>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, group)): Path<(String, String)>,
    request: Request,
) -> Response {
    answer(
        async {
            marked(&request)?;
            let api = &admin.api;
            let (_, body) = callback::admit(api, peer, &stage, request).await?;
            tracing::info!(%peer, %stage, %group, bytes = body.len(), "admin page: post to group");
            let outcome = (api.shared.groups)
                .post(&stage, Some(&group), body, None)
                .await?;
            Ok(callback::post_answer(&outcome))
        }
        .await,
    )
}
