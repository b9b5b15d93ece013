//! The `wsgate` binary: `check` names a bad key, `--config` serves, SIGTERM drains.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_wsgate");

fn write_config(text: &str) -> tempfile_path::TempPath {
    tempfile_path::TempPath::with_contents(text)
}

/// A config file removed when dropped (no extra crate needed).
mod tempfile_path {
    use std::path::PathBuf;

    pub(super) struct TempPath(pub(super) PathBuf);

    impl TempPath {
        pub(super) fn with_contents(text: &str) -> Self {
            let path =
                std::env::temp_dir().join(format!("wsgate-test-{}.yaml", wsgate::connection_id()));
            std::fs::write(&path, text).expect("write config");
            Self(path)
        }
    }

    impl Drop for TempPath {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[test]
fn check_validates_and_names_the_bad_key() {
    let good = write_config(&config("http://127.0.0.1:9", ""));
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&good.0)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("configuration is valid"));

    let bad = write_config(&config(
        "http://127.0.0.1:9",
        "limits:\n  idle_timeout: soon",
    ));
    let out = Command::new(BIN)
        .args(["check", "--config"])
        .arg(&bad.0)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("config key `limits.idle_timeout`"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one clear line: {stderr}");

    // `wsgate 0.1.0 (1a2b3c4d5e6f)`: the version and the git revision it was built from.
    let out = Command::new(BIN).arg("--version").output().expect("run");
    let version = String::from_utf8_lossy(&out.stdout);
    let version = version.trim();
    assert!(
        version.starts_with(&format!("wsgate {} (", env!("CARGO_PKG_VERSION"))),
        "{version}"
    );
    let revision = version
        .rsplit_once('(')
        .and_then(|(_, r)| r.strip_suffix(')'))
        .expect("a revision in parentheses");
    let hex = revision.trim_end_matches("-modified");
    assert!(
        revision == "unknown" || (hex.len() == 12 && hex.bytes().all(|b| b.is_ascii_hexdigit())),
        "{version}"
    );
    let out = Command::new(BIN)
        .args(["check", "--config", "/nonexistent/wsgate.yaml"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
}

#[tokio::test]
async fn sigterm_drains_and_exits() {
    let backend = Backend::ok().await;
    let file = write_config(&config(&backend.url(), "log:\n  format: json"));
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&file.0)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wsgate");
    let stdout = child.stdout.take().expect("stdout");
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let mut addr_tx = Some(addr_tx);
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                && let Some(listen) = v["listen"].as_str()
                && let Some(tx) = addr_tx.take()
            {
                let _ = tx.send(listen.to_string());
            }
            lines.push(line);
        }
        lines
    });
    let addr = tokio::time::timeout(DEADLINE, addr_rx)
        .await
        .expect("serving line")
        .expect("address");
    let (mut ws, _) = connect_and_id(&backend, &format!("ws://{addr}/prod")).await;
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    assert_eq!(expect_close(&mut ws).await.0, 1001);
    let d = backend.next_to("/disconnect").await.json();
    assert_eq!(d["requestContext"]["disconnectStatusCode"], 1001);
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    let lines = reader.join().expect("reader");
    assert!(lines.iter().any(|l| l.contains("draining")), "{lines:?}");
}

#[tokio::test]
async fn text_logs_on_a_pipe_carry_no_colour_codes() {
    let backend = Backend::ok().await;
    let file = write_config(&config(&backend.url(), "log:\n  format: text"));
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&file.0)
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wsgate");
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        // Up to the line that says the gateway serves (it names the listen address).
        let mut lines = Vec::new();
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let serving = line.contains("listen");
            lines.push(line);
            if serving {
                break;
            }
        }
        lines
    });
    let lines = tokio::task::spawn_blocking(move || reader.join().expect("reader"))
        .await
        .expect("join");
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines.last().is_some_and(|l| l.contains("listen")),
        "a serving line: {lines:?}"
    );
    for line in &lines {
        assert!(
            !line.contains('\u{1b}'),
            "an escape code in a piped log line: {line:?}"
        );
    }
}

/// Under systemd (`Type=notify`, `WatchdogSec=`): `READY=1` once serving, watchdog pings, and
/// `STOPPING=1` when SIGTERM starts the drain; the datagrams are read from a socket standing in
/// for systemd's `NOTIFY_SOCKET`.
#[tokio::test]
async fn systemd_hears_ready_watchdog_and_stopping() {
    let backend = Backend::ok().await;
    let file = write_config(&config(&backend.url(), ""));
    let socket_path =
        std::env::temp_dir().join(format!("wsgate-notify-{}.sock", wsgate::connection_id()));
    let socket = tokio::net::UnixDatagram::bind(&socket_path).expect("notify socket");
    let mut child = KillOnDrop(Some(
        Command::new(BIN)
            .arg("--config")
            .arg(&file.0)
            .env("NOTIFY_SOCKET", &socket_path)
            .env("WATCHDOG_USEC", "200000")
            .env_remove("WATCHDOG_PID")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn wsgate"),
    ));
    let mut buf = vec![0u8; 4096];
    let mut next = async || {
        let n = tokio::time::timeout(DEADLINE, socket.recv(&mut buf))
            .await
            .expect("a notification in time")
            .expect("recv");
        String::from_utf8_lossy(&buf[..n]).trim_end().to_string()
    };
    let first = next().await;
    assert!(
        first.starts_with("READY=1\nSTATUS=serving on 127.0.0.1:"),
        "{first:?}"
    );
    assert_eq!(next().await, "WATCHDOG=1");
    assert_eq!(next().await, "WATCHDOG=1");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let mut child = child.0.take().expect("child");
    let stopping = loop {
        let message = next().await;
        if message != "WATCHDOG=1" {
            break message;
        }
    };
    assert_eq!(stopping, "STOPPING=1\nSTATUS=draining connections");
    let exit = tokio::task::spawn_blocking(move || child.wait())
        .await
        .expect("join")
        .expect("wait");
    assert!(exit.success(), "exit status {exit:?}");
    let _ = std::fs::remove_file(&socket_path);
}

/// Kills the process when dropped (a failed assertion must not leave a gateway running).
struct KillOnDrop(Option<std::process::Child>);

impl KillOnDrop {
    fn id(&self) -> u32 {
        self.0.as_ref().map_or(0, std::process::Child::id)
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
