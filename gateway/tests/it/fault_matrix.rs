//! The lifecycle promise as a fault matrix: under each fault at its worst moment (client gone
//! during `$connect`, drain during `$connect`, store error on register, store error on remove,
//! kill -9 of a node while it reaps), a connection whose `$connect` answered 2xx gets exactly
//! one `$disconnect` cluster-wide, one whose `$connect` did not never gets one, and no trace of
//! either is left in Redis. Each row runs on a private `redis-server`; every row ends in the
//! same counting and assertion, [`expect_promise`]. A `$disconnect` counts once the backend
//! answered it: the calls of the node killed mid-reap are held unanswered and counted apart
//! (its owed entries make another node deliver them).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{FutureExt, SinkExt};
use redis::aio::MultiplexedConnection;
use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;
use wsgate_connection_store::conformance::servers::RedisServer;

use crate::cluster_owed::{owed_keys, raw};
use crate::faults::{acl, connection_id, open_gate, raw_upgrade};
use crate::support::cluster::*;
use crate::support::*;

/// `$connect` answers, in turn, for the connections a row opens: 2xx accepts, the rest refuse.
const ANSWERS: [u16; 6] = [200, 403, 201, 200, 500, 204];
/// Connections opened per row (but the kill -9 row).
const PER_ROW: usize = 6;
/// `$disconnect` calls a reaper has in flight at once (`DISCONNECT_CONCURRENCY` in the reaper).
const REAPER_IN_FLIGHT: usize = 32;
/// Connections of the node killed in the kill -9 row: 36 accepted, more than its reaper has in
/// flight, so the reaper dies with some records removed and owed and some not removed yet.
const KILLED_NODE_CONNECTIONS: usize = 54;
/// Once the promise is met, how long a second `$disconnect` is watched for.
const QUIET: Duration = Duration::from_millis(500);
/// Pause between polls of the tally and of Redis.
const POLL: Duration = Duration::from_millis(20);
/// Leases and claims for the node processes of the kill -9 row: a dead node is reaped within
/// about 2 s, an owed `$disconnect` of a dead reaper is claimed 2 s after its removal.
const FAST_CLUSTER: &str = "cluster:\n  lease_ttl: 1500ms\n  reaper_interval: 200ms\n  disconnect_claim_ttl: 2s\n  forward_timeout: 1s\n";

#[derive(Clone, Copy, Debug)]
enum Fault {
    ClientGoneDuringConnect,
    DrainDuringConnect,
    StoreErrorOnRegister,
    StoreErrorOnRemove,
    KillNineWhileReaping,
}

const MATRIX: [Fault; 5] = [
    Fault::ClientGoneDuringConnect,
    Fault::DrainDuringConnect,
    Fault::StoreErrorOnRegister,
    Fault::StoreErrorOnRemove,
    Fault::KillNineWhileReaping,
];

fn accepts(answer: u16) -> bool {
    (200..300).contains(&answer)
}

/// The `$connect` answers of `n` connections.
fn answers(n: usize) -> impl Iterator<Item = u16> {
    ANSWERS.into_iter().cycle().take(n)
}

/// What the backend received, per connection id, as it received it.
#[derive(Debug, Default, Clone)]
struct Tally {
    /// The status each `$connect` was answered with.
    connects: BTreeMap<String, u16>,
    /// `$disconnect` calls answered (delivered).
    disconnects: BTreeMap<String, usize>,
    /// `$disconnect` calls left unanswered on purpose, because their caller is killed mid-call.
    cut: BTreeMap<String, usize>,
}

impl Tally {
    fn accepted(&self) -> impl Iterator<Item = &String> {
        self.connects
            .iter()
            .filter(|(_, answer)| accepts(**answer))
            .map(|(id, _)| id)
    }

    fn delivered(&self, id: &str) -> usize {
        self.disconnects.get(id).copied().unwrap_or(0)
    }
}

/// The backend of the matrix. `$connect` answers the status in the client's `answer` query
/// parameter, held at `connect_gate` when the row asks; `$disconnect` answers 200 at once, or
/// never while `cutting` is set.
struct Matrix {
    backend: Backend,
    tally: Arc<Mutex<Tally>>,
    connect_gate: Arc<Notify>,
    cutting: Arc<AtomicBool>,
}

impl Matrix {
    async fn start(hold_connects: bool) -> Self {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let connect_gate = Arc::new(Notify::new());
        let cutting = Arc::new(AtomicBool::new(false));
        let never = Arc::new(Notify::new());
        let (t, gate, cut) = (
            Arc::clone(&tally),
            Arc::clone(&connect_gate),
            Arc::clone(&cutting),
        );
        let backend = Backend::start(move |r| {
            let mut reply = Reply::lambda(200, None);
            let mut tally = t.lock().expect("tally");
            match r.path.as_str() {
                "/connect" => {
                    let event = r.json();
                    let answer = event["queryStringParameters"]["answer"]
                        .as_str()
                        .and_then(|a| a.parse().ok())
                        .unwrap_or(200);
                    tally.connects.insert(connection_id(&event), answer);
                    reply = Reply::lambda(answer, None);
                    if hold_connects {
                        reply.hold = Some(Arc::clone(&gate));
                    }
                }
                "/disconnect" => {
                    let id = connection_id(&r.json());
                    if cut.load(Ordering::SeqCst) {
                        *tally.cut.entry(id).or_default() += 1;
                        reply.hold = Some(Arc::clone(&never));
                    } else {
                        *tally.disconnects.entry(id).or_default() += 1;
                    }
                }
                _ => {}
            }
            reply
        })
        .await;
        Self {
            backend,
            tally,
            connect_gate,
            cutting,
        }
    }

    fn tally(&self) -> Tally {
        self.tally.lock().expect("tally").clone()
    }

    /// Polls the tally until `done` holds, failing the test after `within`.
    async fn wait(&self, within: Duration, what: &str, done: impl Fn(&Tally) -> bool) {
        eventually(what, within, || {
            let ok = done(&self.tally());
            async move { ok }
        })
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_fault_keeps_the_disconnect_promise() {
    for fault in MATRIX {
        let started = Instant::now();
        let redis = RedisServer::start().await;
        let prefix = unique_prefix();
        let store = redis_store(&redis.url(), &prefix);
        let tally = match fault {
            Fault::ClientGoneDuringConnect => client_gone_during_connect(&redis, &store).await,
            Fault::DrainDuringConnect => drain_during_connect(&redis, &store).await,
            Fault::StoreErrorOnRegister => store_error_on_register(&redis, &store).await,
            Fault::StoreErrorOnRemove => store_error_on_remove(&redis, &store, &prefix).await,
            Fault::KillNineWhileReaping => kill_nine_while_reaping(&redis, &store, &prefix).await,
        };
        eprintln!(
            "{fault:?}: {} connections, {} accepted, {} $disconnects delivered, {} cut by a killed node, {:?}",
            tally.connects.len(),
            tally.accepted().count(),
            tally.disconnects.values().sum::<usize>(),
            tally.cut.values().sum::<usize>(),
            started.elapsed()
        );
    }
}

/// The promise, for every connection of the row (ids from the backend's `$connect` requests):
/// waits until each accepted one got its `$disconnect` and no trace of any is left in Redis,
/// watches [`QUIET`] for a second one, then asserts for every id: `$disconnect`s delivered ==
/// 1 if its `$connect` answered 2xx, else 0.
async fn expect_promise(fault: Fault, m: &Matrix, redis: &RedisServer) -> Tally {
    let mut conn = raw(&redis.url()).await;
    let deadline = Instant::now() + REAP_DEADLINE;
    loop {
        let tally = m.tally();
        let waiting: Vec<&String> = tally
            .accepted()
            .filter(|id| tally.delivered(id) == 0)
            .collect();
        let left = traces(&mut conn, &tally).await;
        if waiting.is_empty() && left.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{fault:?}: no $disconnect for {waiting:?}, left in Redis {left:?}; {tally:?}"
        );
        tokio::time::sleep(POLL).await;
    }
    // Nothing is left that could send another one; one already under way arrives meanwhile.
    tokio::time::sleep(QUIET).await;
    let tally = m.tally();
    let wrong: Vec<String> = tally
        .connects
        .iter()
        .filter_map(|(id, answer)| {
            let (want, got) = (usize::from(accepts(*answer)), tally.delivered(id));
            (want != got).then(|| format!("{id}: $connect {answer}, {got} $disconnects"))
        })
        .collect();
    let strangers: Vec<&String> = tally
        .disconnects
        .keys()
        .filter(|id| !tally.connects.contains_key(*id))
        .collect();
    assert!(
        wrong.is_empty() && strangers.is_empty(),
        "{fault:?}: {wrong:?}; $disconnects without a $connect: {strangers:?}"
    );
    assert!(
        tally.accepted().count() > 0 && tally.accepted().count() < tally.connects.len(),
        "{fault:?}: the row needs accepted and refused connections: {tally:?}"
    );
    let left = traces(&mut conn, &tally).await;
    assert!(left.is_empty(), "{fault:?}: left in Redis: {left:?}");
    tally
}

/// Every key of the (private) Redis that names one of the row's connection ids or holds one as
/// a member: records, owed entries and their index, node indexes, stage sets, memberships.
async fn traces(conn: &mut MultiplexedConnection, tally: &Tally) -> Vec<String> {
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(conn)
        .await
        .expect("KEYS");
    let mut found = Vec::new();
    for key in keys {
        if tally.connects.keys().any(|id| key.contains(id.as_str())) {
            found.push(key);
            continue;
        }
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(conn)
            .await
            .expect("TYPE");
        let list = match kind.as_str() {
            "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
            "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).clone(),
            "hash" => redis::cmd("HKEYS").arg(&key).clone(),
            _ => continue,
        };
        let members: Vec<Vec<u8>> = list.query_async(conn).await.expect("members");
        for member in members {
            let member = String::from_utf8_lossy(&member);
            if tally.connects.contains_key(member.as_ref()) {
                found.push(format!("{key} holds {member}"));
            }
        }
    }
    found
}

/// Opens a raw upgrade per answer, `$connect` held, and waits until the backend has them all.
async fn held_upgrades(m: &Matrix, gw: &TestGateway) -> Vec<tokio::net::TcpStream> {
    let mut clients = Vec::new();
    for answer in answers(PER_ROW) {
        clients.push(raw_upgrade(gw.addr, &format!("/prod?answer={answer}")).await);
    }
    m.wait(DEADLINE, "every $connect arrives", |t| {
        t.connects.len() == PER_ROW
    })
    .await;
    clients
}

/// Connects one client per answer to `ws_base`; returns the accepted ones.
async fn open_clients(ws_base: &str, n: usize) -> Vec<Ws> {
    let mut open = Vec::new();
    for answer in answers(n) {
        let url = format!("{ws_base}/prod?answer={answer}");
        if accepts(answer) {
            open.push(connect(&url).await);
        } else {
            assert_eq!(connect_refused(&url).await.0, answer);
        }
    }
    open
}

/// Every client hangs up while its `$connect` runs; then `$connect` answers.
async fn client_gone_during_connect(redis: &RedisServer, store: &str) -> Tally {
    let m = Matrix::start(true).await;
    let gw = TestGateway::start(&node_config(&m.backend.url(), store, "")).await;
    let clients = held_upgrades(&m, &gw).await;
    drop(clients);
    let _released = open_gate(&m.connect_gate);
    expect_promise(Fault::ClientGoneDuringConnect, &m, redis).await
}

/// The gateway starts draining while every `$connect` runs; then `$connect` answers.
async fn drain_during_connect(redis: &RedisServer, store: &str) -> Tally {
    let m = Matrix::start(true).await;
    let mut gw = TestGateway::start(&node_config(&m.backend.url(), store, "")).await;
    let _clients = held_upgrades(&m, &gw).await;
    let mut shutdown = Box::pin(gw.gateway.take().expect("running").shutdown());
    // Its first poll marks the node draining (before its first wait).
    assert!((&mut shutdown).now_or_never().is_none(), "drain under way");
    let _released = open_gate(&m.connect_gate);
    tokio::time::timeout(DEADLINE, shutdown)
        .await
        .expect("shutdown ends");
    expect_promise(Fault::DrainDuringConnect, &m, redis).await
}

/// Redis refuses `SADD` while every `$connect` runs, so each registration fails halfway (the
/// record written, its node index entry refused).
async fn store_error_on_register(redis: &RedisServer, store: &str) -> Tally {
    let m = Matrix::start(true).await;
    let gw = TestGateway::start(&node_config(&m.backend.url(), store, "")).await;
    let handshakes: Vec<_> = answers(PER_ROW)
        .map(|answer| {
            let url = gw.ws_url(&format!("/prod?answer={answer}"));
            tokio::spawn(async move { (answer, connect_refused(&url).await.0) })
        })
        .collect();
    m.wait(DEADLINE, "every $connect arrives", |t| {
        t.connects.len() == PER_ROW
    })
    .await;
    acl(redis, "-sadd").await;
    let _released = open_gate(&m.connect_gate);
    for handshake in handshakes {
        let (answer, status) = handshake.await.expect("join");
        assert_eq!(status, if accepts(answer) { 503 } else { answer });
    }
    acl(redis, "+sadd").await;
    expect_promise(Fault::StoreErrorOnRegister, &m, redis).await
}

/// Redis refuses `DEL` while every client closes: each record removal files its owed-index
/// hint, then fails (the record stays); it is retried until Redis allows it again.
async fn store_error_on_remove(redis: &RedisServer, store: &str, prefix: &str) -> Tally {
    let m = Matrix::start(false).await;
    let gw = TestGateway::start(&node_config(&m.backend.url(), store, "")).await;
    let mut open = open_clients(&gw.ws_url(""), PER_ROW).await;
    let ids: Vec<String> = m.tally().accepted().cloned().collect();
    acl(redis, "-del").await;
    for ws in &mut open {
        ws.send(Message::Close(None)).await.expect("close");
        expect_close(ws).await;
    }
    let conn = raw(&redis.url()).await;
    eventually("every removal is tried and refused", DEADLINE, || {
        let (mut conn, ids) = (conn.clone(), ids.clone());
        let owed_index = format!("{{{prefix}}}:owed");
        let record = |id: &str| format!("{prefix}:conn:{id}");
        let records: Vec<String> = ids.iter().map(|id| record(id)).collect();
        async move {
            let mut refused = true;
            for (id, record) in ids.iter().zip(records) {
                let hinted: Option<f64> = redis::cmd("ZSCORE")
                    .arg(&owed_index)
                    .arg(id)
                    .query_async(&mut conn)
                    .await
                    .expect("ZSCORE");
                let kept: bool = redis::cmd("EXISTS")
                    .arg(record)
                    .query_async(&mut conn)
                    .await
                    .expect("EXISTS");
                refused &= hinted.is_some() && kept;
            }
            refused
        }
    })
    .await;
    let early = m.tally();
    assert!(
        ids.iter().all(|id| early.delivered(id) == 0),
        "$disconnect sent while its record could not be removed: {early:?}"
    );
    acl(redis, "+del").await;
    expect_promise(Fault::StoreErrorOnRemove, &m, redis).await
}

/// Node A holds the connections and is killed; node B reaps them and is killed while its
/// `$disconnect` calls are under way (held unanswered by the backend), with records removed
/// and owed and others not removed yet; node C finishes the job.
async fn kill_nine_while_reaping(redis: &RedisServer, store: &str, prefix: &str) -> Tally {
    let m = Matrix::start(false).await;
    let yaml = config(&m.backend.url(), &format!("{store}{FAST_CLUSTER}"));
    let mut a = NodeProcess::start(&yaml, "node-a").await;
    let mut b = NodeProcess::start(&yaml, "node-b").await;
    let _clients = open_clients(&a.ws_url(""), KILLED_NODE_CONNECTIONS).await;
    m.cutting.store(true, Ordering::SeqCst);
    a.kill9();
    m.wait(
        REAP_DEADLINE,
        "B's reaper has its $disconnects under way",
        |t| t.cut.len() >= REAPER_IN_FLIGHT,
    )
    .await;
    b.kill9();
    m.cutting.store(false, Ordering::SeqCst);
    let mut conn = raw(&redis.url()).await;
    let owed = owed_keys(&mut conn, prefix).await;
    let records: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:conn:*"))
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    eprintln!(
        "B killed with {} owed entries and {} of A's records left",
        owed.len().saturating_sub(1),
        records.len()
    );
    assert!(
        owed.len() > 1,
        "B died between removing records and delivering their $disconnects"
    );
    let _c = NodeProcess::start(&yaml, "node-c").await;
    expect_promise(Fault::KillNineWhileReaping, &m, redis).await
}
