//! The fault tooling against real parts: the `faults` load (ledger, churn, groups) on an
//! in-process wsgate with the built-in backend, the backend's reset fault, and the fault proxy's
//! stall and reset. Waits are for events, bounded; nothing asserts a timing.

use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use hyper::Method;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, sleep, timeout};
use wsgate::{Config, Gateway, Listeners};
use wsgate_load::backend::{self, Backend};
use wsgate_load::faultproxy;
use wsgate_load::httpc;
use wsgate_load::scenario::faults::{FaultsPlan, run};

fn bench_config(backend: &Backend) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/wsgate-bench.yaml");
    let text = std::fs::read_to_string(path).expect("bundled config");
    let mut config = Config::from_yaml(&text).expect("bundled config loads");
    for stage in config.api.stages.values_mut() {
        stage
            .variables
            .insert("backend".into(), format!("http://{}", backend.addr));
    }
    config
}

/// Waits (bounded) until `f` holds.
async fn until(what: &str, mut f: impl FnMut() -> bool) {
    let end = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < end, "timed out waiting for {what}");
        sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ledger_balances_a_churning_load_with_groups() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("backend starts");
    let main = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let gateway = Gateway::start(
        bench_config(&backend),
        Listeners {
            main,
            callback: None,
        },
    )
    .await
    .expect("wsgate starts");
    let plan = FaultsPlan {
        nodes: vec![format!("ws://{}/prod", gateway.local_addr())],
        conns: 8,
        ramp_per_s: 100.0,
        duration_s: 3.0,
        msg_rate: 40.0,
        push_rate: 60.0,
        posters: 2,
        size: 64,
        churn_per_s: 4.0,
        groups: 2,
        group_rate: 5.0,
        drain_s: 5.0,
        sample_s: 0.5,
        pids: vec![std::process::id()],
        redis: None,
        soak_warmup_s: Some(1.0),
        max_ids: 100_000,
        connect_timeout_s: 5.0,
        seed: 3,
    };
    let r = run("soak", plan).await.expect("runs");
    assert!(r.pushes.acked_and_delivered > 0, "{:?}", r.pushes);
    assert_eq!(r.pushes.acked_but_lost, r.pushes.lost_on_dropped_conn);
    assert_eq!(r.pushes.lost_on_live_conn, 0, "{:?}", r.pushes);
    assert_eq!(r.pushes.duplicates, 0);
    assert_eq!(r.pushes.unknown_arrivals, 0);
    assert!(r.upstream.acked_and_delivered > 0, "{:?}", r.upstream);
    assert_eq!(r.upstream.lost_on_live_conn, 0, "{:?}", r.upstream);
    assert!(
        r.groups.posts_ok > 0 && r.groups.deliveries > 0,
        "{:?}",
        r.groups
    );
    assert_eq!(r.groups.duplicates, 0);
    assert!(r.connections["churned"] > 0, "{:?}", r.connections);
    assert_eq!(r.connections["lost"], 0, "{:?}", r.errors);
    assert_eq!(r.connections["open_at_end"], 0);
    assert!(
        r.timeline
            .iter()
            .any(|s| s.rss_kib.is_some() && s.fds.is_some())
    );
    assert!(r.soak.is_some());
    // Every connection opened got its $disconnect once the clients closed.
    until("every $disconnect", || {
        backend.stats()["connected_ids"] == 0
    })
    .await;
    let s = backend.stats();
    assert_eq!(s["connect_events"], s["disconnect_events"], "{s:?}");
    assert_eq!(s["unmatched_disconnects"], 0);
    assert_eq!(s["duplicate_connects"], 0);
}

#[tokio::test]
async fn the_backend_resets_the_share_it_is_told_to() {
    let backend = backend::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("backend starts");
    let event = Bytes::from_static(br#"{"requestContext":{"connectionId":"c1"}}"#);
    let post = |body: Bytes| {
        httpc::once(
            backend.addr,
            "backend",
            Method::POST,
            "/echo",
            body,
            Duration::from_secs(5),
        )
    };
    backend.set_reset_percent(100);
    assert!(
        post(event.clone()).await.is_err(),
        "reset instead of an answer"
    );
    backend.set_reset_percent(0);
    let (status, _) = post(event).await.expect("answered");
    assert_eq!(status, 200);
    assert_eq!(backend.stats()["resets"], 1);
    // The fault is also set over HTTP.
    let (status, _) = httpc::once(
        backend.addr,
        "backend",
        Method::PUT,
        "/fault/reset-percent",
        Bytes::from_static(b"101"),
        Duration::from_secs(5),
    )
    .await
    .expect("answered");
    assert_eq!(status, 400, "a share above 100 is refused");
}

async fn set_mode(p: &faultproxy::Proxy, mode: &'static str) {
    let (status, _) = httpc::once(
        p.control,
        "proxy",
        Method::PUT,
        "/mode",
        Bytes::from_static(mode.as_bytes()),
        Duration::from_secs(5),
    )
    .await
    .expect("control answers");
    assert_eq!(status, 204);
}

#[tokio::test]
async fn the_proxy_stalls_without_losing_bytes_and_resets() {
    // Upstream: echoes what it reads.
    let up = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let up_addr = up.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut s, _)) = up.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf).await {
                    if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    let any = "127.0.0.1:0".parse().unwrap();
    let p = faultproxy::start(any, up_addr, any).expect("proxy starts");
    let mut c = TcpStream::connect(p.addr).await.expect("connect");
    let mut buf = [0u8; 5];
    c.write_all(b"hello").await.expect("write");
    c.read_exact(&mut buf).await.expect("echo");
    assert_eq!(&buf, b"hello");

    set_mode(&p, "stall").await;
    c.write_all(b"again").await.expect("write");
    assert!(
        timeout(Duration::from_millis(300), c.read_exact(&mut buf))
            .await
            .is_err(),
        "nothing flows while stalled"
    );
    set_mode(&p, "pass").await;
    timeout(Duration::from_secs(5), c.read_exact(&mut buf))
        .await
        .expect("flows again")
        .expect("echo");
    assert_eq!(&buf, b"again", "the stalled bytes arrive intact");

    set_mode(&p, "reset").await;
    let r = timeout(Duration::from_secs(5), c.read(&mut buf))
        .await
        .expect("the reset arrives");
    assert!(
        matches!(&r, Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
    // New connections pass after the reset pulse.
    let mut c2 = TcpStream::connect(p.addr).await.expect("connect");
    c2.write_all(b"third").await.expect("write");
    timeout(Duration::from_secs(5), c2.read_exact(&mut buf))
        .await
        .expect("flows")
        .expect("echo");
    assert_eq!(&buf, b"third");
}
