//! The callback API, wire-compatible with Amazon API Gateway's management API:
//! `POST/GET/DELETE /{stage}/@connections/{id}` (also `%40connections`), with AWS error names.
//!
//! Groups (`@groups`, `@broadcast`, memberships and listings) are in [`groups`], a group's
//! history (`@groups/{group}/history`) in [`history`], response-cache
//! invalidation (`@cache`) in [`cache`], behind the same [`admit`] checks.
//!
//! A connection held by this node is reached through [`crate::ws::connections`]; one held by
//! another node is forwarded to its owner over the cluster bus (see [`crate::cluster`]), and GET
//! answers from its record.

pub(crate) mod auth;
mod cache;
mod groups;
mod history;
mod span;

pub(crate) use groups::post_answer;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, OriginalUri, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use http::{Method, StatusCode};
use serde_json::json;

use self::auth::{CallbackAuth, CallerRequest};
use crate::cluster::Cluster;
use crate::error::CallbackError;
use crate::state::Shared;
use crate::telemetry;
use crate::traces::Parent;
use crate::ws::connections;

/// What the callback handlers share: the gateway state, the cluster (Redis store only) that
/// reaches connections held by other nodes, and the caller authentication.
#[derive(Debug)]
pub(crate) struct Api {
    pub(crate) shared: Arc<Shared>,
    pub(crate) cluster: Option<Arc<Cluster>>,
    pub(crate) auth: CallbackAuth,
}

impl Api {
    /// The callback API over `shared`, forwarding through `cluster`, authenticating with `auth`.
    pub(crate) fn new(
        shared: Arc<Shared>,
        cluster: Option<Arc<Cluster>>,
        auth: CallbackAuth,
    ) -> Self {
        Self {
            shared,
            cluster,
            auth,
        }
    }
}

/// The callback routes (mounted on the main listener and/or the callback listener). Every answer
/// carries a fresh `x-amzn-RequestId`, as AWS's do.
pub(crate) fn router() -> Router<Arc<Api>> {
    let handler = post(connection).get(connection).delete(connection);
    Router::new()
        .route("/{stage}/@connections/{id}", handler.clone())
        .route("/{stage}/%40connections/{id}", handler)
        .merge(groups::router())
        .merge(cache::router())
        .layer(axum::middleware::map_response(with_request_id))
}

/// The answer to a path nothing serves: 403 `ForbiddenException` `{"message":"Forbidden"}`, as
/// AWS answers an unknown stage or path on an API's endpoint (not 404).
pub(crate) async fn unknown_path() -> Response {
    with_request_id(CallbackError::UnknownStage.into_response()).await
}

/// Adds `x-amzn-RequestId` (a random UUID, the form AWS uses) to a callback answer that has
/// none yet (an access-logged call set its own, the `requestId` of its line).
async fn with_request_id(mut response: Response) -> Response {
    if response.headers().contains_key(REQUEST_ID) {
        return response;
    }
    if let Ok(id) = http::HeaderValue::from_str(&uuid::Uuid::new_v4().to_string()) {
        response.headers_mut().insert(REQUEST_ID, id);
    }
    response
}

/// `?code=4000&reason=...` on DELETE (beyond AWS).
#[derive(Debug, Default)]
pub(crate) struct CloseParams {
    code: Option<String>,
    reason: Option<String>,
}

impl CloseParams {
    pub(crate) fn parse(query: Option<&str>) -> Self {
        let mut params = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            match &*key {
                "code" => params.code = Some(value.into_owned()),
                "reason" => params.reason = Some(value.into_owned()),
                _ => {}
            }
        }
        params
    }
}

const REQUEST_ID: http::HeaderName = http::HeaderName::from_static("x-amzn-requestid");

async fn connection(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let target = span::Target {
        route: "/{stage}/@connections/{id}",
        stage: &stage,
        connection_id: Some(&id),
        group: None,
    };
    let span = span::start(&api, &request, target);
    let response = access_logged(&api, peer, (&stage, &id), request, span.parent()).await;
    span::finish(span, &response);
    response
}

/// A callback request, with its access log line when the stage has an access log.
async fn access_logged(
    api: &Api,
    peer: SocketAddr,
    (stage, id): (&str, &str),
    request: Request,
    trace: Parent<'_>,
) -> Response {
    let method = request.method().clone();
    let live = api.shared.definition_for(stage, false);
    let access = live
        .stage(stage)
        .and_then(|routes| routes.access_log.clone());
    let Some(access) = access else {
        return answer(&method, handle(api, peer, stage, id, request, trace).await);
    };
    let started_ms = crate::ws::now_ms();
    let source_ip = (live.security)
        .client_addr(peer.ip(), request.headers())
        .ip
        .to_string();
    let user_agent = (request.headers().get(http::header::USER_AGENT))
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut response = answer(&method, handle(api, peer, stage, id, request, trace).await);
    let request_id = uuid::Uuid::new_v4().to_string();
    if let Ok(value) = http::HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let status = response.status();
    access.emit(&crate::access_log::Record {
        api_id: Some(&api.shared.api_id),
        stage,
        event_type: crate::access_log::EventType::Callback,
        connection_id: Some(id),
        route_key: Some(match method {
            Method::POST => "POST /@connections",
            Method::GET => "GET /@connections",
            Method::DELETE => "DELETE /@connections",
            _ => "-",
        }),
        request_id: &request_id,
        message_id: None,
        request_time_ms: started_ms,
        status: Some(status.as_u16()),
        source_ip: Some(&source_ip),
        user_agent: user_agent.as_deref(),
        meta: None,
        integration: None,
        error_message: (!status.is_success())
            .then(|| status.canonical_reason())
            .flatten(),
        error_type: (response.headers().get("x-amzn-errortype")).and_then(|v| v.to_str().ok()),
        validation_error: None,
    });
    response
}

/// Counts the request in `wsgate_callback_requests_total` and turns errors into answers.
fn answer(method: &Method, result: Result<Response, CallbackError>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    metrics::counter!(
        telemetry::CALLBACK_TOTAL,
        "method" => method.to_string(),
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    response
}

async fn handle(
    api: &Api,
    peer: SocketAddr,
    stage: &str,
    id: &str,
    request: Request,
    trace: Parent<'_>,
) -> Result<Response, CallbackError> {
    let (parts, body) = admit(api, peer, stage, request).await?;
    match parts.method {
        Method::POST => {
            post_traced(
                &api.shared,
                api.cluster.as_deref(),
                (stage, id),
                body,
                trace,
            )
            .await?;
            Ok(StatusCode::OK.into_response())
        }
        Method::GET => get_connection(api, stage, id).await,
        Method::DELETE => {
            let close = CloseParams::parse(parts.uri.query());
            delete_traced(api, stage, id, close, trace).await
        }
        _ => Err(CallbackError::BadRequest("unsupported method".into())),
    }
}

/// What every callback request goes through: caller authentication (as far as possible before
/// the body is read), the body limit and deadline, the stage check and throttling. Answers the
/// request's parts and its body.
///
/// # Errors
/// 403, 413, 408, 404 or 429 as the callback API answers them.
pub(crate) async fn admit(
    api: &Api,
    peer: SocketAddr,
    stage: &str,
    request: Request,
) -> Result<(http::request::Parts, Bytes), CallbackError> {
    admit_for(api, peer, stage, request, crate::iam::MANAGE_CONNECTIONS).await
}

/// [`admit`] for a request whose IAM action is `action`.
///
/// # Errors
/// As for [`admit`].
pub(crate) async fn admit_for(
    api: &Api,
    peer: SocketAddr,
    stage: &str,
    request: Request,
    action: &'static str,
) -> Result<(http::request::Parts, Bytes), CallbackError> {
    let (parts, body) = authenticate(api, peer, request, action).await?;
    let shared = &api.shared;
    let live = shared.definition_for(stage, false);
    if !shared.serves(stage) || live.stage(stage).is_none() {
        return Err(CallbackError::UnknownStage);
    }
    if live.throttle.check_callback(stage).await.is_err() {
        return Err(CallbackError::Throttled);
    }
    Ok((parts, body))
}

/// The caller authentication and body limit of [`admit_for`], without its stage check and
/// throttling (the admin API's reads, which name no stage).
///
/// # Errors
/// 403, 413 or 408 as the callback API answers them.
pub(crate) async fn authenticate(
    api: &Api,
    peer: SocketAddr,
    request: Request,
    action: &'static str,
) -> Result<(http::request::Parts, Bytes), CallbackError> {
    let limit = api.shared.config.limits.max_message_bytes;
    authenticate_up_to(api, peer, request, action, limit).await
}

/// [`authenticate`] with a body of at most `limit` bytes, for a request of `scope` (an action
/// of the callback API, or the management API).
pub(crate) async fn authenticate_up_to(
    api: &Api,
    peer: SocketAddr,
    request: Request,
    scope: impl Into<auth::Scope>,
    limit: usize,
) -> Result<(http::request::Parts, Bytes), CallbackError> {
    let scope = scope.into();
    let (parts, body) = request.into_parts();
    // The path the client used (and signed), before a custom domain mapped it.
    let signed_uri = (parts.extensions.get::<OriginalUri>()).map_or(&parts.uri, |o| &o.0);
    let caller = CallerRequest {
        peer,
        method: &parts.method,
        raw_path: signed_uri.path(),
        routed_path: parts.uri.path(),
        raw_query: signed_uri.query(),
        headers: &parts.headers,
    };
    let shared = &api.shared;
    api.auth.check_head_of(&caller, scope)?;
    let declared = parts
        .headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(size) = declared.filter(|size| *size > limit) {
        return Err(CallbackError::PayloadTooLarge { size, limit });
    }
    let body = read_body(body, limit, shared.config.callback.body_timeout).await?;
    api.auth.check_body(&caller, &body, scope)?;
    Ok((parts, body))
}

/// Reads the whole body: at most `limit` bytes, all of them within `deadline` (a total bound,
/// not one per chunk, so a body trickled in byte by byte is cut off too).
async fn read_body(body: Body, limit: usize, deadline: Duration) -> Result<Bytes, CallbackError> {
    match tokio::time::timeout(deadline, axum::body::to_bytes(body, limit)).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(_)) => Err(CallbackError::PayloadTooLarge {
            size: limit + 1,
            limit,
        }),
        Err(_) => Err(CallbackError::BodyTimeout),
    }
}

/// Sends `data` to connection `id` of `stage` wherever it is held: this node's through
/// [`connections::push`], another node's through `cluster` (410 when no node holds it). What
/// `POST @connections` does, shared with the broker consumers.
///
/// # Errors
/// As the callback API answers: gone, throttled or full (429), owner unreachable (503).
pub(crate) async fn post_to(
    shared: &Shared,
    cluster: Option<&Cluster>,
    stage: &str,
    id: &str,
    data: Bytes,
) -> Result<(), CallbackError> {
    post_traced(shared, cluster, (stage, id), data, Parent::NONE).await
}

/// [`post_to`] within the trace of `trace` (a cross-node post gets its `forward` span there).
async fn post_traced(
    shared: &Shared,
    cluster: Option<&Cluster>,
    (stage, id): (&str, &str),
    data: Bytes,
    trace: Parent<'_>,
) -> Result<(), CallbackError> {
    match (
        connections::push(shared, id, Some(stage), data.clone()),
        cluster,
    ) {
        (Some(pushed), _) => pushed,
        (None, Some(cluster)) => cluster.post(stage, id, data, trace).await,
        (None, None) => Err(CallbackError::Gone),
    }
}

async fn get_connection(api: &Api, stage: &str, id: &str) -> Result<Response, CallbackError> {
    let shared = &api.shared;
    let (connected_at, last_active, source_ip, user_agent, auth) =
        match connections::info(shared, id, stage) {
            Some(info) => {
                let info = info?;
                (
                    info.connected_at_ms,
                    info.last_active_ms,
                    info.source_ip,
                    info.user_agent,
                    info.authorizer,
                )
            }
            None => {
                let record = shared
                    .store
                    .get(id)
                    .await
                    .map_err(|_| CallbackError::Unavailable)?
                    // A record naming this node without a registry entry is a closing connection.
                    .filter(|r| r.stage == stage && r.node_id != shared.node_id)
                    .ok_or(CallbackError::Gone)?;
                (
                    record.connected_at_ms,
                    record.last_active_at_ms,
                    record.source_ip,
                    record.user_agent,
                    record.authorizer,
                )
            }
        };
    let mut body = json!({
        "connectedAt": iso8601(connected_at),
        "identity": { "sourceIp": source_ip, "userAgent": user_agent.unwrap_or_default() },
        "lastActiveAt": iso8601(last_active),
    });
    // Beyond AWS: who the connection belongs to, as its authorizer established.
    if let Some(auth) = auth {
        body["authorizer"] = serde_json::Value::Object(auth);
    }
    Ok(axum::Json(body).into_response())
}

/// `DELETE @connections/{id}`: closes connection `id` of `stage` wherever it is held (also
/// the admin page's disconnect).
///
/// # Errors
/// 400 for a bad code or reason, 410 when no node holds it, 503 when its owner is unreachable.
pub(crate) async fn delete_connection(
    api: &Api,
    stage: &str,
    id: &str,
    close: CloseParams,
) -> Result<Response, CallbackError> {
    delete_traced(api, stage, id, close, Parent::NONE).await
}

/// [`delete_connection`] within the trace of `trace`.
async fn delete_traced(
    api: &Api,
    stage: &str,
    id: &str,
    close: CloseParams,
    trace: Parent<'_>,
) -> Result<Response, CallbackError> {
    let code = match close.code.as_deref() {
        None => 1000,
        Some(text) => text.parse::<u16>().unwrap_or(0),
    };
    if code != 1000 && !(3000..=4999).contains(&code) {
        return Err(CallbackError::BadRequest(
            "code must be 1000 or between 3000 and 4999".into(),
        ));
    }
    let reason = close
        .reason
        .unwrap_or_else(|| "Connection Closed Normally".into());
    if reason.len() > 123 {
        return Err(CallbackError::BadRequest(
            "reason must be at most 123 bytes".into(),
        ));
    }
    match (
        connections::close(&api.shared, id, Some(stage), code, reason.clone()),
        &api.cluster,
    ) {
        (Some(closed), _) => closed?,
        (None, Some(cluster)) => cluster.delete(stage, id, code, reason, trace).await?,
        (None, None) => return Err(CallbackError::Gone),
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn iso8601(epoch_ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(epoch_ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}
