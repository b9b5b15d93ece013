//! Tests of request models: compiling (draft 4 by default, `$schema` honoured, no fetching),
//! model selection, the error string and the frame.

use serde_json::json;

use super::*;
use crate::config::Config;

/// A config with `models` and `routes` spliced in under `api:`.
fn config(models: &str, routes: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages: {{prod: {{}}}}
  models:
{models}
  routes:
    $connect:
      integration: {{type: mock}}
{routes}
"#
    )
}

const MODELS: &str = r#"
    ChatMessage:
      schema: {type: object, required: [action, text], properties: {text: {type: string, maxLength: 16}}}
    ImageMessage:
      content_type: application/json
      schema: {type: object, required: [url], properties: {url: {type: string, format: uri}}}
"#;

const ROUTES: &str = r#"
    sendmessage:
      integration: {type: mock}
      model_selection_expression: $request.body.type
      request_models: {"$default": ChatMessage, "image": ImageMessage}
    strict:
      integration: {type: mock}
      model_selection_expression: $request.body.type
      request_models: {"image": ImageMessage}
    plain:
      integration: {type: mock}
"#;

fn models(models: &str, routes: &str) -> Models {
    let config = Config::from_yaml(&config(models, routes)).expect("config loads");
    Models::compile(&config.api).expect("models compile")
}

fn compile_error(models: &str, routes: &str) -> String {
    let config = Config::from_yaml(&config(models, routes)).expect("config loads");
    Models::compile(&config.api)
        .expect_err("must fail")
        .to_string()
}

fn route(models: &Models, key: &str) -> Arc<RouteModels> {
    models.for_route(key).expect("route has models")
}

#[test]
fn routes_without_models_have_none() {
    let m = models(MODELS, ROUTES);
    assert!(m.for_route("plain").is_none());
    assert!(m.for_route("$connect").is_none());
}

#[test]
fn selection_picks_the_model_then_default_then_fails() {
    let m = models(MODELS, ROUTES);
    let send = route(&m, "sendmessage");
    assert_eq!(
        send.check(br#"{"action":"sendmessage","text":"hi"}"#, false),
        Ok(())
    );
    // `type: image` selects ImageMessage: the chat fields are not required, `url` is.
    assert_eq!(
        send.check(
            br#"{"type":"image","url":"https://example.com/a.png"}"#,
            false
        ),
        Ok(())
    );
    let Err(InvalidBody::Schema { model, errors }) =
        send.check(br#"{"type":"image","text":"hi"}"#, false)
    else {
        panic!("ImageMessage must refuse a body without url");
    };
    assert_eq!(&*model, "ImageMessage");
    assert_eq!(
        &*errors,
        r#"[object has missing required properties (["url"])]"#
    );
    // An unknown key falls back to `$default` (ChatMessage).
    let Err(InvalidBody::Schema { model, .. }) = send.check(br#"{"type":"video"}"#, false) else {
        panic!("ChatMessage must refuse");
    };
    assert_eq!(&*model, "ChatMessage");
    // No match and no `$default`.
    let strict = route(&m, "strict");
    assert_eq!(
        strict.check(br#"{"type":"video","url":"x"}"#, false),
        Err(InvalidBody::NoModel)
    );
    assert_eq!(
        strict.check(br#"{"type":"image","url":"https://example.com/"}"#, false),
        Ok(())
    );
}

#[test]
fn non_json_and_binary_fail() {
    let m = models(MODELS, ROUTES);
    let send = route(&m, "sendmessage");
    assert_eq!(send.check(b"hello", false), Err(InvalidBody::NotJson));
    assert_eq!(send.check(b"", false), Err(InvalidBody::NotJson));
    assert_eq!(
        send.check(br#"{"action":"sendmessage","text":"hi"}"#, true),
        Err(InvalidBody::Binary)
    );
}

#[test]
fn error_string_reads_like_aws_and_leaves_body_values_out() {
    let validator = compile::schema_validator(&json!({
        "type": "object",
        "properties": {
            "n": {"type": "integer"},
            "text": {"type": "string", "maxLength": 4},
            "tags": {"type": "array", "maxItems": 1},
        },
        "additionalProperties": false,
    }))
    .expect("compiles");
    let body = json!({"n": "secret-1", "text": "secret-2", "tags": [1, 2], "extra": 1});
    let text = describe::error_string(validator.iter_errors(&body));
    assert!(
        text.contains(
            r#"/n: instance type (string) does not match any allowed primitive type (allowed: ["integer"])"#
        ),
        "{text}"
    );
    assert!(
        text.contains("/text: string is too long (length: 8, maximum allowed: 4)"),
        "{text}"
    );
    assert!(
        text.contains("/tags: array is too long (found 2, maximum allowed: 1)"),
        "{text}"
    );
    assert!(
        text.contains(r#"not allowed by the schema: ["extra"]"#),
        "{text}"
    );
    assert!(text.starts_with('[') && text.ends_with(']'), "{text}");
    assert!(!text.contains("secret"), "body values stay out: {text}");
    // The AWS example: the whole body has the wrong type.
    let integer = compile::schema_validator(&json!({"type": "integer"})).expect("compiles");
    assert_eq!(
        describe::error_string(integer.iter_errors(&json!("x"))),
        r#"[instance type (string) does not match any allowed primitive type (allowed: ["integer"])]"#
    );
}

#[test]
fn error_string_is_bounded() {
    let mut properties = serde_json::Map::new();
    let mut body = serde_json::Map::new();
    for i in 0..100 {
        let name = format!("property_with_a_long_name_{i:03}_{}", "x".repeat(40));
        properties.insert(name.clone(), json!({"type": "integer"}));
        body.insert(name, json!("s"));
    }
    let validator =
        compile::schema_validator(&json!({"properties": properties})).expect("compiles");
    let text = describe::error_string(validator.iter_errors(&Value::Object(body)));
    assert!(
        text.len() <= describe::MAX_BYTES + "…]".len(),
        "{}",
        text.len()
    );
    assert!(text.ends_with("…]"), "{text}");
    let few = describe::error_string(
        validator.iter_errors(&json!({"property_with_a_long_name_000_x": 1})),
    );
    assert_eq!(few, "[]", "nothing to say about a valid body");
}

#[test]
fn draft_4_by_default_and_other_drafts_by_their_schema() {
    // Draft 4: a boolean `exclusiveMaximum` makes `maximum` exclusive.
    let draft4 = compile::schema_validator(&json!({"maximum": 10, "exclusiveMaximum": true}))
        .expect("a draft 4 schema");
    assert!(draft4.is_valid(&json!(9)));
    assert!(!draft4.is_valid(&json!(10)));
    // A number there is not draft 4.
    assert!(compile::schema_validator(&json!({"exclusiveMaximum": 10})).is_err());
    // 2020-12, named by `$schema`: a numeric `exclusiveMaximum`, `prefixItems`.
    let modern = compile::schema_validator(&json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "array",
        "prefixItems": [{"type": "string"}],
        "items": {"type": "integer", "exclusiveMaximum": 10},
    }))
    .expect("a 2020-12 schema");
    assert!(modern.is_valid(&json!(["a", 1, 9])));
    assert!(!modern.is_valid(&json!(["a", 10])));
    assert!(!modern.is_valid(&json!([1])));
    // An explicit draft 4 `$schema` is draft 4 too.
    let named4 = compile::schema_validator(&json!({
        "$schema": "http://json-schema.org/draft-04/schema#",
        "maximum": 10, "exclusiveMaximum": true,
    }))
    .expect("draft 4");
    assert!(!named4.is_valid(&json!(10)));
    // A `$schema` the validator does not know is refused at start.
    assert!(compile::schema_validator(&json!({"$schema": "https://example.com/my-meta"})).is_err());
}

#[test]
fn remote_refs_are_never_fetched() {
    // A listener that would see any fetch; the schema must be refused without one.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    let url = format!(
        "http://{}/schema.json",
        listener.local_addr().expect("addr")
    );
    let error = compile::schema_validator(&json!({"$ref": url})).expect_err("no fetching");
    assert!(error.contains("not a usable JSON Schema"), "{error}");
    assert!(listener.accept().is_err(), "nothing connected");
    // Nor files.
    assert!(compile::schema_validator(&json!({"$ref": "file:///etc/hostname"})).is_err());
    // A local `$ref` resolves.
    let local = compile::schema_validator(&json!({
        "definitions": {"text": {"type": "string"}},
        "properties": {"t": {"$ref": "#/definitions/text"}},
    }))
    .expect("local refs resolve");
    assert!(!local.is_valid(&json!({"t": 1})));
}

#[test]
fn compile_errors_name_the_model_key() {
    let bad = "    ChatMessage:\n      schema: {type: 12}\n";
    let error = compile_error(bad, "");
    assert!(
        error.starts_with("config key `api.models.ChatMessage.schema`: not a usable JSON Schema"),
        "{error}"
    );
    let missing = "    ChatMessage:\n      schema_file: /nonexistent/chat.json\n";
    let error = compile_error(missing, "");
    assert!(
        error.starts_with(
            "config key `api.models.ChatMessage.schema_file`: cannot read /nonexistent/chat.json"
        ),
        "{error}"
    );
}

#[test]
fn schema_files_are_read_and_bounded() {
    let dir = std::env::temp_dir().join(format!("wsgate-models-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let good = dir.join("chat.json");
    std::fs::write(&good, r#"{"type":"object","required":["text"]}"#).expect("write");
    let not_json = dir.join("bad.json");
    std::fs::write(&not_json, "type: object").expect("write");
    let models_yaml = format!("    ChatMessage:\n      schema_file: {}\n", good.display());
    let routes = "    chat:\n      integration: {type: mock}\n      request_models: {\"$default\": ChatMessage}\n";
    let m = models(&models_yaml, routes);
    let chat = route(&m, "chat");
    assert_eq!(chat.check(br#"{"text":"a"}"#, false), Ok(()));
    assert!(chat.check(br#"{}"#, false).is_err());
    let error = compile_error(
        &format!(
            "    ChatMessage:\n      schema_file: {}\n",
            not_json.display()
        ),
        "",
    );
    assert!(error.contains("is not JSON"), "{error}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_frame_is_byte_for_byte_and_escaped() {
    assert_eq!(
        bad_request_frame("L0SM9cOFvHcCIhw=", "L0SM9dOFvHcCIhx="),
        r#"{"message" : "Bad request body", "connectionId": "L0SM9cOFvHcCIhw=", "messageId": "L0SM9dOFvHcCIhx="}"#
    );
    let odd = bad_request_frame("a\"b", "c\\d");
    let parsed: Value = serde_json::from_str(&odd).expect("valid JSON");
    assert_eq!(parsed["connectionId"], "a\"b");
    assert_eq!(parsed["messageId"], "c\\d");
}

fn config_error(models: &str, routes: &str) -> String {
    Config::from_yaml(&config(models, routes))
        .expect_err("must fail")
        .to_string()
}

#[test]
fn config_errors_name_the_key() {
    let cases: [(&str, &str, &str); 9] = [
        (
            MODELS,
            "    sendmessage:\n      integration: {type: mock}\n      model_selection_expression: $request.body.type\n      request_models: {\"image\": ImageMessag}\n",
            "config key `api.routes.sendmessage.request_models.image`: no model named ImageMessag",
        ),
        (
            MODELS,
            "    $disconnect:\n      integration: {type: mock}\n      request_models: {\"$default\": ChatMessage}\n",
            "config key `api.routes.$disconnect.request_models`: $disconnect carries no message body",
        ),
        (
            MODELS,
            "    $join:\n      integration: {type: mock}\n      model_selection_expression: $request.body.type\n",
            "config key `api.routes.$join.model_selection_expression`: $join carries no message body",
        ),
        (
            MODELS,
            "    chat:\n      integration: {type: mock}\n      model_selection_expression: $request.header.x\n      request_models: {\"$default\": ChatMessage}\n",
            "config key `api.routes.chat.model_selection_expression`: unsupported variable",
        ),
        (
            MODELS,
            "    chat:\n      integration: {type: mock}\n      model_selection_expression: $request.body.type\n",
            "config key `api.routes.chat.model_selection_expression`: selects among request_models",
        ),
        (
            MODELS,
            "    chat:\n      integration: {type: mock}\n      request_models: {\"image\": ImageMessage}\n",
            "config key `api.routes.chat.request_models.image`: only the $default model applies",
        ),
        (
            "    Chat_Message:\n      schema: {}\n",
            "",
            "config key `api.models.Chat_Message`: model names are letters and digits only",
        ),
        (
            "    Chat:\n      content_type: text/plain\n      schema: {}\n",
            "",
            "config key `api.models.Chat.content_type`: only application/json models",
        ),
        (
            "    Chat:\n      schema: {}\n      schema_file: chat.json\n",
            "",
            "config key `api.models.Chat`: give exactly one of schema, schema_file",
        ),
    ];
    for (models, routes, expected) in cases {
        let error = config_error(models, routes);
        assert!(
            error.starts_with(expected),
            "{error}\n expected: {expected}"
        );
    }
    // The connect route itself.
    let connect = config(MODELS, "").replace(
        "    $connect:\n      integration: {type: mock}\n",
        "    $connect:\n      integration: {type: mock}\n      request_models: {\"$default\": ChatMessage}\n",
    );
    let error = Config::from_yaml(&connect)
        .expect_err("refused")
        .to_string();
    assert!(
        error.starts_with("config key `api.routes.$connect.request_models`: $connect carries no message body to validate; request models apply to $default and custom routes"),
        "{error}"
    );
    // Unknown keys are refused as everywhere else.
    let error = config_error("    Chat:\n      schema: {}\n      schemas: {}\n", "");
    assert!(error.contains("api.models.Chat"), "{error}");
    // `application/json; charset=utf-8` is JSON.
    assert!(
        Config::from_yaml(&config(
            "    Chat:\n      content_type: Application/JSON; charset=utf-8\n      schema: {}\n",
            ""
        ))
        .is_ok()
    );
}

#[test]
fn a_costly_pattern_fails_instead_of_running_on() {
    // Alternation under a repeat before a look-ahead: exponential backtracking on a string of
    // `a`s that does not end as the look-ahead wants, without the limit.
    let validator =
        compile::schema_validator(&json!({"type": "string", "pattern": "^(a|aa)+(?=b)$"}))
            .expect("compiles");
    let body = json!(format!("{}c", "a".repeat(40)));
    let started = std::time::Instant::now();
    let text = describe::error_string(validator.iter_errors(&body));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    assert_eq!(
        text,
        "[string is too costly to match against the regex pattern]"
    );
    let simple = compile::schema_validator(&json!({"pattern": "^a+$"})).expect("compiles");
    assert!(simple.is_valid(&json!("aaaa")));
}
