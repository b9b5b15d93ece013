//! `wsgate import asyncapi`: an AsyncAPI 3.0 (or 2.6) document of a WebSocket API becomes a
//! wsgate configuration. Operations the API receives become routes (`x-wsgate-route-key`, else
//! the message's constant on the route selection field, else the operation id); their message
//! payloads become request models; a reply makes the route two-way. `x-wsgate-integration`,
//! `x-wsgate-route` and `x-wsgate-route-selection` carry what AsyncAPI cannot say.

use serde_json::{Map, Value as Json, json};

use super::{Imported, Note, SpecError};

/// What the document does not say.
#[derive(Debug, Clone)]
pub struct AsyncApiOptions {
    /// Stage variable `backend` (for operations without `x-wsgate-integration`).
    pub backend: String,
    /// `listen` of the configuration.
    pub listen: String,
}

impl Default for AsyncApiOptions {
    fn default() -> Self {
        Self {
            backend: "http://127.0.0.1:3000".into(),
            listen: "127.0.0.1:8080".into(),
        }
    }
}

/// What the export writes in place of a secret.
const REDACTED: &str = "***";

/// Deepest `$ref` chain followed.
const MAX_REF_DEPTH: usize = 32;

/// Imports `text`, read from `path` (named in errors).
///
/// # Errors
/// [`SpecError::Syntax`] when it is not YAML or JSON, [`SpecError::Invalid`] when it is not an
/// AsyncAPI 2.x or 3.x document or describes no operation the API receives.
pub fn import_asyncapi(
    path: &str,
    text: &str,
    options: &AsyncApiOptions,
) -> Result<Imported, SpecError> {
    let doc: Json = serde_saphyr::from_str(text).map_err(|e| SpecError::Syntax {
        path: path.to_string(),
        line: 0,
        message: e.to_string(),
    })?;
    let version = doc["asyncapi"].as_str().unwrap_or_default().to_string();
    let mut importer = Importer {
        doc: &doc,
        notes: Vec::new(),
        models: Map::new(),
        used_backend: false,
    };
    let expression = doc["x-wsgate-route-selection"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| {
            importer.note(
                "x-wsgate-route-selection",
                "absent: $request.body.action assumed",
            );
            "$request.body.action".into()
        });
    let field = expression
        .strip_prefix("$request.body.")
        .filter(|f| f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'))
        .map(str::to_string);
    let operations = if version.starts_with("3.") {
        importer.operations_v3()
    } else if version.starts_with("2.") {
        importer.operations_v2()
    } else {
        return Err(SpecError::Invalid(format!(
            "{path}: not an AsyncAPI 2.x or 3.x document (asyncapi: {version:?})"
        )));
    };
    let mut routes = Map::new();
    for op in operations {
        let (key, route) = importer.route(&op, field.as_deref());
        if routes.contains_key(&key) {
            importer.note(
                op.at(),
                format!("route key {key} is already taken by another operation (left out)"),
            );
            continue;
        }
        routes.insert(key, route);
    }
    if routes.is_empty() {
        return Err(SpecError::Invalid(format!(
            "{path}: no operation the API receives (AsyncAPI 3 `action: receive`, 2.x `publish`), so no route"
        )));
    }
    let stages = importer.stages(version.starts_with("3."), options);
    let info = &doc["info"];
    let mut api = Map::new();
    api.insert(
        "name".into(),
        json!(info["title"].as_str().unwrap_or("api")),
    );
    if let Some(version) = info["version"].as_str().filter(|v| *v != "0.0.0") {
        api.insert("version".into(), json!(version));
    }
    if let Some(description) = info["description"].as_str() {
        api.insert("description".into(), json!(description));
    }
    api.insert("route_selection_expression".into(), json!(expression));
    if let Some(keys) = doc["x-wsgate-api-key-selection"].as_str() {
        api.insert("api_key_selection_expression".into(), json!(keys));
    }
    api.insert("routes".into(), Json::Object(routes));
    let mut stages = stages;
    if importer.used_backend {
        for stage in stages.values_mut() {
            let variables = stage
                .as_object_mut()
                .expect("stages are objects")
                .entry("variables")
                .or_insert_with(|| json!({}));
            if variables.get("backend").is_none() {
                variables["backend"] = json!(options.backend);
            }
        }
    }
    api.insert("stages".into(), Json::Object(stages));
    if !importer.models.is_empty() {
        api.insert(
            "models".into(),
            Json::Object(std::mem::take(&mut importer.models)),
        );
    }
    let authorizers = importer.authorizers();
    if let Some(routes) = api.get_mut("routes").and_then(Json::as_object_mut) {
        for (key, route) in routes.iter_mut() {
            let Some(name) = route["authorizer"].as_str().map(str::to_string) else {
                continue;
            };
            if !authorizers.contains_key(&name) {
                importer.note(
                    format!("routes.{key}"),
                    format!("authorizer {name} is not described by an x-wsgate-authorizer-config security scheme: left out, the route is open"),
                );
                let route = route.as_object_mut().expect("routes are objects");
                route.remove("authorizer");
                route.remove("authorization_type");
            }
        }
    }
    if !authorizers.is_empty() {
        api.insert("authorizers".into(), Json::Object(authorizers));
    }
    let mut config = Map::new();
    config.insert("listen".into(), json!(options.listen));
    config.insert("api".into(), Json::Object(api));
    let mut config = Json::Object(config);
    let mut notes = importer.notes;
    super::add_api_key_placeholder(&mut config, &mut notes);
    Ok(Imported { config, notes })
}

/// One operation the API receives.
#[derive(Clone)]
struct Operation<'a> {
    /// Its id (3.0 key, 2.x `operationId` or channel name).
    id: &'a str,
    /// The operation object.
    node: &'a Json,
    /// Its messages, `$ref`s unresolved.
    messages: Vec<&'a Json>,
    /// Whether it has a reply (3.0 `reply`).
    reply: bool,
}

/// Where an operation is, for notes.
trait At {
    fn at(&self) -> String;
}

impl At for Operation<'_> {
    fn at(&self) -> String {
        format!("operations.{}", self.id)
    }
}

struct Importer<'a> {
    doc: &'a Json,
    notes: Vec<Note>,
    models: Map<String, Json>,
    used_backend: bool,
}

impl<'a> Importer<'a> {
    fn note(&mut self, at: impl AsRef<str>, message: impl Into<String>) {
        self.notes.push(Note::new(None, at.as_ref(), message));
    }

    /// Follows a local `$ref` (`#/a/b`), repeatedly.
    fn resolve(&self, mut value: &'a Json) -> &'a Json {
        for _ in 0..MAX_REF_DEPTH {
            let Some(target) = value.get("$ref").and_then(Json::as_str) else {
                return value;
            };
            let Some(pointer) = target.strip_prefix('#') else {
                return value;
            };
            match self.doc.pointer(pointer) {
                Some(found) => value = found,
                None => return value,
            }
        }
        value
    }

    /// `value` with every local `$ref` inside it replaced by its target (models stand alone).
    fn inline(&self, value: &Json, depth: usize) -> Json {
        if depth > MAX_REF_DEPTH {
            return value.clone();
        }
        match value {
            Json::Object(map) => {
                if let Some(target) = map.get("$ref").and_then(Json::as_str)
                    && let Some(found) = target.strip_prefix('#').and_then(|p| self.doc.pointer(p))
                {
                    return self.inline(found, depth + 1);
                }
                map.iter()
                    .map(|(k, v)| (k.clone(), self.inline(v, depth + 1)))
                    .collect::<Map<_, _>>()
                    .into()
            }
            Json::Array(items) => items.iter().map(|v| self.inline(v, depth + 1)).collect(),
            other => other.clone(),
        }
    }

    fn operations_v3(&mut self) -> Vec<Operation<'a>> {
        let mut out = Vec::new();
        let Some(operations) = self.doc["operations"].as_object() else {
            return out;
        };
        for (id, node) in operations {
            let at = format!("operations.{id}");
            let channel = self.resolve(&node["channel"]);
            let http = node["bindings"].get("http").is_some()
                || self
                    .channel_protocols(channel)
                    .iter()
                    .all(|p| p.starts_with("http"))
                    && !self.channel_protocols(channel).is_empty();
            if http {
                self.note(
                    at,
                    "an HTTP operation (the callback API is wsgate's own): no route",
                );
                continue;
            }
            match node["action"].as_str() {
                Some("receive") => {}
                Some("send") => {
                    self.note(at, "the API sends these messages: backends push them through the callback API, no route");
                    continue;
                }
                other => {
                    self.note(
                        at,
                        format!("action {other:?} is neither receive nor send (left out)"),
                    );
                    continue;
                }
            }
            let messages: Vec<&'a Json> = match node["messages"].as_array() {
                Some(list) => list.iter().collect(),
                // No list: every message of the channel.
                None => channel["messages"]
                    .as_object()
                    .map(|all| all.values().collect())
                    .unwrap_or_default(),
            };
            out.push(Operation {
                id,
                node,
                messages,
                reply: node.get("reply").is_some_and(|r| !r.is_null()),
            });
        }
        out
    }

    fn channel_protocols(&self, channel: &'a Json) -> Vec<String> {
        let servers = channel["servers"].as_array().cloned().unwrap_or_default();
        servers
            .iter()
            .filter_map(|s| self.resolve(s)["protocol"].as_str().map(str::to_string))
            .collect()
    }

    fn operations_v2(&mut self) -> Vec<Operation<'a>> {
        let mut out = Vec::new();
        let Some(channels) = self.doc["channels"].as_object() else {
            return out;
        };
        for (name, channel) in channels {
            if channel.get("subscribe").is_some() {
                self.note(format!("channels.{name}.subscribe"), "the API sends these messages: backends push them through the callback API, no route");
            }
            let Some(node) = channel.get("publish") else {
                continue;
            };
            let id = node["operationId"].as_str().unwrap_or(name);
            let messages = match node.get("message") {
                None => Vec::new(),
                Some(message) => {
                    match self.resolve(message).get("oneOf").and_then(Json::as_array) {
                        Some(list) => list.iter().collect(),
                        None => vec![message],
                    }
                }
            };
            out.push(Operation {
                id,
                node,
                messages,
                reply: false,
            });
        }
        out
    }

    /// The route of `op`: its key and configuration.
    fn route(&mut self, op: &Operation<'a>, field: Option<&str>) -> (String, Json) {
        let at = op.at();
        let messages: Vec<&'a Json> = op.messages.iter().map(|m| self.resolve(m)).collect();
        let key = op.node["x-wsgate-route-key"]
            .as_str()
            .map(str::to_string)
            .or_else(|| {
                let field = field?;
                messages.iter().find_map(|m| {
                    let payload = self.payload(m)?;
                    let property = &payload["properties"][field];
                    property["const"].as_str().map(str::to_string).or_else(
                        || match property["enum"].as_array()?.as_slice() {
                            [one] => one.as_str().map(str::to_string),
                            _ => None,
                        },
                    )
                })
            })
            .unwrap_or_else(|| op.id.to_string());
        let mut route = match op.node.get("x-wsgate-route") {
            Some(Json::Object(extra)) => extra.clone(),
            _ => Map::new(),
        };
        route.remove("request_models");
        let integration = match op.node.get("x-wsgate-integration") {
            Some(integration @ Json::Object(_)) => {
                if integration.to_string().contains(REDACTED) {
                    self.note(&at, "x-wsgate-integration holds a value the export redacted (***): set it in the configuration");
                }
                integration.clone()
            }
            _ => {
                self.used_backend = true;
                let path: String = key.trim_start_matches('$').to_string();
                self.note(&at, format!("no x-wsgate-integration: route {key} forwards to ${{stageVariables.backend}}/{path} (http_proxy)"));
                json!({"type": "http_proxy", "uri": format!("${{stageVariables.backend}}/{path}")})
            }
        };
        route.insert("integration".into(), integration);
        if op.reply {
            route.insert("route_response".into(), json!(true));
        }
        let mut request_models = Map::new();
        let mut unkeyed = Vec::new();
        for message in &messages {
            let Some((model, schema)) = self.model(message) else {
                continue;
            };
            match message["x-wsgate-model-key"].as_str() {
                Some(selection) => {
                    request_models.insert(selection.to_string(), json!(model));
                    self.models.insert(model, schema);
                }
                None => unkeyed.push((model, schema)),
            }
        }
        match unkeyed.len() {
            0 => {}
            1 if !request_models.contains_key("$default") => {
                let (model, schema) = unkeyed.remove(0);
                request_models.insert("$default".into(), json!(model));
                self.models.insert(model, schema);
            }
            _ => {
                // Several payloads: a message must match one of them.
                let model = model_name(&format!("{}Message", op.id));
                let schemas: Vec<Json> = unkeyed
                    .into_iter()
                    .map(|(_, m)| m["schema"].clone())
                    .collect();
                self.note(
                    &at,
                    format!("several message payloads: model {model} accepts any of them (oneOf)"),
                );
                request_models.insert("$default".into(), json!(model));
                self.models
                    .insert(model, json!({"schema": {"oneOf": schemas}}));
            }
        }
        if key.starts_with('$') && key != "$default" && !request_models.is_empty() {
            self.note(
                &at,
                format!("{key} carries no message body: its payloads are not models"),
            );
            request_models.clear();
        }
        if !request_models.is_empty() {
            route.insert("request_models".into(), Json::Object(request_models));
        } else {
            route.remove("model_selection_expression");
        }
        (key, Json::Object(route))
    }

    /// A message's payload schema, resolved (a multi-format schema's `schema`).
    fn payload(&self, message: &'a Json) -> Option<&'a Json> {
        let payload = self.resolve(message.get("payload")?);
        match (payload.get("schemaFormat"), payload.get("schema")) {
            (Some(_), Some(schema)) => Some(self.resolve(schema)),
            _ => Some(payload),
        }
    }

    /// The model of a message: the name of its `#/components/schemas/X` payload (else of the
    /// message) and the schema with local references inlined.
    fn model(&mut self, message: &'a Json) -> Option<(String, Json)> {
        let raw = message.get("payload")?;
        if let Some(format) = raw.get("schemaFormat").and_then(Json::as_str)
            && !format.contains("json")
        {
            self.note(
                "messages",
                format!("payload in {format}: only JSON Schema payloads become models (left out)"),
            );
            return None;
        }
        let named = raw
            .get("$ref")
            .and_then(Json::as_str)
            .and_then(|r| r.strip_prefix("#/components/schemas/"));
        let name = match named {
            Some(name) => model_name(name),
            None => model_name(
                message["name"]
                    .as_str()
                    .or_else(|| message["title"].as_str())
                    .unwrap_or("Message"),
            ),
        };
        let schema = self.inline(self.payload(message)?, 0);
        let mut model = json!({ "schema": schema });
        if let Some(summary) = message["summary"].as_str() {
            model["description"] = json!(summary);
        }
        Some((name, model))
    }

    /// Authorizers described by security schemes with `x-wsgate-authorizer` and
    /// `x-wsgate-authorizer-config` (one whose secrets the export redacted is left out).
    fn authorizers(&mut self) -> Map<String, Json> {
        let mut out = Map::new();
        let schemes = self.doc["components"]["securitySchemes"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for (id, scheme) in &schemes {
            let (Some(name), Some(config)) = (
                scheme["x-wsgate-authorizer"].as_str(),
                scheme.get("x-wsgate-authorizer-config"),
            ) else {
                continue;
            };
            if config.to_string().contains(REDACTED) {
                self.note(format!("components.securitySchemes.{id}"), format!("authorizer {name}: its secrets were redacted by the export (left out; configure it by hand)"));
                continue;
            }
            out.insert(name.to_string(), config.clone());
        }
        out
    }

    fn stages(&mut self, v3: bool, options: &AsyncApiOptions) -> Map<String, Json> {
        let mut out = Map::new();
        let servers = self.doc["servers"].as_object().cloned().unwrap_or_default();
        for (name, server) in &servers {
            let protocol = server["protocol"].as_str().unwrap_or_default();
            if protocol != "ws" && protocol != "wss" {
                continue;
            }
            let path = if v3 {
                server["pathname"].as_str().unwrap_or_default().to_string()
            } else {
                let url = server["url"].as_str().unwrap_or_default();
                let rest = url.split_once("://").map_or(url, |(_, r)| r);
                rest.find('/')
                    .map_or(String::new(), |i| rest[i..].to_string())
            };
            let stage = server["x-wsgate-stage"]
                .as_str()
                .map(str::to_string)
                .or_else(|| {
                    let last = path.trim_matches('/').rsplit('/').next()?;
                    (!last.is_empty()).then(|| last.to_string())
                })
                .unwrap_or_else(|| name.clone());
            let stage: String = stage
                .chars()
                .map(|c| {
                    if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                        c
                    } else {
                        '_'
                    }
                })
                .collect();
            let mut settings = Map::new();
            if let Some(Json::Object(variables)) = server.get("x-wsgate-variables") {
                settings.insert("variables".into(), Json::Object(variables.clone()));
            }
            out.entry(stage).or_insert(Json::Object(settings));
        }
        if out.is_empty() {
            self.note(
                "servers",
                format!(
                    "no ws or wss server: stage `prod` created (clients connect to ws://{}/prod)",
                    options.listen
                ),
            );
            out.insert("prod".into(), json!({}));
        }
        out
    }
}

/// A model name: letters and digits only (as Amazon API Gateway's `Model.Name`).
fn model_name(text: &str) -> String {
    let name: String = text.chars().filter(char::is_ascii_alphanumeric).collect();
    if name.is_empty() {
        "Model".into()
    } else {
        name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = r##"
asyncapi: 3.0.0
info: {title: chat, version: 1.2.0}
servers:
  production: {host: chat.example.com, protocol: wss, pathname: /live}
channels:
  room:
    address: /
    messages:
      send: {payload: {$ref: '#/components/schemas/Send'}}
      said: {payload: {type: object}}
operations:
  sendMessage:
    action: receive
    channel: {$ref: '#/channels/room'}
    messages: [{$ref: '#/channels/room/messages/send'}]
    reply: {channel: {$ref: '#/channels/room'}}
  said:
    action: send
    channel: {$ref: '#/channels/room'}
components:
  schemas:
    Send:
      type: object
      required: [action, text]
      properties:
        action: {const: sendmessage}
        text: {$ref: '#/components/schemas/Text'}
    Text: {type: string, maxLength: 10}
"##;

    const DOC_2_6: &str = r##"
asyncapi: 2.6.0
info: {title: ticker, version: 1.0.0}
x-wsgate-route-selection: $request.body.type
servers:
  live: {url: "wss://ticker.example.com/v2", protocol: wss}
channels:
  /:
    publish:
      operationId: subscribe
      message:
        oneOf:
          - {name: sub, payload: {type: object, properties: {type: {const: subscribe}, symbol: {type: string}}}}
          - {name: unsub, payload: {type: object, properties: {type: {const: subscribe}, all: {type: boolean}}}}
      x-wsgate-integration: {type: mock, response: ok}
    subscribe:
      message: {payload: {type: object}}
"##;

    #[test]
    fn an_asyncapi_2_6_document_becomes_routes() {
        let imported =
            import_asyncapi("doc.yaml", DOC_2_6, &AsyncApiOptions::default()).expect("imports");
        let api = &imported.config["api"];
        assert_eq!(api["route_selection_expression"], "$request.body.type");
        let route = &api["routes"]["subscribe"];
        assert_eq!(
            route["integration"],
            json!({"type": "mock", "response": "ok"})
        );
        // Two payloads without selection keys: one model that accepts either.
        assert_eq!(
            route["request_models"],
            json!({"$default": "subscribeMessage"})
        );
        let one_of = &api["models"]["subscribeMessage"]["schema"]["oneOf"];
        assert_eq!(one_of.as_array().map(Vec::len), Some(2));
        assert_eq!(api["stages"], json!({"v2": {}}));
        let notes: Vec<String> = imported.notes.iter().map(|n| n.to_string()).collect();
        assert!(
            notes.iter().any(|n| n.contains("channels./.subscribe")),
            "{notes:?}"
        );
        let text = crate::spec::to_yaml(&imported.config, &[]).expect("YAML");
        crate::config::Config::from_yaml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    }

    #[test]
    fn not_asyncapi_is_refused() {
        let error = import_asyncapi("x.yaml", "openapi: 3.1.0\n", &AsyncApiOptions::default())
            .expect_err("not AsyncAPI");
        assert!(
            error
                .to_string()
                .contains("not an AsyncAPI 2.x or 3.x document"),
            "{error}"
        );
    }

    #[test]
    fn a_foreign_document_becomes_routes_models_and_stages() {
        let imported =
            import_asyncapi("doc.yaml", DOC, &AsyncApiOptions::default()).expect("imports");
        let api = &imported.config["api"];
        let route = &api["routes"]["sendmessage"];
        assert_eq!(route["route_response"], true);
        assert_eq!(route["request_models"], json!({"$default": "Send"}));
        assert_eq!(
            route["integration"]["uri"],
            "${stageVariables.backend}/sendmessage"
        );
        assert_eq!(
            api["models"]["Send"]["schema"]["properties"]["text"],
            json!({"type": "string", "maxLength": 10})
        );
        assert_eq!(
            api["stages"],
            json!({"live": {"variables": {"backend": "http://127.0.0.1:3000"}}})
        );
        assert_eq!(api["route_selection_expression"], "$request.body.action");
        let notes: Vec<String> = imported.notes.iter().map(|n| n.to_string()).collect();
        assert!(
            notes.iter().any(|n| n.contains("operations.said")),
            "{notes:?}"
        );
    }
}
