//! The generators' refusals (each naming the configuration key at fault) and the choices that
//! shape the output: parameter types without the route and correlation fields, method names that
//! keep clear of the runtime's, credentials placed where the configuration reads them, the
//! methods of acknowledged routes.

use super::*;

fn config(routes: &str, extra: &str) -> Config {
    let yaml = format!(
        "listen: 127.0.0.1:0\napi:\n  name: shop\n  route_selection_expression: $request.body.action\n  stages: {{prod: {{}}}}\n  routes:\n    $connect: {{integration: {{type: mock}}}}\n{routes}{extra}"
    );
    Config::from_yaml(&yaml).expect("valid configuration")
}

fn options(language: Language, backend: bool) -> Options {
    Options {
        language,
        backend,
        correlation_field: DEFAULT_CORRELATION_FIELD.into(),
    }
}

#[test]
fn route_selection_must_read_one_body_field() {
    let mut config = config("    buy: {integration: {type: mock}}\n", "");
    config.api.route_selection_expression = "$request.body.a.b".into();
    let error = generate(&config, &options(Language::Typescript, false)).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("config key `api.route_selection_expression`"),
        "{error}"
    );
}

#[test]
fn a_closed_two_way_model_must_let_the_correlation_field_through() {
    let models = "  models:\n    Order:\n      schema: {type: object, properties: {action: {type: string}}, additionalProperties: false}\n";
    let routes = "    buy: {integration: {type: mock}, route_response: true, request_models: {$default: Order}}\n";
    let error = generate(&config(routes, models), &options(Language::Python, false)).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("config key `api.models.Order`")
            && error.to_string().contains("correlationId"),
        "{error}"
    );
    let mut same_field = options(Language::Python, false);
    same_field.correlation_field = "action".into();
    let routes = "    buy: {integration: {type: mock}}\n";
    assert!(matches!(
        generate(&config(routes, ""), &same_field),
        Err(SdkError::Option(_))
    ));
}

#[test]
fn params_drop_the_route_and_correlation_fields_and_methods_avoid_runtime_names() {
    let models = "  models:\n    Order:\n      schema: {type: object, required: [action, item], properties: {action: {const: close}, item: {type: string}, correlationId: {type: string}}}\n";
    let routes = "    close: {integration: {type: mock}, route_response: true, request_models: {$default: Order}}\n";
    let files = generate(
        &config(routes, models),
        &options(Language::Typescript, false),
    )
    .unwrap();
    let source = &files["src/index.ts"];
    assert!(
        source.contains("export interface CloseParams {\n  item: string;\n}"),
        "{source}"
    );
    assert!(
        source.contains("async closeRoute(message: CloseParams): Promise<JsonValue>"),
        "{source}"
    );
    let files = generate(&config(routes, models), &options(Language::Python, false)).unwrap();
    let source = &files["shop_client/__init__.py"];
    assert!(source.contains("async def close_route(self, message: CloseParams) -> JsonValue:"));
}

#[test]
fn credentials_go_where_the_configuration_reads_them() {
    let extra = "  authorizers:\n    jwt: {type: jwt, algorithms: [HS256], keys: [{kid: k, secret: 0123456789abcdef0123456789abcdef}]}\n  api_key_selection_expression: $request.header.x-shop-key\n";
    let mut config = config("    buy: {integration: {type: mock}}\n", extra);
    if let Some(connect) = config.api.routes.get_mut("$connect") {
        connect.authorizer = Some("jwt".into());
    }
    let files = generate(&config, &options(Language::Typescript, false)).unwrap();
    let source = &files["src/index.ts"];
    assert!(
        source.contains("placed.headers[\"x-shop-key\"] = options.apiKey;"),
        "{source}"
    );
    assert!(
        source.contains("placed.headers[\"Authorization\"] = `Bearer ${options.token}`;"),
        "{source}"
    );
    let files = generate(&config, &options(Language::Python, false)).unwrap();
    assert!(
        files["shop_client/__init__.py"]
            .contains("placed.headers[\"Authorization\"] = \"Bearer \" + token")
    );
}

#[test]
fn response_models_are_checked_when_the_configuration_loads() {
    let models = "  models:\n    Receipt:\n      schema: {type: object}\n";
    for (route, expected) in [
        (
            "    buy: {integration: {type: mock}, response_models: {$default: Receipt}}\n",
            "config key `api.routes.buy.response_models.$default`: response models need route_response: true",
        ),
        (
            "    buy: {integration: {type: mock}, route_response: true, response_models: {$default: Nope}}\n",
            "config key `api.routes.buy.response_models.$default`: no model named Nope",
        ),
        (
            "    buy: {integration: {type: mock}, route_response: true, response_models: {ok: Receipt}}\n",
            "config key `api.routes.buy.response_models.ok`: only the $default response model is supported",
        ),
    ] {
        let yaml = format!(
            "listen: 127.0.0.1:0\napi:\n  name: shop\n  route_selection_expression: $request.body.action\n  stages: {{prod: {{}}}}\n  routes:\n{route}{models}"
        );
        let error = Config::from_yaml(&yaml).unwrap_err().to_string();
        assert_eq!(error, expected);
    }
}

#[test]
fn acknowledged_routes_fill_in_their_id_in_both_languages() {
    let routes = "    order: {integration: {type: mock}, route_response: true, ack: {id: $.ref}}\n    note: {integration: {type: mock}, ack: {id: $.meta.id}}\n";
    let files = generate(&config(routes, ""), &options(Language::Python, false)).unwrap();
    let source = &files["shop_client/__init__.py"];
    // A two-way route's id is the correlation id; a one-way route's waits for its ack.
    assert!(
        source.contains(
            "        reply = await self.request(\n            \"order\",\n            message if message is not None else {},\n            \"ref\",\n        )\n        return reply\n"
        ),
        "{source}"
    );
    assert!(
        source.contains(
            "        await self.send_acked(\n            \"note\",\n            message if message is not None else {},\n            [\"meta\", \"id\"],\n        )\n"
        ),
        "{source}"
    );
    assert!(files["README.md"].contains("## Acknowledged routes\n\n`note`, `order` are"));
    let files = generate(&config(routes, ""), &options(Language::Typescript, false)).unwrap();
    let source = &files["src/index.ts"];
    assert!(
        source.contains("this.request(\"order\", message, \"ref\")"),
        "{source}"
    );
    assert!(
        source.contains("this.sendAcked(\"note\", message, [\"meta\", \"id\"])"),
        "{source}"
    );
}
