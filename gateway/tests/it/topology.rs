//! The production topology with processes: three `wsgate` nodes sharing Redis behind HAProxy
//! (the layout of `deploy/compose`), a chat relayed across nodes, and a rolling restart of every
//! node under load that loses no post answered 200 and runs each `$disconnect` once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use futures_util::{SinkExt, StreamExt};
use reqwest::Method;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_util::sync::CancellationToken;

use crate::support::cluster::*;
use crate::support::haproxy::Haproxy;
use crate::support::*;

/// Nodes started from one configuration: Redis under a fresh prefix, the test lease profile and
/// a short drain.
async fn three_nodes(backend: &str, store: &str, name: &str) -> Vec<NodeProcess> {
    let yaml = node_config(backend, store, "shutdown:\n  drain_timeout: 5s\n");
    let mut nodes = Vec::new();
    for i in 1..=3 {
        nodes.push(NodeProcess::start(&yaml, &format!("{name}-{i}")).await);
    }
    nodes
}

async fn connections_on(client: &reqwest::Client, node: &NodeProcess) -> f64 {
    let text = get_text(client, node.http_url("/metrics")).await;
    text.lines()
        .find_map(|line| {
            line.strip_prefix("wsgate_connections_current ")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_chat_through_the_balancer_reaches_members_on_every_node() {
    // The chat backend's `$connect` answer puts each client in its room (as the chat example's
    // backend does); its `sendmessage` handler posts to the room through the balancer.
    let backend = Backend::start(|r| {
        if r.path == "/connect" {
            let answer = json!({"statusCode": 200, "headers": {"X-Wsgate-Groups": "room:lobby"}});
            return Reply::http(200, &answer.to_string());
        }
        Reply::lambda(200, None)
    })
    .await;
    let (store, _cleanup) = shared_store();
    let nodes = three_nodes(&backend.url(), &store, "chat").await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let lb = Haproxy::start(&addrs).await;
    let client = http();

    let mut members = Vec::new();
    for name in ["ada", "bob", "cy"] {
        let (ws, id) = connect_and_id(&backend, &lb.ws_url(&format!("/prod?name={name}"))).await;
        members.push((ws, id));
    }
    // Least connections: one member on each node.
    for node in &nodes {
        assert_eq!(
            connections_on(&client, node).await,
            1.0,
            "members spread over the nodes"
        );
    }

    send_text(
        &mut members[0].0,
        r#"{"action":"sendmessage","data":"hello"}"#,
    )
    .await;
    let event = backend.next_to("/sendmessage").await.json();
    assert_eq!(
        event["requestContext"]["connectionId"],
        members[0].1.as_str()
    );
    let relayed = json!({"from": "ada", "data": "hello"}).to_string();
    let answer = client
        .post(format!("{}/prod/@groups/room:lobby", lb.base()))
        .body(relayed.clone())
        .send()
        .await
        .expect("group post");
    assert_eq!(answer.status(), 200);
    for (ws, _) in &mut members {
        assert_eq!(next_text(ws).await, relayed);
    }
}

/// What the rolling-restart backend has seen.
#[derive(Default)]
struct Seen {
    connects: BTreeSet<String>,
    disconnects: BTreeMap<String, usize>,
}

/// A Lambda-proxy backend that records `$connect` and `$disconnect` and answers `whoami` with
/// the caller's connection id.
async fn recording_backend() -> (String, Arc<Mutex<Seen>>) {
    async fn handle(
        State(seen): State<Arc<Mutex<Seen>>>,
        uri: axum::http::Uri,
        body: Bytes,
    ) -> String {
        let event: Value = serde_json::from_slice(&body).unwrap_or_default();
        let id = event["requestContext"]["connectionId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let mut seen = seen.lock().expect("seen");
        match uri.path() {
            "/connect" => {
                seen.connects.insert(id);
            }
            "/disconnect" => *seen.disconnects.entry(id).or_default() += 1,
            "/echo" => return json!({"statusCode": 200, "body": id}).to_string(),
            _ => {}
        }
        json!({"statusCode": 200}).to_string()
    }
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new().fallback(handle).with_state(Arc::clone(&seen));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (url, seen)
}

/// Shared by the clients and the posters of the rolling restart.
#[derive(Default)]
struct Ledger {
    /// Each client's current connection id (absent while it reconnects).
    current: Mutex<HashMap<usize, String>>,
    /// Numbers each connection id received, in order.
    received: Mutex<HashMap<String, Vec<u64>>>,
    /// Numbers whose post was answered 200, with the id they were posted to.
    accepted: Mutex<Vec<(String, u64)>>,
    /// Connections opened (including reconnects).
    opened: AtomicU64,
    /// Closes the clients saw, by close code.
    closes: Mutex<BTreeMap<u16, u64>>,
    /// Ends the posters (first), then the clients: a post whose 200 races the client's own close
    /// frame is outside the promise, which covers connections that stay open.
    stop_posting: CancellationToken,
    stop: CancellationToken,
}

impl Ledger {
    fn accepted_count(&self) -> usize {
        self.accepted.lock().expect("ledger").len()
    }

    /// Accepted numbers that have not arrived (yet).
    fn undelivered(&self) -> usize {
        let received = self.received.lock().expect("ledger");
        self.accepted
            .lock()
            .expect("ledger")
            .iter()
            .filter(|(id, n)| !received.get(id).is_some_and(|got| got.contains(n)))
            .count()
    }

    fn connected(&self) -> usize {
        self.current.lock().expect("ledger").len()
    }
}

/// One client: connect through the balancer (again after each close), learn its id, record
/// every number it receives.
async fn client_loop(index: usize, url: String, ledger: Arc<Ledger>) {
    while !ledger.stop.is_cancelled() {
        // A handshake that lands on a node that began draining is refused (503): try again.
        let Ok(Ok((mut ws, _))) =
            tokio::time::timeout(DEADLINE, tokio_tungstenite::connect_async(url.as_str())).await
        else {
            tokio::time::sleep(Duration::from_millis(20)).await;
            continue;
        };
        if ws
            .send(Message::text(r#"{"action":"echo"}"#))
            .await
            .is_err()
        {
            continue;
        }
        let id = loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => break Some(t.to_string()),
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                _ => break None,
            }
        };
        let Some(id) = id else {
            continue;
        };
        ledger.opened.fetch_add(1, Ordering::Relaxed);
        ledger
            .current
            .lock()
            .expect("ledger")
            .insert(index, id.clone());
        loop {
            let frame = tokio::select! {
                frame = ws.next() => frame,
                () = ledger.stop.cancelled() => {
                    let _ = ws.close(None).await;
                    // Read to the end so the close completes.
                    while let Some(Ok(frame)) = ws.next().await {
                        if let Message::Text(t) = frame {
                            record(&ledger, &id, &t);
                        }
                    }
                    ledger.current.lock().expect("ledger").remove(&index);
                    return;
                }
            };
            match frame {
                Some(Ok(Message::Text(t))) => record(&ledger, &id, &t),
                Some(Ok(Message::Close(frame))) => {
                    ledger.current.lock().expect("ledger").remove(&index);
                    let code = frame.map_or(1005, |f| u16::from(f.code));
                    *ledger
                        .closes
                        .lock()
                        .expect("ledger")
                        .entry(code)
                        .or_default() += 1;
                    break;
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => {
                    ledger.current.lock().expect("ledger").remove(&index);
                    *ledger
                        .closes
                        .lock()
                        .expect("ledger")
                        .entry(1006)
                        .or_default() += 1;
                    break;
                }
            }
        }
    }
}

fn record(ledger: &Ledger, id: &str, text: &str) {
    let n = text.parse::<u64>().expect("a number");
    ledger
        .received
        .lock()
        .expect("ledger")
        .entry(id.to_string())
        .or_default()
        .push(n);
}

/// One poster: posts increasing numbers to the clients' current ids through the balancer and
/// records the ones answered 200.
async fn poster_loop(first: u64, step: u64, clients: usize, base: String, ledger: Arc<Ledger>) {
    let client = http();
    let mut n = first;
    let mut i = usize::try_from(first).unwrap_or(0);
    while !ledger.stop_posting.is_cancelled() {
        i = (i + 1) % clients;
        let id = ledger.current.lock().expect("ledger").get(&i).cloned();
        let Some(id) = id else {
            tokio::time::sleep(Duration::from_millis(5)).await;
            continue;
        };
        let status = client
            .request(Method::POST, format!("{base}/prod/@connections/{id}"))
            .body(n.to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map(|r| r.status().as_u16());
        if matches!(status, Ok(200)) {
            ledger.accepted.lock().expect("ledger").push((id, n));
        }
        n += step;
    }
}

/// Waits until `more` further posts have been answered 200 (the load goes on).
async fn until_more_accepted(ledger: &Ledger, more: usize, what: &str) {
    let target = ledger.accepted_count() + more;
    eventually(what, Duration::from_secs(60), || async {
        ledger.accepted_count() >= target
    })
    .await;
}

#[tokio::test]
async fn a_rolling_restart_under_load_loses_no_post_answered_200() {
    const CLIENTS: usize = 24;
    const POSTERS: u64 = 4;
    let (backend, seen) = recording_backend().await;
    let (store, _cleanup) = shared_store();
    let mut nodes = three_nodes(&backend, &store, "rolling").await;
    let addrs: Vec<SocketAddr> = nodes.iter().map(|n| n.addr).collect();
    let mut lb = Haproxy::start(&addrs).await;
    let ledger = Arc::new(Ledger::default());

    let mut tasks = Vec::new();
    for index in 0..CLIENTS {
        tasks.push(tokio::spawn(client_loop(
            index,
            lb.ws_url("/prod"),
            Arc::clone(&ledger),
        )));
    }
    eventually("every client connected", DEADLINE, || async {
        ledger.connected() == CLIENTS
    })
    .await;
    for first in 0..POSTERS {
        tasks.push(tokio::spawn(poster_loop(
            first,
            POSTERS,
            CLIENTS,
            lb.base(),
            Arc::clone(&ledger),
        )));
    }
    until_more_accepted(&ledger, 200, "posts flow before the restarts").await;

    // One node after the other: SIGTERM (readiness 503, the balancer takes it out, its clients
    // get 1001 after what was posted to them), the process exits, starts again under its id and
    // port, and the balancer takes it back; the load goes on throughout.
    for node in &mut nodes {
        node.terminate();
        let status = node.wait_exit(Duration::from_secs(30)).await;
        assert!(status.success(), "{} drained and exited 0", node.node_id);
        node.restart().await;
        lb.wait_up(3).await;
        until_more_accepted(&ledger, 500, "posts flow after a restart").await;
    }
    eventually(
        "every client connected again",
        Duration::from_secs(30),
        || async { ledger.connected() == CLIENTS },
    )
    .await;

    // The posters stop first; every post answered 200 arrives while its client is still
    // connected; then the clients close.
    ledger.stop_posting.cancel();
    for poster in tasks.split_off(CLIENTS) {
        poster.await.expect("poster task");
    }
    // (What has not arrived within the deadline is reported below, number by number.)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ledger.undelivered() > 0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    ledger.stop.cancel();
    for client in tasks {
        client.await.expect("client task");
    }

    // Every post answered 200 reached the connection it was posted to, once.
    let received = ledger.received.lock().expect("ledger").clone();
    let accepted = ledger.accepted.lock().expect("ledger").clone();
    let mut lost = Vec::new();
    for (id, n) in &accepted {
        let got = received
            .get(id)
            .map_or(0, |numbers| numbers.iter().filter(|m| *m == n).count());
        if got != 1 {
            lost.push((id.clone(), *n, got));
        }
    }
    assert!(
        lost.is_empty(),
        "{} of {} posts answered 200 were not delivered exactly once: {:?}",
        lost.len(),
        accepted.len(),
        &lost[..lost.len().min(10)]
    );
    // Nothing arrived that was not answered 200 to its poster... except posts whose answer
    // was lost on the way back; each number arrives at most once anyway.
    for numbers in received.values() {
        let unique: BTreeSet<_> = numbers.iter().collect();
        assert_eq!(unique.len(), numbers.len(), "a number arrived twice");
    }
    let closes = ledger.closes.lock().expect("ledger").clone();
    assert!(
        closes.get(&1001).copied().unwrap_or(0) > 0,
        "clients of the restarted nodes were closed with 1001: {closes:?}"
    );
    assert!(
        ledger.opened.load(Ordering::Relaxed) > CLIENTS as u64,
        "clients reconnected"
    );

    // `$disconnect` ran once for every connection whose `$connect` ran, whichever node held it
    // and however it ended (drained, or closed by its client at the end).
    eventually("every $disconnect ran", Duration::from_secs(30), || async {
        let seen = seen.lock().expect("seen");
        seen.connects.len() == seen.disconnects.len()
    })
    .await;
    let seen = seen.lock().expect("seen");
    let disconnected: BTreeSet<String> = seen.disconnects.keys().cloned().collect();
    assert_eq!(
        seen.connects, disconnected,
        "a $disconnect for each $connect"
    );
    assert!(
        seen.disconnects.values().all(|n| *n == 1),
        "each $disconnect once"
    );
    eprintln!(
        "rolling restart: {} posts answered 200 and delivered, {} connections, closes {closes:?}",
        accepted.len(),
        seen.connects.len()
    );
}
