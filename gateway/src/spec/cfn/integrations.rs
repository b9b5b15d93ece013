//! `AWS::ApiGatewayV2::Integration` and `IntegrationResponse` → a route's `integration`.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use super::{AWS_SERVICES, Importer, Props};
use crate::spec::yaml::Node;

impl Importer<'_> {
    pub(super) fn integrations(&mut self, found: &[(&str, &Node)]) -> BTreeMap<String, Json> {
        let mut out = BTreeMap::new();
        for (id, node) in found {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            if let Some(integration) = self.integration(&mut props) {
                out.insert((*id).to_string(), integration);
            }
            self.leftovers(props, "no equivalent in wsgate (ignored)");
        }
        out
    }

    pub(super) fn integration(&mut self, props: &mut Props<'_>) -> Option<Json> {
        let line = props.line;
        let kind = self.string(props, "IntegrationType").unwrap_or_default();
        let mut out = Map::new();
        if let Some(ms) = self.string(props, "TimeoutInMillis") {
            if kind == "MOCK" {
                self.note(
                    props.line_of("TimeoutInMillis"),
                    props.at("TimeoutInMillis"),
                    "a MOCK integration answers at once (ignored)",
                );
            } else {
                out.insert("timeout".into(), json!(format!("{ms}ms")));
            }
        }
        let method = self.string(props, "IntegrationMethod");
        let templates = |this: &mut Self, props: &mut Props<'_>, out: &mut Map<String, Json>| {
            let templates = this.string_map(props, "RequestTemplates");
            if !templates.is_empty() {
                out.insert("request_templates".into(), Json::Object(templates));
            }
            if let Some(t) = this.string(props, "TemplateSelectionExpression") {
                out.insert("template_selection_expression".into(), json!(t));
            }
        };
        let transform = |this: &mut Self, props: &mut Props<'_>, out: &mut Map<String, Json>| {
            if let Some(p) = this.string(props, "PassthroughBehavior") {
                out.insert("passthrough_behavior".into(), json!(p));
            }
            if let Some(c) = this.string(props, "ContentHandlingStrategy") {
                out.insert("content_handling_strategy".into(), json!(c));
            }
        };
        let parameters = |this: &mut Self, props: &mut Props<'_>, out: &mut Map<String, Json>| {
            let parameters = this.string_map(props, "RequestParameters");
            if !parameters.is_empty() {
                out.insert("request_parameters".into(), Json::Object(parameters));
            }
        };
        let uri = |this: &mut Self, props: &mut Props<'_>| {
            let uri = this.function_uri(props, "IntegrationUri");
            if uri.is_none() && props.node.and_then(|n| n.get("IntegrationUri")).is_none() {
                this.note(
                    line,
                    props.at("IntegrationUri"),
                    "missing: integration not imported",
                );
            }
            uri
        };
        match kind.as_str() {
            "AWS_PROXY" => {
                out.insert("type".into(), json!("aws_proxy"));
                out.insert("uri".into(), json!(uri(self, props)?));
                if method.as_deref().is_some_and(|m| m != "POST") {
                    self.note(
                        props.line_of("IntegrationMethod"),
                        props.at("IntegrationMethod"),
                        "Lambda is always invoked with POST (ignored)",
                    );
                }
            }
            "HTTP_PROXY" | "HTTP" => {
                let proxy = kind == "HTTP_PROXY";
                out.insert(
                    "type".into(),
                    json!(if proxy { "http_proxy" } else { "http" }),
                );
                out.insert("uri".into(), json!(uri(self, props)?));
                out.insert(
                    "method".into(),
                    json!(method.unwrap_or_else(|| "POST".into())),
                );
                parameters(self, props, &mut out);
                if !proxy {
                    templates(self, props, &mut out);
                    transform(self, props, &mut out);
                }
            }
            "MOCK" => {
                out.insert("type".into(), json!("mock"));
                templates(self, props, &mut out);
            }
            "AWS" => {
                let target = uri(self, props)?;
                let parts: Vec<&str> = target.splitn(6, ':').collect();
                let (service, action) = match parts.as_slice() {
                    ["arn", _, "apigateway", _, service, rest] => (
                        service.to_string(),
                        rest.strip_prefix("action/").map(str::to_string),
                    ),
                    _ => (String::new(), None),
                };
                let Some(action) = action.filter(|_| AWS_SERVICES.contains(&service.as_str()))
                else {
                    self.note(props.line_of("IntegrationUri"), props.at("IntegrationUri"), format!("{target}: wsgate calls the actions of {} by `action/` URI only (integration not imported)", AWS_SERVICES.join(", ")));
                    return None;
                };
                out.insert("type".into(), json!("aws"));
                out.insert("service".into(), json!(service));
                out.insert("action".into(), json!(action));
                if let Some(region) = parts.get(3).filter(|r| !r.is_empty()) {
                    out.insert("region".into(), json!(region));
                }
                templates(self, props, &mut out);
                transform(self, props, &mut out);
            }
            "" => {
                self.note(
                    props.line_of("IntegrationType"),
                    props.at("IntegrationType"),
                    "missing: integration not imported",
                );
                return None;
            }
            other => {
                self.note(
                    props.line_of("IntegrationType"),
                    props.at("IntegrationType"),
                    format!(
                        "{other} is not an integration type wsgate has (integration not imported)"
                    ),
                );
                return None;
            }
        }
        if let Some(connection) = self.string(props, "ConnectionType")
            && connection != "INTERNET"
        {
            self.note(
                props.line_of("ConnectionType"),
                props.at("ConnectionType"),
                format!("{connection}: wsgate reaches backends directly (ignored)"),
            );
        }
        if let Some(version) = self.string(props, "PayloadFormatVersion")
            && version != "1.0"
        {
            self.note(
                props.line_of("PayloadFormatVersion"),
                props.at("PayloadFormatVersion"),
                "WebSocket APIs use payload format 1.0 (ignored)",
            );
        }
        if props.get("CredentialsArn").is_some() {
            self.note(props.line_of("CredentialsArn"), props.at("CredentialsArn"), "wsgate signs with the credentials of its aws: section, it assumes no role (ignored)");
        }
        Some(Json::Object(out))
    }

    pub(super) fn integration_responses(
        &mut self,
        found: &[(&str, &Node)],
        mut integrations: BTreeMap<String, Json>,
    ) -> BTreeMap<String, Json> {
        for (id, node) in found {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            let integration = self.string(&mut props, "IntegrationId");
            let key = self.string(&mut props, "IntegrationResponseKey");
            let target = integration.as_deref().and_then(|i| integrations.get_mut(i));
            let (Some(target), Some(key)) = (target, key) else {
                self.note(
                    props.line,
                    format!("Resources.{id}"),
                    "names no imported integration or has no IntegrationResponseKey (not imported)",
                );
                continue;
            };
            let kind = target["type"].as_str().unwrap_or_default().to_string();
            if !["http", "mock", "aws"].contains(&kind.as_str()) {
                self.note(props.line, format!("Resources.{id}"), format!("a {kind} integration's answer is used as it is: integration responses apply to HTTP, AWS and MOCK integrations (not imported)"));
                continue;
            }
            let mut response = Map::new();
            let templates = self.string_map(&mut props, "ResponseTemplates");
            if !templates.is_empty() {
                response.insert("response_templates".into(), Json::Object(templates));
            }
            if let Some(t) = self.string(&mut props, "TemplateSelectionExpression") {
                response.insert("template_selection_expression".into(), json!(t));
            }
            if let Some(c) = self.string(&mut props, "ContentHandlingStrategy") {
                response.insert("content_handling_strategy".into(), json!(c));
            }
            let responses = target
                .as_object_mut()
                .expect("integrations are objects")
                .entry("integration_responses")
                .or_insert_with(|| json!({}));
            responses[key] = Json::Object(response);
            self.leftovers(props, "no equivalent in wsgate (ignored)");
        }
        integrations
    }
}
