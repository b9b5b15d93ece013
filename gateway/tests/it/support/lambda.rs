//! Helpers for the Lambda-by-ARN tests: a shared credentials file with known test keys, the
//! botocore SigV4 verifier (`tests/lambda/sigv4_verify.py`) as a long-lived child, and a moto
//! server with functions set up by `tests/lambda/moto_lambda.py`.

use std::path::PathBuf;
use std::process::Stdio;

use base64::Engine;
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

use super::{DEADLINE, Received};

pub const ACCESS_KEY_ID: &str = "AKIAWSGATETEST000001";
pub const SECRET_ACCESS_KEY: &str = "wsgate/test/secret/0123456789abcdefghijkl";
pub const SESSION_TOKEN: &str = "wsgate-test-session-token//0123456789+abc=";
pub const PROFILE: &str = "wsgate-test";
pub const REGION: &str = "us-east-1";

const VERIFIER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lambda/sigv4_verify.py");
const MOTO_SETUP: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/lambda/moto_lambda.py");

pub(crate) use super::boto::python;

/// A file removed when dropped.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn with_contents(name: &str, text: &str) -> Self {
        let path = std::env::temp_dir().join(format!("wsgate-{name}-{}", wsgate::connection_id()));
        std::fs::write(&path, text).expect("write temp file");
        Self(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A shared credentials file whose `wsgate-test` profile holds the test keys (with a session
/// token, as temporary credentials have).
pub fn credentials_file() -> TempFile {
    TempFile::with_contents(
        "credentials",
        &format!(
            "[default]\naws_access_key_id = AKIAWRONGPROFILE0000\naws_secret_access_key = wrong\n\n\
             [{PROFILE}]\naws_access_key_id = {ACCESS_KEY_ID}\naws_secret_access_key = {SECRET_ACCESS_KEY}\n\
             aws_session_token = {SESSION_TOKEN}\n"
        ),
    )
}

/// The `aws:` section pointing at `endpoint` with the test credentials file.
pub fn aws_section(endpoint: &str, file: &TempFile) -> String {
    format!(
        "aws:\n  endpoint_url: {endpoint}\n  credentials_file: {}\n  profile: {PROFILE}\n",
        file.0.display()
    )
}

/// botocore recomputing the signature of each request the test endpoint received.
pub struct Verifier {
    _child: Child,
    stdin: ChildStdin,
    lines: Lines<BufReader<ChildStdout>>,
}

impl Verifier {
    /// Starts the verifier for the test keys (with the session token when `token`).
    pub async fn start(token: bool) -> Self {
        let mut command = Command::new(python());
        command
            .arg(VERIFIER)
            .args(["--access-key-id", ACCESS_KEY_ID])
            .args(["--secret-access-key", SECRET_ACCESS_KEY])
            .args(["--region", REGION])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        if token {
            command.args(["--session-token", SESSION_TOKEN]);
        }
        let mut child = command.spawn().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); set WSGATE_PYTHON to a Python with boto3",
                python()
            )
        });
        let stdin = child.stdin.take().expect("stdin");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let ready = tokio::time::timeout(DEADLINE, lines.next_line())
            .await
            .expect("verifier ready within the deadline")
            .expect("read")
            .unwrap_or_else(|| panic!("the verifier exited: does {} have boto3?", python()));
        assert!(ready.contains("ready"), "{ready}");
        Self {
            _child: child,
            stdin,
            lines,
        }
    }

    /// botocore's verdict on `request`: `{"ok": bool, "detail": str, "signed_headers": [...]}`.
    pub async fn check(&mut self, request: &Received) -> Value {
        let headers: Vec<(String, String)> = request
            .headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_string(),
                    String::from_utf8_lossy(v.as_bytes()).into_owned(),
                )
            })
            .collect();
        let host = request
            .headers
            .get("host")
            .and_then(|h| h.to_str().ok())
            .unwrap_or("")
            .to_string();
        let line = json!({
            "method": request.method,
            "host": host,
            "path": request.path,
            "query": request.query,
            "headers": headers,
            "body_b64": base64::engine::general_purpose::STANDARD.encode(&request.body),
        });
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write to the verifier");
        let answer = tokio::time::timeout(DEADLINE, self.lines.next_line())
            .await
            .expect("verdict within the deadline")
            .expect("read")
            .expect("the verifier answered");
        serde_json::from_str(&answer).expect("verdict is JSON")
    }

    /// Asserts botocore computes the same signature for `request`.
    pub async fn assert_signed(&mut self, request: &Received) {
        let verdict = self.check(request).await;
        assert_eq!(
            verdict["ok"],
            true,
            "{}",
            verdict["detail"].as_str().unwrap_or("")
        );
    }
}

/// A moto server on a free loopback port, stopped when dropped.
pub struct Moto {
    child: Child,
    pub url: String,
}

impl Moto {
    /// Starts `python -m moto.server` and waits for its "Running on" line.
    pub async fn start() -> Self {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
            probe.local_addr().expect("addr").port()
        };
        let mut child = Command::new(python())
            .args([
                "-m",
                "moto.server",
                "-H",
                "127.0.0.1",
                "-p",
                &port.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {} -m moto.server ({e})", python()));
        let mut stderr = BufReader::new(child.stderr.take().expect("stderr")).lines();
        let running = tokio::time::timeout(DEADLINE * 3, async {
            while let Ok(Some(line)) = stderr.next_line().await {
                if line.contains("Running on") {
                    return true;
                }
            }
            false
        })
        .await
        .expect("moto server starts within the deadline");
        assert!(
            running,
            "moto server exited: is `moto[server]` installed for {}? (scripts/test.sh installs it)",
            python()
        );
        // Keep reading its log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Creates `function` with alias `alias` and queues `results` for its next invocations;
    /// returns the unqualified function ARN.
    pub async fn function(&self, function: &str, alias: &str, results: &[&str]) -> String {
        let mut command = Command::new(python());
        command
            .arg(MOTO_SETUP)
            .args(["--endpoint", &self.url])
            .args(["--function", function])
            .args(["--alias", alias])
            .env("NO_PROXY", "127.0.0.1")
            .env("no_proxy", "127.0.0.1")
            .env("AWS_CONFIG_FILE", "/dev/null")
            .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
            .env("AWS_EC2_METADATA_DISABLED", "true");
        for result in results {
            command.args(["--result", result]);
        }
        let out = tokio::time::timeout(DEADLINE * 3, command.output())
            .await
            .expect("moto setup within the deadline")
            .expect("run moto setup");
        assert!(
            out.status.success(),
            "moto setup failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let answer: Value = serde_json::from_slice(&out.stdout).expect("setup prints JSON");
        answer["arn"].as_str().expect("arn").to_string()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}
