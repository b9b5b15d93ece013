//! Request validation with models on real sockets: a valid message reaches the backend, an
//! invalid one never does and its client gets the "Bad request body" frame byte for byte; model
//! selection, the `$default` model, draft 4 and 2020-12 schemas, throttling first, the metric,
//! and a schema that does not compile stopping the start.

use futures_util::SinkExt;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use wsgate::{Config, Gateway, Listeners};

use crate::support::logs::Captured;
use crate::support::*;

/// The stage is named for this file alone, so its metric series count only these tests.
fn yaml(backend: &str, extra: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: models
  route_selection_expression: $request.body.action
  stages: {{ {STAGE}: {{ variables: {{ b: "{backend}" }} }} }}
  models:
    ChatMessage:
      schema: {{type: object, required: [action, text], properties: {{text: {{type: string, maxLength: 32}}}}}}
    ImageMessage:
      content_type: application/json
      schema: {{type: object, required: [url], properties: {{url: {{type: string}}}}}}
    Bid:
      schema: {{type: object, required: [amount], properties: {{amount: {{type: number, maximum: 100, exclusiveMaximum: true}}}}}}
    Pair:
      schema:
        $schema: https://json-schema.org/draft/2020-12/schema
        type: object
        required: [pair]
        properties:
          pair: {{type: array, prefixItems: [{{type: string}}, {{type: integer}}], items: false}}
  routes:
    $connect:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/connect" }}
    sendmessage:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/sendmessage", timeout: 2s }}
      model_selection_expression: $request.body.type
      request_models: {{"$default": ChatMessage, "image": ImageMessage}}
    strict:
      integration: {{ type: http_proxy, uri: "${{stageVariables.b}}/strict", timeout: 2s }}
      model_selection_expression: $request.body.type
      request_models: {{"image": ImageMessage}}
    bid:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/bid", timeout: 2s }}
      request_models: {{"$default": Bid}}
    pair:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/pair", timeout: 2s }}
      request_models: {{"$default": Pair}}
    plain:
      integration: {{ type: aws_proxy, uri: "${{stageVariables.b}}/plain", timeout: 2s }}
{extra}
"#
    )
}

const STAGE: &str = "models";

async fn start(backend: &Backend, extra: &str) -> (TestGateway, Ws, String) {
    let gw = TestGateway::start(&yaml(&backend.url(), extra)).await;
    let (ws, id) = connect_and_id(backend, &gw.ws_url(&format!("/{STAGE}"))).await;
    (gw, ws, id)
}

/// Sends `body`, expects the "Bad request body" frame, and returns its `messageId` after
/// checking every byte around it.
async fn refused(ws: &mut Ws, id: &str, body: &str) -> String {
    send_text(ws, body).await;
    bad_request(ws, id).await
}

async fn bad_request(ws: &mut Ws, id: &str) -> String {
    let frame = next_text(ws).await;
    let prefix =
        format!(r#"{{"message" : "Bad request body", "connectionId": "{id}", "messageId": ""#);
    let message_id = frame
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix("\"}"))
        .unwrap_or_else(|| panic!("not the Bad request body frame: {frame}"));
    assert_eq!(
        frame,
        format!(
            r#"{{"message" : "Bad request body", "connectionId": "{id}", "messageId": "{message_id}"}}"#
        )
    );
    message_id.to_string()
}

/// A messageId as the backend sees them: 16 URL-safe base64 characters.
fn assert_message_id_shape(message_id: &str) {
    assert_eq!(message_id.len(), 16, "{message_id}");
    assert!(
        message_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '=')),
        "{message_id}"
    );
}

/// The next request the backend gets must be `path` with this message body: messages are
/// handled in order, so any refused message sent before it would have arrived first.
async fn reaches(backend: &Backend, path: &str, body: &str) -> Value {
    let received = backend.next().await;
    assert_eq!(received.path, path, "the next request the backend got");
    let event = received.json();
    assert_eq!(event["body"], body);
    event
}

#[tokio::test]
async fn a_valid_message_reaches_the_backend_and_an_invalid_one_gets_the_exact_frame() {
    let backend = Backend::ok().await;
    let (_gw, mut ws, id) = start(&backend, "").await;

    let valid = r#"{"action":"sendmessage","text":"hello"}"#;
    send_text(&mut ws, valid).await;
    let event = reaches(&backend, "/sendmessage", valid).await;
    let seen_id = event["requestContext"]["messageId"]
        .as_str()
        .expect("messageId")
        .to_string();
    assert_message_id_shape(&seen_id);

    // Missing `text`: refused, never sent.
    let message_id = refused(&mut ws, &id, r#"{"action":"sendmessage"}"#).await;
    assert_message_id_shape(&message_id);
    assert_ne!(message_id, seen_id, "each message has its own id");
    // Too long a text.
    let long = format!(r#"{{"action":"sendmessage","text":"{}"}}"#, "x".repeat(33));
    let second = refused(&mut ws, &id, &long).await;
    assert_ne!(second, message_id);

    // The connection stays open, and the next valid message is the backend's next request.
    let again = r#"{"action":"sendmessage","text":"again"}"#;
    send_text(&mut ws, again).await;
    reaches(&backend, "/sendmessage", again).await;
    // Routes without models are not validated.
    send_text(&mut ws, r#"{"action":"plain","text":12}"#).await;
    reaches(&backend, "/plain", r#"{"action":"plain","text":12}"#).await;
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn the_selection_expression_picks_the_model_and_default_catches_the_rest() {
    let backend = Backend::start(|_| Reply::http(200, "")).await;
    let (_gw, mut ws, id) = start(&backend, "").await;

    // `type: image` selects ImageMessage: `url` is required, `text` is not.
    let image = r#"{"action":"sendmessage","type":"image","url":"https://example.com/a.png"}"#;
    send_text(&mut ws, image).await;
    reaches(&backend, "/sendmessage", image).await;
    refused(
        &mut ws,
        &id,
        r#"{"action":"sendmessage","type":"image","text":"hi"}"#,
    )
    .await;
    // Another type falls back to the $default model (ChatMessage).
    let chat = r#"{"action":"sendmessage","type":"video","text":"hi"}"#;
    send_text(&mut ws, chat).await;
    reaches(&backend, "/sendmessage", chat).await;
    refused(
        &mut ws,
        &id,
        r#"{"action":"sendmessage","type":"video","url":"x"}"#,
    )
    .await;

    // No match and no $default: refused; the matching key passes (http_proxy: the raw body).
    refused(
        &mut ws,
        &id,
        r#"{"action":"strict","type":"video","url":"x"}"#,
    )
    .await;
    refused(&mut ws, &id, r#"{"action":"strict","url":"x"}"#).await;
    let strict = r#"{"action":"strict","type":"image","url":"x"}"#;
    send_text(&mut ws, strict).await;
    let received = backend.next().await;
    assert_eq!(received.path, "/strict");
    assert_eq!(&received.body[..], strict.as_bytes());
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn a_body_that_is_not_json_or_is_binary_fails_on_a_route_with_models() {
    let backend = Backend::ok().await;
    // `$default` has models here, so the non-JSON body (which selects `$default`) is validated.
    let extra = r#"    $default:
      integration: { type: aws_proxy, uri: "${stageVariables.b}/default", timeout: 2s }
      request_models: {"$default": ChatMessage}"#;
    let (_gw, mut ws, id) = start(&backend, extra).await;
    refused(&mut ws, &id, "plain text, not JSON").await;
    // A JSON body selecting a route with models, sent as a binary message.
    ws.send(Message::binary(
        br#"{"action":"sendmessage","text":"hi"}"#.to_vec(),
    ))
    .await
    .expect("send");
    bad_request(&mut ws, &id).await;
    let valid = r#"{"action":"nosuch","text":"hi"}"#;
    send_text(&mut ws, valid).await;
    reaches(&backend, "/default", valid).await;
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn draft_4_keywords_mean_draft_4_and_a_2020_12_schema_works() {
    let backend = Backend::ok().await;
    let (_gw, mut ws, id) = start(&backend, "").await;
    // Draft 4: `exclusiveMaximum: true` makes `maximum: 100` exclusive.
    let ok = r#"{"action":"bid","amount":99.5}"#;
    send_text(&mut ws, ok).await;
    reaches(&backend, "/bid", ok).await;
    refused(&mut ws, &id, r#"{"action":"bid","amount":100}"#).await;
    // 2020-12 (named by `$schema`): `prefixItems` and `items: false`.
    let pair = r#"{"action":"pair","pair":["a",1]}"#;
    send_text(&mut ws, pair).await;
    reaches(&backend, "/pair", pair).await;
    refused(&mut ws, &id, r#"{"action":"pair","pair":["a",1,2]}"#).await;
    refused(&mut ws, &id, r#"{"action":"pair","pair":[1,"a"]}"#).await;
    assert!(backend.try_next().await.is_none());
}

#[tokio::test]
async fn a_throttled_message_is_refused_before_validation() {
    let backend = Backend::ok().await;
    let throttling = format!(
        "throttling:\n  stages:\n    {STAGE}:\n      route_settings:\n        bid: {{ throttling_rate_limit: 0.01, throttling_burst_limit: 1 }}\n"
    );
    let (_gw, mut ws, id) = start(&backend, &throttling).await;
    let invalid = r#"{"action":"bid","amount":"lots"}"#;
    refused(&mut ws, &id, invalid).await;
    // The bucket is empty now: the same invalid message is throttled, not validated.
    send_text(&mut ws, invalid).await;
    let frame: Value = serde_json::from_str(&next_text(&mut ws).await).expect("JSON frame");
    assert_eq!(frame["message"], "Too Many Requests");
    assert!(backend.try_next().await.is_none());
}

/// The value of the series `wsgate_validation_error_total{...route="..."}` of this file's stage.
fn validation_errors(metrics: &str, route: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("wsgate_validation_error_total{")
                && l.contains(&format!("stage=\"{STAGE}\""))
                && l.contains(&format!("route=\"{route}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no {route} series in:\n{metrics}"))
}

#[tokio::test]
async fn refusals_are_counted_per_route() {
    let backend = Backend::ok().await;
    let (gw, mut ws, id) = start(&backend, "").await;
    let before = get_text(&http(), gw.http_url("/metrics")).await;
    // Registered with the stage, before any refusal.
    let base = validation_errors(&before, "strict");
    let client_errors = |text: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with("wsgate_client_error_total"))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0.0)
    };
    let client_before = client_errors(&before);
    for _ in 0..3 {
        refused(&mut ws, &id, r#"{"action":"strict"}"#).await;
    }
    let after = get_text(&http(), gw.http_url("/metrics")).await;
    // Other tests of this file refuse on `strict` too, in parallel: at least these three.
    assert!(validation_errors(&after, "strict") >= base + 3.0, "{after}");
    assert!(client_errors(&after) >= client_before + 3.0, "{after}");
}

#[tokio::test]
async fn a_schema_that_does_not_compile_stops_the_start_naming_its_key() {
    let backend = Backend::ok().await;
    let text = yaml(&backend.url(), "").replace(
        "{type: string, maxLength: 32}",
        "{type: string, maxLength: -1}",
    );
    let config = Config::from_yaml(&text).expect("the config itself is well formed");
    let main = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let error = match Gateway::start(
        config,
        Listeners {
            main,
            callback: None,
        },
    )
    .await
    {
        Ok(_) => panic!("a schema that does not compile must stop the start"),
        Err(error) => error.to_string(),
    };
    assert!(
        error.contains("config key `api.models.ChatMessage.schema`: not a usable JSON Schema"),
        "{error}"
    );
}

#[tokio::test]
async fn a_refusal_is_logged_with_its_error_string_and_without_the_body() {
    let logs = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logs.clone())
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let backend = Backend::ok().await;
    let (_gw, mut ws, id) = start(&backend, "").await;
    // Other tests of this binary hit the same log call on other threads: tracing may cache
    // that call site's interest before this thread's subscriber counts. Rebuilding the cache
    // and trying again (at most three messages) makes the check independent of them.
    let mut found = None;
    for _ in 0..3 {
        tracing::callsite::rebuild_interest_cache();
        let message_id = refused(
            &mut ws,
            &id,
            r#"{"action":"bid","amount":"SECRET-amount","note":"SECRET-note"}"#,
        )
        .await;
        let text = logs.text();
        let line = (text.lines())
            .find(|l| l.contains(&format!("message_id=\"{message_id}\"")))
            .map(str::to_string);
        if let Some(line) = line {
            found = Some((message_id, line, text));
            break;
        }
    }
    let (message_id, line, text) = found.expect("a refusal is logged");
    assert!(line.contains("request body failed validation"), "{line}");
    assert!(line.contains(" INFO "), "{line}");
    assert!(line.contains(&format!("connection_id={id}")), "{line}");
    assert!(line.contains("route_key=bid"), "{line}");
    assert!(
        line.contains(&format!("message_id=\"{message_id}\"")),
        "{line}"
    );
    assert!(line.contains("model=\"Bid\""), "{line}");
    assert!(
        line.contains(
            r#"/amount: instance type (string) does not match any allowed primitive type (allowed: ["number"])"#
        ),
        "{line}"
    );
    assert!(
        !text.contains("SECRET"),
        "the body stays out of the logs:\n{text}"
    );
}
