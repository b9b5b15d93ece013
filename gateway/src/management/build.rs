//! The management API's resources → a wsgate definition (`api`, `throttling`), for a
//! deployment. The resources become a CloudFormation template of `AWS::ApiGatewayV2::*`
//! resources that `wsgate import cloudformation`'s importer reads, so the two translate AWS's
//! model the same way. What the caller did not change is taken from the definition the
//! resources were seeded from, as written: wsgate's own settings of an untouched route (its
//! `ack`, `cache`, broker integration…) survive a deployment made through the management API.

use serde_json::{Map, Value as Json, json};

use super::draft::{Collection, Draft, Resources};
use crate::error::ManagementError;
use crate::spec::{CfnOptions, import_cloudformation};

/// A route's wsgate keys that its apigatewayv2 resources say; the others (`ack`, `cache`,
/// `response_models`…) are wsgate's own and kept from the seed.
const ROUTE_KEYS: [&str; 7] = [
    "integration",
    "route_response",
    "authorizer",
    "authorization_type",
    "api_key_required",
    "model_selection_expression",
    "request_models",
];

/// Integration types only wsgate has: shown, never created or changed here.
const WSGATE_TYPES: [&str; 3] = ["WSGATE_NATS", "WSGATE_RABBITMQ", "WSGATE_REDIS_STREAM"];

/// A definition ready to deploy, and what the importer passed over.
#[derive(Debug)]
pub(super) struct Built {
    /// `{api, throttling}` in wsgate's keys.
    pub live: Json,
    /// Properties with no wsgate equivalent that were ignored.
    pub ignored: Vec<String>,
}

/// The definition `draft` describes, for a gateway in `region` / `account`.
///
/// # Errors
/// 400 naming what cannot become a definition (a route whose target names no integration, an
/// integration type or authorizer type wsgate does not have, a changed broker integration).
pub(super) fn definition(
    draft: &Draft,
    region: &str,
    account: &str,
) -> Result<Built, ManagementError> {
    let now = &draft.resources;
    let was = &draft.seed.resources;
    for (id, integration) in &now.integrations {
        let kind = integration["integrationType"].as_str().unwrap_or_default();
        if WSGATE_TYPES.contains(&kind) && was.integrations.get(id) != Some(integration) {
            return Err(ManagementError::BadRequest(format!(
                "integration {id}: a {kind} integration is changed in the definition (wsgate apply), not through apigatewayv2"
            )));
        }
    }
    let template = template(now, was);
    let options = CfnOptions {
        region: region.to_string(),
        account_id: account.to_string(),
        ..CfnOptions::default()
    };
    let text = serde_json::to_string(&template).unwrap_or_default();
    let imported = import_cloudformation("management API", &text, &options)
        .map_err(|e| ManagementError::BadRequest(e.to_string()))?;
    let mut fatal = Vec::new();
    let mut ignored = Vec::new();
    for note in imported.notes {
        let line = format!("{}: {}", describe(&note.at), note.message);
        if note.message.contains("not imported") {
            fatal.push(line);
        } else {
            ignored.push(line);
        }
    }
    if !fatal.is_empty() {
        return Err(ManagementError::BadRequest(format!(
            "cannot deploy: {}",
            fatal.join("; ")
        )));
    }
    let imported_api = &imported.config["api"];
    let api = merge_api(draft, imported_api);
    let mut live = Map::new();
    live.insert("api".into(), api);
    if let Some(throttling) = draft.seed.live.get("throttling") {
        live.insert("throttling".into(), throttling.clone());
    }
    Ok(Built {
        live: Json::Object(live),
        ignored,
    })
}

/// `Resources.R1abc.Properties.X` as the caller knows it: `route 1abc: X`.
fn describe(at: &str) -> String {
    let mut parts = at.split('.');
    let (Some("Resources"), Some(logical)) = (parts.next(), parts.next()) else {
        return at.to_string();
    };
    let property = parts.skip_while(|p| *p == "Properties").collect::<Vec<_>>();
    let (what, id) = [
        ("RR", "route response"),
        ("IR", "integration response"),
        ("R", "route"),
        ("I", "integration"),
        ("A", "authorizer"),
        ("M", "model"),
        ("S", "stage"),
    ]
    .iter()
    .find_map(|(prefix, what)| logical.strip_prefix(prefix).map(|id| (*what, id)))
    .unwrap_or(("resource", logical));
    if property.is_empty() {
        format!("{what} {id}")
    } else {
        format!("{what} {id}: {}", property.join("."))
    }
}

/// `routeKey` → `RouteKey`.
fn pascal(key: &str) -> String {
    let mut chars = key.chars();
    chars.next().map_or_else(String::new, |first| {
        first.to_ascii_uppercase().to_string() + chars.as_str()
    })
}

/// A resource's properties: its fields in PascalCase without its id and the read-only ones.
fn properties(resource: &Json, skip: &[&str]) -> Map<String, Json> {
    let mut out = Map::new();
    out.insert("ApiId".into(), json!("Api"));
    for (key, value) in resource.as_object().into_iter().flatten() {
        if skip.contains(&key.as_str()) || key == "apiGatewayManaged" {
            continue;
        }
        out.insert(pascal(key), value.clone());
    }
    out
}

fn resource(kind: &str, properties: Map<String, Json>) -> Json {
    json!({ "Type": format!("AWS::ApiGatewayV2::{kind}"), "Properties": properties })
}

/// The template of `now`; `was` tells which authorizers and broker integrations are unchanged
/// (those are not given to the importer: the seed's originals are used instead).
fn template(now: &Resources, was: &Resources) -> Json {
    let mut resources = Map::new();
    let mut api = Map::new();
    for (field, property) in [
        ("name", "Name"),
        ("routeSelectionExpression", "RouteSelectionExpression"),
        ("apiKeySelectionExpression", "ApiKeySelectionExpression"),
        ("description", "Description"),
        ("version", "Version"),
    ] {
        if let Some(value) = now.api.get(field) {
            api.insert(property.into(), value.clone());
        }
    }
    api.insert("ProtocolType".into(), json!("WEBSOCKET"));
    resources.insert(
        "Api".into(),
        json!({ "Type": "AWS::ApiGatewayV2::Api", "Properties": api }),
    );
    for (id, integration) in &now.integrations {
        let kind = integration["integrationType"].as_str().unwrap_or_default();
        let props = if WSGATE_TYPES.contains(&kind) {
            // Unchanged (checked above): a stand-in the seed's original replaces.
            let mut props = Map::new();
            props.insert("ApiId".into(), json!("Api"));
            props.insert("IntegrationType".into(), json!("MOCK"));
            props
        } else {
            properties(integration, &["integrationId", "description"])
        };
        resources.insert(format!("I{id}"), resource("Integration", props));
        for (response_id, response) in now.integration_responses.get(id).into_iter().flatten() {
            let mut props = properties(response, &["integrationResponseId"]);
            props.insert("IntegrationId".into(), json!(format!("I{id}")));
            resources.insert(
                format!("IR{response_id}"),
                resource("IntegrationResponse", props),
            );
        }
    }
    for (id, authorizer) in &now.authorizers {
        let unchanged = was.authorizers.get(id) == Some(authorizer);
        if unchanged && authorizer["authorizerType"] != "REQUEST" {
            continue;
        }
        let props = properties(authorizer, &["authorizerId"]);
        resources.insert(format!("A{id}"), resource("Authorizer", props));
    }
    for (id, route) in &now.routes {
        let mut props = properties(route, &["routeId", "authorizerId", "target"]);
        if let Some(target) = route["target"].as_str() {
            let target = target
                .strip_prefix("integrations/")
                .map_or_else(|| target.to_string(), |i| format!("integrations/I{i}"));
            props.insert("Target".into(), json!(target));
        }
        if let Some(authorizer) = route["authorizerId"].as_str()
            && resources.contains_key(&format!("A{authorizer}"))
        {
            props.insert("AuthorizerId".into(), json!(format!("A{authorizer}")));
        }
        resources.insert(format!("R{id}"), resource("Route", props));
        for (response_id, response) in now.route_responses.get(id).into_iter().flatten() {
            let mut props = properties(response, &["routeResponseId"]);
            props.insert("RouteId".into(), json!(format!("R{id}")));
            resources.insert(format!("RR{response_id}"), resource("RouteResponse", props));
        }
    }
    for (id, model) in &now.models {
        let props = properties(model, &["modelId"]);
        resources.insert(format!("M{id}"), resource("Model", props));
    }
    for (n, stage) in now.stages.values().enumerate() {
        let mut props = Map::new();
        props.insert("ApiId".into(), json!("Api"));
        props.insert("StageName".into(), stage["stageName"].clone());
        if let Some(variables) = stage.get("stageVariables") {
            props.insert("StageVariables".into(), variables.clone());
        }
        resources.insert(format!("S{n}"), resource("Stage", props));
    }
    json!({ "AWSTemplateFormatVersion": "2010-09-09", "Resources": resources })
}

/// The route ids of `route_key` now and at the seed, and whether everything the route is made
/// of (the route, its route responses, its integration and integration responses) is as
/// seeded.
fn unchanged_route(draft: &Draft, route_id: &str) -> (bool, bool) {
    let (now, was) = (&draft.resources, &draft.seed.resources);
    let same = |a: Option<&Json>, b: Option<&Json>| a.is_some() && a == b;
    let same_responses = |a: Option<&Collection>, b: Option<&Collection>| a == b;
    let route = now.routes.get(route_id);
    let integration_id = route
        .and_then(|r| r["target"].as_str())
        .and_then(|t| t.strip_prefix("integrations/"))
        .unwrap_or_default();
    let integration = same(
        now.integrations.get(integration_id),
        was.integrations.get(integration_id),
    ) && same_responses(
        now.integration_responses.get(integration_id),
        was.integration_responses.get(integration_id),
    );
    let whole = integration
        && same(route, was.routes.get(route_id))
        && same_responses(
            now.route_responses.get(route_id),
            was.route_responses.get(route_id),
        );
    (whole, integration)
}

/// The wsgate `api`: the seed's as written, with what the resources say put in.
fn merge_api(draft: &Draft, imported: &Json) -> Json {
    let original = &draft.seed.live["api"];
    let mut api = original.as_object().cloned().unwrap_or_default();
    let (now, was) = (&draft.resources, &draft.seed.resources);
    if now.api != was.api {
        for key in [
            "route_selection_expression",
            "api_key_selection_expression",
            "description",
            "version",
        ] {
            match imported.get(key) {
                Some(value) => api.insert(key.into(), value.clone()),
                None => api.remove(key),
            };
        }
    }
    // Routes, by key.
    let mut routes = Map::new();
    let by_key: std::collections::BTreeMap<&str, &str> = now
        .routes
        .iter()
        .filter_map(|(id, r)| Some((r["routeKey"].as_str()?, id.as_str())))
        .collect();
    for (key, route) in imported["routes"].as_object().into_iter().flatten() {
        let route_id = by_key.get(key.as_str()).copied().unwrap_or_default();
        let seeded = draft.seed.routes.get(key).is_some_and(|id| id == route_id);
        let before = original["routes"].get(key).filter(|_| seeded);
        let (whole, integration) = unchanged_route(draft, route_id);
        let merged = match before {
            Some(before) if whole => before.clone(),
            _ => {
                let mut out = route.as_object().cloned().unwrap_or_default();
                if let Some(before) = before.and_then(Json::as_object) {
                    for (k, v) in before {
                        if !ROUTE_KEYS.contains(&k.as_str()) {
                            out.insert(k.clone(), v.clone());
                        }
                    }
                    if integration && let Some(i) = before.get("integration") {
                        out.insert("integration".into(), i.clone());
                    }
                }
                // The importer passes response models over; they are the route response's.
                match now
                    .route_responses
                    .get(route_id)
                    .and_then(|rs| rs.values().find(|r| r["routeResponseKey"] == "$default"))
                    .and_then(|r| r.get("responseModels"))
                {
                    Some(models) => out.insert("response_models".into(), models.clone()),
                    None => out.remove("response_models"),
                };
                // Authorizers the importer was not given (unchanged, not REQUEST) by name.
                if key == "$connect"
                    && let Some(name) = now.routes[route_id]["authorizerId"]
                        .as_str()
                        .and_then(|id| now.authorizers.get(id))
                        .and_then(|a| a["name"].as_str())
                {
                    out.insert("authorizer".into(), json!(name));
                    if now.routes[route_id]["authorizationType"] == "CUSTOM" {
                        out.insert("authorization_type".into(), json!("CUSTOM"));
                    }
                }
                Json::Object(out)
            }
        };
        routes.insert(key.clone(), merged);
    }
    api.insert("routes".into(), Json::Object(routes));
    // Models and authorizers, by name: unchanged ones as written.
    for (key, collection, seeded, id_field) in [
        ("models", &now.models, &was.models, "modelId"),
        (
            "authorizers",
            &now.authorizers,
            &was.authorizers,
            "authorizerId",
        ),
    ] {
        let mut out = Map::new();
        for resource in collection.values() {
            let Some(name) = resource["name"].as_str() else {
                continue;
            };
            let id = resource[id_field].as_str().unwrap_or_default();
            let kept = original[key]
                .get(name)
                .filter(|_| seeded.get(id) == Some(resource));
            if let Some(value) = kept.or_else(|| imported[key].get(name)) {
                out.insert(name.to_string(), value.clone());
            }
        }
        if out.is_empty() {
            api.remove(key);
        } else {
            api.insert(key.into(), Json::Object(out));
        }
    }
    // Stages, by name: wsgate's own stage settings kept, the variables from the resource.
    let mut stages = Map::new();
    for (name, stage) in &now.stages {
        let mut out = original["stages"]
            .get(name)
            .and_then(Json::as_object)
            .cloned()
            .unwrap_or_default();
        if was.stages.get(name) != Some(stage) {
            match stage
                .get("stageVariables")
                .filter(|v| v.as_object().is_some_and(|m| !m.is_empty()))
            {
                Some(variables) => out.insert("variables".into(), variables.clone()),
                None => out.remove("variables"),
            };
        }
        stages.insert(name.clone(), Json::Object(out));
    }
    api.insert("stages".into(), Json::Object(stages));
    Json::Object(api)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::management::draft::Draft;
    use crate::management::seed::seed;

    const YAML: &str = r#"
listen: 127.0.0.1:0
api:
  name: chat
  route_selection_expression: $request.body.action
  stages:
    prod:
      variables: { backend: "http://127.0.0.1:9" }
      execution_log: { logging_level: INFO }
  models:
    Message: { schema: { type: object, required: [text] } }
  routes:
    $connect:
      integration: { type: aws_proxy, uri: "${stageVariables.backend}/connect", timeout: 2s }
    send:
      integration: { type: http_proxy, uri: "${stageVariables.backend}/send" }
      route_response: true
      request_models: { $default: Message }
      ack: { id: $.id, window: 1m }
    ping:
      integration: { type: mock, response: '{"action":"pong"}' }
      route_response: true
"#;

    fn draft() -> Draft {
        let config = Config::from_yaml(YAML).expect("valid");
        let live = config.live_tree();
        let seeded = seed(
            &config,
            &live,
            "d0",
            "ws://127.0.0.1:1",
            "2026-01-01T00:00:00Z",
        );
        Draft {
            resources: seeded.resources.clone(),
            seed: seeded,
            deployed: Vec::new(),
        }
    }

    #[test]
    fn an_untouched_api_builds_back_to_the_definition_as_written() {
        let draft = draft();
        let built = definition(&draft, "us-east-1", "000000000000").expect("builds");
        assert_eq!(built.live["api"], draft.seed.live["api"]);
        let config = Config::from_yaml(YAML).expect("valid");
        config.with_live(&built.live).expect("a valid definition");
    }

    #[test]
    fn a_changed_route_keeps_wsgates_own_settings_and_a_new_one_is_imported() {
        let mut draft = draft();
        let r = &mut draft.resources;
        let (send_id, send) = r
            .routes
            .iter_mut()
            .find(|(_, route)| route["routeKey"] == "send")
            .expect("seeded");
        let send_id = send_id.clone();
        send["modelSelectionExpression"] = json!("$request.body.kind");
        let integration = json!({
            "integrationId": "newint1",
            "integrationType": "HTTP_PROXY",
            "integrationUri": "http://127.0.0.1:9/hello",
            "integrationMethod": "POST",
        });
        r.integrations.insert("newint1".into(), integration);
        r.routes.insert(
            "newrte1".into(),
            json!({"routeId": "newrte1", "routeKey": "hello", "target": "integrations/newint1"}),
        );
        let built = definition(&draft, "us-east-1", "000000000000").expect("builds");
        let routes = &built.live["api"]["routes"];
        let send = &routes["send"];
        assert_eq!(send["ack"]["window"], "1m", "{send}");
        assert_eq!(send["model_selection_expression"], "$request.body.kind");
        assert_eq!(send["route_response"], true);
        assert_eq!(
            send["integration"], draft.seed.live["api"]["routes"]["send"]["integration"],
            "an unchanged integration is the one written"
        );
        assert_eq!(routes["hello"]["integration"]["type"], "http_proxy");
        assert_eq!(routes["ping"], draft.seed.live["api"]["routes"]["ping"]);
        assert_eq!(
            built.live["api"]["stages"]["prod"]["execution_log"],
            json!({"logging_level": "INFO"})
        );
        let config = Config::from_yaml(YAML).expect("valid");
        config.with_live(&built.live).expect("a valid definition");
        // A route whose target names no integration cannot be deployed.
        draft
            .resources
            .routes
            .get_mut(&send_id)
            .expect("seeded")
            .as_object_mut()
            .expect("object")
            .remove("target");
        let refused = definition(&draft, "us-east-1", "000000000000").expect_err("refused");
        assert!(refused.to_string().contains("route"), "{refused}");
    }
}
