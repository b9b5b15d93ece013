//! `wsgate import sam` end to end: a template in the shape of the AWS serverless chat app
//! (`tests/specs/chat-template.yaml`) is imported with a `--functions` map that points its three
//! functions at the Lambda harness of the AWS samples test; the gateway serves the imported
//! configuration (with TLS and SigV4 on the callback API added, as a deployment would), and the
//! chat's handlers run connect, sendmessage and disconnect through it against DynamoDB in moto.

use crate::aws_samples::stored_ids;
use crate::support::lambda::{ACCESS_KEY_ID, REGION, SECRET_ACCESS_KEY, TempFile};
use crate::support::node::Client;
use crate::support::*;

const TEMPLATE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/specs/chat-template.yaml"
);

/// The template to import: ours, or the one `WSGATE_CHAT_TEMPLATE` names (e.g. the published
/// aws-samples `template.yaml`, which has the same logical ids and stage; its line numbers are
/// then not checked).
fn template() -> (String, bool) {
    match std::env::var("WSGATE_CHAT_TEMPLATE") {
        Ok(path) if !path.is_empty() => (path, false),
        _ => (TEMPLATE.to_string(), true),
    }
}

/// Runs the `wsgate` binary with `args`; returns (exit code, stdout, stderr).
pub(crate) async fn wsgate(args: &[&str]) -> (i32, String, String) {
    let output = tokio::time::timeout(
        DEADLINE,
        tokio::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
            .args(args)
            .env_remove("WSGATE_CONFIG")
            .output(),
    )
    .await
    .expect("wsgate finishes within the deadline")
    .expect("run wsgate");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test]
async fn imported_sam_chat_template_serves_its_own_handlers() {
    let (moto, cert, env, mut harness) = crate::aws_samples::chat_sample_setup().await;

    // The map names the functions by their logical ids.
    let map = TempFile::with_contents(
        "functions.yaml",
        &format!(
            "OnConnectFunction: {}\nOnDisconnectFunction: {}\nSendMessageFunction: {}\n",
            harness.invoke_url("onconnect"),
            harness.invoke_url("ondisconnect"),
            harness.invoke_url("sendmessage"),
        ),
    );
    let map_path = map.0.display().to_string();
    let (template, ours) = template();
    let (code, imported, notes) =
        wsgate(&["import", "sam", &template, "--functions", &map_path]).await;
    assert_eq!(code, 0, "{notes}");
    assert!(
        imported.contains(&harness.invoke_url("sendmessage")),
        "{imported}"
    );
    // What wsgate cannot express is reported with the template's line numbers.
    let expected = [
        "chat-template.yaml:31: Resources.ConnectRoute.Properties.OperationName: no equivalent in wsgate (ignored)",
        "chat-template.yaml:94: Resources.ConnectionsTable: AWS::DynamoDB::Table is not part of a WebSocket API (not imported)",
        "chat-template.yaml:120: Resources.OnConnectPermission: wsgate needs no invoke permission",
        "chat-template.yaml:176: Outputs:",
    ];
    for expected in expected.iter().filter(|_| ours) {
        assert!(
            notes.contains(expected),
            "missing `{expected}` in:\n{notes}"
        );
    }

    // `wsgate check` accepts the output as it is.
    let written = TempFile::with_contents("imported.yaml", &imported);
    let written_path = written.0.display().to_string();
    let (code, out, err) = wsgate(&["check", "--config", &written_path]).await;
    assert_eq!(code, 0, "{out}{err}");

    // The deployment adds TLS and SigV4 on the callback API (the handler posts over https with
    // the AWS SDK, as on AWS).
    let config = format!(
        "{imported}tls:\n  cert_file: {}\n  key_file: {}\ncallback:\n  auth:\n    kind: sigv4\n    region: {REGION}\n    credentials: [{{ access_key_id: {ACCESS_KEY_ID}, secret_access_key: \"{SECRET_ACCESS_KEY}\" }}]\n",
        cert.cert.0.display(),
        cert.key.0.display(),
    );
    let gw = TestGateway::start(&config).await;
    let url = format!("wss://127.0.0.1:{}/Prod", gw.addr.port());

    let mut clients = Vec::new();
    for _ in 0..2 {
        clients.push(Client::connect(&url, &[], &env).await.client());
        assert_eq!(
            harness.next_done().await,
            (
                "onconnect".to_string(),
                r#"ok {"statusCode":200,"body":"Connected."}"#.to_string()
            )
        );
    }
    let connected = stored_ids(&moto).await;
    assert_eq!(connected.len(), 2, "{connected:?}");

    clients[0]
        .send(r#"{"action":"sendmessage","data":"hello from the template"}"#)
        .await;
    for client in &mut clients {
        assert_eq!(client.next_message().await, "hello from the template");
    }
    assert_eq!(
        harness.next_done().await,
        (
            "sendmessage".to_string(),
            r#"ok {"statusCode":200,"body":"Data sent."}"#.to_string()
        )
    );

    let leaving = clients.pop().expect("client");
    assert_eq!(leaving.close().await, 1000);
    assert_eq!(
        harness.next_done().await,
        (
            "ondisconnect".to_string(),
            r#"ok {"statusCode":200,"body":"Disconnected."}"#.to_string()
        )
    );
    assert_eq!(stored_ids(&moto).await.len(), 1);
}
