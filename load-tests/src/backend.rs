//! The built-in integration backend for a gateway under test (Lambda-proxy events over HTTP).
//!
//! | path | event | answer |
//! |---|---|---|
//! | `POST /connect` | `$connect` (`CONNECT`) | `{"statusCode":200}`, records `requestContext.connectionId`; with a `groups` query parameter, answers the header `X-Wsgate-Groups: <its value>` (the gateway joins those groups) |
//! | `POST /disconnect` | `$disconnect` | `{"statusCode":200}`, forgets the id |
//! | `POST /whoami` | `MESSAGE` | `{"statusCode":200,"body":"{\"connectionId\":\"<id>\"}"}` |
//! | `POST /echo` | `MESSAGE` | `{"statusCode":200,"body":<the frame text>}` |
//! | `POST /sink` | `MESSAGE` (one-way) | `{"statusCode":200}` |
//! | `POST /echo-http` | `http_proxy` body | the body itself |
//! | `GET /stats` | | event counters as JSON |
//! | `PUT /fault/reset-percent` | | body `P` (0..=100): from now on P of every 100 integration requests are answered by a TCP reset |
//!
//! HTTP/1.1 keep-alive, one task per connection. `$connect`/`$disconnect` are balanced per
//! connection id: `connected_ids` counts ids connected and not yet disconnected,
//! `unmatched_disconnects` the `$disconnect` events for an id that was not connected (a second
//! `$disconnect`, or one without `$connect`), `duplicate_connects` a second `$connect` for an id.
//! The reset fault picks requests by a counter (every request whose number modulo 100 is below
//! P), so the share is exact and needs no random source.

use crate::httpd::{Resp, json, read_body, resp};
use crate::net::listen;
use anyhow::Result;
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Largest event accepted.
const MAX_EVENT: usize = 1 << 20;
/// Most connection ids remembered from `$connect` events.
const MAX_IDS: usize = 2_000_000;

#[derive(Deserialize)]
struct Ctx<'a> {
    #[serde(rename = "connectionId", borrow)]
    connection_id: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Event<'a> {
    #[serde(rename = "requestContext", borrow)]
    request_context: Ctx<'a>,
    #[serde(borrow, default)]
    body: Option<Cow<'a, str>>,
    #[serde(rename = "queryStringParameters", borrow, default)]
    query: Option<Query<'a>>,
}

/// The query parameters the backend reads.
#[derive(Deserialize)]
struct Query<'a> {
    /// Groups the `$connect` answer joins.
    #[serde(borrow, default)]
    groups: Option<Cow<'a, str>>,
}

#[derive(Serialize)]
struct ProxyResponse<'a> {
    #[serde(rename = "statusCode")]
    status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<BTreeMap<&'a str, &'a str>>,
}

#[derive(Default)]
struct Shared {
    connect: AtomicU64,
    disconnect: AtomicU64,
    whoami: AtomicU64,
    echo: AtomicU64,
    sink: AtomicU64,
    echo_http: AtomicU64,
    bad: AtomicU64,
    unmatched_disconnects: AtomicU64,
    duplicate_connects: AtomicU64,
    resets: AtomicU64,
    reset_percent: AtomicU64,
    requests: AtomicU64,
    ids: Mutex<HashSet<String>>,
}

impl Shared {
    fn stats(&self) -> BTreeMap<String, u64> {
        let ids = self.ids.lock().unwrap_or_else(|p| p.into_inner()).len();
        BTreeMap::from([
            ("connect_events".to_owned(), self.connect.load(Relaxed)),
            (
                "disconnect_events".to_owned(),
                self.disconnect.load(Relaxed),
            ),
            ("whoami_events".to_owned(), self.whoami.load(Relaxed)),
            ("echo_events".to_owned(), self.echo.load(Relaxed)),
            ("sink_events".to_owned(), self.sink.load(Relaxed)),
            (
                "echo_http_requests".to_owned(),
                self.echo_http.load(Relaxed),
            ),
            ("bad_events".to_owned(), self.bad.load(Relaxed)),
            (
                "unmatched_disconnects".to_owned(),
                self.unmatched_disconnects.load(Relaxed),
            ),
            (
                "duplicate_connects".to_owned(),
                self.duplicate_connects.load(Relaxed),
            ),
            ("resets".to_owned(), self.resets.load(Relaxed)),
            (
                "connected_ids".to_owned(),
                u64::try_from(ids).unwrap_or(u64::MAX),
            ),
        ])
    }
}

/// A running backend.
pub struct Backend {
    /// Where it listens.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: JoinHandle<()>,
}

impl Backend {
    /// Event counters.
    pub fn stats(&self) -> BTreeMap<String, u64> {
        self.shared.stats()
    }

    /// Whether a `$connect` event was seen for `id` (and no `$disconnect` since).
    pub fn knows(&self, id: &str) -> bool {
        self.shared
            .ids
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(id)
    }

    /// Answers `percent` of every 100 integration requests from now on with a TCP reset.
    pub fn set_reset_percent(&self, percent: u64) {
        self.shared.reset_percent.store(percent.min(100), Relaxed);
    }

    /// Stops accepting.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts the backend on the current runtime.
pub async fn start(addr: SocketAddr) -> Result<Backend> {
    start_on(listen(addr, 4096)?)
}

/// Starts the backend on `listener` (any address: the standalone backend of the fault runs
/// listens on a veth address inside its own network namespace; the backend only answers).
pub fn start_on(listener: tokio::net::TcpListener) -> Result<Backend> {
    let addr = listener.local_addr()?;
    let shared = Arc::new(Shared::default());
    let stop = CancellationToken::new();
    let (s, st) = (shared.clone(), stop.clone());
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                () = st.cancelled() => break,
                r = listener.accept() => match r {
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        tokio::spawn(serve(stream, s.clone()));
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
                },
            }
        }
    });
    Ok(Backend {
        addr,
        shared,
        stop,
        task,
    })
}

/// Serves one connection; a request picked by the reset fault ends it with a TCP reset.
async fn serve(stream: tokio::net::TcpStream, s: Arc<Shared>) {
    let kill = CancellationToken::new();
    // With SO_LINGER 0, dropping the socket sends RST instead of FIN. Set up front (while the
    // fault is on) because the stream moves into the HTTP server.
    if s.reset_percent.load(Relaxed) > 0 {
        let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    }
    let k = kill.clone();
    let conn = crate::httpd::serve(stream, move |req| handle(req, s.clone(), k.clone()));
    tokio::select! {
        () = conn => {}
        () = kill.cancelled() => {}
    }
}

fn proxy(body: Option<&str>) -> Resp {
    proxy_with(body, None)
}

fn proxy_with(body: Option<&str>, headers: Option<BTreeMap<&str, &str>>) -> Resp {
    json(
        StatusCode::OK,
        serde_json::to_vec(&ProxyResponse {
            status_code: 200,
            body,
            headers,
        })
        .unwrap_or_default(),
    )
}

async fn handle(req: Request<Incoming>, s: Arc<Shared>, kill: CancellationToken) -> Resp {
    let path = req.uri().path().to_owned();
    if req.method() == Method::PUT && path == "/fault/reset-percent" {
        let body = read_body(req.into_body(), 64).await.unwrap_or_default();
        return match std::str::from_utf8(&body)
            .ok()
            .and_then(|t| t.trim().parse::<u64>().ok())
        {
            Some(p) if p <= 100 => {
                s.reset_percent.store(p, Relaxed);
                resp(StatusCode::NO_CONTENT, "")
            }
            _ => resp(StatusCode::BAD_REQUEST, "body: a percentage 0..=100\n"),
        };
    }
    if req.method() == Method::GET {
        return match path.as_str() {
            "/stats" => json(
                StatusCode::OK,
                serde_json::to_vec(&s.stats()).unwrap_or_default(),
            ),
            "/healthz" => resp(StatusCode::OK, "ok"),
            _ => resp(StatusCode::NOT_FOUND, ""),
        };
    }
    let pct = s.reset_percent.load(Relaxed);
    if pct > 0 && s.requests.fetch_add(1, Relaxed) % 100 < pct {
        s.resets.fetch_add(1, Relaxed);
        kill.cancel();
        // The connection task drops the socket; this answer is never sent.
        std::future::pending::<()>().await;
    }
    let Some(raw) = read_body(req.into_body(), MAX_EVENT).await else {
        s.bad.fetch_add(1, Relaxed);
        return resp(StatusCode::PAYLOAD_TOO_LARGE, "");
    };
    if path == "/echo-http" {
        s.echo_http.fetch_add(1, Relaxed);
        return resp(StatusCode::OK, raw);
    }
    let Ok(ev) = serde_json::from_slice::<Event<'_>>(&raw) else {
        s.bad.fetch_add(1, Relaxed);
        return resp(StatusCode::BAD_REQUEST, "");
    };
    let id = ev.request_context.connection_id;
    match path.as_str() {
        "/connect" => {
            s.connect.fetch_add(1, Relaxed);
            let mut ids = s.ids.lock().unwrap_or_else(|p| p.into_inner());
            if ids.len() < MAX_IDS && !ids.insert(id.into_owned()) {
                s.duplicate_connects.fetch_add(1, Relaxed);
            }
            drop(ids);
            let groups = ev.query.as_ref().and_then(|q| q.groups.as_deref());
            proxy_with(
                None,
                groups.map(|g| BTreeMap::from([("X-Wsgate-Groups", g)])),
            )
        }
        "/disconnect" => {
            s.disconnect.fetch_add(1, Relaxed);
            let known = s
                .ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id.as_ref());
            if !known {
                s.unmatched_disconnects.fetch_add(1, Relaxed);
            }
            proxy(None)
        }
        "/whoami" => {
            s.whoami.fetch_add(1, Relaxed);
            let body = serde_json::json!({ "connectionId": id }).to_string();
            proxy(Some(&body))
        }
        "/echo" => {
            s.echo.fetch_add(1, Relaxed);
            proxy(Some(ev.body.as_deref().unwrap_or("")))
        }
        "/sink" => {
            s.sink.fetch_add(1, Relaxed);
            proxy(None)
        }
        _ => resp(StatusCode::NOT_FOUND, ""),
    }
}

/// Runs the backend until `max` elapses or Ctrl-C; prints `{"listening":"ADDR"}` first.
pub async fn run_standalone(addr: SocketAddr, max: Duration, reset_percent: u64) -> Result<()> {
    let b = if addr.ip().is_loopback() {
        start(addr).await?
    } else {
        start_on(crate::net::listen_any(addr, 4096)?)?
    };
    b.set_reset_percent(reset_percent);
    println!(
        "{}",
        serde_json::json!({"listening": b.addr.to_string(), "pid": std::process::id()})
    );
    tokio::select! {
        () = tokio::time::sleep(max) => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    eprintln!(
        "backend: {}",
        serde_json::to_string(&b.stats()).unwrap_or_default()
    );
    b.shutdown().await;
    Ok(())
}
