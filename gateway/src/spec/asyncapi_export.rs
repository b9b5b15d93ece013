//! `wsgate export asyncapi`: the configuration's WebSocket API as an AsyncAPI 3.0 document.
//! Servers per stage (`ws://` or `wss://` from the listeners, and per custom-domain mapping),
//! one channel for the connection with one `receive` operation per route key (its messages'
//! payloads are the route's request models, two-way routes have a reply), security schemes
//! from the authorizers, API keys and IAM, and the callback API's `POST @connections/{id}` as an
//! HTTP-bound operation. What AsyncAPI cannot say travels in `x-wsgate-*` extensions, so that
//! `wsgate import asyncapi` gives the routes back.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use super::SpecError;
use crate::config::{
    ApiConfig, AuthorizationType, AuthorizerConfig, CallbackAuthConfig, Config, DEFAULT_MODEL_KEY,
    RouteConfig,
};

/// The channel of a client's WebSocket connection.
pub(super) const CONNECTION: &str = "connection";
/// The callback API's channel.
pub(super) const CALLBACK: &str = "callbackConnection";
/// The default API-key selection expression (left out of documents).
const DEFAULT_KEY_SELECTION: &str = "$request.header.x-api-key";

/// The AsyncAPI 3.0 document of `config`'s API.
///
/// # Errors
/// [`SpecError::Invalid`] when a model's `schema_file` cannot be read or is not JSON.
pub fn asyncapi(config: &Config) -> Result<Json, SpecError> {
    let api = &config.api;
    let mut info = Map::new();
    info.insert("title".into(), json!(api.name));
    info.insert(
        "version".into(),
        json!(api.version.clone().unwrap_or_else(|| "0.0.0".into())),
    );
    if let Some(description) = &api.description {
        info.insert("description".into(), json!(description));
    }
    let (servers, ws_servers, callback_servers) = servers(config);
    let schemes = security_schemes(config);

    let mut messages = Map::new();
    let mut channel_messages = Map::new();
    let mut operations = Map::new();
    let mut op_ids = BTreeMap::new();
    for (key, route) in &api.routes {
        let op = unique(&mut op_ids, &identifier(key));
        let mut operation = Map::new();
        operation.insert("action".into(), json!("receive"));
        operation.insert(
            "channel".into(),
            reference(&format!("#/channels/{CONNECTION}")),
        );
        operation.insert("summary".into(), json!(summary(key)));
        let mut refs = Vec::new();
        for (name, message) in route_messages(&op, key, route, api)? {
            refs.push(reference(&format!(
                "#/channels/{CONNECTION}/messages/{name}"
            )));
            channel_messages.insert(
                name.clone(),
                reference(&format!("#/components/messages/{name}")),
            );
            messages.insert(name, message);
        }
        operation.insert("messages".into(), Json::Array(refs));
        if route.route_response {
            let name = format!("{op}Reply");
            messages.insert(
                name.clone(),
                json!({
                    "name": name,
                    "title": format!("Answer of route {key}"),
                    "summary": "The integration's answer, sent to the client as one frame.",
                }),
            );
            channel_messages.insert(
                name.clone(),
                reference(&format!("#/components/messages/{name}")),
            );
            operation.insert(
                "reply".into(),
                json!({
                    "channel": reference(&format!("#/channels/{CONNECTION}")),
                    "messages": [reference(&format!("#/channels/{CONNECTION}/messages/{name}"))],
                }),
            );
        }
        let security = route_security(key, route, &schemes);
        if !security.is_empty() {
            operation.insert("security".into(), Json::Array(security));
        }
        operation.insert("x-wsgate-route-key".into(), json!(key));
        operation.insert(
            "x-wsgate-integration".into(),
            without_nulls(serde_json::to_value(&route.integration).unwrap_or_default()),
        );
        let extra = route_extra(route);
        if !extra.is_empty() {
            operation.insert("x-wsgate-route".into(), Json::Object(extra));
        }
        operations.insert(op, Json::Object(operation));
    }

    messages.insert(
        "callbackPost".into(),
        json!({
            "name": "callbackPost",
            "title": "Message pushed to a connection",
            "summary": "Any body: valid UTF-8 goes out as one text frame, anything else as a binary frame.",
            "contentType": "application/octet-stream",
            "bindings": {"http": {"bindingVersion": "0.3.0"}},
        }),
    );
    let mut callback_operation = json!({
        "action": "receive",
        "channel": reference(&format!("#/channels/{CALLBACK}")),
        "title": "PostToConnection",
        "summary": "Push a message to one connection (the callback API, as Amazon API Gateway's @connections).",
        "description": "Answers 200 once the message is queued; 410 GoneException for an unknown or closed connection, 413 PayloadTooLargeException, 429 LimitExceededException, 403 ForbiddenException. GET (connection info) and DELETE (close) are in the OpenAPI export.",
        "bindings": {"http": {"method": "POST", "bindingVersion": "0.3.0"}},
        "messages": [reference(&format!("#/channels/{CALLBACK}/messages/callbackPost"))],
    });
    if let Some(scheme) = schemes.get("callback") {
        callback_operation["security"] =
            json!([reference(&format!("#/components/securitySchemes/{scheme}"))]);
    }
    operations.insert("postToConnection".into(), callback_operation);

    let stages: Vec<&String> = api.stages.keys().collect();
    let channels = json!({
        CONNECTION: {
            "address": null,
            "title": "WebSocket connection",
            "description": format!(
                "A client's WebSocket connection to a stage (the server's path). Each message is routed by the route selection expression `{}` to a route key, else to `$default`.",
                api.route_selection_expression
            ),
            "servers": ws_servers.iter().map(|s| reference(&format!("#/servers/{s}"))).collect::<Vec<_>>(),
            "messages": channel_messages,
            "bindings": {"ws": {"method": "GET", "bindingVersion": "0.1.0"}},
        },
        CALLBACK: {
            "address": "/@connections/{connectionId}",
            "title": "Callback API",
            "description": format!("Backends push to a connection of stage {} through the callback API.", stages.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")),
            "servers": callback_servers.iter().map(|s| reference(&format!("#/servers/{s}"))).collect::<Vec<_>>(),
            "parameters": {"connectionId": {"description": "The connection's id (`requestContext.connectionId`)."}},
            "messages": {"callbackPost": reference("#/components/messages/callbackPost")},
        },
    });

    let mut components = Map::new();
    components.insert("messages".into(), Json::Object(messages));
    let models = models(api)?;
    if !models.is_empty() {
        components.insert("schemas".into(), Json::Object(models));
    }
    let scheme_objects: Map<String, Json> = scheme_objects(config, &schemes);
    if !scheme_objects.is_empty() {
        components.insert("securitySchemes".into(), Json::Object(scheme_objects));
    }

    let mut document = Map::new();
    document.insert("asyncapi".into(), json!("3.0.0"));
    document.insert("info".into(), Json::Object(info));
    document.insert("defaultContentType".into(), json!("application/json"));
    document.insert("servers".into(), Json::Object(servers));
    document.insert("channels".into(), channels);
    document.insert("operations".into(), Json::Object(operations));
    document.insert("components".into(), Json::Object(components));
    document.insert(
        "x-wsgate-route-selection".into(),
        json!(api.route_selection_expression),
    );
    if api.api_key_selection_expression != DEFAULT_KEY_SELECTION {
        document.insert(
            "x-wsgate-api-key-selection".into(),
            json!(api.api_key_selection_expression),
        );
    }
    Ok(Json::Object(document))
}

/// A serialized configuration without its unset (`null`) keys.
fn without_nulls(value: Json) -> Json {
    match value {
        Json::Object(map) => map
            .into_iter()
            .filter(|(_, v)| !v.is_null())
            .map(|(k, v)| (k, without_nulls(v)))
            .collect::<Map<_, _>>()
            .into(),
        other => other,
    }
}

fn reference(target: &str) -> Json {
    json!({ "$ref": target })
}

fn summary(key: &str) -> String {
    match key {
        "$connect" => "Route $connect: the WebSocket upgrade request, before it completes.".into(),
        "$disconnect" => "Route $disconnect: the connection has closed.".into(),
        "$default" => "Route $default: messages no other route key matches.".into(),
        _ => format!("Route {key}."),
    }
}

/// A component name for route `key`: `$connect` → `connect`, other characters than letters,
/// digits, `_` and `-` → `_`.
pub(super) fn identifier(key: &str) -> String {
    let name: String = key
        .trim_start_matches('$')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() {
        "route".into()
    } else {
        name
    }
}

fn unique(taken: &mut BTreeMap<String, usize>, name: &str) -> String {
    let count = taken.entry(name.to_string()).or_insert(0);
    *count += 1;
    if *count == 1 {
        name.to_string()
    } else {
        format!("{name}_{count}")
    }
}

/// The messages of a route: one per request model (its payload the model), else one without
/// a payload.
fn route_messages(
    op: &str,
    key: &str,
    route: &RouteConfig,
    api: &ApiConfig,
) -> Result<Vec<(String, Json)>, SpecError> {
    let title = match key {
        "$connect" => "The upgrade request".to_string(),
        "$disconnect" => "The end of the connection".to_string(),
        _ => format!("Message to route {key}"),
    };
    if route.request_models.is_empty() {
        let mut message = json!({"name": op, "title": title});
        if key == "$connect" || key == "$disconnect" {
            message["summary"] =
                json!("Carries no body: the integration gets the connection's context.");
        }
        return Ok(vec![(op.to_string(), message)]);
    }
    let mut out = Vec::new();
    for (selection, model) in &route.request_models {
        let name = if selection == DEFAULT_MODEL_KEY {
            op.to_string()
        } else {
            format!("{op}_{}", identifier(selection))
        };
        let mut message = json!({
            "name": name,
            "title": title,
            "payload": reference(&format!("#/components/schemas/{model}")),
            "x-wsgate-model-key": selection,
        });
        if let Some(description) = api.models.get(model).and_then(|m| m.description.as_ref()) {
            message["summary"] = json!(description);
        }
        out.push((name, message));
    }
    Ok(out)
}

/// The route's settings besides its integration and models (`x-wsgate-route`).
fn route_extra(route: &RouteConfig) -> Map<String, Json> {
    let Ok(Json::Object(mut all)) = serde_json::to_value(route) else {
        return Map::new();
    };
    all.remove("integration");
    all.remove("request_models");
    all.retain(|_, v| !(v.is_null() || *v == false || v.as_object().is_some_and(Map::is_empty)));
    all
}

/// The models of the API as JSON Schemas (`schema_file`s read).
fn models(api: &ApiConfig) -> Result<Map<String, Json>, SpecError> {
    let mut out = Map::new();
    for (name, model) in &api.models {
        let schema = match (&model.schema, &model.schema_file) {
            (Some(schema), _) => schema.clone(),
            (None, Some(path)) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    SpecError::Invalid(format!(
                        "api.models.{name}.schema_file {}: {e}",
                        path.display()
                    ))
                })?;
                serde_json::from_str(&text).map_err(|e| {
                    SpecError::Invalid(format!(
                        "api.models.{name}.schema_file {}: {e}",
                        path.display()
                    ))
                })?
            }
            (None, None) => json!({}),
        };
        out.insert(name.clone(), schema);
    }
    Ok(out)
}

/// Servers: the WebSocket servers per stage and custom-domain mapping, the callback servers per
/// stage; with the names of each kind.
fn servers(config: &Config) -> (Map<String, Json>, Vec<String>, Vec<String>) {
    let tls = config.tls.is_some();
    let (ws, http) = if tls {
        ("wss", "https")
    } else {
        ("ws", "http")
    };
    let host = config
        .api
        .domain_name
        .clone()
        .unwrap_or_else(|| config.listen.to_string());
    let callback_host = if config.callback.on_main_listener {
        host.clone()
    } else {
        config
            .callback
            .listen
            .map_or_else(|| host.clone(), |a| a.to_string())
    };
    let mut servers = Map::new();
    let (mut ws_names, mut callback_names) = (Vec::new(), Vec::new());
    for (stage, settings) in &config.api.stages {
        let name = identifier(stage);
        let mut server = json!({
            "host": host,
            "protocol": ws,
            "pathname": format!("/{stage}"),
            "title": format!("Stage {stage}"),
            "x-wsgate-stage": stage,
        });
        if !settings.variables.is_empty() {
            server["x-wsgate-variables"] = json!(settings.variables);
        }
        servers.insert(name.clone(), server);
        ws_names.push(name.clone());
        let callback = format!("{name}-callback");
        servers.insert(
            callback.clone(),
            json!({
                "host": callback_host,
                "protocol": http,
                "pathname": format!("/{stage}"),
                "title": format!("Callback API of stage {stage}"),
            }),
        );
        callback_names.push(callback);
    }
    for domain in &config.domains {
        for mapping in &domain.mappings {
            let name = format!(
                "{}-{}{}",
                identifier(&mapping.stage),
                identifier(&domain.name.replace('*', "wildcard")),
                if mapping.path.is_empty() {
                    String::new()
                } else {
                    format!("-{}", identifier(&mapping.path))
                }
            );
            let mut server = json!({
                "host": domain.name,
                "protocol": ws,
                "title": format!("Stage {} on {}", mapping.stage, domain.name),
                "x-wsgate-stage": mapping.stage,
            });
            if !mapping.path.is_empty() {
                server["pathname"] = json!(format!("/{}", mapping.path));
            }
            servers.insert(name.clone(), server);
            ws_names.push(name);
        }
    }
    (servers, ws_names, callback_names)
}

/// Names of the security schemes: each authorizer by its name, `apiKey`, `iam`, `callback`.
fn security_schemes(config: &Config) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for name in config.api.authorizers.keys() {
        out.insert(name.clone(), identifier(name));
    }
    let routes = config.api.routes.values();
    if routes.clone().any(|r| r.api_key_required) {
        out.insert("apiKey".into(), "apiKey".into());
    }
    if routes
        .clone()
        .any(|r| r.authorization() == AuthorizationType::AwsIam)
    {
        out.insert("iam".into(), "iam".into());
    }
    if matches!(
        config.callback.auth,
        Some(CallbackAuthConfig::Bearer { .. } | CallbackAuthConfig::Sigv4 { .. })
    ) {
        out.insert("callback".into(), "callback".into());
    }
    out
}

fn route_security(key: &str, route: &RouteConfig, schemes: &BTreeMap<String, String>) -> Vec<Json> {
    let mut out = Vec::new();
    if key != "$connect" {
        return out;
    }
    let scheme = |name: &str| reference(&format!("#/components/securitySchemes/{name}"));
    match route.authorization() {
        AuthorizationType::Custom => {
            if let Some(name) = route.authorizer.as_ref().and_then(|a| schemes.get(a)) {
                out.push(scheme(name));
            }
        }
        AuthorizationType::AwsIam => out.push(scheme("iam")),
        AuthorizationType::None => {}
    }
    if route.api_key_required {
        out.push(scheme("apiKey"));
    }
    out
}

/// `route.request.header.X` → an `httpApiKey` in the header, `route.request.querystring.X` in
/// the query; a bearer `Authorization` header → `http` bearer.
fn identity_scheme(sources: &[String], jwt: bool) -> Json {
    for source in sources {
        if let Some(header) = source.strip_prefix("route.request.header.") {
            if jwt && header.eq_ignore_ascii_case("authorization") {
                return json!({"type": "http", "scheme": "bearer", "bearerFormat": "JWT"});
            }
            return json!({"type": "httpApiKey", "name": header, "in": "header"});
        }
        if let Some(query) = source.strip_prefix("route.request.querystring.") {
            return json!({"type": "httpApiKey", "name": query, "in": "query"});
        }
    }
    json!({"type": "httpApiKey", "name": "Authorization", "in": "header"})
}

fn scheme_objects(config: &Config, names: &BTreeMap<String, String>) -> Map<String, Json> {
    let mut out = Map::new();
    for (name, authorizer) in &config.api.authorizers {
        let (mut scheme, what) = match authorizer {
            AuthorizerConfig::Jwt(jwt) => (
                identity_scheme(&jwt.identity_sources, true),
                "a JSON Web Token verified by the gateway",
            ),
            AuthorizerConfig::Request(request) => (
                identity_scheme(&request.identity_sources, false),
                "a REQUEST authorizer (Lambda authorizer contract) called before $connect",
            ),
        };
        scheme["description"] = json!(format!("Authorizer {name}: {what}."));
        scheme["x-wsgate-authorizer"] = json!(name);
        scheme["x-wsgate-authorizer-config"] =
            without_nulls(serde_json::to_value(authorizer).unwrap_or_default());
        out.insert(names[name].clone(), scheme);
    }
    if names.contains_key("apiKey") {
        let expression = &config.api.api_key_selection_expression;
        let scheme = if let Some(header) = expression.strip_prefix("$request.header.") {
            json!({"type": "httpApiKey", "name": header, "in": "header"})
        } else if let Some(query) = expression.strip_prefix("$request.querystring.") {
            json!({"type": "httpApiKey", "name": query, "in": "query"})
        } else {
            json!({"type": "httpApiKey", "name": "x-api-key", "in": "header"})
        };
        let mut scheme = scheme;
        scheme["description"] = json!(format!("An API key of api_keys, read from {expression}."));
        out.insert("apiKey".into(), scheme);
    }
    if names.contains_key("iam") {
        out.insert("iam".into(), json!({
            "type": "httpApiKey", "name": "Authorization", "in": "header",
            "description": "AWS Signature Version 4 (service execute-api) of one of iam.principals.",
        }));
    }
    match &config.callback.auth {
        Some(CallbackAuthConfig::Bearer { .. }) => {
            out.insert(
                "callback".into(),
                json!({
                    "type": "http", "scheme": "bearer",
                    "description": "One of callback.auth.tokens.",
                }),
            );
        }
        Some(CallbackAuthConfig::Sigv4 { region, .. }) => {
            out.insert("callback".into(), json!({
                "type": "httpApiKey", "name": "Authorization", "in": "header",
                "description": format!("AWS Signature Version 4, service execute-api, region {region}, as the AWS SDKs sign."),
            }));
        }
        _ => {}
    }
    out
}
