//! `wsgate import sam|cloudformation`: the `AWS::ApiGatewayV2::*` resources of a WebSocket API
//! in a CloudFormation or SAM template (and the Lambda functions they call) become a wsgate
//! configuration. Function references become URLs or ARNs through the `--functions` map; every
//! property or resource wsgate cannot express becomes a [`Note`] with its line.

mod eval;
mod integrations;
mod read;
mod routes;
mod stages;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use super::yaml::{self, Node};
use super::{Imported, Note, SpecError};
use eval::{Evaluator, Pseudo};

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
}
