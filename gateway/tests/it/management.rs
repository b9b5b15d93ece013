//! The management API (`/v2/…`, apigatewayv2's shapes) driven by the unmodified boto3 client
//! and the AWS CLI: the gateway's API gets an integration and a two-way route, is deployed to
//! `prod` and rolled back, and a WebSocket client sees each step; routes nobody touched keep
//! wsgate's own settings across the deployment; refusals carry the service's error names.

use serde_json::Value;

use crate::support::boto::{python, run_script};
use crate::support::*;

const SCRIPT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/sdk/apigatewayv2_client.py"
);

/// A backend whose `/hello` answers `{"hello":true}` and `/default` echoes the message.
async fn backend() -> Backend {
    Backend::start(|r| match r.path.as_str() {
        "/hello" => Reply::http(200, r#"{"hello":true}"#),
        "/default" => Reply::http(200, &String::from_utf8_lossy(&r.body)),
        _ => Reply::lambda(200, None),
    })
    .await
}

/// Sends `text` on a new connection to `/prod` and answers the reply.
async fn ask(gw: &TestGateway, text: &str) -> String {
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, text).await;
    next_text(&mut ws).await
}

/// `aws apigatewayv2 ARGS --endpoint-url BASE --output json` with the CLI of `$WSGATE_PYTHON`
/// (`python -m awscli`): exit code, stdout as JSON (or `null`), stderr.
async fn aws_cli(base: &str, args: &[&str]) -> (i32, Value, String) {
    let output = tokio::process::Command::new(python())
        .args(["-m", "awscli", "apigatewayv2"])
        .args(args)
        .args([
            "--endpoint-url",
            base,
            "--region",
            "us-east-1",
            "--output",
            "json",
        ])
        .env("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
        .env(
            "AWS_SECRET_ACCESS_KEY",
            "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
        )
        .env("AWS_CONFIG_FILE", "/dev/null")
        .env("AWS_SHARED_CREDENTIALS_FILE", "/dev/null")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env("NO_PROXY", "127.0.0.1,localhost")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_ENDPOINT_URL")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(DEADLINE * 3, output)
        .await
        .expect("the AWS CLI finished in time")
        .expect("the AWS CLI runs (pip install awscli into WSGATE_PYTHON's environment)");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    (
        output.status.code().unwrap_or(-1),
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn boto3_builds_a_route_deploys_it_and_rolls_it_back() {
    let backend = backend().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let base = gw.http_url("");
    assert_eq!(
        ask(&gw, r#"{"action":"hello"}"#).await,
        r#"{"action":"hello"}"#,
        "no hello route yet: $default echoes"
    );
    let hello = format!("{}/hello", backend.url());
    let built = run_script(
        SCRIPT,
        ["build", base.as_str(), hello.as_str()],
        None,
        DEADLINE * 3,
    )
    .await;
    assert_eq!(built["apiCount"], 1, "{built}");
    assert_eq!(built["name"], "chat");
    assert_eq!(built["protocolType"], "WEBSOCKET");
    assert_eq!(built["routeKey"], "hello");
    assert_eq!(built["selection"], "$default");
    assert!(
        built["routeKeys"]
            .as_array()
            .is_some_and(|k| k.iter().any(|k| k == "hello") && k.iter().any(|k| k == "ping")),
        "{built}"
    );
    assert_eq!(built["deploymentStatus"], "DEPLOYED");
    let before = built["before"]["prod"]
        .as_str()
        .expect("prod served a deployment")
        .to_string();
    let deployed = built["deploymentId"].as_str().expect("an id").to_string();
    assert_ne!(before, deployed);
    assert_eq!(built["stageDeployment"], deployed.as_str());
    assert!(
        built["listed"]
            .as_array()
            .is_some_and(|l| l.iter().any(|d| d == deployed.as_str())),
        "{built}"
    );
    for (call, code, status) in [
        ("create_api", "ConflictException", 409),
        ("duplicate_route", "ConflictException", 409),
        ("unknown_route", "NotFoundException", 404),
        ("unknown_api", "NotFoundException", 404),
        ("bad_integration", "BadRequestException", 400),
        ("integration_in_use", "ConflictException", 409),
        ("unknown_stage", "NotFoundException", 404),
    ] {
        let error = &built["errors"][call];
        assert_eq!(error["code"], code, "{call}: {error}");
        assert_eq!(error["status"], status, "{call}: {error}");
        assert!(
            !error["message"].as_str().unwrap_or_default().is_empty(),
            "{call}: {error}"
        );
    }

    // The deployed route answers; untouched routes keep wsgate's own settings (the mock's
    // `response`, which apigatewayv2 has no field for).
    assert_eq!(ask(&gw, r#"{"action":"hello"}"#).await, r#"{"hello":true}"#);
    assert_eq!(
        ask(&gw, r#"{"action":"ping"}"#).await,
        r#"{"action":"pong"}"#
    );
    assert_eq!(
        ask(&gw, r#"{"action":"other"}"#).await,
        r#"{"action":"other"}"#
    );

    // Rolled back by UpdateStage: the route is gone from what prod serves.
    let api_id = built["apiId"].as_str().expect("api id");
    let rolled = run_script(
        SCRIPT,
        ["rollback", base.as_str(), api_id, "prod", before.as_str()],
        None,
        DEADLINE * 3,
    )
    .await;
    assert_eq!(rolled["deploymentId"], before.as_str(), "{rolled}");
    assert_eq!(
        ask(&gw, r#"{"action":"hello"}"#).await,
        r#"{"action":"hello"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aws_cli_builds_a_route_deploys_it_and_rolls_it_back() {
    let backend = backend().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let base = gw.http_url("");
    let (code, apis, err) = aws_cli(&base, &["get-apis"]).await;
    assert_eq!(code, 0, "{err}");
    let api_id = apis["Items"][0]["ApiId"]
        .as_str()
        .expect("an API")
        .to_string();
    let (code, stage, err) = aws_cli(
        &base,
        &["get-stage", "--api-id", &api_id, "--stage-name", "prod"],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let before = stage["DeploymentId"].as_str().expect("served").to_string();
    let (code, integration, err) = aws_cli(
        &base,
        &[
            "create-integration",
            "--api-id",
            &api_id,
            "--integration-type",
            "MOCK",
            "--request-templates",
            r#"{"$default":"{\"statusCode\": 200}"}"#,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let integration_id = integration["IntegrationId"]
        .as_str()
        .expect("id")
        .to_string();
    let (code, _, err) = aws_cli(
        &base,
        &[
            "create-integration-response",
            "--api-id",
            &api_id,
            "--integration-id",
            &integration_id,
            "--integration-response-key",
            "$default",
            "--response-templates",
            r#"{"$default":"{\"from\":\"cli\"}"}"#,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, route, err) = aws_cli(
        &base,
        &[
            "create-route",
            "--api-id",
            &api_id,
            "--route-key",
            "fromcli",
            "--target",
            &format!("integrations/{integration_id}"),
            "--route-response-selection-expression",
            "$default",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let route_id = route["RouteId"].as_str().expect("id").to_string();
    let (code, _, err) = aws_cli(
        &base,
        &[
            "create-route-response",
            "--api-id",
            &api_id,
            "--route-id",
            &route_id,
            "--route-response-key",
            "$default",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let (code, deployment, err) = aws_cli(
        &base,
        &[
            "create-deployment",
            "--api-id",
            &api_id,
            "--stage-name",
            "prod",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    let deployed = deployment["DeploymentId"].as_str().expect("id").to_string();
    assert_eq!(
        ask(&gw, r#"{"action":"fromcli"}"#).await,
        r#"{"from":"cli"}"#
    );

    let (code, _, err) = aws_cli(
        &base,
        &[
            "update-stage",
            "--api-id",
            &api_id,
            "--stage-name",
            "prod",
            "--deployment-id",
            &before,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        ask(&gw, r#"{"action":"fromcli"}"#).await,
        r#"{"action":"fromcli"}"#,
        "rolled back: $default answers"
    );
    // Forward again by id, then a refusal as the CLI prints it.
    let (code, _, err) = aws_cli(
        &base,
        &[
            "update-stage",
            "--api-id",
            &api_id,
            "--stage-name",
            "prod",
            "--deployment-id",
            &deployed,
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        ask(&gw, r#"{"action":"fromcli"}"#).await,
        r#"{"from":"cli"}"#
    );
    let (code, _, err) = aws_cli(
        &base,
        &["get-route", "--api-id", &api_id, "--route-id", "nope123"],
    )
    .await;
    assert_ne!(code, 0);
    assert!(err.contains("NotFoundException"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_from_browsers_and_unknown_operations_are_refused() {
    let backend = backend().await;
    // A stage named v2: its callback paths share the management API's first segment.
    let stage = format!(
        "  stages:\n    v2:\n      variables: {{ backend: \"{}\" }}\n",
        backend.url()
    );
    let yaml = config(&backend.url(), "").replacen("  stages:\n", &stage, 1);
    let gw = TestGateway::start(&yaml).await;
    let client = http();
    let base = gw.http_url("");
    let response = client
        .get(format!("{base}/v2/apis"))
        .header("origin", "http://evil.example")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 403);
    let response = client
        .get(format!("{base}/v2/apis/x/vpclinks"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 404);
    assert_eq!(response.headers()["x-amzn-errortype"], "NotFoundException");
    let body: Value = response.json().await.expect("JSON");
    assert!(body["message"].is_string(), "{body}");
    // A body that is not JSON.
    let apis: Value = client
        .get(format!("{base}/v2/apis"))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    let api_id = apis["items"][0]["apiId"].as_str().expect("id").to_string();
    let response = client
        .post(format!("{base}/v2/apis/{api_id}/routes"))
        .body("{not json")
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 400);
    assert_eq!(
        response.headers()["x-amzn-errortype"],
        "BadRequestException"
    );
    // The callback API of stage v2 is not shadowed by the management paths.
    let response = client
        .get(format!("{base}/v2/@connections/AAAAAAAAAAAAAAAA"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 410);
}

/// With `deployments.scope: cluster`, a deployment made through one node's management API is
/// served by every node of the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_through_one_node_reaches_the_others_with_cluster_scope() {
    use crate::support::cluster::{eventually, node_config, shared_store};
    let backend = backend().await;
    let (store, _cleanup) = shared_store();
    let yaml = node_config(&backend.url(), &store, "deployments: { scope: cluster }\n");
    let a = TestGateway::start(&yaml).await;
    let b = TestGateway::start(&yaml).await;
    let base = a.http_url("");
    let hello = format!("{}/hello", backend.url());
    let built = run_script(
        SCRIPT,
        ["build", base.as_str(), hello.as_str()],
        None,
        DEADLINE * 3,
    )
    .await;
    assert_eq!(built["deploymentStatus"], "DEPLOYED", "{built}");
    eventually("node B serves the deployment", DEADLINE, || async {
        ask(&b, r#"{"action":"hello"}"#).await == r#"{"hello":true}"#
    })
    .await;
    // B's management API lists the deployment and shows prod serving it.
    let stage: Value = http()
        .get(format!(
            "{}/v2/apis/{}/stages/prod",
            b.http_url(""),
            built["apiId"].as_str().expect("id")
        ))
        .send()
        .await
        .expect("answered")
        .json()
        .await
        .expect("JSON");
    assert_eq!(stage["deploymentId"], built["deploymentId"], "{stage}");
}

/// One management API call: status, `x-amzn-ErrorType` (empty on success) and JSON answer.
async fn call(method: reqwest::Method, url: String, body: Option<Value>) -> (u16, String, Value) {
    let mut request = http().request(method, url);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.expect("answered");
    let status = response.status().as_u16();
    let kind = response
        .headers()
        .get("x-amzn-errortype")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, kind, response.json().await.unwrap_or(Value::Null))
}

/// Models, authorizers, a new stage deployed by name, pagination and the refusals of each,
/// in the service's JSON (what the SDKs send), over plain HTTP.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_stages_and_deployments_follow_the_service_rules() {
    use reqwest::Method;
    use serde_json::json;
    let backend = backend().await;
    let gw = TestGateway::start(&config(&backend.url(), "")).await;
    let (_, _, apis) = call(Method::GET, gw.http_url("/v2/apis"), None).await;
    let api = gw.http_url(&format!(
        "/v2/apis/{}",
        apis["items"][0]["apiId"].as_str().expect("id")
    ));

    // Models: created, unique by name, JSON schemas only, in use cannot go.
    let schema = r#"{"type":"object","required":["text"]}"#;
    let (status, _, model) = call(
        Method::POST,
        format!("{api}/models"),
        Some(json!({"name": "Msg", "schema": schema})),
    )
    .await;
    assert_eq!(status, 201, "{model}");
    assert_eq!(model["contentType"], "application/json");
    let model_id = model["modelId"].as_str().expect("id").to_string();
    let (status, kind, _) = call(
        Method::POST,
        format!("{api}/models"),
        Some(json!({"name": "Msg", "schema": schema})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (409, "ConflictException"));
    let (status, kind, _) = call(
        Method::POST,
        format!("{api}/models"),
        Some(json!({"name": "Bad", "schema": "{nope"})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "BadRequestException"));
    let (_, _, template) = call(
        Method::GET,
        format!("{api}/models/{model_id}/template"),
        None,
    )
    .await;
    assert_eq!(template["value"], schema);
    let (status, _, integration) = call(
        Method::POST,
        format!("{api}/integrations"),
        Some(json!({"integrationType": "HTTP_PROXY", "integrationUri": format!("{}/hello", backend.url())})),
    )
    .await;
    assert_eq!(status, 201, "{integration}");
    assert_eq!(integration["integrationMethod"], "POST");
    assert_eq!(integration["timeoutInMillis"], 29000);
    let target = format!(
        "integrations/{}",
        integration["integrationId"].as_str().expect("id")
    );
    let (status, _, route) = call(
        Method::POST,
        format!("{api}/routes"),
        Some(
            json!({"routeKey": "checked", "target": target, "requestModels": {"$default": "Msg"},
                    "routeResponseSelectionExpression": "$default"}),
        ),
    )
    .await;
    assert_eq!(status, 201, "{route}");
    let route_id = route["routeId"].as_str().expect("id").to_string();
    let (status, _, _) = call(
        Method::POST,
        format!("{api}/routes/{route_id}/routeresponses"),
        Some(json!({"routeResponseKey": "$default"})),
    )
    .await;
    assert_eq!(status, 201);
    let (status, kind, _) = call(
        Method::POST,
        format!("{api}/routes/{route_id}/routeresponses"),
        Some(json!({"routeResponseKey": "$default"})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (409, "ConflictException"));
    let (status, kind, _) = call(Method::DELETE, format!("{api}/models/{model_id}"), None).await;
    assert_eq!((status, kind.as_str()), (409, "ConflictException"));

    // Authorizers: REQUEST only, with a URI.
    for body in [
        json!({"name": "j", "authorizerType": "JWT", "identitySource": ["$request.header.Authorization"]}),
        json!({"name": "r", "authorizerType": "REQUEST", "identitySource": ["route.request.header.Auth"]}),
    ] {
        let (status, kind, _) = call(Method::POST, format!("{api}/authorizers"), Some(body)).await;
        assert_eq!((status, kind.as_str()), (400, "BadRequestException"));
    }

    // A new stage, deployed by name: served at /beta, the model checked there.
    let (status, _, stage) = call(
        Method::POST,
        format!("{api}/stages"),
        Some(json!({"stageName": "beta", "stageVariables": {"backend": backend.url()}})),
    )
    .await;
    assert_eq!(status, 201, "{stage}");
    assert!(
        stage.get("deploymentId").is_none(),
        "serves nothing yet: {stage}"
    );
    let (status, kind, _) = call(
        Method::POST,
        format!("{api}/stages"),
        Some(json!({"stageName": "bad/name"})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "BadRequestException"));
    let (status, _, deployment) = call(
        Method::POST,
        format!("{api}/deployments"),
        Some(json!({"stageName": "beta", "description": "beta"})),
    )
    .await;
    assert_eq!(status, 201, "{deployment}");
    let deployment_id = deployment["deploymentId"].as_str().expect("id").to_string();
    let mut ws = connect(&gw.ws_url("/beta")).await;
    send_text(&mut ws, r#"{"action":"checked","text":"hi"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"hello":true}"#);
    send_text(&mut ws, r#"{"action":"checked"}"#).await;
    assert!(
        next_text(&mut ws).await.contains("Bad request body"),
        "the model is checked"
    );
    let (_, _, beta) = call(Method::GET, format!("{api}/stages/beta"), None).await;
    assert_eq!(beta["deploymentId"], deployment_id.as_str());

    // Deployments: listed and paged, immutable, kept while a stage serves them.
    let (_, _, first) = call(Method::GET, format!("{api}/deployments?maxResults=1"), None).await;
    assert_eq!(first["items"].as_array().map(Vec::len), Some(1), "{first}");
    let token = first["nextToken"]
        .as_str()
        .expect("more than one deployment");
    let (_, _, second) = call(
        Method::GET,
        format!("{api}/deployments?maxResults=1&nextToken={token}"),
        None,
    )
    .await;
    assert_ne!(first["items"][0], second["items"][0]);
    let (status, kind, _) = call(
        Method::DELETE,
        format!("{api}/deployments/{deployment_id}"),
        None,
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "BadRequestException"));
    let (status, kind, _) = call(
        Method::PATCH,
        format!("{api}/deployments/{deployment_id}"),
        Some(json!({"description": "x"})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "BadRequestException"));
    // A deployment without a stage is stored, served by nobody until a stage points at it.
    let (status, _, stored) =
        call(Method::POST, format!("{api}/deployments"), Some(json!({}))).await;
    assert_eq!(status, 201, "{stored}");
    let (_, _, prod) = call(Method::GET, format!("{api}/stages/prod"), None).await;
    assert_ne!(prod["deploymentId"], stored["deploymentId"]);
    // The API: its name is fixed, its description is not.
    let (status, _, _) = call(Method::PATCH, api.clone(), Some(json!({"name": "other"}))).await;
    assert_eq!(status, 400);
    let (status, _, updated) = call(
        Method::PATCH,
        api.clone(),
        Some(json!({"description": "d"})),
    )
    .await;
    assert_eq!((status, updated["description"].as_str()), (200, Some("d")));
}

/// Under `callback.auth` SigV4 the management API takes signatures for `apigateway` (as the
/// SDKs sign `apigatewayv2` calls) and asks the key's policy for `apigateway:{METHOD}` on
/// `arn:aws:apigateway:{region}::/v2/…`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigv4_callers_are_authorized_by_their_keys_policy() {
    let backend = backend().await;
    let keys = [
        ("AKIDADMIN", ""),
        (
            "AKIDREADER",
            "        policy: { Version: \"2012-10-17\", Statement: [ { Effect: Allow, Action: \"apigateway:GET\", Resource: \"arn:aws:apigateway:us-east-1::/v2/apis*\" } ] }\n",
        ),
        (
            "AKIDPUSHER",
            "        policy: { Version: \"2012-10-17\", Statement: [ { Effect: Allow, Action: \"execute-api:ManageConnections\", Resource: \"*\" } ] }\n",
        ),
    ]
    .iter()
    .map(|(id, policy)| {
        format!("      - access_key_id: {id}\n        secret_access_key: secret-key-for-tests\n{policy}")
    })
    .collect::<String>();
    let extra = format!(
        "admin:\n  enabled: true\ncallback:\n  auth:\n    kind: sigv4\n    region: us-east-1\n    credentials:\n{keys}"
    );
    let gw = TestGateway::start(&config(&backend.url(), &extra)).await;
    let base = gw.http_url("");
    let probe = |key: &'static str, secret: &'static str| {
        let base = base.clone();
        async move {
            run_script(
                SCRIPT,
                ["probe", base.as_str(), key, secret],
                None,
                DEADLINE * 3,
            )
            .await
        }
    };
    let secret = "secret-key-for-tests";
    assert_eq!(
        probe("AKIDADMIN", secret).await,
        serde_json::json!({"get": "ok", "create": "ok"})
    );
    assert_eq!(
        probe("AKIDREADER", secret).await,
        serde_json::json!({"get": "ok", "create": "AccessDeniedException"})
    );
    assert_eq!(
        probe("AKIDPUSHER", secret).await,
        serde_json::json!({"get": "AccessDeniedException", "create": "AccessDeniedException"})
    );
    assert_eq!(
        probe("AKIDADMIN", "not-the-secret").await["get"],
        "InvalidSignatureException"
    );
    // Unsigned: refused before anything is read.
    let response = http()
        .get(gw.http_url("/v2/apis"))
        .send()
        .await
        .expect("answered");
    assert_eq!(response.status().as_u16(), 403);
}

/// As in Amazon API Gateway, a stage's variables and its deletion take effect at once: a
/// connection already open on the stage gets the new variables with its next message, another
/// stage of the same deployment keeps its own, and a deleted stage takes no new connection and
/// no callback while its open connections go on; the last stage served cannot be deleted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stage_variables_and_a_deleted_stage_take_effect_at_once() {
    use reqwest::Method;
    use serde_json::json;
    let first = Backend::start(|_| Reply::http(200, "first")).await;
    let second = Backend::start(|_| Reply::http(200, "second")).await;
    let yaml = format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod: {{ variables: {{ backend: "{one}" }} }}
    beta: {{ variables: {{ backend: "{one}" }} }}
  routes:
    $default:
      integration: {{ type: http_proxy, uri: "${{stageVariables.backend}}/who", timeout: 2s }}
      route_response: true
"#,
        one = first.url()
    );
    let gw = TestGateway::start(&yaml).await;
    let api = gw.http_url("/v2/apis/chat");
    let mut prod = connect(&gw.ws_url("/prod")).await;
    let mut beta = connect(&gw.ws_url("/beta")).await;
    send_text(&mut prod, "hi").await;
    assert_eq!(next_text(&mut prod).await, "first");
    let (_, _, before) = call(Method::GET, format!("{api}/stages/prod"), None).await;

    // UpdateStage with stageVariables: served at once, as a new deployment of the stage alone.
    let (status, _, updated) = call(
        Method::PATCH,
        format!("{api}/stages/prod"),
        Some(json!({"stageVariables": {"backend": second.url()}})),
    )
    .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["stageVariables"]["backend"], second.url().as_str());
    assert_ne!(updated["deploymentId"], before["deploymentId"], "{updated}");
    send_text(&mut prod, "hi").await;
    assert_eq!(next_text(&mut prod).await, "second", "the open connection");
    let mut fresh = connect(&gw.ws_url("/prod")).await;
    send_text(&mut fresh, "hi").await;
    assert_eq!(next_text(&mut fresh).await, "second", "a new connection");
    send_text(&mut beta, "hi").await;
    assert_eq!(next_text(&mut beta).await, "first", "the other stage");
    let (_, _, listing) = call(Method::GET, format!("{api}/deployments"), None).await;
    let described = listing["items"].as_array().expect("items").iter().any(|d| {
        d["deploymentId"] == updated["deploymentId"]
            && d["description"] == "stage variables of prod (management API)"
    });
    assert!(described, "{listing}");
    // The same variables again change nothing; a wrong type is refused.
    let (status, _, again) = call(
        Method::PATCH,
        format!("{api}/stages/prod"),
        Some(json!({"stageVariables": {"backend": second.url()}})),
    )
    .await;
    assert_eq!(
        (status, &again["deploymentId"]),
        (200, &updated["deploymentId"])
    );
    let (status, kind, _) = call(
        Method::PATCH,
        format!("{api}/stages/prod"),
        Some(json!({"stageVariables": {"backend": 1}})),
    )
    .await;
    assert_eq!((status, kind.as_str()), (400, "BadRequestException"));

    // DeleteStage: no new connection, no callback; the open connection goes on.
    let (status, _, _) = call(Method::DELETE, format!("{api}/stages/beta"), None).await;
    assert_eq!(status, 204);
    assert_eq!(connect_refused(&gw.ws_url("/beta")).await.0, 404);
    let (status, _, _) = call(Method::GET, gw.http_url("/beta/@connections/abc"), None).await;
    assert_eq!(
        status, 403,
        "the callback API answers as for an unknown stage"
    );
    send_text(&mut beta, "hi").await;
    assert_eq!(next_text(&mut beta).await, "first", "the open connection");
    let (_, _, stages) = call(Method::GET, format!("{api}/stages"), None).await;
    let names: Vec<&str> = (stages["items"].as_array().expect("items").iter())
        .filter_map(|s| s["stageName"].as_str())
        .collect();
    assert_eq!(names, ["prod"], "{stages}");
    let (status, kind, _) = call(Method::DELETE, format!("{api}/stages/prod"), None).await;
    assert_eq!((status, kind.as_str()), (409, "ConflictException"));
    send_text(&mut prod, "hi").await;
    assert_eq!(next_text(&mut prod).await, "second", "prod still served");
}
