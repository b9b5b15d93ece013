//! The built-in integration backend for a gateway under test (Lambda-proxy events over HTTP).
//!
//! | path | event | answer |
//! |---|---|---|
//! | `POST /connect` | `$connect` (`CONNECT`) | `{"statusCode":200}`, records `requestContext.connectionId` |
//! | `POST /disconnect` | `$disconnect` | `{"statusCode":200}`, forgets the id |
//! | `POST /whoami` | `MESSAGE` | `{"statusCode":200,"body":"{\"connectionId\":\"<id>\"}"}` |
//! | `POST /echo` | `MESSAGE` | `{"statusCode":200,"body":<the frame text>}` |
//! | `POST /sink` | `MESSAGE` (one-way) | `{"statusCode":200}` |
//! | `POST /echo-http` | `http_proxy` body | the body itself |
//! | `GET /stats` | | event counters as JSON |
//!
//! HTTP/1.1 keep-alive, one task per connection.

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
}

#[derive(Serialize)]
struct ProxyResponse<'a> {
    #[serde(rename = "statusCode")]
    status_code: u16,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
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

    /// Stops accepting.
    pub async fn shutdown(self) {
        self.stop.cancel();
        let _ = self.task.await;
    }
}

/// Starts the backend on the current runtime.
pub async fn start(addr: SocketAddr) -> Result<Backend> {
    let listener = listen(addr, 4096)?;
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
                        let s = s.clone();
                        tokio::spawn(crate::httpd::serve(stream, move |req| handle(req, s.clone())));
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

fn proxy(body: Option<&str>) -> Resp {
    json(
        StatusCode::OK,
        serde_json::to_vec(&ProxyResponse {
            status_code: 200,
            body,
        })
        .unwrap_or_default(),
    )
}

async fn handle(req: Request<Incoming>, s: Arc<Shared>) -> Resp {
    let path = req.uri().path().to_owned();
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
            if ids.len() < MAX_IDS {
                ids.insert(id.into_owned());
            }
            drop(ids);
            proxy(None)
        }
        "/disconnect" => {
            s.disconnect.fetch_add(1, Relaxed);
            s.ids
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(id.as_ref());
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
pub async fn run_standalone(addr: SocketAddr, max: Duration) -> Result<()> {
    let b = start(addr).await?;
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
