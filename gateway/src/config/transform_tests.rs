//! Tests of the non-proxy integration settings: every mistake is a startup error naming its key.

use super::*;

fn with_route(route: &str) -> String {
    format!(
        r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables:
        backend: http://127.0.0.1:3000
  routes:
    send:
{route}
"#
    )
}

fn err(route: &str) -> String {
    Config::from_yaml(&with_route(route))
        .expect_err("must fail")
        .to_string()
}

#[test]
fn a_full_http_integration_loads() {
    let config = Config::from_yaml(&with_route(
        r#"      route_response: true
      integration:
        type: http
        uri: "${stageVariables.backend}/send"
        template_selection_expression: "${request.body.kind}"
        passthrough_behavior: NEVER
        content_handling_strategy: CONVERT_TO_TEXT
        request_templates:
          $default: '{"id":"$context.connectionId"}'
        request_parameters:
          integration.request.header.x-id: context.connectionId
        integration_responses:
          /2\d\d/:
            template_selection_expression: "${integration.response.statuscode}"
            response_templates: { $default: '$input.body' }
            content_handling_strategy: CONVERT_TO_BINARY
"#,
    ))
    .expect("loads");
    let route = &config.api.routes["send"];
    let transform = route.integration.request_transform().expect("non-proxy");
    assert_eq!(transform.passthrough, PassthroughBehavior::Never);
    assert_eq!(
        transform.content_handling,
        Some(ContentHandling::ConvertToText)
    );
}

#[test]
fn mistakes_name_their_key() {
    let cases = [
        (
            "      integration: { type: http, uri: 'http://x/', request_templates: { $default: '#if($a' } }",
            "api.routes.send.integration.request_templates.$default",
        ),
        (
            "      integration: { type: http, uri: 'http://x/', template_selection_expression: '${context.stage}' }",
            "api.routes.send.integration.template_selection_expression",
        ),
        (
            "      integration: { type: http, uri: 'http://x/', integration_responses: { '200': {} } }",
            "api.routes.send.integration.integration_responses.200",
        ),
        (
            "      integration: { type: http, uri: 'http://x/', integration_responses: { '/(/': {} } }",
            "api.routes.send.integration.integration_responses./(/",
        ),
        (
            "      integration: { type: http_proxy, uri: 'http://x/', request_parameters: { integration.request.header.x: route.request.header.a } }",
            "api.routes.send.integration.request_parameters.integration.request.header.x",
        ),
        (
            "      integration: { type: http_proxy, uri: 'http://x/', request_parameters: { integration.request.header.x: stageVariables.nope } }",
            "stage `prod`",
        ),
        (
            "      integration: { type: mock, response: a, integration_responses: { $default: {} } }",
            "api.routes.send.integration.response",
        ),
        (
            "      integration: { type: http, uri: 'http://x/', passthrough_behavior: SOMETIMES }",
            "unknown variant `SOMETIMES`",
        ),
    ];
    for (route, key) in cases {
        let message = err(route);
        assert!(message.contains(key), "{route}\n=> {message}");
    }
}

#[test]
fn templates_over_the_aws_quota_are_refused() {
    let big = "x".repeat(MAX_TEMPLATE_BYTES + 1);
    let message = err(&format!(
        "      integration: {{ type: http, uri: 'http://x/', request_templates: {{ $default: '{big}' }} }}"
    ));
    assert!(message.contains("at most"), "{message}");
}
