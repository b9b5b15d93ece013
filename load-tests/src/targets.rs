//! Targets: the raw baseline (spawned), wsgate (spawned or already running), or any URL.

use crate::httpc;
use crate::net::split_url;
use crate::scenario::Node;
use anyhow::{Context, Result, bail};
use bytes::Bytes;
use hyper::Method;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};

/// What to run a scenario against.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum TargetSpec {
    /// Raw baseline server process(es), started from this binary.
    Raw {
        /// Server processes (connections are spread over them).
        procs: usize,
        /// Runtime threads of each (0: tokio's default).
        threads: usize,
        /// Register connections for push.
        registry: bool,
        /// Forward echoes through the built-in backend (the `raw-proxy` target).
        #[serde(default)]
        upstream: bool,
    },
    /// wsgate processes started from `bin`, one per config.
    Wsgate {
        /// The gateway binary (`wsgate --config FILE`).
        bin: PathBuf,
        /// Config files.
        configs: Vec<PathBuf>,
        /// Cross-node: clients connect to the first, posts go to the second.
        cross: bool,
        /// Label in the report (default `wsgate`).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        label: Option<String>,
    },
    /// Already-running servers.
    Running {
        /// Label in the report (`wsgate`, or the URL).
        name: String,
        /// Nodes.
        nodes: Vec<Node>,
        /// Server processes to watch (may be empty).
        pids: Vec<u32>,
    },
}

impl TargetSpec {
    /// The label in the report.
    pub fn name(&self) -> String {
        match self {
            Self::Raw { upstream: true, .. } => "raw-proxy".into(),
            Self::Raw { .. } => "raw".into(),
            Self::Wsgate { label, .. } => label.clone().unwrap_or_else(|| "wsgate".into()),
            Self::Running { name, .. } => name.clone(),
        }
    }

    /// Whether this target needs the built-in integration backend (a gateway does; raw does not).
    pub fn wants_backend(&self) -> bool {
        match self {
            Self::Raw { upstream, .. } => *upstream,
            Self::Wsgate { .. } => true,
            Self::Running { name, .. } => name == "wsgate",
        }
    }
}

/// Settings for starting servers.
#[derive(Clone, Debug)]
pub struct SetupOpts {
    /// This binary (for `raw`).
    pub exe: PathBuf,
    /// Stage path segment.
    pub stage: String,
    /// `taskset -c LIST` for started servers.
    pub server_cpus: Option<String>,
    /// Where server logs go.
    pub log_dir: Option<PathBuf>,
    /// The built-in integration backend, when one runs (the `raw-proxy` target needs it).
    pub backend: Option<std::net::SocketAddr>,
}

/// A target ready for load.
pub struct Target {
    /// Label.
    pub name: String,
    /// Nodes.
    pub nodes: Vec<Node>,
    /// Server processes.
    pub pids: Vec<u32>,
    /// Notes for the report.
    pub notes: Vec<String>,
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Target {
    /// Stops the servers this tool started (SIGTERM, then SIGKILL after 5 s).
    pub async fn shutdown(mut self) {
        for (child, stdin) in &mut self.children {
            drop(stdin.take());
            if let Some(pid) = child.id() {
                let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap_or(0));
                let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            }
            if tokio::time::timeout(Duration::from_secs(5), child.wait())
                .await
                .is_err()
            {
                let _ = child.kill().await;
            }
        }
    }
}

fn command(exe: &Path, cpus: Option<&str>) -> Command {
    match cpus {
        Some(c) => {
            let mut cmd = Command::new("taskset");
            cmd.arg("-c").arg(c).arg(exe);
            cmd
        }
        None => Command::new(exe),
    }
}

/// The `listen:` address of a wsgate config file.
pub fn config_listen(path: &Path) -> Result<String> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .find_map(|l| l.strip_prefix("listen:"))
        .map(|v| {
            v.split('#')
                .next()
                .unwrap_or("")
                .trim()
                .trim_matches('"')
                .trim_matches('\'')
                .to_owned()
        })
        .filter(|v| !v.is_empty())
        .with_context(|| format!("no top-level `listen:` in {}", path.display()))
}

/// Waits until `GET /healthz` on `authority` answers 200.
pub async fn wait_healthy(authority: &str, child: &mut Child, limit: Duration) -> Result<()> {
    let addr = crate::net::resolve_loopback(authority).await?;
    let until = Instant::now() + limit;
    loop {
        if let Ok((200, _)) = httpc::once(
            addr,
            authority,
            Method::GET,
            "/healthz",
            Bytes::new(),
            Duration::from_secs(1),
        )
        .await
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!("server exited with {status} before becoming healthy");
        }
        if Instant::now() >= until {
            bail!("{authority}/healthz not healthy within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn spawn_raw(
    o: &SetupOpts,
    threads: usize,
    registry: bool,
    upstream: bool,
) -> Result<(Child, ChildStdin, String)> {
    let mut cmd = command(&o.exe, o.server_cpus.as_deref());
    cmd.args(["raw", "--listen", "127.0.0.1:0", "--lifeline", "--threads"])
        .arg(threads.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    if !registry {
        cmd.arg("--no-registry");
    }
    if upstream {
        let backend = o
            .backend
            .context("the raw-proxy target needs the built-in backend (--backend auto or on)")?;
        cmd.arg("--upstream").arg(backend.to_string());
    }
    let mut child = cmd.spawn().context("starting the raw server")?;
    let stdin = child.stdin.take().context("raw stdin")?;
    let stdout = child.stdout.take().context("raw stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .context("raw server did not report its address")??
        .context("raw server exited")?;
    let v: serde_json::Value = serde_json::from_str(&line)?;
    let addr = v["listening"]
        .as_str()
        .context("raw: no address")?
        .to_owned();
    Ok((child, stdin, addr))
}

/// Starts (or just describes) a target.
pub async fn setup(spec: &TargetSpec, o: &SetupOpts) -> Result<Target> {
    let stage = o.stage.trim_matches('/');
    match spec {
        TargetSpec::Raw {
            procs,
            threads,
            registry,
            upstream,
        } => {
            let mut t = Target {
                name: spec.name(),
                nodes: Vec::new(),
                pids: Vec::new(),
                notes: Vec::new(),
                children: Vec::new(),
            };
            for _ in 0..(*procs).max(1) {
                let (child, stdin, addr) = spawn_raw(o, *threads, *registry, *upstream).await?;
                t.pids.extend(child.id());
                t.nodes
                    .push(Node::same_port(&format!("ws://{addr}/{stage}")));
                t.children.push((child, Some(stdin)));
            }
            if *procs > 1 {
                t.notes.push(format!(
                    "{procs} raw server processes; connections spread round-robin"
                ));
            }
            Ok(t)
        }
        TargetSpec::Wsgate {
            bin,
            configs,
            cross,
            ..
        } => {
            let mut t = Target {
                name: spec.name(),
                nodes: Vec::new(),
                pids: Vec::new(),
                notes: Vec::new(),
                children: Vec::new(),
            };
            let mut urls = Vec::new();
            for (i, cfg) in configs.iter().enumerate() {
                let listen = config_listen(cfg)?;
                let mut cmd = command(bin, o.server_cpus.as_deref());
                cmd.arg("--config")
                    .arg(cfg)
                    .stdin(Stdio::null())
                    .kill_on_drop(true);
                match &o.log_dir {
                    Some(dir) => {
                        std::fs::create_dir_all(dir)?;
                        let log = std::fs::File::create(dir.join(format!("wsgate-{i}.log")))?;
                        cmd.stdout(log.try_clone()?).stderr(log);
                    }
                    None => {
                        cmd.stdout(Stdio::null()).stderr(Stdio::null());
                    }
                }
                let mut child = cmd
                    .spawn()
                    .with_context(|| format!("starting {}", bin.display()))?;
                wait_healthy(&listen, &mut child, Duration::from_secs(20)).await?;
                t.pids.extend(child.id());
                t.children.push((child, None));
                urls.push(format!("ws://{listen}/{stage}"));
            }
            if *cross {
                if urls.len() != 2 {
                    bail!("cross-node needs exactly two configs");
                }
                let b = Node::same_port(&urls[1]);
                t.nodes.push(Node {
                    ws_url: urls[0].clone(),
                    callback_url: b.callback_url,
                });
                t.notes
                    .push("connections on node A, posts through node B".into());
            } else {
                t.nodes.extend(urls.iter().map(|u| Node::same_port(u)));
                if urls.len() > 1 {
                    t.notes.push(format!(
                        "{} gateway processes; connections spread round-robin, each post goes to a connection of the node it is sent to",
                        urls.len()
                    ));
                }
            }
            Ok(t)
        }
        TargetSpec::Running { name, nodes, pids } => {
            for n in nodes {
                split_url(&n.ws_url)?;
                split_url(&n.callback_url)?;
            }
            Ok(Target {
                name: name.clone(),
                nodes: nodes.clone(),
                pids: pids.clone(),
                notes: Vec::new(),
                children: Vec::new(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_listen_from_config() {
        let dir = std::env::temp_dir().join(format!("wsgate-load-cfg-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("c.yaml");
        std::fs::write(
            &p,
            "# x\nlisten: \"127.0.0.1:8080\"  # here\nstore: { kind: memory }\n",
        )
        .unwrap();
        assert_eq!(config_listen(&p).unwrap(), "127.0.0.1:8080");
        let _ = std::fs::remove_dir_all(dir);
    }
}
