//! `wsgate import sam|cloudformation`: the `AWS::ApiGatewayV2::*` resources of a WebSocket API
//! in a CloudFormation or SAM template (and the Lambda functions they call) become a wsgate
//! configuration. Function references become URLs or ARNs through the `--functions` map; every
//! property or resource wsgate cannot express becomes a [`Note`] with its line.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use super::cfn_eval::{EvalError, Evaluator, FUNCTION_TYPES, Pseudo, scalar_text};
use super::yaml::{self, Node};
use super::{Imported, Note, SpecError};

/// What the template does not say: function locations, parameter values, the pseudo parameters.
#[derive(Debug, Clone)]
pub struct CfnOptions {
    /// Lambda functions (logical id or `FunctionName`) → URL, `unix:` URI or function ARN.
    pub functions: BTreeMap<String, String>,
    /// Template parameters given on the command line (override `Default`s).
    pub parameters: BTreeMap<String, String>,
    /// Logical id of the API to import when the template has several WebSocket APIs.
    pub api: Option<String>,
    /// `AWS::Region`.
    pub region: String,
    /// `AWS::AccountId`.
    pub account_id: String,
    /// `AWS::StackName`.
    pub stack_name: String,
    /// `listen` of the configuration.
    pub listen: String,
}

impl Default for CfnOptions {
    fn default() -> Self {
        Self {
            functions: BTreeMap::new(),
            parameters: BTreeMap::new(),
            api: None,
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            stack_name: "wsgate".into(),
            listen: "127.0.0.1:8080".into(),
        }
    }
}

/// Top-level template sections read or knowingly passed over.
const SECTIONS: [&str; 6] = [
    "AWSTemplateFormatVersion",
    "Description",
    "Parameters",
    "Mappings",
    "Resources",
    "Transform",
];
/// Resource attributes that change nothing for wsgate.
const RESOURCE_KEYS: [&str; 6] = [
    "Type",
    "Properties",
    "DependsOn",
    "Metadata",
    "DeletionPolicy",
    "UpdateReplacePolicy",
];
/// Services of `type: aws` integrations.
const AWS_SERVICES: [&str; 7] = [
    "sqs", "sns", "kinesis", "events", "states", "dynamodb", "lambda",
];

/// Imports `text`, a template read from `path` (named in errors).
///
/// # Errors
/// [`SpecError::Syntax`] for YAML errors, [`SpecError::Invalid`] when the template has no
/// WebSocket API (or several and no `api` option), a parameter is unknown, or a `functions`
/// entry names no function.
pub fn import_cloudformation(
    path: &str,
    text: &str,
    options: &CfnOptions,
) -> Result<Imported, SpecError> {
    let root = yaml::parse(text).map_err(|e| SpecError::Syntax {
        path: path.to_string(),
        line: e.line,
        message: e.message,
    })?;
    let mut notes = Vec::new();
    for (key, node) in root.entries() {
        match key.as_str() {
            "Transform" => {
                let transforms = match node.to_json() {
                    Json::Array(items) => items,
                    other => vec![other],
                };
                for transform in transforms {
                    if transform != "AWS::Serverless-2016-10-31" {
                        notes.push(Note::new(
                            Some(node.line),
                            "Transform",
                            format!("{transform} is not applied (only the SAM transform's AWS::Serverless::Function is understood)"),
                        ));
                    }
                }
            }
            k if SECTIONS.contains(&k) => {}
            "Outputs" => notes.push(Note::new(
                Some(node.line),
                key.as_str(),
                "stack outputs have no place in a wsgate configuration (ignored)",
            )),
            _ => notes.push(Note::new(
                Some(node.line),
                key.as_str(),
                "section not evaluated by the importer (ignored)",
            )),
        }
    }
    let parameters = parameters(&root, options)?;
    let pseudo = Pseudo {
        region: options.region.clone(),
        account_id: options.account_id.clone(),
        stack_name: options.stack_name.clone(),
    };
    let evaluator = Evaluator::new(&root, parameters, pseudo);
    let resources: Vec<(&str, &Node)> = root
        .get("Resources")
        .map(|r| r.entries().iter().map(|(k, v)| (k.as_str(), v)).collect())
        .unwrap_or_default();
    let api_id = pick_api(&resources, options)?;
    let mut importer = Importer {
        ev: &evaluator,
        notes,
        options,
        api_id,
        used_functions: BTreeMap::new(),
    };
    let mut config = importer.run(&resources, root.get("Description"))?;
    let mut notes = importer.notes;
    super::add_api_key_placeholder(&mut config, &mut notes);
    notes.sort_by_key(|n| n.line.unwrap_or(0));
    Ok(Imported { config, notes })
}

fn parameters(root: &Node, options: &CfnOptions) -> Result<BTreeMap<String, Json>, SpecError> {
    let mut values = BTreeMap::new();
    let declared = root
        .get("Parameters")
        .map(Node::entries)
        .unwrap_or_default();
    for (name, spec) in declared {
        let value = match options.parameters.get(name) {
            Some(given) => Json::String(given.clone()),
            None => spec.get("Default").map(Node::to_json).unwrap_or(Json::Null),
        };
        values.insert(name.clone(), value);
    }
    if let Some(unknown) = options.parameters.keys().find(|k| !values.contains_key(*k)) {
        return Err(SpecError::Invalid(format!(
            "--parameter {unknown}: the template declares no such parameter"
        )));
    }
    Ok(values)
}

fn type_of(node: &Node) -> &str {
    node.get("Type").and_then(Node::as_str).unwrap_or_default()
}

fn is_websocket(node: &Node) -> bool {
    let protocol = node.get("Properties").and_then(|p| p.get("ProtocolType"));
    type_of(node) == "AWS::ApiGatewayV2::Api"
        && protocol.and_then(Node::as_str) == Some("WEBSOCKET")
}

fn pick_api(resources: &[(&str, &Node)], options: &CfnOptions) -> Result<String, SpecError> {
    let apis: Vec<&str> = resources
        .iter()
        .filter(|(_, node)| is_websocket(node))
        .map(|(id, _)| *id)
        .collect();
    match (&options.api, apis.as_slice()) {
        (Some(wanted), _) if apis.contains(&wanted.as_str()) => Ok(wanted.clone()),
        (Some(wanted), _) => Err(SpecError::Invalid(format!(
            "--api {wanted}: no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET has that logical id (found: {})",
            apis.join(", ")
        ))),
        (None, [one]) => Ok((*one).to_string()),
        (None, []) => Err(SpecError::Invalid(
            "the template has no AWS::ApiGatewayV2::Api with ProtocolType WEBSOCKET".into(),
        )),
        (None, several) => Err(SpecError::Invalid(format!(
            "the template has several WebSocket APIs ({}): choose one with --api",
            several.join(", ")
        ))),
    }
}

struct Importer<'a> {
    ev: &'a Evaluator<'a>,
    notes: Vec<Note>,
    options: &'a CfnOptions,
    api_id: String,
    /// Functions an integration or authorizer calls → the URI used and whether `--functions`
    /// gave it.
    used_functions: BTreeMap<String, (String, bool)>,
}

/// One resource's properties, read one key at a time; what is never read is reported.
struct Props<'n> {
    id: &'n str,
    node: Option<&'n Node>,
    line: usize,
    read: BTreeSet<&'static str>,
}

impl<'n> Props<'n> {
    /// The `Properties` of resource `id`, placed at the resource's own line.
    fn of(id: &'n str, node: &'n Node) -> Self {
        Self {
            id,
            node: node.get("Properties"),
            line: node.line,
            read: BTreeSet::new(),
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'n Node> {
        self.read.insert(key);
        self.node?.get(key)
    }

    fn at(&self, key: &str) -> String {
        format!("Resources.{}.Properties.{key}", self.id)
    }

    /// The line of property `key`, else of the resource.
    fn line_of(&self, key: &str) -> usize {
        self.node
            .and_then(|n| n.get(key))
            .map_or(self.line, |n| n.line)
    }
}

impl Importer<'_> {
    fn note(&mut self, line: usize, at: impl Into<String>, message: impl Into<String>) {
        self.notes.push(Note::new(Some(line), at, message));
    }

    fn failed(&mut self, at: String, error: EvalError) {
        self.notes.push(Note::new(
            Some(error.line),
            at,
            format!("{} (left out)", error.message),
        ));
    }

    fn string(&mut self, props: &mut Props<'_>, key: &'static str) -> Option<String> {
        let node = props.get(key)?;
        match self.ev.eval_string(node) {
            Ok((text, _)) => Some(text),
            Err(error) => {
                self.failed(props.at(key), error);
                None
            }
        }
    }

    fn json(&mut self, props: &mut Props<'_>, key: &'static str) -> Option<Json> {
        let node = props.get(key)?;
        match self.ev.eval(node) {
            Ok(evaluated) => Some(evaluated.value),
            Err(error) => {
                self.failed(props.at(key), error);
                None
            }
        }
    }

    fn string_map(&mut self, props: &mut Props<'_>, key: &'static str) -> Map<String, Json> {
        let Some(value) = self.json(props, key) else {
            return Map::new();
        };
        let line = props.get(key).map_or(props.line, |n| n.line);
        match value {
            Json::Object(entries) => entries
                .into_iter()
                .filter_map(|(k, v)| match scalar_text(&v) {
                    Some(text) => Some((k, Json::String(text))),
                    None => {
                        self.note(line, props.at(key), format!("{k}: not a string (left out)"));
                        None
                    }
                })
                .collect(),
            _ => {
                self.note(line, props.at(key), "expected a map (left out)");
                Map::new()
            }
        }
    }

    /// Reports the properties nobody read, then forgets them.
    fn leftovers(&mut self, props: Props<'_>, why: &str) {
        let Some(node) = props.node else { return };
        for (key, value) in node.entries() {
            if !props.read.contains(key.as_str()) {
                self.note(value.line, props.at(key), why.to_string());
            }
        }
    }

    /// Whether the resource's `ApiId` is the imported API (reported when not).
    fn belongs(&mut self, props: &mut Props<'_>) -> bool {
        let line = props.line;
        match self.string(props, "ApiId") {
            Some(api) if api == self.api_id => true,
            Some(other) => {
                self.note(
                    line,
                    format!("Resources.{}", props.id),
                    format!("belongs to API {other}, not {} (not imported)", self.api_id),
                );
                false
            }
            None => {
                self.note(
                    line,
                    format!("Resources.{}", props.id),
                    "has no ApiId (not imported)",
                );
                false
            }
        }
    }

    /// The URI of a Lambda-calling property: the `--functions` entry of the function it names,
    /// else the resolved value (an API Gateway or Lambda ARN wsgate invokes by ARN).
    fn function_uri(&mut self, props: &mut Props<'_>, key: &'static str) -> Option<String> {
        let node = props.get(key)?;
        let (uri, refs) = match self.ev.eval_string(node) {
            Ok(found) => found,
            Err(error) => {
                self.failed(props.at(key), error);
                return None;
            }
        };
        let functions: Vec<&String> = refs
            .iter()
            .filter(|r| {
                self.ev
                    .resource_type(r)
                    .is_some_and(|t| FUNCTION_TYPES.contains(&t))
            })
            .collect();
        let [function] = functions.as_slice() else {
            return Some(uri);
        };
        let name = self.ev.function_name(function);
        let mapped = (self.options.functions.get(function.as_str()))
            .or_else(|| self.options.functions.get(&name))
            .cloned();
        let given = mapped.is_some();
        let uri = mapped.unwrap_or(uri);
        self.used_functions
            .insert((*function).clone(), (uri.clone(), given));
        Some(uri)
    }

    fn run(
        &mut self,
        resources: &[(&str, &Node)],
        template_description: Option<&Node>,
    ) -> Result<Json, SpecError> {
        let by_type = |kind: &str| -> Vec<(&str, &Node)> {
            resources
                .iter()
                .filter(|(_, n)| type_of(n) == kind)
                .copied()
                .collect()
        };
        for (id, node) in resources {
            for (key, value) in node.entries() {
                if key == "Condition" {
                    self.note(
                        value.line,
                        format!("Resources.{id}.Condition"),
                        "conditions are not evaluated: imported as if it held",
                    );
                } else if !RESOURCE_KEYS.contains(&key.as_str()) {
                    self.note(
                        value.line,
                        format!("Resources.{id}.{key}"),
                        "resource attribute without an equivalent (ignored)",
                    );
                }
            }
        }
        let mut api = self.api(resources, template_description);
        let integrations = self.integrations(&by_type("AWS::ApiGatewayV2::Integration"));
        let integrations = self.integration_responses(
            &by_type("AWS::ApiGatewayV2::IntegrationResponse"),
            integrations,
        );
        let authorizers = self.authorizers(&by_type("AWS::ApiGatewayV2::Authorizer"));
        let two_way = self.route_responses(&by_type("AWS::ApiGatewayV2::RouteResponse"));
        let routes = self.routes(
            &by_type("AWS::ApiGatewayV2::Route"),
            &integrations,
            &authorizers,
            &two_way,
        );
        let models = self.models(&by_type("AWS::ApiGatewayV2::Model"));
        let stages = self.stages(
            &by_type("AWS::ApiGatewayV2::Stage"),
            &by_type("AWS::ApiGatewayV2::Deployment"),
        );
        let domains = self.domains(
            &by_type("AWS::ApiGatewayV2::DomainName"),
            &by_type("AWS::ApiGatewayV2::ApiMapping"),
        );
        self.functions(resources)?;
        self.other_resources(resources);
        if routes.is_empty() {
            return Err(SpecError::Invalid(format!(
                "API {} has no route that could be imported",
                self.api_id
            )));
        }
        api.insert("routes".into(), Json::Object(routes));
        api.insert(
            "authorizers".into(),
            Json::Object(authorizers.into_values().collect()),
        );
        api.insert("models".into(), Json::Object(models));
        api.insert("stages".into(), Json::Object(stages));
        api.retain(|_, v| !(v.as_object().is_some_and(Map::is_empty)));
        let mut config = Map::new();
        config.insert("listen".into(), json!(self.options.listen));
        config.insert("api".into(), Json::Object(api));
        if !domains.is_empty() {
            config.insert("domains".into(), Json::Array(domains));
        }
        Ok(Json::Object(config))
    }

    fn api(
        &mut self,
        resources: &[(&str, &Node)],
        template_description: Option<&Node>,
    ) -> Map<String, Json> {
        let id = self.api_id.clone();
        let node = resources
            .iter()
            .find(|(r, _)| *r == id)
            .map(|(_, n)| *n)
            .expect("picked from the resources");
        let mut props = Props {
            id: &id,
            node: node.get("Properties"),
            line: node.get("Type").map_or(0, |t| t.line),
            read: BTreeSet::new(),
        };
        let mut api = Map::new();
        props.get("ProtocolType");
        let name = self
            .string(&mut props, "Name")
            .unwrap_or_else(|| id.clone());
        api.insert("name".into(), json!(name));
        let description = self.string(&mut props, "Description").or_else(|| {
            template_description
                .and_then(Node::as_str)
                .map(|d| d.trim().to_string())
        });
        if let Some(description) = description {
            api.insert("description".into(), json!(description));
        }
        if let Some(version) = self.string(&mut props, "Version") {
            api.insert("version".into(), json!(version));
        }
        let expression = self
            .string(&mut props, "RouteSelectionExpression")
            .unwrap_or_else(|| {
                self.note(
                    props.line_of("RouteSelectionExpression"),
                    props.at("RouteSelectionExpression"),
                    "missing: $request.body.action assumed",
                );
                "$request.body.action".into()
            });
        api.insert("route_selection_expression".into(), json!(expression));
        if let Some(keys) = self.string(&mut props, "ApiKeySelectionExpression") {
            api.insert("api_key_selection_expression".into(), json!(keys));
        }
        self.leftovers(props, "no equivalent in wsgate (ignored)");
        api
    }

    fn integrations(&mut self, found: &[(&str, &Node)]) -> BTreeMap<String, Json> {
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

    fn integration(&mut self, props: &mut Props<'_>) -> Option<Json> {
        let line = props.line;
        let kind = self.string(props, "IntegrationType").unwrap_or_default();
        let mut out = Map::new();
        if let Some(ms) = self.string(props, "TimeoutInMillis") {
            out.insert("timeout".into(), json!(format!("{ms}ms")));
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

    fn integration_responses(
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

    /// Authorizers by logical id → (their name, their configuration).
    fn authorizers(&mut self, found: &[(&str, &Node)]) -> BTreeMap<String, (String, Json)> {
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
                self.note(
                    props.line_of("AuthorizerUri"),
                    props.at("AuthorizerUri"),
                    "missing (authorizer not imported)",
                );
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
    fn route_responses(&mut self, found: &[(&str, &Node)]) -> BTreeSet<String> {
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

    fn routes(
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
                self.note(
                    props.line_of("RouteKey"),
                    props.at("RouteKey"),
                    "missing (route not imported)",
                );
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

    fn models(&mut self, found: &[(&str, &Node)]) -> Map<String, Json> {
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

    fn stages(
        &mut self,
        found: &[(&str, &Node)],
        deployments: &[(&str, &Node)],
    ) -> Map<String, Json> {
        let mut out = Map::new();
        for (id, node) in found {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            let Some(name) = self.string(&mut props, "StageName") else {
                self.note(
                    props.line_of("StageName"),
                    props.at("StageName"),
                    "missing (stage not imported)",
                );
                continue;
            };
            let variables = self.string_map(&mut props, "StageVariables");
            props.get("DeploymentId");
            props.get("AutoDeploy");
            let mut stage = Map::new();
            if !variables.is_empty() {
                stage.insert("variables".into(), Json::Object(variables));
            }
            out.insert(name, Json::Object(stage));
            self.leftovers(props, "no equivalent in wsgate's stage (ignored; see throttling: and stages' access_log / execution_log)");
        }
        for (id, node) in deployments {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            if let Some(name) = self.string(&mut props, "StageName") {
                out.entry(name).or_insert_with(|| json!({}));
            }
            self.leftovers(
                props,
                "wsgate serves its configuration as deployed (ignored)",
            );
        }
        if out.is_empty() {
            self.notes.push(Note::new(
                None,
                "Resources",
                "no AWS::ApiGatewayV2::Stage: stage `prod` created",
            ));
            out.insert("prod".into(), json!({}));
        }
        out
    }

    fn domains(&mut self, names: &[(&str, &Node)], mappings: &[(&str, &Node)]) -> Vec<Json> {
        let mut domains: BTreeMap<String, Vec<Json>> = BTreeMap::new();
        for (id, node) in names {
            let mut props = Props::of(id, node);
            if let Some(name) = self.string(&mut props, "DomainName") {
                domains.entry(name).or_default();
            }
            if props.get("DomainNameConfigurations").is_some() {
                self.note(props.line_of("DomainNameConfigurations"), props.at("DomainNameConfigurations"), "certificates are PEM files in wsgate: set domains[].cert_file and key_file (ignored)");
            }
            self.leftovers(props, "no equivalent in wsgate (ignored)");
        }
        for (id, node) in mappings {
            let mut props = Props::of(id, node);
            if !self.belongs(&mut props) {
                continue;
            }
            let domain = self.string(&mut props, "DomainName");
            let stage = self.string(&mut props, "Stage");
            let path = self.string(&mut props, "ApiMappingKey").unwrap_or_default();
            let (Some(domain), Some(stage)) = (domain, stage) else {
                self.note(
                    props.line,
                    format!("Resources.{id}"),
                    "needs DomainName and Stage (not imported)",
                );
                continue;
            };
            domains
                .entry(domain)
                .or_default()
                .push(json!({"path": path, "stage": stage}));
            self.leftovers(props, "no equivalent in wsgate (ignored)");
        }
        domains
            .into_iter()
            .filter_map(|(name, mappings)| {
                if mappings.is_empty() {
                    self.notes.push(Note::new(
                        None,
                        format!("domain {name}"),
                        "no AWS::ApiGatewayV2::ApiMapping to this API (not imported)",
                    ));
                    return None;
                }
                Some(json!({"name": name, "mappings": mappings}))
            })
            .collect()
    }

    fn functions(&mut self, resources: &[(&str, &Node)]) -> Result<(), SpecError> {
        let mut known = BTreeSet::new();
        for (id, node) in resources {
            if !FUNCTION_TYPES.contains(&type_of(node)) {
                continue;
            }
            known.insert((*id).to_string());
            known.insert(self.ev.function_name(id));
            let line = node.get("Type").map_or(node.line, |t| t.line);
            let at = format!("Resources.{id}");
            let message = match self.used_functions.get(*id) {
                Some((uri, true)) if uri.starts_with("arn:") => {
                    format!("invoked by ARN {uri} through the Lambda Invoke API (docs/lambda.md)")
                }
                Some((_, false)) => {
                    let unnamed = node
                        .get("Properties")
                        .and_then(|p| p.get("FunctionName"))
                        .is_none();
                    format!(
                        "invoked by ARN {} through the Lambda Invoke API (docs/lambda.md){}; map it to a URL with --functions to run it elsewhere",
                        self.ev.function_arn(id),
                        if unnamed {
                            ", named by its logical id as it has no FunctionName"
                        } else {
                            ""
                        }
                    )
                }
                Some((uri, true)) => format!(
                    "invoked at {uri}; its code, runtime, environment and policies are deployed by you, not by wsgate"
                ),
                None => "not called by the WebSocket API (ignored)".into(),
            };
            self.note(line, at, message);
        }
        if let Some(unknown) = self.options.functions.keys().find(|k| !known.contains(*k)) {
            return Err(SpecError::Invalid(format!(
                "--functions: {unknown} is not a Lambda function of the template (known: {})",
                known.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        Ok(())
    }

    fn other_resources(&mut self, resources: &[(&str, &Node)]) {
        let handled = [
            "AWS::ApiGatewayV2::Route",
            "AWS::ApiGatewayV2::RouteResponse",
            "AWS::ApiGatewayV2::Integration",
            "AWS::ApiGatewayV2::IntegrationResponse",
            "AWS::ApiGatewayV2::Authorizer",
            "AWS::ApiGatewayV2::Model",
            "AWS::ApiGatewayV2::Stage",
            "AWS::ApiGatewayV2::Deployment",
            "AWS::ApiGatewayV2::ApiMapping",
            "AWS::ApiGatewayV2::DomainName",
        ];
        for (id, node) in resources {
            let kind = type_of(node);
            let line = node.get("Type").map_or(node.line, |t| t.line);
            let message = match kind {
                k if handled.contains(&k) || FUNCTION_TYPES.contains(&k) => continue,
                "AWS::ApiGatewayV2::Api" if *id == self.api_id => continue,
                "AWS::ApiGatewayV2::Api" => "another API (not imported; choose it with --api)".to_string(),
                "AWS::Lambda::Permission" => "wsgate needs no invoke permission: it calls functions with the credentials of its aws: section (ignored)".to_string(),
                "" => "has no Type (ignored)".to_string(),
                other => format!("{other} is not part of a WebSocket API (not imported)"),
            };
            self.note(line, format!("Resources.{id}"), message);
        }
    }
}
