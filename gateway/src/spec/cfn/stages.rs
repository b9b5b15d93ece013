//! `Stage`, `DomainName`/`ApiMapping`, `AWS::Serverless::Function` and every other resource
//! (reported, not imported).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Map, Value as Json, json};

use super::eval::FUNCTION_TYPES;
use super::{Importer, Props, type_of};
use crate::spec::yaml::Node;
use crate::spec::{Note, SpecError};

impl Importer<'_> {
    pub(super) fn stages(
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
                self.missing(&props, "StageName", "stage");
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

    pub(super) fn domains(
        &mut self,
        names: &[(&str, &Node)],
        mappings: &[(&str, &Node)],
    ) -> Vec<Json> {
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

    pub(super) fn functions(&mut self, resources: &[(&str, &Node)]) -> Result<(), SpecError> {
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

    pub(super) fn other_resources(&mut self, resources: &[(&str, &Node)]) {
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
