//! `wsgate sdk`: the generators' output is the committed golden files (and the same bytes on
//! every run); the generated TypeScript compiles with `tsc --strict` and passes `prettier
//! --check`, the generated Python passes `ruff check`, `ruff format --check` and `mypy --strict`;
//! both clients run against a live gateway (API key and subprotocol token on connect, typed
//! one-way sends, typed two-way replies correlated by id, a push through the callback API, a
//! reconnection after `DELETE @connections`, recovery of the group messages missed meanwhile),
//! and both backend clients drive the live callback API with a bearer token and with SigV4. The
//! chat example's page loads the client generated from its configuration.
//!
//! The Node.js tools (typescript, prettier, ws, @smithy/signature-v4) are in `tests/sdk_gen/node_modules`
//! (`npm ci`, scripts/test.sh does); Python is `$WSGATE_PYTHON` with websockets, botocore, mypy,
//! ruff and pytest (the Python client's live test is a pytest module, `drivers/test_live.py`). `WSGATE_BLESS=1` rewrites the golden files.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::support::boto::python;
use crate::support::node::node;
use crate::support::secured::handshake;
use crate::support::*;

const SDK_GEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk_gen");
const BEARER: &str = "sdk-gen-bearer-token-0123456789";
const API_KEY: &str = "sdk-gen-api-key-0123456789";
const ACCESS_KEY: &str = "AKIDSDKGEN";
const SECRET_KEY: &str = "sdk-gen-secret-access-key";

/// The four packages: directory under golden/, language, `--backend`.
const VARIANTS: [(&str, &str, bool); 4] = [
    ("typescript-client", "typescript", false),
    ("typescript-backend", "typescript", true),
    ("python-client", "python", false),
    ("python-backend", "python", true),
];

/// Runs `wsgate --config tests/sdk_gen/api.yaml sdk LANGUAGE OUT [--backend]`.
fn generate(language: &str, backend: bool, out: &Path) {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"));
    command
        .args(["--config", &format!("{SDK_GEN}/api.yaml"), "sdk", language])
        .arg(out)
        .env_remove("WSGATE_CONFIG");
    if backend {
        command.arg("--backend");
    }
    let output = command.output().expect("run wsgate sdk");
    assert!(
        output.status.success(),
        "wsgate sdk {language}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Every file under `dir`, relative path → contents.
fn files(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .expect("inside")
                    .display()
                    .to_string();
                out.push((relative, std::fs::read(&path).expect("read")));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

/// A fresh directory under `tests/sdk_gen/.work` (inside it, Node.js finds `node_modules`).
fn work_dir(name: &str) -> PathBuf {
    let dir = Path::new(SDK_GEN)
        .join(".work")
        .join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("work dir");
    dir
}

#[test]
fn generated_packages_match_the_golden_files_byte_for_byte() {
    let work = work_dir("golden");
    for (name, language, backend) in VARIANTS {
        let first = work.join(format!("{name}-1"));
        let second = work.join(format!("{name}-2"));
        generate(language, backend, &first);
        generate(language, backend, &second);
        let generated = files(&first);
        assert_eq!(
            generated,
            files(&second),
            "{name}: the same bytes on every run"
        );
        let golden = Path::new(SDK_GEN).join("golden").join(name);
        if std::env::var_os("WSGATE_BLESS").is_some() {
            let _ = std::fs::remove_dir_all(&golden);
            for (relative, contents) in &generated {
                let path = golden.join(relative);
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(path, contents).expect("write golden");
            }
        }
        let expected = files(&golden);
        let names =
            |list: &[(String, Vec<u8>)]| list.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
        assert_eq!(
            names(&generated),
            names(&expected),
            "{name}: the same files"
        );
        for ((relative, got), (_, want)) in generated.iter().zip(&expected) {
            assert!(
                got == want,
                "{name}/{relative} differs from the golden file (WSGATE_BLESS=1 rewrites it)"
            );
        }
    }
    let _ = std::fs::remove_dir_all(&work);
}

#[test]
fn a_configuration_the_generator_refuses_exits_1_naming_the_key() {
    let work = work_dir("refused");
    let yaml = std::fs::read_to_string(format!("{SDK_GEN}/api.yaml"))
        .expect("api.yaml")
        .replace("$request.body.action", "$request.body.message.kind");
    let config = work.join("api.yaml");
    std::fs::write(&config, yaml).expect("write config");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .arg("--config")
        .arg(&config)
        .args(["sdk", "python"])
        .arg(work.join("out"))
        .env_remove("WSGATE_CONFIG")
        .output()
        .expect("run wsgate sdk");
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "error: config key `api.route_selection_expression`: `$request.body.message.kind`"
        ),
        "{stderr}"
    );
    assert!(!work.join("out").exists(), "nothing written");
    let _ = std::fs::remove_dir_all(&work);
}

/// Runs `program args` in `dir` and returns its standard output; fails the test with its output
/// when it fails or takes longer than a minute.
async fn run(program: &str, args: &[&str], dir: &Path, env: &[(&str, String)]) -> String {
    let mut command = tokio::process::Command::new(program);
    command
        .args(args)
        .current_dir(dir)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .env_remove("AWS_PROFILE")
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} ({e})"));
    let output = tokio::time::timeout(std::time::Duration::from_secs(60), child.wait_with_output())
        .await
        .unwrap_or_else(|_| panic!("{program} {args:?} finished within a minute"))
        .expect("wait");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{program} {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// The last output line, as JSON.
fn last_json(stdout: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

fn tsc() -> String {
    let tsc = Path::new(SDK_GEN).join("node_modules/typescript/bin/tsc");
    assert!(
        tsc.is_file() && Path::new(SDK_GEN).join("node_modules/ws").is_dir(),
        "{SDK_GEN}/node_modules is missing: run `npm ci` there (scripts/test.sh does)"
    );
    tsc.display().to_string()
}

/// Calls of the acknowledged route `archive`, by the message's `note` (the TypeScript driver
/// sends notes 1 to 3, the Python one 11 to 13).
static ARCHIVED: std::sync::Mutex<std::collections::BTreeMap<i64, usize>> =
    std::sync::Mutex::new(std::collections::BTreeMap::new());

/// The group with history the recovery drivers read (`notes_gateway` configures it).
const FEED: &str = "feed";

/// The backend of `api.yaml`: the authorizer allows the subprotocol token `good-token`,
/// `$connect` joins a client that opted into recovery (`envelope` or `recover` in its query)
/// to `feed`, `getnote` and `whoami` answer with the request's correlation id, `archive`
/// refuses a message with `"reject": true`.
async fn notes_backend() -> Backend {
    Backend::start(|r| {
        let event = r.json();
        let body: Value = event["body"]
            .as_str()
            .and_then(|b| serde_json::from_str(b).ok())
            .unwrap_or(Value::Null);
        match r.path.as_str() {
            "/connect" => {
                let query = &event["queryStringParameters"];
                if query.get("envelope").is_some() || query.get("recover").is_some() {
                    let answer = json!({"statusCode": 200, "headers": {"X-Wsgate-Groups": FEED}});
                    Reply::http(200, &answer.to_string())
                } else {
                    Reply::lambda(200, None)
                }
            }
            "/authorize" => {
                let offered = event["headers"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .any(|(name, value)| {
                        name.eq_ignore_ascii_case("sec-websocket-protocol")
                            && value.as_str().unwrap_or("").contains("token.good-token")
                    });
                let effect = if offered { "Allow" } else { "Deny" };
                let policy = json!({
                    "principalId": "sdk",
                    "policyDocument": {
                        "Version": "2012-10-17",
                        "Statement": [{"Action": "execute-api:Invoke", "Effect": effect, "Resource": "*"}]
                    }
                });
                Reply::http(200, &policy.to_string())
            }
            "/getnote" => {
                let id = body["id"].as_i64().unwrap_or(0);
                let reply = json!({"id": id, "title": format!("note {id}"), "correlationId": body["correlationId"]});
                Reply::lambda(200, Some(&reply.to_string()))
            }
            "/archive" => {
                let note = body["note"].as_i64().unwrap_or(0);
                *ARCHIVED.lock().unwrap().entry(note).or_default() += 1;
                if body["reject"] == true {
                    Reply::lambda(400, Some("refused"))
                } else {
                    Reply::lambda(200, None)
                }
            }
            "/whoami" => {
                let reply = json!({
                    "connectionId": event["requestContext"]["connectionId"],
                    "correlationId": body["correlationId"]
                });
                Reply::lambda(200, Some(&reply.to_string()))
            }
            _ => Reply::lambda(200, None),
        }
    })
    .await
}

/// A gateway on `api.yaml` with `callback_auth` as `callback.auth`, and history for `feed`.
async fn notes_gateway(backend: &Backend, callback_auth: &str) -> TestGateway {
    let yaml = std::fs::read_to_string(format!("{SDK_GEN}/api.yaml")).expect("api.yaml");
    let digest = hex::encode(Sha256::digest(API_KEY.as_bytes()));
    assert!(
        yaml.contains(&digest),
        "api.yaml holds the digest of API_KEY"
    );
    let yaml = format!(
        "{}\ncallback:\n  auth: {callback_auth}\ngroups:\n  history:\n    groups:\n      - {{ pattern: {FEED}, max_messages: 100 }}\n",
        yaml.replace("http://127.0.0.1:9", &backend.url())
    );
    TestGateway::start(&yaml).await
}

fn sigv4_auth() -> String {
    format!(
        "{{ kind: sigv4, region: us-east-1, credentials: [{{ access_key_id: {ACCESS_KEY}, secret_access_key: {SECRET_KEY} }}] }}"
    )
}

/// The `$connect`-time checks of `api.yaml`, passed by a plain client.
async fn plain_client(backend: &Backend, gw: &TestGateway) -> (Ws, String) {
    let url = gw.ws_url(&format!("/prod?key={API_KEY}"));
    let (ws, _) = handshake(
        &url,
        &[("Sec-WebSocket-Protocol", "token.good-token, wsgate")],
    )
    .await
    .open();
    let event = backend.next_to("/connect").await.json();
    let id = event["requestContext"]["connectionId"]
        .as_str()
        .expect("id")
        .to_string();
    (ws, id)
}

/// What a plain client sees of the backend drivers' calls: the post, the group post, the
/// broadcast, then the close with the DELETE's code.
async fn assert_backend_calls_arrived(ws: &mut Ws, first: &str) {
    assert_eq!(next_text(ws).await, first);
    let group_post: Value = serde_json::from_str(&next_text(ws).await).expect("JSON");
    assert_eq!(group_post, json!({"g": 1}));
    match next_frame(ws).await {
        tokio_tungstenite::tungstenite::Message::Binary(bytes) => assert_eq!(&bytes[..], b"to all"),
        tokio_tungstenite::tungstenite::Message::Text(text) => assert_eq!(text.as_str(), "to all"),
        other => panic!("expected the broadcast, got {other:?}"),
    }
    assert_eq!(expect_close(ws).await, (4001, "bye".to_string()));
}

fn assert_backend_summary(summary: &Value, id: &str) {
    assert_eq!(summary["sourceIp"], "127.0.0.1", "{summary}");
    assert_eq!(summary["groups"], json!(["room:1"]), "{summary}");
    assert_eq!(summary["groupPost"]["deliveredLocal"], 1, "{summary}");
    assert_eq!(summary["broadcast"]["deliveredLocal"], 1, "{summary}");
    assert_eq!(summary["members"]["members"], json!([id]), "{summary}");
    assert_eq!(summary["connectionCount"], 1, "{summary}");
    assert_eq!(summary["after"], json!([]), "{summary}");
    assert_eq!(summary["gone"], "GoneException", "{summary}");
}

/// What the backend must have received from either client: the typed one-way send with the
/// route field set and no correlation id, the two-way send with one.
async fn assert_typed_sends(backend: &Backend) {
    let addnote: Value = serde_json::from_str(
        backend.next_to("/addnote").await.json()["body"]
            .as_str()
            .expect("body"),
    )
    .expect("JSON body");
    assert_eq!(addnote["action"], "addnote");
    assert_eq!(addnote["title"], "first");
    assert_eq!(addnote["tags"], json!(["a", "b"]));
    assert!(addnote.get("correlationId").is_none(), "{addnote}");
    let getnote: Value = serde_json::from_str(
        backend.next_to("/getnote").await.json()["body"]
            .as_str()
            .expect("body"),
    )
    .expect("JSON body");
    assert_eq!(getnote["action"], "getnote");
    assert!(getnote["correlationId"].is_string(), "{getnote}");
    // Past the first connection's whoami and the reconnection's.
    backend.next_to("/whoami").await;
    backend.next_to("/whoami").await;
}

/// The acknowledged route, as a client driver used it with the notes `notes`: the message sent
/// while disconnected waited in the client and went out once; the refused one was not retried.
fn assert_archived(summary: &Value, notes: std::ops::RangeInclusive<i64>) {
    assert_eq!(summary["archive"]["waiting"], 1, "{summary}");
    assert_eq!(summary["archive"]["unacknowledged"], 0, "{summary}");
    assert!(
        summary["archive"]["refused"]
            .as_str()
            .is_some_and(|m| m.contains("Rejected by the integration")),
        "{summary}"
    );
    let archived: Vec<(i64, usize)> = (ARCHIVED.lock().unwrap().iter())
        .filter(|(note, _)| notes.contains(note))
        .map(|(note, calls)| (*note, *calls))
        .collect();
    let once: Vec<(i64, usize)> = notes.map(|note| (note, 1)).collect();
    assert_eq!(
        archived, once,
        "each archive message reached the backend once"
    );
}

fn assert_client_summary(summary: &Value) {
    assert_eq!(summary["note"]["id"], 7, "{summary}");
    assert_eq!(summary["note"]["title"], "note 7", "{summary}");
    assert_eq!(
        summary["push"],
        json!({"kind": "push", "n": 1}),
        "{summary}"
    );
    assert_eq!(
        summary["close"],
        json!({"code": 1000, "kind": "normal"}),
        "{summary}"
    );
    assert_ne!(summary["first"], summary["second"], "{summary}");
}

/// What a recovery driver (`drivers/recover.*`) saw: the two messages before the close, the
/// three posted while it was away replayed once and in order, `recovered`, then the live one;
/// its positions; and `notRecovered` (epoch_changed) for a client starting from a stale epoch.
fn assert_recovered(summary: &Value) {
    let data: Vec<Value> = (1..=6).map(|n| json!({ "n": n })).collect();
    assert_eq!(summary["data"], json!(data), "{summary}");
    assert_eq!(summary["offsets"], json!([1, 2, 3, 4, 5, 6]), "{summary}");
    let epoch = &summary["epochs"][0];
    assert!(epoch.is_string(), "{summary}");
    assert_eq!(summary["epochs"], json!([epoch]), "one epoch: {summary}");
    assert_eq!(
        summary["events"],
        json!([
            "message 1",
            "message 2",
            "message 3",
            "message 4",
            "message 5",
            "recovered 5",
            "message 6"
        ]),
        "{summary}"
    );
    assert_eq!(
        summary["recovered"],
        json!({"type": "recovered", "group": FEED, "epoch": epoch, "offset": 5, "replayed": 3}),
        "{summary}"
    );
    assert_eq!(summary["notRecovered"], 0, "{summary}");
    assert_eq!(summary["lastPost"]["epoch"], *epoch, "{summary}");
    assert_eq!(summary["lastPost"]["offset"], 6, "{summary}");
    let position = json!([{"group": FEED, "epoch": epoch, "offset": 6}]);
    assert_eq!(summary["positions"], position, "{summary}");
    assert_eq!(
        summary["stale"],
        json!({"type": "notRecovered", "group": FEED, "reason": "epoch_changed", "epoch": epoch, "offset": 6}),
        "{summary}"
    );
    assert_eq!(summary["stalePositions"], position, "{summary}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typescript_packages_compile_strict_and_work_against_a_live_gateway() {
    let tsc = tsc();
    let work = work_dir("typescript");
    generate("typescript", false, &work.join("client"));
    generate("typescript", true, &work.join("backend"));
    // Each package compiles on its own with its own strict tsconfig, and is formatted.
    let prettier = Path::new(SDK_GEN).join("node_modules/prettier/bin/prettier.cjs");
    let prettier = prettier.to_str().expect("UTF-8 path");
    for package in ["client", "backend"] {
        run(&node(), &[&tsc, "-p", package, "--noEmit"], &work, &[]).await;
        run(
            &node(),
            &[prettier, "--check", "."],
            &work.join(package),
            &[],
        )
        .await;
    }
    // The drivers, compiled with both packages (strict, Node.js types).
    for driver in ["client.ts", "backend.ts", "recover.ts"] {
        std::fs::copy(format!("{SDK_GEN}/drivers/{driver}"), work.join(driver))
            .expect("copy driver");
    }
    std::fs::write(work.join("package.json"), "{\"type\": \"module\"}\n").expect("package.json");
    std::fs::write(
        work.join("tsconfig.json"),
        r#"{"extends": "./backend/tsconfig.json", "compilerOptions": {"rootDir": ".", "outDir": "dist"}, "include": ["client/src", "backend/src", "client.ts", "backend.ts", "recover.ts"]}"#,
    )
    .expect("tsconfig");
    run(&node(), &[&tsc, "-p", "."], &work, &[]).await;

    // The client against a gateway whose callback API takes a bearer token.
    let backend = notes_backend().await;
    let gw = notes_gateway(&backend, &format!("{{ kind: bearer, tokens: [{BEARER}] }}")).await;
    let ws_base = format!("ws://{}", gw.addr);
    let http_base = format!("http://{}", gw.addr);
    let out = run(
        &node(),
        &["dist/client.js", &ws_base, &http_base, BEARER, API_KEY],
        &work,
        &[],
    )
    .await;
    let summary = last_json(&out);
    assert_client_summary(&summary);
    assert_typed_sends(&backend).await;
    assert_archived(&summary, 1..=3);

    // The backend client, bearer.
    let (mut ws, id) = plain_client(&backend, &gw).await;
    let auth = json!({"kind": "bearer", "token": BEARER}).to_string();
    let out = run(
        &node(),
        &["dist/backend.js", &http_base, &auth, &id],
        &work,
        &[],
    )
    .await;
    assert_backend_summary(&last_json(&out), &id);
    assert_backend_calls_arrived(&mut ws, "hello from node").await;

    // The backend client, SigV4.
    let backend = notes_backend().await;
    let gw = notes_gateway(&backend, &sigv4_auth()).await;
    let (mut ws, id) = plain_client(&backend, &gw).await;
    let auth = json!({"kind": "sigv4", "region": "us-east-1", "credentials": {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}}).to_string();
    let out = run(
        &node(),
        &[
            "dist/backend.js",
            &format!("http://{}", gw.addr),
            &auth,
            &id,
        ],
        &work,
        &[],
    )
    .await;
    assert_backend_summary(&last_json(&out), &id);
    assert_backend_calls_arrived(&mut ws, "hello from node").await;

    // Recovery across a reconnect, on a gateway of its own.
    let backend = notes_backend().await;
    let gw = notes_gateway(&backend, &format!("{{ kind: bearer, tokens: [{BEARER}] }}")).await;
    let out = run(
        &node(),
        &[
            "dist/recover.js",
            &format!("ws://{}", gw.addr),
            &format!("http://{}", gw.addr),
            BEARER,
            API_KEY,
        ],
        &work,
        &[],
    )
    .await;
    assert_recovered(&last_json(&out));
    let _ = std::fs::remove_dir_all(&work);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_packages_pass_ruff_and_mypy_strict_and_work_against_a_live_gateway() {
    let python = python();
    let work = work_dir("python");
    generate("python", false, &work.join("client"));
    generate("python", true, &work.join("backend"));
    for package in ["client", "backend"] {
        let dir = work.join(package);
        run(
            &python,
            &["-m", "ruff", "check", "--no-cache", "."],
            &dir,
            &[],
        )
        .await;
        run(
            &python,
            &["-m", "ruff", "format", "--check", "--no-cache", "."],
            &dir,
            &[],
        )
        .await;
    }
    for driver in ["client.py", "backend.py", "recover.py", "test_live.py"] {
        std::fs::copy(format!("{SDK_GEN}/drivers/{driver}"), work.join(driver))
            .expect("copy driver");
    }
    let path = format!(
        "{}:{}",
        work.join("client").display(),
        work.join("backend").display()
    );
    let env = [("PYTHONPATH", path.clone()), ("MYPYPATH", path)];
    run(
        &python,
        &[
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "-p",
            "notes_client",
            "-p",
            "notes_backend",
        ],
        &work,
        &env,
    )
    .await;
    run(
        &python,
        &[
            "-m",
            "mypy",
            "--strict",
            "--no-incremental",
            "--cache-dir=/dev/null",
            "client.py",
            "backend.py",
            "recover.py",
            "test_live.py",
        ],
        &work,
        &env,
    )
    .await;

    let backend = notes_backend().await;
    let gw = notes_gateway(&backend, &format!("{{ kind: bearer, tokens: [{BEARER}] }}")).await;
    let ws_base = format!("ws://{}", gw.addr);
    let http_base = format!("http://{}", gw.addr);
    // The client's test runs under pytest; its summary comes back in a file.
    let summary_file = work.join("client-summary.json");
    let mut live = env.to_vec();
    live.extend([
        ("WSGATE_WS_BASE", ws_base.clone()),
        ("WSGATE_HTTP_BASE", http_base.clone()),
        ("WSGATE_BEARER", BEARER.to_string()),
        ("WSGATE_API_KEY", API_KEY.to_string()),
        ("WSGATE_SUMMARY", summary_file.display().to_string()),
    ]);
    let out = run(
        &python,
        &[
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "test_live.py",
        ],
        &work,
        &live,
    )
    .await;
    assert!(out.contains("1 passed"), "{out}");
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_file).expect("summary written"))
            .expect("summary JSON");
    assert_client_summary(&summary);
    assert_typed_sends(&backend).await;
    assert_archived(&summary, 11..=13);

    let (mut ws, id) = plain_client(&backend, &gw).await;
    let auth = json!({"kind": "bearer", "token": BEARER}).to_string();
    let out = run(
        &python,
        &["backend.py", &http_base, &auth, &id],
        &work,
        &env,
    )
    .await;
    assert_backend_summary(&last_json(&out), &id);
    assert_backend_calls_arrived(&mut ws, "hello from python").await;

    let backend = notes_backend().await;
    let gw = notes_gateway(&backend, &sigv4_auth()).await;
    let (mut ws, id) = plain_client(&backend, &gw).await;
    let auth = json!({"kind": "sigv4", "region": "us-east-1", "credentials": {"accessKeyId": ACCESS_KEY, "secretAccessKey": SECRET_KEY}}).to_string();
    let out = run(
        &python,
        &["backend.py", &format!("http://{}", gw.addr), &auth, &id],
        &work,
        &env,
    )
    .await;
    assert_backend_summary(&last_json(&out), &id);
    assert_backend_calls_arrived(&mut ws, "hello from python").await;

    // Recovery across a reconnect, on a gateway of its own.
    let backend = notes_backend().await;
    let gw = notes_gateway(&backend, &format!("{{ kind: bearer, tokens: [{BEARER}] }}")).await;
    let out = run(
        &python,
        &[
            "recover.py",
            &format!("ws://{}", gw.addr),
            &format!("http://{}", gw.addr),
            BEARER,
            API_KEY,
        ],
        &work,
        &env,
    )
    .await;
    assert_recovered(&last_json(&out));
    let _ = std::fs::remove_dir_all(&work);
}

/// The chat example's page loads `static/chat-client.js`: the TypeScript client generated from
/// `examples/chat/wsgate.yaml`, compiled by the package's own `tsc` configuration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_page_client_is_the_generated_one() {
    let tsc = tsc();
    let work = work_dir("chat");
    let chat = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/chat");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_wsgate"))
        .arg("--config")
        .arg(chat.join("wsgate.yaml"))
        .args(["sdk", "typescript"])
        .arg(&work)
        .env_remove("WSGATE_CONFIG")
        .output()
        .expect("run wsgate sdk");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    run(&node(), &[&tsc, "-p", "."], &work, &[]).await;
    let generated = std::fs::read_to_string(work.join("dist/index.js")).expect("compiled client");
    let committed = chat.join("static/chat-client.js");
    if std::env::var_os("WSGATE_BLESS").is_some() {
        std::fs::write(&committed, &generated).expect("write chat-client.js");
    }
    assert!(
        generated == std::fs::read_to_string(&committed).expect("chat-client.js"),
        "examples/chat/static/chat-client.js is not the generator's output (WSGATE_BLESS=1 rewrites it)"
    );
    let _ = std::fs::remove_dir_all(&work);
}
