//! Non-proxy integrations: request templates, passthrough, integration responses, content
//! handling and request parameters, through real WebSocket clients and a real HTTP backend.

use base64::Engine;
use futures_util::SinkExt;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

use crate::support::*;

/// A gateway whose `$connect` and `$disconnect` are mocks and whose other routes are `extra`
/// (YAML under `routes:`), with the stage variable `backend`.
fn templates_config(backend: &str, routes: &str) -> String {
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
        table: messages
  routes:
{routes}
"#
    )
}

#[tokio::test]
async fn http_templates_shape_the_request_and_the_answer() {
    let backend = Backend::start(|r| match r.path.as_str() {
        "/send" => Reply {
            status: 200,
            body: r#"{"stored":{"id":42,"room":"r1"},"ignored":true}"#.into(),
            headers: vec![("x-version".into(), "2".into())],
            hold: None,
        },
        _ => Reply::http(404, r#"{"message":"no such room"}"#),
    })
    .await;
    let routes = r#"
    sendmessage:
      route_response: true
      integration:
        type: http
        uri: "${stageVariables.backend}/send"
        template_selection_expression: "\\$default"
        request_templates:
          $default: |-
            #set($text = $input.path('$.text'))
            {"table":"$stageVariables.table","connection":"$context.connectionId","route":"$context.routeKey","text":$input.json('$.text'),"upper":"$util.escapeJavaScript($text.toUpperCase())"}
        request_parameters:
          integration.request.header.x-connection: context.connectionId
          integration.request.querystring.room: route.request.body.room
        integration_responses:
          /4\d\d/:
            response_templates:
              $default: '{"error":$input.json(''$.message'')}'
          $default:
            template_selection_expression: "${integration.response.header.x-version}"
            response_templates:
              "2": '{"v":2,"id":$input.path(''$.stored.id''),"status":"$context.routeKey"}'
              $default: '{"v":1}'
    missing:
      route_response: true
      integration:
        type: http
        uri: "${stageVariables.backend}/missing"
        integration_responses:
          /4\d\d/:
            response_templates:
              $default: '{"error":$input.json(''$.message'')}'
"#;
    let gw = TestGateway::start(&templates_config(&backend.url(), routes)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(
        &mut ws,
        r#"{"action":"sendmessage","room":"r1","text":"hé \"x\""}"#,
    )
    .await;
    let sent = backend.next_to("/send").await;
    assert_eq!(sent.query.as_deref(), Some("room=r1"));
    assert_eq!(sent.headers["content-type"], "application/json");
    let connection = sent.headers["x-connection"]
        .to_str()
        .expect("ascii")
        .to_string();
    let body: Value = serde_json::from_slice(&sent.body).expect("the template made JSON");
    assert_eq!(
        body,
        serde_json::json!({"table": "messages", "connection": connection, "route": "sendmessage", "text": "hé \"x\"", "upper": "HÉ \"X\""})
    );
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"v":2,"id":42,"status":"sendmessage"}"#
    );
    // A 4xx answer goes through its own integration response.
    send_text(&mut ws, r#"{"action":"missing"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"error":"no such room"}"#);
}

#[tokio::test]
async fn passthrough_behaviours_and_template_selection() {
    let backend = Backend::start(|r| Reply::http(200, &String::from_utf8_lossy(&r.body))).await;
    let routes = r#"
    $default:
      route_response: true
      integration:
        type: http
        uri: "${stageVariables.backend}/echo"
        template_selection_expression: "${request.body.kind}"
        passthrough_behavior: WHEN_NO_TEMPLATES
        request_templates:
          greeting: '{"hello":$input.json(''$.name'')}'
    strict:
      route_response: true
      integration:
        type: http
        uri: "${stageVariables.backend}/echo"
        passthrough_behavior: NEVER
    loose:
      route_response: true
      integration:
        type: http
        uri: "${stageVariables.backend}/echo"
        template_selection_expression: "${request.body.kind}"
        request_templates:
          greeting: '{"hello":$input.json(''$.name'')}'
"#;
    let gw = TestGateway::start(&templates_config(&backend.url(), routes)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"kind":"greeting","name":"ann"}"#).await;
    assert_eq!(next_text(&mut ws).await, r#"{"hello":"ann"}"#);
    // Templates exist, none matches: WHEN_NO_TEMPLATES refuses with AWS's 415 phrase.
    send_text(&mut ws, r#"{"kind":"other"}"#).await;
    let refused: Value = serde_json::from_str(&next_text(&mut ws).await).expect("error frame");
    assert_eq!(refused["message"], "Unsupported Media Type");
    // NEVER refuses even without templates.
    send_text(&mut ws, r#"{"action":"strict"}"#).await;
    let refused: Value = serde_json::from_str(&next_text(&mut ws).await).expect("error frame");
    assert_eq!(refused["message"], "Unsupported Media Type");
    // WHEN_NO_MATCH (the default) passes the message through unchanged.
    send_text(&mut ws, r#"{"action":"loose","kind":"other"}"#).await;
    assert_eq!(
        next_text(&mut ws).await,
        r#"{"action":"loose","kind":"other"}"#
    );
    // The refusals never reached the backend: only three calls did.
    for _ in 0..2 {
        backend.next_to("/echo").await;
    }
    assert!(
        backend.try_next().await.is_none(),
        "refused payloads are not sent"
    );
}

#[tokio::test]
async fn mock_templates_decide_connect_and_answer_messages() {
    let routes = r#"
    $connect:
      integration:
        type: mock
        template_selection_expression: "\\$default"
        request_templates:
          $default: |-
            #if($input.params('token') == "letmein")
            {"statusCode": 200}
            #else
            {"statusCode": 403}
            #end
    whoami:
      route_response: true
      integration:
        type: mock
        request_templates:
          $default: '{"statusCode": 200}'
        integration_responses:
          $default:
            response_templates:
              $default: '{"connectionId":"$context.connectionId","stage":"$context.stage","table":"$stageVariables.table"}'
"#;
    let gw = TestGateway::start(&templates_config("http://127.0.0.1:9", routes)).await;
    let (status, _) = connect_refused(&gw.ws_url("/prod?token=nope")).await;
    assert_eq!(status, 403);
    let mut ws = connect(&gw.ws_url("/prod?token=letmein")).await;
    send_text(&mut ws, r#"{"action":"whoami"}"#).await;
    let me: Value = serde_json::from_str(&next_text(&mut ws).await).expect("json");
    assert_eq!(me["stage"], "prod");
    assert_eq!(me["table"], "messages");
    assert_eq!(me["connectionId"].as_str().expect("id").len(), 16);
}

#[tokio::test]
async fn connect_templates_read_the_upgrade_request() {
    let backend = Backend::start(|_| Reply::http(200, "")).await;
    // The shape of the `$connect` template in AWS's mapping-template reference
    // (docs.aws.amazon.com/apigateway/latest/developerguide/apigateway-websocket-api-mapping-template-reference.html).
    let routes = r#"
    $connect:
      integration:
        type: http
        uri: "${stageVariables.backend}/connect"
        request_templates:
          $default: '{"connectionId":"$context.connectionId","domain":"$context.domainName","stage":"$context.stage","token":"$input.params(''token'')","agent":"$input.params().header.get(''x-agent'')"}'
        request_parameters:
          integration.request.header.x-token: route.request.querystring.token
"#;
    let gw = TestGateway::start(&templates_config(&backend.url(), routes)).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            gw.ws_url("/prod?token=t1"),
        )
        .expect("request");
    request
        .headers_mut()
        .insert("X-Agent", http::HeaderValue::from_static("probe/1"));
    let (_ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("connects");
    let sent = backend.next_to("/connect").await;
    assert_eq!(sent.headers["x-token"], "t1");
    let body: Value = serde_json::from_slice(&sent.body).expect("json");
    assert_eq!(body["stage"], "prod");
    assert_eq!(body["token"], "t1");
    assert_eq!(body["agent"], "probe/1");
    assert_eq!(body["domain"], gw.addr.to_string());
}

#[tokio::test]
async fn template_failures_answer_internal_server_error_and_keep_the_connection() {
    let backend = Backend::ok().await;
    let routes = r#"
    huge:
      route_response: true
      integration:
        type: mock
        integration_responses:
          $default:
            response_templates:
              $default: |-
                #set($s = "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234567890123456789")
                #foreach($i in [1..1000])$s$s$s$s#end
    ok:
      route_response: true
      integration: { type: mock, response: fine }
"#;
    let gw = TestGateway::start(&templates_config(&backend.url(), routes)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    send_text(&mut ws, r#"{"action":"huge"}"#).await;
    let error: Value = serde_json::from_str(&next_text(&mut ws).await).expect("error frame");
    assert_eq!(error["message"], "Internal server error");
    send_text(&mut ws, r#"{"action":"ok"}"#).await;
    assert_eq!(next_text(&mut ws).await, "fine");
}

#[tokio::test]
async fn content_handling_converts_binary_and_text() {
    let backend = Backend::start(|r| Reply::http(200, &String::from_utf8_lossy(&r.body))).await;
    let routes = r#"
    $default:
      route_response: true
      integration:
        type: http
        uri: "${stageVariables.backend}/echo"
        content_handling_strategy: CONVERT_TO_TEXT
        integration_responses:
          $default:
            content_handling_strategy: CONVERT_TO_BINARY
"#;
    let gw = TestGateway::start(&templates_config(&backend.url(), routes)).await;
    let mut ws = connect(&gw.ws_url("/prod")).await;
    let bytes = vec![0u8, 159, 146, 150, 255];
    ws.send(Message::binary(bytes.clone())).await.expect("send");
    let sent = backend.next_to("/echo").await;
    assert_eq!(
        &sent.body[..],
        base64::engine::general_purpose::STANDARD
            .encode(&bytes)
            .as_bytes(),
        "CONVERT_TO_TEXT sends binary as base64 text"
    );
    match next_frame(&mut ws).await {
        Message::Binary(back) => assert_eq!(&back[..], &bytes[..], "CONVERT_TO_BINARY decodes it"),
        other => panic!("expected a binary frame, got {other:?}"),
    }
}

#[tokio::test]
async fn http_proxy_request_parameters_add_headers_and_query() {
    let backend = Backend::start(|_| Reply::http(200, "ok")).await;
    let routes = r#"
    $connect:
      integration:
        type: http_proxy
        uri: "${stageVariables.backend}/connect"
        request_parameters:
          integration.request.header.connectionId: context.connectionId
          integration.request.querystring.via: "'gateway'"
    $default:
      integration:
        type: http_proxy
        uri: "${stageVariables.backend}/default"
        request_parameters:
          integration.request.header.connectionId: context.connectionId
          integration.request.header.x-table: stageVariables.table
"#;
    let gw = TestGateway::start(&templates_config(&backend.url(), routes)).await;
    let mut ws = connect(&gw.ws_url("/prod?a=1")).await;
    let connect = backend.next_to("/connect").await;
    assert_eq!(connect.query.as_deref(), Some("a=1&via=gateway"));
    let id = connect.headers["connectionId"]
        .to_str()
        .expect("ascii")
        .to_string();
    send_text(&mut ws, "hello").await;
    let message = backend.next_to("/default").await;
    assert_eq!(message.headers["connectionId"], id.as_str());
    assert_eq!(message.headers["x-table"], "messages");
    assert_eq!(&message.body[..], b"hello");
}
