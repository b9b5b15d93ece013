use super::*;

fn scope_values() -> (Value, Value, Value) {
    (
        serde_json::json!({"connectionId": "c1", "routeKey": "send", "stage": "prod"}),
        serde_json::json!({"table": "chat"}),
        params_value(&[], &[]),
    )
}

fn text(s: &str) -> Payload {
    Payload {
        bytes: Bytes::copy_from_slice(s.as_bytes()),
        binary: false,
    }
}

fn templates(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn the_selected_request_template_renders_and_default_catches_the_rest() {
    let (context, vars, params) = scope_values();
    let scope = Scope {
        context: &context,
        stage_variables: &vars,
        params: &params,
    };
    let request = RequestTemplates::compile(
        Some("${request.body.action}"),
        &templates(&[
            ("join", r#"{"joined":"$context.connectionId"}"#),
            (
                "$default",
                r#"{"t":"$stageVariables.table","b":$input.json('$.n')}"#,
            ),
        ]),
        PassthroughBehavior::WhenNoMatch,
        None,
    )
    .expect("compiles");
    let body = r#"{"action":"join"}"#;
    let out = request
        .apply(text(body), body.as_bytes(), &scope)
        .expect("renders");
    assert_eq!(out.payload.bytes, r#"{"joined":"c1"}"#);
    let body = r#"{"action":"other","n":5}"#;
    let out = request
        .apply(text(body), body.as_bytes(), &scope)
        .expect("renders");
    assert_eq!(out.payload.bytes, r#"{"t":"chat","b":5}"#);
}

#[test]
fn passthrough_behaviours_follow_aws() {
    let (context, vars, params) = scope_values();
    let scope = Scope {
        context: &context,
        stage_variables: &vars,
        params: &params,
    };
    let only_join = templates(&[("join", "x")]);
    let none = BTreeMap::new();
    let body = r#"{"action":"other"}"#;
    let case = |t: &BTreeMap<String, String>, p| {
        RequestTemplates::compile(Some("$request.body.action"), t, p, None)
            .expect("compiles")
            .apply(text(body), body.as_bytes(), &scope)
    };
    let through = case(&only_join, PassthroughBehavior::WhenNoMatch).expect("through");
    assert_eq!(through.payload.bytes, body);
    assert!(matches!(
        case(&only_join, PassthroughBehavior::WhenNoTemplates),
        Err(TransformError::Unsupported)
    ));
    assert_eq!(
        case(&none, PassthroughBehavior::WhenNoTemplates)
            .expect("no templates")
            .payload
            .bytes,
        body
    );
    assert!(matches!(
        case(&none, PassthroughBehavior::Never),
        Err(TransformError::Unsupported)
    ));
}

#[test]
fn content_handling_converts_around_templates() {
    let (context, vars, params) = scope_values();
    let scope = Scope {
        context: &context,
        stage_variables: &vars,
        params: &params,
    };
    let binary = Payload {
        bytes: Bytes::from_static(&[0, 159, 146, 150]),
        binary: true,
    };
    let to_text = RequestTemplates::compile(
        None,
        &BTreeMap::new(),
        PassthroughBehavior::WhenNoMatch,
        Some(ContentHandling::ConvertToText),
    )
    .expect("compiles");
    let out = to_text
        .apply(binary.clone(), b"", &scope)
        .expect("converts");
    assert_eq!(out.payload, text("AJ+Slg=="));
    assert!(!out.templated);
    let to_binary = RequestTemplates::compile(
        None,
        &BTreeMap::new(),
        PassthroughBehavior::WhenNoMatch,
        Some(ContentHandling::ConvertToBinary),
    )
    .expect("compiles");
    assert_eq!(
        to_binary
            .apply(text("AJ+Slg=="), b"", &scope)
            .expect("decodes")
            .payload,
        binary
    );
    assert!(matches!(
        to_binary.apply(text("not base64!"), b"", &scope),
        Err(TransformError::NotBase64)
    ));
}

#[test]
fn integration_responses_pick_by_status_then_template() {
    let (context, vars, params) = scope_values();
    let scope = Scope {
        context: &context,
        stage_variables: &vars,
        params: &params,
    };
    let error_templates = templates(&[("$default", r#"{"error":$input.json('$.message')}"#)]);
    let ok_templates = templates(&[
        ("v2", r#"{"v":2,"n":$input.path('$.n')}"#),
        ("$default", r#"{"n":$input.path('$.n')}"#),
    ]);
    let responses = IntegrationResponses::compile([
        (
            "/4\\d\\d/",
            ResponseSettings {
                selection: None,
                templates: &error_templates,
                content: None,
            },
        ),
        (
            "$default",
            ResponseSettings {
                selection: Some("${integration.response.header.x-version}"),
                templates: &ok_templates,
                content: None,
            },
        ),
    ])
    .expect("compiles");
    let headers = vec![("x-version".to_string(), "v2".to_string())];
    let answer = |status| Answer {
        status,
        headers: &headers,
        message: b"{}",
    };
    let out = responses
        .apply(&answer(404), text(r#"{"message":"gone"}"#), &scope)
        .expect("renders");
    assert_eq!(out.payload.bytes, r#"{"error":"gone"}"#);
    let out = responses
        .apply(&answer(200), text(r#"{"n":7}"#), &scope)
        .expect("renders");
    assert_eq!(out.payload.bytes, r#"{"v":2,"n":7}"#);
    // 4xx regexes match the whole status: 4000 is not 4\d\d.
    let out = responses
        .apply(&answer(201), text(r#"{"n":1}"#), &scope)
        .expect("renders");
    assert_eq!(out.payload.bytes, r#"{"v":2,"n":1}"#);
}

#[test]
fn response_keys_are_default_or_slashed_regexes() {
    assert!(matches!(
        ResponseKey::parse("$default"),
        Ok(ResponseKey::Default)
    ));
    let ResponseKey::Pattern(re) = ResponseKey::parse("/2\\d\\d/").expect("regex") else {
        panic!("a pattern");
    };
    assert!(re.is_match("204") && !re.is_match("2044"));
    assert!(ResponseKey::parse("200").is_err());
    assert!(ResponseKey::parse("/(/").is_err());
}
