//! The connect path: upgrade request → handshake checks → connection permit → origin and
//! per-address limits → authorizer and API key; then the connection's owner task takes over:
//! `$connect` (while the upgrade is pending) → record → 101 → session → end. The handler only
//! waits for the owner's answer, so a client that hangs up cancels nothing the owner owes.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, OriginalUri, Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::header;

use hyper::upgrade::OnUpgrade;
use tokio::sync::{OwnedSemaphorePermit, oneshot};

use super::end::{self, Recorded};
use super::{handshake, invoke, now_ms, session};
use crate::access_log::{EventType, IntegrationOutcome, Outcome, Record};
use crate::auth::identity::RequestView;
use crate::auth::per_ip::IpSlot;
use crate::auth::{AuthError, AuthRequest};
use crate::deployment::Definition;
use crate::domains::CustomDomain;
use crate::error::{CloseReason, HandshakeRejection};
use crate::events::{ConnectRequest, ConnectionMeta, EventKind};
use crate::ids;
use crate::integration::{IntegrationError, Invocation, StageRoutes};
use crate::raw_head::RawHeaders;
use crate::registry::{Outbox, SessionHandle};
use crate::state::Shared;
use crate::telemetry;
use crate::traces::Span;

/// The address of the listener a request came in on (a request extension; its port is the
/// `X-Forwarded-Port` of CONNECT events).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct LocalAddr(pub SocketAddr);

/// Axum handler for `GET /{stage}` (and `/{stage}/`).
pub(crate) async fn upgrade(
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
    request: Request,
) -> Result<Response, HandshakeRejection> {
    // The definition in force for the side this connection picks (its stage's canary with the
    // canary's percentage), for the whole handshake (a deploy meanwhile changes nothing here).
    let (live, canary) = shared
        .pick(&stage)
        .ok_or(HandshakeRejection::UnknownStage)?;
    let routes = live
        .stage(&stage)
        .cloned()
        .ok_or(HandshakeRejection::UnknownStage)?;
    // The client behind trusted proxies: `sourceIp`, per-address limits and logs.
    let client_ip = live.security.client_addr(peer.ip(), request.headers()).ip;
    // What a refusal before the owner takes over is logged with (only with an access log).
    let early = routes.access_log.as_ref().map(|_| {
        let user_agent = (request.headers().get(header::USER_AGENT))
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        (now_ms(), user_agent)
    });
    // The handshake's span: a child of the client's `traceparent`, if any (tracing on).
    let mut span = shared
        .traces
        .continuing_caller("handshake", request.headers());
    if span.context().is_some() {
        span.set_str("wsgate.stage", &stage);
        span.set_str("client.address", &client_ip.to_string());
    }
    let prepared = prepare(
        &shared,
        (&live, routes.clone(), canary),
        peer,
        &stage,
        client_ip,
        request,
        &mut span,
    )
    .await;
    if let Err(rejection) = &prepared {
        span.set_int(
            "http.response.status_code",
            i64::from(rejection.status().as_u16()),
        );
        span.fail(&rejection.to_string());
    }
    drop(span);
    match prepared {
        // From here the connection's own task decides everything, and logs it; this handler
        // only waits for the answer to send. A client that hangs up drops this future, never
        // the owner's.
        Ok(answer) => answer
            .await
            .unwrap_or(Err(HandshakeRejection::IntegrationFailed)),
        Err(rejection) => {
            if let (Some(log), Some((started_ms, user_agent))) = (&routes.access_log, early) {
                let status = rejection.status();
                let source_ip = client_ip.to_string();
                log.emit(&Record {
                    api_id: Some(&shared.api_id),
                    stage: &stage,
                    event_type: EventType::Connect,
                    connection_id: None,
                    route_key: Some("$connect"),
                    request_id: &ids::request_id(),
                    message_id: None,
                    request_time_ms: started_ms,
                    status: Some(status.as_u16()),
                    source_ip: Some(&source_ip),
                    user_agent: user_agent.as_deref(),
                    meta: None,
                    integration: None,
                    error_message: status.canonical_reason(),
                    error_type: None,
                    validation_error: None,
                });
            }
            Err(rejection)
        }
    }
}

/// The checks before `$connect`, then the owner task is started; answers what will carry the
/// owner's answer to the upgrade. `live` is the definition in force and `routes` its stage's.
async fn prepare(
    shared: &Arc<Shared>,
    (live, routes, canary): (&Definition, Arc<StageRoutes>, bool),
    peer: SocketAddr,
    stage: &str,
    client_ip: std::net::IpAddr,
    mut request: Request,
    span: &mut Span,
) -> Result<oneshot::Receiver<Result<Response, HandshakeRejection>>, HandshakeRejection> {
    let hs = handshake::check(request.method(), request.version(), request.headers())?;
    let groups_config = shared.groups.config();
    let recovery = crate::groups::recover::parse(
        request.uri().query(),
        groups_config.max_groups_per_connection,
        groups_config.max_name_bytes,
    )
    .map_err(HandshakeRejection::BadRecovery)?;
    if shared.is_draining() {
        return Err(HandshakeRejection::Draining);
    }
    // One permit per connection, taken before anything is spent on it and held until its
    // `$disconnect` is done: `limits.max_connections` is never passed, whatever the burst.
    let permit = Arc::clone(&shared.permits)
        .try_acquire_owned()
        .map_err(|_| HandshakeRejection::TooManyConnections)?;
    // The path the client used (and signed), before a custom domain mapped it.
    let uri = (request.extensions().get::<OriginalUri>())
        .map_or_else(|| request.uri().clone(), |o| o.0.clone());
    let refuse = |error: AuthError| {
        live.security.refused(&error, stage, client_ip, &uri);
        (shared.activity).refused(stage, &error, &client_ip.to_string());
        HandshakeRejection::from(&error)
    };
    let ip_slot = live
        .security
        .screen(client_ip, request.headers())
        .map_err(refuse)?;
    if let Err(throttled) = live.throttle.check_connect(stage).await {
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
        stage: stage.to_string(),
        api_id: Arc::clone(&shared.api_id),
        domain_name: match request.extensions().get::<CustomDomain>() {
            Some(custom) => custom.0.to_string(),
            None => domain_name(shared, live, header_str(header::HOST)),
        },
        connected_at_ms: now_ms(),
        source_ip: client_ip.to_string(),
        user_agent: header_str(header::USER_AGENT),
        api_key: None,
        api_key_id: None,
        authorizer: None,
        iam: None,
        cache_request: None,
        canary,
    };
    let connect_request = connect_request(&request, peer, shared.config.tls.is_some(), span);
    let request_id = ids::request_id();
    let no_variables = Default::default();
    let mut auth_span = span.child("authorizer");
    let admission = live
        .security
        .admit(&AuthRequest {
            method: request.method(),
            uri: &uri,
            view: RequestView {
                headers: request.headers(),
                connect: &connect_request,
                offered_protocols: &hs.offered_protocols,
                stage_variables: live
                    .config
                    .api
                    .stages
                    .get(stage)
                    .map_or(&no_variables, |s| &s.variables),
            },
            meta: &meta,
            request_id: &request_id,
        })
        .await
        .inspect_err(|error| auth_span.fail(&error.to_string()))
        .map_err(refuse)?;
    drop(auth_span);
    let meta = Arc::new(ConnectionMeta {
        authorizer: admission.authorizer,
        iam: admission.iam,
        api_key: admission.api_key,
        api_key_id: admission.api_key_id,
        cache_request: routes.cache.capture(&connect_request),
        ..meta
    });
    if let Some(id) = meta.api_key_id.as_deref()
        && let Err(throttled) = (live.throttle)
            .check_usage_plan(stage, live.security.usage_plan(id), id)
            .await
    {
        return Err(HandshakeRejection::Throttled {
            retry_after_secs: throttled.retry_after_secs(),
        });
    }

    let (handle, outbox) = SessionHandle::new(
        Arc::clone(&meta),
        shared.outbox_limits(),
        Arc::clone(&shared.budget),
        &shared.sessions_cancel,
    );
    if let Some(recovery) = recovery {
        // Before `$connect`, so before any join: see `groups::recover`.
        shared.groups.opt_in(&handle, recovery);
    }
    shared.registry.insert(Arc::clone(&handle));
    metrics::gauge!(telemetry::CONNECTIONS_CURRENT).set(shared.registry.len() as f64);
    metrics::counter!(telemetry::CONNECT_TOTAL, "stage" => stage.to_string()).increment(1);
    if canary {
        metrics::counter!(telemetry::CANARY_CONNECTIONS_TOTAL, "stage" => stage.to_string())
            .increment(1);
    }

    let (reply, answer) = oneshot::channel();
    let owner = Owner {
        shared: Arc::clone(shared),
        handle,
        outbox,
        routes,
        on_upgrade,
        reply,
        permit,
        ip_slot,
    };
    span.set_str("wsgate.connection_id", &meta.connection_id);
    let opening = Box::new(Opening {
        hs,
        connect_request,
        request_id,
        span: std::mem::take(span),
    });
    shared.tracker.spawn(owner.run(opening));
    Ok(answer)
}

/// What the `$connect` step needs and nothing after it keeps.
struct Opening {
    hs: handshake::Handshake,
    connect_request: ConnectRequest,
    request_id: String,
    /// The `handshake` span, ended once the upgrade is answered.
    span: Span,
}

/// What `$connect` decided for an accepted connection.
struct Accepted {
    protocol: Option<String>,
    groups: Vec<String>,
    accept: String,
}

/// The single owner of one connection, from the `$connect` call to its `$disconnect`.
struct Owner {
    shared: Arc<Shared>,
    handle: Arc<SessionHandle>,
    outbox: Outbox,
    routes: Arc<StageRoutes>,
    on_upgrade: OnUpgrade,
    reply: oneshot::Sender<Result<Response, HandshakeRejection>>,
    permit: OwnedSemaphorePermit,
    ip_slot: Option<IpSlot>,
}

impl Owner {
    /// The connection's whole life. Every path after a successful `$connect` ends in
    /// [`end::finish`], which owes exactly one `$disconnect`; no other path calls it.
    ///
    /// This future is the connection's task for as long as the socket is open, so it keeps
    /// nothing it no longer needs: the fields are used in place (an async fn's arguments are
    /// stored for its whole life; moving them into locals would store them twice), the
    /// handshake-only state is boxed and given back once `$connect` has it, and what `$connect`
    /// decided is used up in [`establish`] before the session starts.
    async fn run(self, opening: Box<Opening>) {
        // Boxed: `$connect`'s state is gone once it is done, and never sits in the session's.
        let opened = Box::pin(open(
            &self.shared,
            &self.handle,
            &self.routes,
            opening,
            self.reply,
        ))
        .await;
        // Nothing is owed when `$connect` refused it, or never answered 2xx.
        let Some(ended_early) = opened else {
            return;
        };
        let (reason, inflow, recorded) = match ended_early {
            Some((reason, recorded)) => (reason, None, recorded),
            None => {
                let (reason, inflow) = session::run(
                    &self.shared,
                    &self.handle,
                    self.outbox,
                    self.on_upgrade,
                    &self.routes,
                )
                .await;
                (reason, inflow, Recorded::Yes)
            }
        };
        end::finish(
            &self.shared,
            &self.handle,
            &self.routes,
            reason,
            inflow,
            recorded,
        )
        .await;
        // The connection counts against the cap and its address until it has fully ended.
        drop(self.permit);
        drop(self.ip_slot);
    }
}

/// `$connect`, then [`establish`] after a 2xx; answers the upgrade and writes the CONNECT
/// access log line. `None` when the connection was refused (unlisted, nothing owed); else what
/// [`establish`] decided (a `$disconnect` is owed from there, whatever happens).
async fn open(
    shared: &Arc<Shared>,
    handle: &Arc<SessionHandle>,
    routes: &StageRoutes,
    mut opening: Box<Opening>,
    reply: oneshot::Sender<Result<Response, HandshakeRejection>>,
) -> Option<Option<(CloseReason, Recorded)>> {
    let request_id = std::mem::take(&mut opening.request_id);
    let mut span = std::mem::take(&mut opening.span);
    let mut log = (routes.access_log.as_ref()).map(|_| {
        let outcome = Outcome {
            route_key: Some("$connect"),
            ..Outcome::default()
        };
        (now_ms(), outcome)
    });
    let connected = call_connect(
        shared,
        handle,
        routes,
        *opening,
        &request_id,
        span.parent(),
        log.as_mut().map(|(_, outcome)| outcome),
    )
    .await;
    let mut status = 200;
    let opened = match connected {
        Ok(accepted) => {
            Some(establish(shared, handle, accepted, span.parent(), reply, &mut status).await)
        }
        Err(rejection) => {
            end::unlist(shared, handle);
            status = rejection.status().as_u16();
            let _ = reply.send(Err(rejection));
            None
        }
    };
    if span.context().is_some() {
        span.set_int("http.response.status_code", i64::from(status));
        if status >= 400 {
            span.fail("the upgrade was refused");
        }
    }
    drop(span);
    if let (Some(access), Some((started_ms, mut outcome))) = (&routes.access_log, log) {
        outcome.status = Some(status);
        if status >= 400 {
            outcome.error_message = http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason());
        }
        access.event(
            &handle.meta,
            EventType::Connect,
            &request_id,
            started_ms,
            &outcome,
        );
    }
    opened
}

/// After a 2xx `$connect`: records the connection, joins the groups `$connect` named (their
/// `$join` events under `trace`, the handshake's span) and answers the upgrade with the 101 (`status`: what the client was answered, 200 for the 101 as
/// AWS logs it). `None` when the session is to run; otherwise why the connection ends at once
/// (the client was told with the refusal) and whether it was recorded.
async fn establish(
    shared: &Arc<Shared>,
    handle: &Arc<SessionHandle>,
    accepted: Accepted,
    trace: crate::traces::Parent<'_>,
    reply: oneshot::Sender<Result<Response, HandshakeRejection>>,
    status: &mut u16,
) -> Option<(CloseReason, Recorded)> {
    if shared.is_draining() {
        *status = HandshakeRejection::Draining.status().as_u16();
        let _ = reply.send(Err(HandshakeRejection::Draining));
        return Some((CloseReason::ShuttingDown, Recorded::No));
    }
    if let Err(error) = shared
        .store
        .register(&session::record(shared, handle))
        .await
    {
        tracing::warn!(connection_id = %handle.meta.connection_id, %error, "cannot record the connection");
        *status = HandshakeRejection::StoreUnavailable.status().as_u16();
        let _ = reply.send(Err(HandshakeRejection::StoreUnavailable));
        return Some((CloseReason::StoreUnavailable, Recorded::Maybe));
    }
    if let Err(rejection) =
        crate::groups::admit(&shared.groups, handle, &accepted.groups, trace).await
    {
        *status = rejection.status().as_u16();
        let _ = reply.send(Err(rejection));
        return Some((CloseReason::Abnormal, Recorded::Yes));
    }
    // Established from here on, as the client sees it once the 101 arrives: GET and DELETE
    // work at once (a DELETE before the session starts closes it right after).
    handle.mark_open();
    let upgrade = handshake::switching_protocols(&accepted.accept, accepted.protocol.as_deref());
    if reply.send(Ok(upgrade)).is_err() {
        // The client hung up while `$connect` ran.
        return Some((CloseReason::Abnormal, Recorded::Yes));
    }
    tracing::debug!(connection_id = %handle.meta.connection_id, stage = %handle.meta.stage, source_ip = %handle.meta.source_ip, "connected");
    None
}

/// Runs `$connect` (when the stage has one) and reads its decision; fills `log` (when given)
/// with the integration's part.
async fn call_connect(
    shared: &Shared,
    handle: &SessionHandle,
    routes: &StageRoutes,
    opening: Opening,
    request_id: &str,
    trace: crate::traces::Parent<'_>,
    log: Option<&mut Outcome<'_>>,
) -> Result<Accepted, HandshakeRejection> {
    let Opening {
        hs,
        connect_request,
        request_id: _,
        span: _,
    } = opening;
    let meta = &handle.meta;
    let mut protocol = None;
    let mut groups = Vec::new();
    if let Some(route) = routes.get("$connect") {
        let invocation = Invocation {
            meta,
            route_key: "$connect",
            request_id,
            trace,
            kind: EventKind::Connect(&connect_request),
        };
        let started = log.is_some().then(std::time::Instant::now);
        let result = invoke(route, &invocation).await;
        if let (Some(log), Some(started)) = (log, started) {
            log.integration = Some(IntegrationOutcome {
                latency_ms: crate::access_log::millis(started.elapsed()),
                status: result.as_ref().ok().map(|r| r.status),
                error: (result.as_ref().err()).map(crate::access_log::integration_error_name),
            });
        }
        let response = result.map_err(|e| match e {
            // Passthrough refused by a non-proxy integration: AWS's 415.
            IntegrationError::UnsupportedMediaType => HandshakeRejection::Rejected(415),
            _ => HandshakeRejection::IntegrationFailed,
        })?;
        if !(200..300).contains(&response.status) {
            tracing::info!(connection_id = %meta.connection_id, status = response.status, "$connect rejected the connection");
            return Err(HandshakeRejection::Rejected(response.status));
        }
        protocol = response
            .header("sec-websocket-protocol")
            .map(str::trim)
            .filter(|p| hs.offered_protocols.iter().any(|o| o == p))
            .filter(|p| (shared.definition_for(&meta.stage, meta.canary).security).selectable(p))
            .map(str::to_string);
        if protocol.is_none() && response.header("sec-websocket-protocol").is_some() {
            tracing::warn!(connection_id = %meta.connection_id, "$connect selected a subprotocol the client did not offer; ignored");
        }
        groups = crate::groups::groups_from_answer(&response);
    }
    let protocol = protocol.or_else(|| {
        (shared.definition_for(&meta.stage, meta.canary).security)
            .fallback_protocol(&hs.offered_protocols)
    });
    Ok(Accepted {
        protocol,
        groups,
        accept: hs.accept,
    })
}

/// `domainName` for events: configured, else the callback listener when the callback API is
/// only there, else the `Host` the client used without a default port (`:80` for `ws`, `:443`
/// for `wss`), so that `https://{domainName}/{stage}` reaches the callback API.
fn domain_name(shared: &Shared, live: &Definition, host: Option<String>) -> String {
    if let Some(name) = &live.config.api.domain_name {
        return name.clone();
    }
    if !shared.config.callback.on_main_listener
        && let Some(addr) = shared.bound.callback()
    {
        return addr.to_string();
    }
    match host {
        Some(host) => without_default_port(host, shared.config.tls.is_some()),
        None => (shared.bound.main())
            .unwrap_or(shared.config.listen)
            .to_string(),
    }
}

/// `host` without `:80` (plain) or `:443` (TLS); any other port is kept.
fn without_default_port(host: String, tls: bool) -> String {
    let default = if tls { ":443" } else { ":80" };
    match host.strip_suffix(default) {
        // A name, an IPv4 address or a bracketed IPv6 address: nothing else may hold a colon.
        Some(name) if !name.is_empty() && (name.ends_with(']') || !name.contains(':')) => {
            name.to_string()
        }
        _ => host,
    }
}

/// The CONNECT event's view of the upgrade request: its headers with the names as the client
/// spelled them (from [`RawHeaders`], captured by the server; hyper's lowercase names when there
/// is none), in arrival order. As in AWS's events, the hop-by-hop `Connection` and `Upgrade` are
/// left out (the REQUEST authorizer event puts AWS's own back, see
/// [`crate::events::authorizer_event`]), and `X-Forwarded-For`, `X-Forwarded-Port`,
/// `X-Forwarded-Proto` and `X-Amzn-Trace-Id` are added.
fn connect_request(
    request: &Request,
    peer: SocketAddr,
    tls: bool,
    handshake: &Span,
) -> ConnectRequest {
    let mut headers: Vec<(String, String)> = match request.extensions().get::<RawHeaders>() {
        Some(RawHeaders(raw)) => raw
            .iter()
            .filter_map(|(name, value)| {
                let value = http::HeaderValue::from_bytes(value).ok()?;
                Some((name.clone(), value.to_str().ok()?.to_string()))
            })
            .collect(),
        None => request
            .headers()
            .iter()
            .filter_map(|(name, value)| Some((name.to_string(), value.to_str().ok()?.to_string())))
            .collect(),
    };
    let forwarded_for = match request
        .headers()
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
    {
        Some(existing) => format!("{existing}, {}", peer.ip()),
        None => peer.ip().to_string(),
    };
    headers.retain(|(k, _)| {
        !["X-Forwarded-For", "Connection", "Upgrade"]
            .iter()
            .any(|hop| k.eq_ignore_ascii_case(hop))
    });
    headers.push(("X-Forwarded-For".into(), forwarded_for));
    let mut add_unless_sent = |name: &str, value: &dyn Fn() -> Option<String>| {
        if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name))
            && let Some(value) = value()
        {
            headers.push((name.into(), value));
        }
    };
    add_unless_sent("X-Forwarded-Port", &|| {
        let local = request.extensions().get::<LocalAddr>()?;
        Some(local.0.port().to_string())
    });
    add_unless_sent("X-Forwarded-Proto", &|| {
        Some(if tls { "https" } else { "http" }.into())
    });
    // With tracing on, the X-Ray form of the handshake span's trace; else a fresh X-Ray id.
    add_unless_sent("X-Amzn-Trace-Id", &|| {
        Some(match handshake.context() {
            Some(context) => crate::traces::propagate::amzn_trace_id(context),
            None => ids::trace_id(),
        })
    });
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

#[cfg(test)]
mod tests {
    use super::without_default_port;

    #[test]
    fn default_ports_are_dropped_from_the_host() {
        let cases = [
            ("example.com:80", false, "example.com"),
            ("example.com:443", true, "example.com"),
            ("example.com:443", false, "example.com:443"),
            ("example.com:8080", false, "example.com:8080"),
            ("example.com", false, "example.com"),
            ("[2001:db8::1]:80", false, "[2001:db8::1]"),
            ("127.0.0.1:80", false, "127.0.0.1"),
            (":80", false, ":80"),
        ];
        for (host, tls, want) in cases {
            assert_eq!(without_default_port(host.into(), tls), want, "{host}");
        }
    }
}
