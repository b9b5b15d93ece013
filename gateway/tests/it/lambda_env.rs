//! The `wsgate` binary with no `aws.credentials_file`: the standard AWS credential chain finds
//! the keys in the process environment (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`,
//! `AWS_SESSION_TOKEN`) and signs Lambda Invoke requests with them, as botocore verifies. The
//! binary runs as a child so the variables never touch the test process.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use crate::support::lambda::*;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_wsgate");

#[tokio::test]
async fn the_binary_signs_with_credentials_from_the_environment() {
    let endpoint = Backend::ok().await;
    let config = TempFile::with_contents(
        "config.yaml",
        &format!(
            r#"
listen: 127.0.0.1:0
log: {{ format: json }}
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod: {{}}
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "arn:aws:lambda:{REGION}:123456789012:function:connect:live" }}
aws:
  endpoint_url: {}
"#,
            endpoint.url()
        ),
    );
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config.0)
        .env_remove("RUST_LOG")
        .env_remove("AWS_PROFILE")
        .env("AWS_ACCESS_KEY_ID", ACCESS_KEY_ID)
        .env("AWS_SECRET_ACCESS_KEY", SECRET_ACCESS_KEY)
        .env("AWS_SESSION_TOKEN", SESSION_TOKEN)
        // Nothing else on this machine may answer for the chain.
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn wsgate");
    let stdout = child.stdout.take().expect("stdout");
    let (addr_tx, addr_rx) = tokio::sync::oneshot::channel();
    let (loaded_tx, loaded_rx) = tokio::sync::oneshot::channel();
    let reader = std::thread::spawn(move || {
        let (mut addr_tx, mut loaded_tx) = (Some(addr_tx), Some(loaded_tx));
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let Ok(v) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            if let Some(listen) = v["listen"].as_str()
                && let Some(tx) = addr_tx.take()
            {
                let _ = tx.send(listen.to_string());
            }
            if line.contains("AWS credentials for Lambda functions")
                && let Some(tx) = loaded_tx.take()
            {
                let _ = tx.send(line.clone());
            }
        }
    });
    let addr = tokio::time::timeout(DEADLINE, addr_rx)
        .await
        .expect("serving line")
        .expect("address");
    // The start-up check loaded them in the background.
    let loaded = tokio::time::timeout(DEADLINE, loaded_rx)
        .await
        .expect("credentials line")
        .expect("line");
    assert!(loaded.contains("loaded"), "{loaded}");

    let ws = connect(&format!("ws://{addr}/prod")).await;
    let call = endpoint.next().await;
    assert_eq!(call.query.as_deref(), Some("Qualifier=live"));
    assert_eq!(call.headers["x-amz-security-token"], SESSION_TOKEN);
    Verifier::start(true).await.assert_signed(&call).await;
    drop(ws);

    let _ = child.kill();
    let _ = child.wait();
    let _ = reader.join();
}
