//! Running the Python SDK scripts of `tests/sdk/`: `$WSGATE_PYTHON` (with boto3), an
//! environment in which no local AWS profile, proxy or metadata service takes part, and the
//! script's last output line read as JSON.

use std::ffi::OsStr;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// The interpreter with boto3 (`$WSGATE_PYTHON`, else `python3`).
pub(crate) fn python() -> String {
    std::env::var("WSGATE_PYTHON")
        .ok()
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "python3".to_string())
}

/// Runs `script` with `args`, writing `stdin` to it when given, and returns its last non-empty
/// output line as JSON; fails the test with the script's output when it fails, takes longer than
/// `within` or prints no JSON.
pub(crate) async fn run_script<I, S>(
    script: &str,
    args: I,
    stdin: Option<&[u8]>,
    within: Duration,
) -> Value
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let python = python();
    let mut child = Command::new(&python)
        .arg(script)
        .args(args)
        // Talk to the gateway directly, and let no local AWS profile or metadata service in.
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env("no_proxy", "127.0.0.1,localhost")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .env_remove("AWS_CA_BUNDLE")
        .env_remove("REQUESTS_CA_BUNDLE")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|error| {
            panic!("cannot run `{python}` ({error}); set WSGATE_PYTHON to a Python with boto3")
        });
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(input)
            .await
            .expect("write the script's input");
    }
    let output = tokio::time::timeout(within, child.wait_with_output())
        .await
        .expect("the boto3 script finished in time")
        .expect("the boto3 script ran");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{script} failed ({}); does `{python}` have boto3 (pip install boto3, or WSGATE_PYTHON)?\n{stdout}\n{stderr}",
        output.status
    );
    let last = stdout.lines().rev().find(|l| !l.trim().is_empty());
    serde_json::from_str(last.unwrap_or_default())
        .unwrap_or_else(|error| panic!("no JSON line ({error}):\n{stdout}\n{stderr}"))
}
