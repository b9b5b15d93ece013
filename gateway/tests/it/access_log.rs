//! Access logs and execution logs on real sockets: one line per connect (refused ones too),
//! message, disconnect and callback call with the fields a backend can check them against; CLF;
//! size rotation; unknown variables refused at start; no body or token in any line; execution
//! logs per route with bounded data traces.

use std::path::{Path, PathBuf};

use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;
use wsgate::Config;

use crate::support::cluster::eventually;
use crate::support::logs::Captured;
use crate::support::*;

const JSON_FORMAT: &str = r#"{"requestId":"$context.requestId","extendedRequestId":"$context.extendedRequestId","eventType":"$context.eventType","routeKey":"$context.routeKey","status":"$context.status","connectionId":"$context.connectionId","messageId":"$context.messageId","integrationLatency":"$context.integrationLatency","integrationStatus":"$context.integration.status","integrationError":"$context.integration.error","error":"$context.error.message","ip":"$context.identity.sourceIp","apiKey":"$context.identity.apiKey","requestTimeEpoch":"$context.requestTimeEpoch"}"#;

/// A fresh directory for one test's log files.
fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "wsgate-it-access-{name}-{}-{}",
        std::process::id(),
        wsgate::connection_id().replace(['=', '/', '+'], "_")
    ));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The standard test API with `stage` settings under `prod` and `extra` at the top level.
fn logged_config(backend: &str, stage: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables:
        backend: {backend}
{stage}
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/connect", timeout: 2s }}
    $disconnect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/disconnect" }}
    sendmessage:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/sendmessage", timeout: 2s }}
    echo:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/echo", timeout: 2s }}
      route_response: true
    limited:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.backend}}/limited", timeout: 2s }}
    broken:
      integration: {{ type: http_proxy, uri: "http://127.0.0.1:1/nothing", timeout: 2s }}
    ping:
      integration: {{ type: mock, response: '{{"action":"pong"}}' }}
      route_response: true
{extra}
"#
    )
}

/// `access_log:` under a stage, writing `format` to `path`.
fn access_log(format: &str, path: &Path, rotation: &str) -> String {
    format!(
        "      access_log:\n        format: '{format}'\n        destination: {}\n{rotation}",
        path.display()
    )
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect()
}

/// Waits until `path` holds at least `count` complete lines; answers them parsed.
async fn json_lines(path: &Path, count: usize) -> Vec<Value> {
    eventually("access log lines", DEADLINE, || async {
        lines(path).len() >= count
    })
    .await;
    lines(path)
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn request_id(received: &Received) -> String {
    received.json()["requestContext"]["requestId"]
        .as_str()
        .expect("requestId")
        .to_string()
}

fn latency(line: &Value) -> u64 {
    line["integrationLatency"]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("integrationLatency is numeric: {line}"))
}

#[tokio::test]
async fn every_event_writes_one_line_with_what_the_backend_saw() {
    let backend = Backend::start(|received| {
        let denied =
            received.path == "/connect" && received.json()["queryStringParameters"]["deny"] == "1";
        if denied {
            Reply::lambda(403, None)
        } else {
            Reply::lambda(200, Some("SECRET-ANSWER"))
        }
    })
    .await;
    let dir = temp_dir("events");
    let path = dir.join("access.log");
    let throttling = "throttling:\n  stages:\n    prod:\n      route_settings:\n        limited: { throttling_rate_limit: 0.01, throttling_burst_limit: 1 }\n";
    let gw = TestGateway::start(&logged_config(
        &backend.url(),
        &access_log(JSON_FORMAT, &path, ""),
        throttling,
    ))
    .await;

    // A refused handshake: the backend's 403 is the line's status.
    let (status, _) = connect_refused(&gw.ws_url("/prod?deny=1")).await;
    assert_eq!(status, 403);
    let refused_id = request_id(&backend.next_to("/connect").await);

    let mut ws = connect(&gw.ws_url("/prod?token=SECRET-QUERY-TOKEN")).await;
    let connect = backend.next_to("/connect").await;
    let id = connect.json()["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    send_text(&mut ws, r#"{"action":"sendmessage","text":"SECRET-BODY"}"#).await;
    let message = backend.next_to("/sendmessage").await;
    send_text(&mut ws, r#"{"action":"limited"}"#).await;
    backend.next_to("/limited").await;
    send_text(&mut ws, r#"{"action":"limited"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON");
    assert_eq!(frame["message"], "Too Many Requests");
    send_text(&mut ws, r#"{"action":"broken"}"#).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON");
    assert_eq!(frame["message"], "Internal server error");
    let posted = http()
        .post(gw.http_url(&format!("/prod/@connections/{id}")))
        .header("authorization", "Bearer SECRET-CALLER-TOKEN")
        .body("SECRET-CALLBACK-BODY")
        .send()
        .await
        .expect("callback");
    assert_eq!(posted.status(), 200);
    let callback_request_id = posted.headers()["x-amzn-requestid"]
        .to_str()
        .expect("id")
        .to_string();
    assert_eq!(next_text(&mut ws).await, "SECRET-CALLBACK-BODY");
    ws.close(None).await.expect("close");
    let disconnect = backend.next_to("/disconnect").await;

    let all = json_lines(&path, 8).await;
    // One line each, in the order the events ended: nothing more comes.
    assert_eq!(all.len(), 8, "{all:#?}");
    let [
        refused,
        connected,
        sent,
        first_limited,
        throttled,
        broken,
        callback,
        closed,
    ] = &all[..]
    else {
        unreachable!()
    };

    assert_eq!(refused["eventType"], "CONNECT");
    assert_eq!(refused["status"], "403");
    assert_eq!(refused["requestId"], refused_id.as_str());
    assert_eq!(refused["integrationStatus"], "403");
    assert_eq!(refused["error"], "Forbidden");

    assert_eq!(connected["eventType"], "CONNECT");
    assert_eq!(connected["routeKey"], "$connect");
    assert_eq!(connected["status"], "200");
    assert_eq!(connected["connectionId"], id.as_str());
    assert_eq!(connected["requestId"], request_id(&connect).as_str());
    assert_eq!(connected["extendedRequestId"], connected["requestId"]);
    assert_eq!(connected["ip"], "127.0.0.1");
    assert_eq!(connected["apiKey"], "-");
    assert_eq!(connected["messageId"], "-");
    latency(connected);

    assert_eq!(sent["eventType"], "MESSAGE");
    assert_eq!(sent["routeKey"], "sendmessage");
    assert_eq!(sent["status"], "200");
    assert_eq!(sent["integrationStatus"], "200");
    assert_eq!(sent["connectionId"], id.as_str());
    assert_eq!(sent["requestId"], request_id(&message).as_str());
    assert_eq!(
        sent["messageId"],
        message.json()["requestContext"]["messageId"]
    );
    latency(sent);

    assert_eq!(first_limited["status"], "200");
    assert_eq!(throttled["routeKey"], "limited");
    assert_eq!(throttled["status"], "429");
    assert_eq!(throttled["error"], "Too Many Requests");
    assert_eq!(throttled["integrationLatency"], "-");

    assert_eq!(broken["routeKey"], "broken");
    assert_eq!(broken["status"], "500");
    assert_eq!(broken["integrationStatus"], "-");
    assert_eq!(broken["integrationError"], "transport error");
    assert_eq!(broken["error"], "Internal server error");
    latency(broken);

    assert_eq!(callback["eventType"], "CALLBACK");
    assert_eq!(callback["routeKey"], "POST /@connections");
    assert_eq!(callback["status"], "200");
    assert_eq!(callback["connectionId"], id.as_str());
    assert_eq!(callback["requestId"], callback_request_id.as_str());

    assert_eq!(closed["eventType"], "DISCONNECT");
    assert_eq!(closed["routeKey"], "$disconnect");
    assert_eq!(closed["status"], "200");
    assert_eq!(closed["connectionId"], id.as_str());
    assert_eq!(closed["requestId"], request_id(&disconnect).as_str());
    latency(closed);

    let text = std::fs::read_to_string(&path).expect("log");
    for secret in [
        "SECRET-BODY",
        "SECRET-ANSWER",
        "SECRET-CALLBACK-BODY",
        "SECRET-CALLER-TOKEN",
        "SECRET-QUERY-TOKEN",
    ] {
        assert!(!text.contains(secret), "{secret} logged: {text}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn the_clf_example_renders_one_line_per_event() {
    let backend = Backend::ok().await;
    let dir = temp_dir("clf");
    let path = dir.join("access.log");
    let clf = r#"$context.identity.sourceIp $context.identity.caller $context.identity.user [$context.requestTime] "$context.eventType $context.routeKey $context.connectionId" $context.status $context.requestId"#;
    let gw = TestGateway::start(&logged_config(
        &backend.url(),
        &access_log(clf, &path, ""),
        "",
    ))
    .await;
    let (mut ws, id) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"ping"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"action":"pong"}"#);
    eventually("two lines", DEADLINE, || async { lines(&path).len() >= 2 }).await;
    let all = lines(&path);
    clf_line(&all[0], &format!("] \"CONNECT $connect {id}\" 200 "));
    clf_line(&all[1], &format!("] \"MESSAGE ping {id}\" 200 "));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Checks `line` is `127.0.0.1 - - [` + a CLF time (`06/Dec/2026:17:29:32 +0000`) + `middle`
/// + a 16-character request id.
fn clf_line(line: &str, middle: &str) {
    let rest = line
        .strip_prefix("127.0.0.1 - - [")
        .unwrap_or_else(|| panic!("{line}"));
    let (time, rest) = rest.split_at(26);
    assert!(
        chrono::DateTime::parse_from_str(time, "%d/%b/%Y:%H:%M:%S %z").is_ok(),
        "{time} in {line}"
    );
    let request_id = rest
        .strip_prefix(middle)
        .unwrap_or_else(|| panic!("{line}"));
    assert_eq!(request_id.len(), 16, "{line}");
}

#[tokio::test]
async fn a_file_is_rotated_at_its_size_and_keeps_max_files() {
    let backend = Backend::ok().await;
    let dir = temp_dir("rotation");
    let path = dir.join("access.log");
    let gw = TestGateway::start(&logged_config(
        &backend.url(),
        &access_log(
            "$context.requestId $context.eventType $context.routeKey",
            &path,
            "        rotation: { max_bytes: 200, max_files: 2 }\n",
        ),
        "",
    ))
    .await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    // Lines of 30 bytes: six per file; 40 messages rotate several times.
    for _ in 0..40 {
        send_text(&mut ws, r#"{"action":"ping"}"#).await;
        next_text(&mut ws).await;
    }
    let numbered = |n: usize| PathBuf::from(format!("{}.{n}", path.display()));
    // The writer may still be behind (on a busy machine the first rotations happen after the
    // last answer) or rotating the last lines (renaming `.1` to `.2`, then the file to `.1`),
    // so a rotated file can be missing or still be the first one for a moment: read both until
    // both are there and the first file, the one with the CONNECT line, is gone (41 lines of
    // six a file rotate it away).
    let rotated = std::sync::Mutex::new(Vec::new());
    eventually("two rotated files after the first", DEADLINE, || async {
        let texts: Result<Vec<String>, _> = [numbered(1), numbered(2)]
            .iter()
            .map(std::fs::read_to_string)
            .collect();
        match texts {
            Ok(texts) if !texts.iter().any(|t| t.contains(" CONNECT ")) => {
                *rotated.lock().unwrap() = texts;
                true
            }
            _ => false,
        }
    })
    .await;
    // Rotated files are complete: whole lines, within the limit.
    for (n, text) in rotated.into_inner().unwrap().into_iter().enumerate() {
        let file = numbered(n + 1);
        assert!(text.len() <= 200, "{} bytes in {file:?}", text.len());
        assert!(text.ends_with('\n'));
        for line in text.lines() {
            assert_eq!(line.len(), 29, "{line}");
            assert!(line.ends_with(" MESSAGE ping"), "{line}");
        }
    }
    assert!(!numbered(3).exists(), "at most max_files rotated files");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn an_unknown_variable_fails_at_start_naming_its_key() {
    let dir = std::env::temp_dir();
    let yaml = logged_config(
        "http://127.0.0.1:9",
        &access_log(
            "$context.requestId $context.requestBody",
            &dir.join("never.log"),
            "",
        ),
        "",
    );
    let error = Config::from_yaml(&yaml).expect_err("refused").to_string();
    assert!(
        error.contains("`api.stages.prod.access_log.format`")
            && error.contains("$context.requestBody"),
        "{error}"
    );
    let yaml = logged_config(
        "http://127.0.0.1:9",
        "      access_log: { format: '$context.status', destination: stdout, rotation: { max_bytes: 10, max_files: 1 } }\n",
        "",
    );
    let error = Config::from_yaml(&yaml).expect_err("refused").to_string();
    assert!(
        error.contains("api.stages.prod.access_log.rotation"),
        "{error}"
    );
    let yaml = logged_config(
        "http://127.0.0.1:9",
        "      route_execution_log: { nosuchroute: { logging_level: INFO } }\n",
        "",
    );
    let error = Config::from_yaml(&yaml).expect_err("refused").to_string();
    assert!(
        error.contains("api.stages.prod.route_execution_log.nosuchroute"),
        "{error}"
    );
}

#[tokio::test]
async fn execution_logs_follow_each_routes_level_and_cut_data_traces() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let backend = Backend::start(|_| Reply::lambda(200, Some("ANSWER-0123456789-TAIL"))).await;
    let stage =
        "      execution_log: { logging_level: INFO, data_trace: true, data_trace_max_bytes: 12 }
      route_execution_log:
        echo: { logging_level: 'OFF' }
";
    let gw = TestGateway::start(&logged_config(&backend.url(), stage, "")).await;
    let (mut ws, _) = connect_and_id(&backend, &gw.ws_url("/prod")).await;
    // Other tests of this binary log from other threads: tracing may have cached a call site's
    // interest before this thread's subscriber counted; rebuilding it makes the check hold.
    tracing::callsite::rebuild_interest_cache();
    send_text(&mut ws, r#"{"action":"echo","text":"ECHO-BODY"}"#).await;
    assert_eq!(next_text(&mut ws).await, "ANSWER-0123456789-TAIL");
    backend.next_to("/echo").await;
    send_text(&mut ws, r#"{"action":"sendmessage","text":"MESSAGE-TAIL"}"#).await;
    let received = backend.next_to("/sendmessage").await;
    let request_id = request_id(&received);
    eventually("the response body trace", DEADLINE, || async {
        logs.text()
            .lines()
            .any(|l| l.contains("response body") && l.contains(&request_id))
    })
    .await;
    let text = logs.text();
    let execution: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("wsgate::execution"))
        .collect();
    assert!(
        !execution
            .iter()
            .any(|l| l.contains("route_key=\"echo\"") || l.contains("route_key=echo")),
        "{text}"
    );
    let ours: Vec<&&str> = execution
        .iter()
        .filter(|l| l.contains(&request_id))
        .collect();
    assert!(ours.iter().any(|l| l.contains("route selected")), "{text}");
    assert!(
        ours.iter().any(|l| l.contains("integration called")
            && l.contains("status=200")
            && l.contains("latency_ms=")),
        "{text}"
    );
    let request = ours
        .iter()
        .find(|l| l.contains("request body"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        request.contains("truncated=true") && request.contains(r#"{"action":"s"#),
        "{request}"
    );
    assert!(
        !text.contains("MESSAGE-TAIL") && !text.contains("ECHO-BODY"),
        "{text}"
    );
    let response = ours
        .iter()
        .find(|l| l.contains("response body"))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(
        response.contains("ANSWER-01234") && !response.contains("TAIL"),
        "{response}"
    );
    ws.send(Message::Close(None)).await.expect("close");
}
