//! Helpers shared by the integration tests: an in-process raw server and run settings.

#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};

use std::sync::atomic::{AtomicU32, Ordering};
use tokio::net::TcpListener;
use wsgate::{Config, Gateway, Listeners};
use wsgate_load::backend::Backend;
use wsgate_load::raw::{self, RawConfig, RawServer};
use wsgate_load::run::{BackendMode, RunConfig};
use wsgate_load::scenario::{Node, Plan};
use wsgate_load::targets::TargetSpec;

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::Relaxed);
    let d = std::env::temp_dir().join(format!("wsgate-load-test-{}-{tag}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("temp dir");
    d
}

/// A raw server on an ephemeral loopback port.
pub async fn raw_server() -> RawServer {
    raw::start(RawConfig::default())
        .await
        .expect("raw server starts")
}

/// A target for an in-process server.
pub fn target(name: &str, server: &RawServer) -> TargetSpec {
    TargetSpec::Running {
        name: name.into(),
        nodes: vec![Node::same_port(&server.ws_url("prod"))],
        pids: vec![std::process::id()],
    }
}

/// Run settings for tests: in-process, short timeline bins, no backend, no files.
pub fn config(plan: Plan, targets: Vec<TargetSpec>) -> RunConfig {
    let mut c = RunConfig::new(plan, targets);
    c.workers = 1;
    c.src_ips = 4;
    c.sample_ms = 50;
    c.backend = BackendMode::Off;
    c.seed = 7;
    c
}

/// A bundled config (load-tests/configs/FILE) with the backend stage variable pointed at `backend`.
pub fn bundled(file: &str, backend: &Backend) -> Config {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs")
        .join(file);
    let text = std::fs::read_to_string(&path).expect("bundled config");
    let mut config = Config::from_yaml(&text).expect("bundled config loads");
    for stage in config.api.stages.values_mut() {
        stage
            .variables
            .insert("backend".into(), format!("http://{}", backend.addr));
    }
    config
}

pub async fn start(config: Config) -> Gateway {
    let main = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    Gateway::start(
        config,
        Listeners {
            main,
            callback: None,
        },
    )
    .await
    .expect("wsgate starts")
}
