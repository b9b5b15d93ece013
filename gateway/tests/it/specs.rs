//! `wsgate export asyncapi|openapi` and `wsgate import`: the exported documents pass the
//! official AsyncAPI parser and an OpenAPI 3.1 validator (the Node project in `tests/specs`);
//! YAML → AsyncAPI → YAML keeps the routes, models, authorizers and route selection expression;
//! the same input gives the same bytes (golden files under `tests/specs/golden`, rewritten with
//! `WSGATE_BLESS=1`); failures name the file and line.

use std::path::{Path, PathBuf};

use serde_json::Value;
use wsgate::config::Config;
use wsgate::spec::{AsyncApiOptions, asyncapi, import_asyncapi, to_yaml};

use crate::specs_import::wsgate;
use crate::support::lambda::TempFile;
use crate::support::node::node;
use crate::support::*;

const SPECS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/specs");

fn specs(file: &str) -> PathBuf {
    Path::new(SPECS).join(file)
}

/// `node validate.js KIND FILE`: the validator's verdict.
async fn validate(kind: &str, file: &Path) -> Value {
    let modules = specs("node_modules");
    assert!(
        modules.join("@asyncapi").is_dir() && modules.join("@apidevtools").is_dir(),
        "{} is missing: run `npm ci` in {SPECS} (scripts/test.sh does)",
        modules.display()
    );
    let output = tokio::time::timeout(
        DEADLINE * 3,
        tokio::process::Command::new(node())
            .arg("validate.js")
            .arg(kind)
            .arg(file)
            .current_dir(SPECS)
            .output(),
    )
    .await
    .expect("the validator finishes within the deadline")
    .unwrap_or_else(|e| panic!("cannot run {} ({e}): Node.js is required", node()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "validator printed {stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// `wsgate export KIND --config FILE` into a temporary file.
async fn export(kind: &str, config: &Path) -> (String, TempFile) {
    let config = config.display().to_string();
    let (code, out, err) = wsgate(&["export", kind, "--config", &config]).await;
    assert_eq!(code, 0, "{err}");
    let file = TempFile::with_contents(&format!("export.{kind}.yaml"), &out);
    (out, file)
}

/// Compares `actual` with the golden file `name`, or rewrites it under `WSGATE_BLESS=1`.
fn golden(name: &str, actual: &str) {
    let path = specs("golden").join(name);
    if std::env::var_os("WSGATE_BLESS").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        expected == actual,
        "{} differs from the output (rerun with WSGATE_BLESS=1 to accept it):\n{actual}",
        path.display()
    );
}

#[tokio::test]
async fn exported_asyncapi_passes_the_official_parser_and_matches_golden() {
    let config = specs("golden/api.yaml");
    let (text, file) = export("asyncapi", &config).await;
    let verdict = validate("asyncapi", &file.0).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    // No error and no warning; the one note the parser gives is that 3.1.0 exists.
    let serious: Vec<&Value> = verdict["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["severity"].as_u64().is_some_and(|s| s <= 1))
        .collect();
    assert!(serious.is_empty(), "{serious:?}");
    assert_eq!(verdict["summary"]["version"], "3.0.0");
    assert_eq!(
        verdict["summary"]["operations"],
        serde_json::json!([
            "connect",
            "default",
            "disconnect",
            "orders_place",
            "ping_ping",
            "postToConnection",
            "quotes_get"
        ])
    );
    assert_eq!(
        verdict["summary"]["servers"],
        serde_json::json!([
            "beta",
            "beta-callback",
            "beta-trade_example_com-beta",
            "prod",
            "prod-callback",
            "prod-trade_example_com"
        ])
    );
    golden("api.asyncapi.yaml", &text);
    // Same input, same bytes.
    let (again, _) = export("asyncapi", &config).await;
    assert_eq!(text, again);
}

#[tokio::test]
async fn exported_openapi_passes_the_validator_and_matches_golden() {
    let config = specs("golden/api.yaml");
    let (text, file) = export("openapi", &config).await;
    let verdict = validate("openapi", &file.0).await;
    assert_eq!(verdict["ok"], true, "{verdict}");
    assert_eq!(verdict["openapi"], "3.1.0");
    let paths: Vec<&str> = verdict["paths"]
        .as_array()
        .expect("paths")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    for path in [
        "/{stage}/@connections/{connectionId}",
        "/{stage}/@connections/{connectionId}/groups/{group}",
        "/{stage}/@connections/{connectionId}/groups",
        "/{stage}/@connections",
        "/{stage}/@groups/{group}",
        "/{stage}/@broadcast",
        "/{stage}/@cache",
        "/{stage}/@cache/{route}",
        "/@admin/api/overview",
        "/@admin/api/config",
        "/@admin/api/connections/{stage}/{connectionId}",
        "/@admin/api/groups/{stage}/{group}",
    ] {
        assert!(paths.contains(&path), "{path} missing from {paths:?}");
    }
    golden("api.openapi.yaml", &text);
    let (again, _) = export("openapi", &config).await;
    assert_eq!(text, again);
    // `--format json` writes the same document.
    let path = config.display().to_string();
    let (code, json_text, err) =
        wsgate(&["export", "openapi", "--format", "json", "--config", &path]).await;
    assert_eq!(code, 0, "{err}");
    let from_json: Value = serde_json::from_str(&json_text).expect("JSON");
    let from_yaml: Value = serde_saphyr::from_str(&text).expect("YAML");
    assert_eq!(from_json, from_yaml);
}

#[tokio::test]
async fn an_invalid_document_is_refused_by_the_validators() {
    // The validators are not lenient: a broken export would fail the tests above.
    let broken = TempFile::with_contents(
        "broken.asyncapi.yaml",
        "asyncapi: 3.0.0\ninfo: {title: x}\noperations:\n  a: {action: fly}\n",
    );
    assert_eq!(validate("asyncapi", &broken.0).await["ok"], false);
    let broken = TempFile::with_contents(
        "broken.openapi.yaml",
        "openapi: 3.1.0\ninfo: {title: x, version: '1'}\npaths:\n  /a: {get: {responses: {'200': {}}}}\n",
    );
    assert_eq!(validate("openapi", &broken.0).await["ok"], false);
}

/// YAML → AsyncAPI → YAML for `path`: the same routes, models, authorizers and route selection.
fn round_trip(path: &Path) {
    let text = std::fs::read_to_string(path).expect("config");
    let original = Config::from_yaml(&text).expect("loads");
    let document = asyncapi(&original).expect("exports");
    let document = to_yaml(&document, &[]).expect("YAML");
    let imported = import_asyncapi("doc.yaml", &document, &AsyncApiOptions::default())
        .expect("imports its own export");
    let yaml = to_yaml(&imported.config, &[]).expect("YAML");
    let back = Config::from_yaml(&yaml).unwrap_or_else(|e| panic!("{e}\n{yaml}"));
    assert_eq!(
        back.api.route_selection_expression,
        original.api.route_selection_expression,
        "{}",
        path.display()
    );
    assert_eq!(
        json(&back.api.routes),
        json(&original.api.routes),
        "{}",
        path.display()
    );
    assert_eq!(json(&back.api.models), json(&original.api.models));
    assert_eq!(json(&back.api.authorizers), json(&original.api.authorizers));
    assert_eq!(
        back.api.stages.keys().collect::<Vec<_>>(),
        original.api.stages.keys().collect::<Vec<_>>()
    );
    // Only the callback API's HTTP operation is not a route.
    assert_eq!(imported.notes.len(), 1, "{:?}", imported.notes);
}

/// A configuration subtree as JSON, to compare.
fn json<T: serde::Serialize>(value: &T) -> Value {
    serde_json::to_value(value).expect("serializes")
}

#[test]
fn yaml_to_asyncapi_to_yaml_keeps_routes_models_and_selection() {
    round_trip(&specs("golden/api.yaml"));
    for example in ["chat", "dashboard", "queue-chat"] {
        round_trip(
            &Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("../examples/{example}/wsgate.yaml")),
        );
    }
}

#[tokio::test]
async fn sam_import_matches_golden_and_reports_by_line() {
    let (code, out, err) = wsgate(&[
        "import",
        "sam",
        "tests/specs/chat-template.yaml",
        "--functions",
        "tests/specs/golden/chat-functions.yaml",
        "--region",
        "eu-west-1",
    ])
    .await;
    assert_eq!(code, 0, "{err}");
    golden("chat-template.imported.yaml", &out);
    golden("chat-template.notes.txt", &err);
    assert!(
        out.contains("uri: http://127.0.0.1:9000/2015-03-31/functions/onconnect/invocations"),
        "{out}"
    );
    assert!(
        out.contains("arn:aws:lambda:eu-west-1:123456789012:function:chat-sendmessage"),
        "{out}"
    );
    // Every line of the report names the template and a line.
    for line in err.lines() {
        assert!(
            line.starts_with("warning: tests/specs/chat-template.yaml:"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn import_failures_name_the_file_and_line() {
    let bad = TempFile::with_contents(
        "bad-template.yaml",
        "Resources:\n  Api:\n    Type: AWS::ApiGatewayV2::Api\n    Properties: {Name: x, ProtocolType: WEBSOCKET\n",
    );
    let path = bad.0.display().to_string();
    let (code, _, err) = wsgate(&["import", "cloudformation", &path]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with(&format!("error: {path}:")), "{err}");

    let http_only = TempFile::with_contents(
        "http-template.yaml",
        "Resources:\n  Api:\n    Type: AWS::ApiGatewayV2::Api\n    Properties: {Name: x, ProtocolType: HTTP}\n",
    );
    let path = http_only.0.display().to_string();
    let (code, _, err) = wsgate(&["import", "sam", &path]).await;
    assert_eq!(code, 1);
    assert!(
        err.contains("no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET"),
        "{err}"
    );

    let map = TempFile::with_contents("map.yaml", "NoSuchFunction: http://127.0.0.1:1/x\n");
    let map_path = map.0.display().to_string();
    let (code, _, err) = wsgate(&[
        "import",
        "sam",
        "tests/specs/chat-template.yaml",
        "--functions",
        &map_path,
    ])
    .await;
    assert_eq!(code, 1);
    assert!(
        err.contains("--functions: NoSuchFunction is not a Lambda function of the template"),
        "{err}"
    );

    let (code, _, err) = wsgate(&["export", "asyncapi"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("--config FILE is required"), "{err}");
}
