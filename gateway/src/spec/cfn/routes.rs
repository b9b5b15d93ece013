//! `Authorizer`, `RouteResponse`, `Route` and `Model` resources → authorizers, routes and models.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use super::{Importer, Props};
use crate::spec::yaml::Node;

impl Importer<'_> {
    /// Authorizers by logical id → (their name, their configuration).
    pub(super) fn authorizers(
        &mut self,
        found: &[(&str, &Node)],
    ) -> BTreeMap<String, (String, Json)> {
        let mut out = BTreeMap::new();
        for (id, node) in found {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            let name = self
                .string(&mut props, "Name")
                .unwrap_or_else(|| (*id).to_string());
            let kind = self
                .string(&mut props, "AuthorizerType")
                .unwrap_or_default();
            if kind != "REQUEST" {
                self.note(
                    props.line_of("AuthorizerType"),
                    props.at("AuthorizerType"),
                    format!("{kind}: WebSocket APIs have REQUEST authorizers only (not imported)"),
                );
                continue;
            }
            let Some(uri) = self.function_uri(&mut props, "AuthorizerUri") else {
                self.missing(&props, "AuthorizerUri", "authorizer");
                continue;
            };
            let mut authorizer = Map::new();
            authorizer.insert("type".into(), json!("request"));
            authorizer.insert("uri".into(), json!(uri));
            if let Some(sources) = self.json(&mut props, "IdentitySource") {
                let sources = match sources {
                    Json::Array(items) => items,
                    Json::String(s) => s.split(',').map(|p| json!(p.trim())).collect(),
                    _ => Vec::new(),
                };
                authorizer.insert("identity_sources".into(), Json::Array(sources));
            }
            if let Some(ttl) = self.string(&mut props, "AuthorizerResultTtlInSeconds") {
                authorizer.insert("result_ttl".into(), json!(format!("{ttl}s")));
            }
            authorizer.insert("region".into(), json!(self.options.region));
            authorizer.insert("account_id".into(), json!(self.options.account_id));
            if props.get("AuthorizerCredentialsArn").is_some() {
                self.note(props.line_of("AuthorizerCredentialsArn"), props.at("AuthorizerCredentialsArn"), "wsgate signs with the credentials of its aws: section, it assumes no role (ignored)");
            }
            out.insert((*id).to_string(), (name, Json::Object(authorizer)));
            self.leftovers(props, "no equivalent in wsgate (ignored)");
        }
        out
    }

    /// Routes (logical ids) that have a `$default` route response.
    pub(super) fn route_responses(&mut self, found: &[(&str, &Node)]) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (id, node) in found {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            let route = self.string(&mut props, "RouteId");
            let key = self.string(&mut props, "RouteResponseKey");
            match (route, key.as_deref()) {
                (Some(route), Some("$default")) => {
                    out.insert(route);
                }
                (_, other) => self.note(props.line, format!("Resources.{id}"), format!("route response key {other:?}: wsgate sends the integration's answer as the $default route response only (not imported)")),
            }
            self.leftovers(
                props,
                "response models and parameters are not checked by wsgate (ignored)",
            );
        }
        out
    }

    pub(super) fn routes(
        &mut self,
        found: &[(&str, &Node)],
        integrations: &BTreeMap<String, Json>,
        authorizers: &BTreeMap<String, (String, Json)>,
        two_way: &BTreeSet<String>,
    ) -> Map<String, Json> {
        let mut out = Map::new();
        for (id, node) in found {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            let Some(key) = self.string(&mut props, "RouteKey") else {
                self.missing(&props, "RouteKey", "route");
                continue;
            };
            let target = self.string(&mut props, "Target");
            let integration = target
                .as_deref()
                .and_then(|t| t.strip_prefix("integrations/"))
                .and_then(|i| integrations.get(i));
            let Some(integration) = integration else {
                self.note(
                    props.line_of("Target"),
                    props.at("Target"),
                    format!(
                        "{} names no imported integration (route {key} not imported)",
                        target.as_deref().unwrap_or("(no target)")
                    ),
                );
                continue;
            };
            let mut route = Map::new();
            route.insert("integration".into(), integration.clone());
            let selection = props.get("RouteResponseSelectionExpression");
            if two_way.contains(*id) {
                route.insert("route_response".into(), json!(true));
            } else if selection.is_some() {
                self.note(
                    props.line_of("RouteResponseSelectionExpression"),
                    props.at("RouteResponseSelectionExpression"),
                    "no AWS::ApiGatewayV2::RouteResponse for this route: one-way",
                );
            }
            let connect = key == "$connect";
            let kind = self.string(&mut props, "AuthorizationType");
            if let Some(authorizer) = self.string(&mut props, "AuthorizerId") {
                match authorizers.get(&authorizer) {
                    Some((name, _)) if connect => {
                        route.insert("authorizer".into(), json!(name));
                    }
                    Some(_) => self.note(
                        props.line_of("AuthorizerId"),
                        props.at("AuthorizerId"),
                        "authorizers run on $connect only (ignored)",
                    ),
                    None => self.note(
                        props.line_of("AuthorizerId"),
                        props.at("AuthorizerId"),
                        format!("{authorizer} is no imported authorizer (ignored)"),
                    ),
                }
            }
            match kind.as_deref() {
                None | Some("NONE") => {}
                Some(kind @ ("AWS_IAM" | "CUSTOM")) if connect => {
                    if kind == "AWS_IAM" || route.contains_key("authorizer") {
                        route.insert("authorization_type".into(), json!(kind));
                    }
                }
                Some(other) => self.note(props.line_of("AuthorizationType"), props.at("AuthorizationType"), format!("{other} (on {key}): wsgate authorizes $connect with NONE, AWS_IAM or CUSTOM (ignored)")),
            }
            if let Some(required) = self.json(&mut props, "ApiKeyRequired")
                && (required == true || required == "true")
            {
                if connect {
                    route.insert("api_key_required".into(), json!(true));
                } else {
                    self.note(
                        props.line_of("ApiKeyRequired"),
                        props.at("ApiKeyRequired"),
                        "API keys are checked on $connect only (ignored)",
                    );
                }
            }
            if let Some(expression) = self.string(&mut props, "ModelSelectionExpression") {
                route.insert("model_selection_expression".into(), json!(expression));
            }
            let models = self.string_map(&mut props, "RequestModels");
            if !models.is_empty() {
                route.insert("request_models".into(), Json::Object(models));
            }
            if out.contains_key(&key) {
                self.note(
                    props.line_of("RouteKey"),
                    props.at("RouteKey"),
                    format!("route {key} is defined by an earlier resource already (not imported)"),
                );
                continue;
            }
            out.insert(key, Json::Object(route));
            self.leftovers(props, "no equivalent in wsgate (ignored)");
        }
        out
    }

    pub(super) fn models(&mut self, found: &[(&str, &Node)]) -> Map<String, Json> {
        let mut out = Map::new();
        for (id, node) in found {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            let name = self
                .string(&mut props, "Name")
                .unwrap_or_else(|| (*id).to_string());
            let schema = match self.json(&mut props, "Schema") {
                Some(Json::String(text)) => match serde_json::from_str::<Json>(&text) {
                    Ok(schema) => schema,
                    Err(error) => {
                        self.note(
                            props.line_of("Schema"),
                            props.at("Schema"),
                            format!("not JSON: {error} (model not imported)"),
                        );
                        continue;
                    }
                },
                Some(schema @ Json::Object(_)) => schema,
                _ => {
                    self.note(
                        props.line_of("Schema"),
                        props.at("Schema"),
                        "missing or not a JSON Schema (model not imported)",
                    );
                    continue;
                }
            };
            let mut model = Map::new();
            model.insert("schema".into(), schema);
            if let Some(content_type) = self.string(&mut props, "ContentType") {
                model.insert("content_type".into(), json!(content_type));
            }
            if let Some(description) = self.string(&mut props, "Description") {
                model.insert("description".into(), json!(description));
            }
            out.insert(name, Json::Object(model));
            self.leftovers(props, "no equivalent in wsgate (ignored)");
        }
        out
    }
}
