//! The connect path: upgrade request → handshake checks → origin and per-address limits →
//! authorizer and API key → `$connect` integration (while the upgrade is pending) → connection
//! record → 101 → session task.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header;

use super::{handshake, invoke, now_ms, session};
use crate::auth::identity::RequestView;
use crate::auth::{AuthError, AuthRequest};
use crate::error::HandshakeRejection;
use crate::events::{ConnectRequest, ConnectionMeta, EventKind, header_display_name};
use crate::ids;
use crate::integration::{Invocation, StageRoutes};
use crate::registry::SessionHandle;
use crate::state::Shared;
use crate::telemetry;

/// Removes a pending connection from the registry if the handshake does not complete (rejected,
/// failed, or the client went away while `$connect` ran).
struct PendingGuard {
    shared: Arc<Shared>,
    handle: Arc<SessionHandle>,
    armed: bool,
}

impl Drop for PendingGuard {
    fn drop(&mut self) {
        if self.armed {
            self.handle.mark_closed();
            self.shared.registry.remove(&self.handle.meta.connection_id);
            metrics::gauge!(telemetry::CONNECTIONS_CURRENT).set(self.shared.registry.len() as f64);
        }
    }
}

/// A connection that passed `$connect` and was recorded, until its handshake completes: dropped
/// armed (the client went away while its groups were being joined), it still gets its cleanup
/// and `$disconnect`.
struct Connected(Option<(Arc<Shared>, Arc<SessionHandle>, Arc<StageRoutes>)>);

impl Drop for Connected {
    fn drop(&mut self) {
        if let Some((shared, handle, routes)) = self.0.take() {
            session::spawn_rejected_after_connect(shared, handle, routes);
        }
    }
}

/// Axum handler for `GET /{stage}` (and `/{stage}/`).
pub async fn upgrade(
    State(shared): State<Arc<Shared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stage): Path<String>,
    request: Request,
) -> Response {
    match accept(shared, peer, stage, request).await {
        Ok(response) => response,
        Err(rejection) => {
            if rejection.status().is_client_error() {
                metrics::counter!(telemetry::CLIENT_ERROR_TOTAL).increment(1);
            }
            rejection.into_response()
        }
    }
}

async fn accept(
    shared: Arc<Shared>,
    peer: SocketAddr,
    stage: String,
    mut request: Request,
) -> Result<Response, HandshakeRejection> {
    let routes = shared
        .stages
        .get(&stage)
        .cloned()
        .ok_or(HandshakeRejection::UnknownStage)?;
    let hs = handshake::check(request.method(), request.version(), request.headers())?;
    if shared.is_draining() {
        return Err(HandshakeRejection::Draining);
    }
    if shared.registry.len() + shared.security.in_flight() >= shared.config.limits.max_connections {
        return Err(HandshakeRejection::TooManyConnections);
    }
    let uri = request.uri().clone();
    let refuse = |error: AuthError| {
        shared.security.refused(&error, &stage, peer.ip(), &uri);
        HandshakeRejection::from(&error)
    };
    let ip_slot = shared
        .security
        .screen(peer.ip(), request.headers())
        .map_err(refuse)?;
    if let Err(throttled) = shared.throttle.check_connect(&stage).await {
        return Err(HandshakeRejection::Throttled {
            retry_after_secs: throttled.retry_after_secs(),
        });
    }
    let on_upgrade = hyper::upgrade::on(&mut request);
    let headers = request.headers();
    let header_str = |name: header::HeaderName| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let meta = ConnectionMeta {
        connection_id: ids::connection_id(),
        stage: stage.clone(),
        api_id: Arc::clone(&shared.api_id),
        domain_name: domain_name(&shared, header_str(header::HOST)),
        connected_at_ms: now_ms(),
        source_ip: peer.ip().to_string(),
        user_agent: header_str(header::USER_AGENT),
        api_key: None,
        api_key_id: None,
        authorizer: None,
    };
    let connect_request = connect_request(&request, peer, shared.config.tls.is_some());
    let request_id = ids::request_id();
    let no_variables = Default::default();
    let admission = shared
        .security
        .admit(&AuthRequest {
            view: RequestView {
                headers: request.headers(),
                connect: &connect_request,
                offered_protocols: &hs.offered_protocols,
                stage_variables: shared
                    .config
                    .api
                    .stages
                    .get(&stage)
                    .map_or(&no_variables, |s| &s.variables),
            },
            meta: &meta,
            request_id: &request_id,
        })
        .await
        .map_err(refuse)?;
    let meta = Arc::new(ConnectionMeta {
        authorizer: admission.authorizer,
        api_key: admission.api_key,
        api_key_id: admission.api_key_id,
        ..meta
    });
    if let Some(id) = meta.api_key_id.as_deref()
        && let Err(throttled) = (shared.throttle)
            .check_usage_plan(&stage, shared.security.usage_plan(id), id)
            .await
    {
        return Err(HandshakeRejection::Throttled {
            retry_after_secs: throttled.retry_after_secs(),
        });
    }

    let (handle, outbox) = SessionHandle::new(
        Arc::clone(&meta),
        shared.config.limits.outbound_queue_messages,
        &shared.sessions_cancel,
    );
    shared.registry.insert(Arc::clone(&handle));
    metrics::gauge!(telemetry::CONNECTIONS_CURRENT).set(shared.registry.len() as f64);
    let mut guard = PendingGuard {
        shared: Arc::clone(&shared),
        handle: Arc::clone(&handle),
        armed: true,
    };
    metrics::counter!(telemetry::CONNECT_TOTAL, "stage" => stage.clone()).increment(1);

    let mut protocol = None;
    let mut groups = Vec::new();
    if let Some(route) = routes.get("$connect") {
        let invocation = Invocation {
            meta: &meta,
            route_key: "$connect",
            request_id: &request_id,
            kind: EventKind::Connect(&connect_request),
        };
        let response = invoke(route, &invocation)
            .await
            .map_err(|_| HandshakeRejection::IntegrationFailed)?;
        if !(200..300).contains(&response.status) {
            tracing::info!(connection_id = %meta.connection_id, status = response.status, "$connect rejected the connection");
            return Err(HandshakeRejection::Rejected(response.status));
        }
        protocol = response
            .header("sec-websocket-protocol")
            .map(str::trim)
            .filter(|p| hs.offered_protocols.iter().any(|o| o == p))
            .filter(|p| shared.security.selectable(p))
            .map(str::to_string);
        if protocol.is_none() && response.header("sec-websocket-protocol").is_some() {
            tracing::warn!(connection_id = %meta.connection_id, "$connect selected a subprotocol the client did not offer; ignored");
        }
        groups = crate::groups::groups_from_answer(&response);
    }
    let protocol = protocol.or_else(|| shared.security.fallback_protocol(&hs.offered_protocols));
    if shared.is_draining() {
        // The backend saw the connect; it must see the disconnect too.
        session::spawn_rejected_after_connect(Arc::clone(&shared), Arc::clone(&handle), routes);
        guard.armed = false;
        return Err(HandshakeRejection::Draining);
    }
    if let Err(error) = shared
        .store
        .register(&session::record(&shared, &handle))
        .await
    {
        tracing::warn!(connection_id = %meta.connection_id, %error, "cannot record the connection");
        session::spawn_rejected_after_connect(Arc::clone(&shared), Arc::clone(&handle), routes);
        guard.armed = false;
        return Err(HandshakeRejection::StoreUnavailable);
    }
    let mut connected = Connected(Some((
        Arc::clone(&shared),
        Arc::clone(&handle),
        Arc::clone(&routes),
    )));
    guard.armed = false;
    crate::groups::admit(&shared, &handle, &groups).await?;
    connected.0 = None;
    // Established from here on, as the client sees it once the 101 arrives: GET and DELETE
    // work at once (a DELETE before the session task starts closes it right after the upgrade).
    handle.mark_open();
    // The session future is created inside the task's future: awaiting a future captured by
    // value would store it twice in the task's allocation for the connection's whole life.
    let task_shared = Arc::clone(&shared);
    let task = async move {
        session::run(task_shared, handle, outbox, on_upgrade, routes).await;
        // The connection counts against its address until it has fully ended.
        drop(ip_slot);
    };
    shared.tracker.spawn(task);
    tracing::debug!(connection_id = %meta.connection_id, %stage, source_ip = %meta.source_ip, "connected");
    Ok(handshake::switching_protocols(
        &hs.accept,
        protocol.as_deref(),
    ))
}

/// `domainName` for events: configured, else the callback listener when the callback API is
/// only there, else the `Host` the client used.
fn domain_name(shared: &Shared, host: Option<String>) -> String {
    if let Some(name) = &shared.config.api.domain_name {
        return name.clone();
    }
    if !shared.config.callback.on_main_listener
        && let Some(addr) = shared.callback_addr
    {
        return addr.to_string();
    }
    host.unwrap_or_else(|| shared.config.listen.to_string())
}

fn connect_request(request: &Request, peer: SocketAddr, tls: bool) -> ConnectRequest {
    let mut headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .filter_map(|(name, value)| {
            let value = value.to_str().ok()?;
            Some((header_display_name(name.as_str()), value.to_string()))
        })
        .collect();
    let forwarded_for = match request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(existing) => format!("{existing}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    headers.retain(|(k, _)| k != "X-Forwarded-For");
    headers.push(("X-Forwarded-For".into(), forwarded_for));
    if !headers.iter().any(|(k, _)| k == "X-Forwarded-Proto") {
        let proto = if tls { "https" } else { "http" };
        headers.push(("X-Forwarded-Proto".into(), proto.into()));
    }
    let raw_query = request.uri().query().map(str::to_string);
    let query = raw_query
        .as_deref()
        .map(|q| form_urlencoded::parse(q.as_bytes()).into_owned().collect())
        .unwrap_or_default();
    ConnectRequest {
        headers,
        query,
        raw_query,
    }
}
