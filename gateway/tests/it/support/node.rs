//! Node.js children for the AWS samples test: the Lambda harness of `tests/samples` (handlers
//! run with the AWS SDK for JavaScript v3) and `ws` WebSocket clients, each killed on drop and
//! awaited through the lines it prints, never by sleeping.

use std::process::Stdio;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::mpsc;

use super::DEADLINE;

/// The fixtures' directory; `npm ci` there installs their `node_modules` (scripts/test.sh does).
pub const SAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/samples");

/// The Node.js binary (`$WSGATE_NODE`, default `node`).
pub fn node() -> String {
    std::env::var("WSGATE_NODE")
        .ok()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| "node".to_string())
}

/// A `node` command in the fixtures' directory with `env` and nothing of the caller's AWS setup.
fn command(script: &str, env: &[(String, String)]) -> Command {
    let modules = std::path::Path::new(SAMPLES).join("node_modules");
    assert!(
        modules.join("ws").is_dir() && modules.join("@aws-sdk").is_dir(),
        "{} is missing: run `npm ci` in {SAMPLES} (scripts/test.sh does)",
        modules.display()
    );
    let mut command = Command::new(node());
    command
        .arg(script)
        .current_dir(SAMPLES)
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_SESSION_TOKEN")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    command
}

fn spawn(mut command: Command) -> Child {
    command.spawn().unwrap_or_else(|e| {
        panic!(
            "cannot run {} ({e}): Node.js is required (set WSGATE_NODE)",
            node()
        )
    })
}

/// `harness.js`: the Lambda Invoke API for the fixture handlers.
pub struct Harness {
    _child: Child,
    /// `http://127.0.0.1:{port}`.
    pub url: String,
    lines: mpsc::UnboundedReceiver<String>,
}

impl Harness {
    /// Starts the harness on a free port and waits for its `ready` line.
    pub async fn start(env: &[(String, String)]) -> Self {
        let mut child = spawn(command("harness.js", env));
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(DEADLINE, stdout.next_line())
            .await
            .expect("the harness is ready within the deadline")
            .expect("read")
            .expect("the harness exited before it was ready");
        let url = ready
            .strip_prefix("ready ")
            .unwrap_or_else(|| panic!("unexpected first line {ready}"))
            .to_string();
        // Every later line (the handlers' logs, one `done` line per invocation) is shown with the
        // test's output and kept for `wait_for`.
        let (tx, lines) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(line)) = stdout.next_line().await {
                eprintln!("[lambda] {line}");
                let _ = tx.send(line);
            }
        });
        Self {
            _child: child,
            url,
            lines,
        }
    }

    /// The URL that invokes `function`.
    pub fn invoke_url(&self, function: &str) -> String {
        format!("{}/2015-03-31/functions/{function}/invocations", self.url)
    }

    /// The next finished invocation: the function's name and its outcome (`ok {result}` or
    /// `error "{message}"`), from the harness's `done {name} {requestId} {outcome}` line.
    pub async fn next_done(&mut self) -> (String, String) {
        let line = self.wait_for("done ").await;
        let mut parts = line.splitn(4, ' ').skip(1);
        let name = parts.next().unwrap_or_default().to_string();
        let outcome = parts.nth(1).unwrap_or_default().to_string();
        (name, outcome)
    }

    /// The next line starting with `prefix` (e.g. `done ondisconnect`), skipping others.
    pub async fn wait_for(&mut self, prefix: &str) -> String {
        tokio::time::timeout(DEADLINE, async {
            loop {
                let line = self.lines.recv().await.expect("the harness is running");
                if line.starts_with(prefix) {
                    return line;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("no `{prefix}` line from the harness within the deadline"))
    }
}

/// `client.js`: one WebSocket connection through the `ws` library.
pub struct Client {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

/// How an opening handshake ended.
pub enum Opened {
    Open(Box<Client>),
    Refused(u16, String),
}

impl Opened {
    pub fn status(&self) -> u16 {
        match self {
            Self::Open(_) => 101,
            Self::Refused(status, _) => *status,
        }
    }

    pub fn client(self) -> Client {
        match self {
            Self::Open(client) => *client,
            Self::Refused(status, body) => panic!("refused with {status}: {body}"),
        }
    }
}

impl Client {
    /// Opens `url` sending `headers` with their names as written.
    pub async fn connect(url: &str, headers: &[(&str, &str)], env: &[(String, String)]) -> Opened {
        let headers: serde_json::Map<String, Value> = headers
            .iter()
            .map(|(k, v)| ((*k).to_string(), Value::String((*v).to_string())))
            .collect();
        let mut command = command("client.js", env);
        command.arg(url).arg(Value::Object(headers).to_string());
        let mut child = spawn(command);
        let stdin = child.stdin.take().expect("stdin");
        let lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let mut client = Self {
            _child: child,
            stdin,
            lines,
        };
        let first = client.next_line().await;
        if first.get("open").is_some() {
            return Opened::Open(Box::new(client));
        }
        match first.get("refused").and_then(Value::as_u64) {
            Some(status) => Opened::Refused(
                u16::try_from(status).expect("an HTTP status"),
                first["body"].as_str().unwrap_or("").to_string(),
            ),
            None => panic!("handshake failed: {first}"),
        }
    }

    async fn next_line(&mut self) -> Value {
        let line = tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .expect("the client reports within the deadline")
            .expect("read")
            .expect("the client exited without a report");
        serde_json::from_str(&line).expect("the client prints JSON")
    }

    async fn command(&mut self, command: Value) {
        self.stdin
            .write_all(format!("{command}\n").as_bytes())
            .await
            .expect("write to the client");
    }

    /// Sends a text message.
    pub async fn send(&mut self, text: &str) {
        self.command(json!({ "send": text })).await;
    }

    /// The next text message received.
    pub async fn next_message(&mut self) -> String {
        let line = self.next_line().await;
        line["message"]
            .as_str()
            .unwrap_or_else(|| panic!("expected a message, got {line}"))
            .to_string()
    }

    /// Closes with 1000 and returns the close code the gateway answered with.
    pub async fn close(mut self) -> u64 {
        self.command(json!({ "close": 1000 })).await;
        loop {
            let line = self.next_line().await;
            if let Some(code) = line.get("close").and_then(Value::as_u64) {
                return code;
            }
        }
    }
}
