//! CloudFormation's intrinsic functions, evaluated over a template read by `spec::yaml`: `Ref`,
//! `Fn::Sub`, `Fn::GetAtt`, `Fn::Join`, `Fn::Select`, `Fn::Split` and `Fn::FindInMap`, with
//! parameters (defaults or given values) and the pseudo parameters. Every resource a value
//! refers to is recorded, so an integration URI can be traced back to its Lambda function.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::spec::yaml::{Node, Value};

/// A value that could not be evaluated, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct EvalError {
    /// Line of the node at fault.
    pub(super) line: usize,
    /// What could not be done.
    pub(super) message: String,
}

/// The values the pseudo parameters (`AWS::Region`, ...) take.
#[derive(Debug, Clone)]
pub(super) struct Pseudo {
    /// `AWS::Region`.
    pub(super) region: String,
    /// `AWS::AccountId`.
    pub(super) account_id: String,
    /// `AWS::StackName`.
    pub(super) stack_name: String,
}

/// Lambda function resource types.
pub(super) const FUNCTION_TYPES: [&str; 2] = ["AWS::Serverless::Function", "AWS::Lambda::Function"];

/// A template's resources, parameters and mappings, ready to evaluate values.
pub(super) struct Evaluator<'a> {
    resources: BTreeMap<&'a str, &'a Node>,
    parameters: BTreeMap<String, Json>,
    mappings: Option<&'a Node>,
    pseudo: Pseudo,
}

/// An evaluated value and the logical ids of the resources it refers to.
#[derive(Debug, Clone, Default)]
pub(super) struct Evaluated {
    /// The value.
    pub(super) value: Json,
    /// Resources named by `Ref`, `Fn::GetAtt` or `${...}`, in order, without repeats.
    pub(super) refs: Vec<String>,
}

impl<'a> Evaluator<'a> {
    /// An evaluator of `template` with `parameters` (their defaults filled in by the caller).
    pub(super) fn new(
        template: &'a Node,
        parameters: BTreeMap<String, Json>,
        pseudo: Pseudo,
    ) -> Self {
        let resources = template
            .get("Resources")
            .map(|r| r.entries().iter().map(|(k, v)| (k.as_str(), v)).collect())
            .unwrap_or_default();
        Self {
            resources,
            parameters,
            mappings: template.get("Mappings"),
            pseudo,
        }
    }

    /// The `Type` of resource `id`.
    pub(super) fn resource_type(&self, id: &str) -> Option<&'a str> {
        self.resources.get(id)?.get("Type")?.as_str()
    }

    /// The function name `Ref` gives for a Lambda function: its `FunctionName`, else its logical
    /// id (CloudFormation would generate one; wsgate cannot know it).
    pub(super) fn function_name(&self, id: &str) -> String {
        let named = self.resources.get(id).and_then(|r| {
            let node = r.get("Properties")?.get("FunctionName")?;
            self.eval(node).ok()?.value.as_str().map(str::to_string)
        });
        named.unwrap_or_else(|| id.to_string())
    }

    /// The ARN of Lambda function `id`.
    pub(super) fn function_arn(&self, id: &str) -> String {
        format!(
            "arn:aws:lambda:{}:{}:function:{}",
            self.pseudo.region,
            self.pseudo.account_id,
            self.function_name(id)
        )
    }

    /// Evaluates `node`.
    ///
    /// # Errors
    /// An [`EvalError`] for an unknown reference, a malformed or unsupported function.
    pub(super) fn eval(&self, node: &Node) -> Result<Evaluated, EvalError> {
        let mut refs = Vec::new();
        let value = self.value(node, &mut refs)?;
        Ok(Evaluated { value, refs })
    }

    /// Evaluates `node` to a string (numbers and booleans as text).
    ///
    /// # Errors
    /// As [`Evaluator::eval`], and when the value is not a scalar.
    pub(super) fn eval_string(&self, node: &Node) -> Result<(String, Vec<String>), EvalError> {
        let evaluated = self.eval(node)?;
        let text = scalar_text(&evaluated.value).ok_or_else(|| EvalError {
            line: node.line,
            message: "expected a string".into(),
        })?;
        Ok((text, evaluated.refs))
    }

    fn value(&self, node: &Node, refs: &mut Vec<String>) -> Result<Json, EvalError> {
        match &node.value {
            Value::Map(entries) if entries.len() == 1 && is_function(&entries[0].0) => {
                let (name, argument) = (&entries[0].0, &entries[0].1);
                self.function(name, argument, node.line, refs)
            }
            Value::Map(entries) => entries
                .iter()
                .map(|(k, v)| Ok((k.clone(), self.value(v, refs)?)))
                .collect::<Result<serde_json::Map<_, _>, _>>()
                .map(Json::Object),
            Value::Seq(items) => items
                .iter()
                .map(|item| self.value(item, refs))
                .collect::<Result<Vec<_>, _>>()
                .map(Json::Array),
            _ => Ok(node.to_json()),
        }
    }

    fn function(
        &self,
        name: &str,
        argument: &Node,
        line: usize,
        refs: &mut Vec<String>,
    ) -> Result<Json, EvalError> {
        let fail = |message: String| EvalError { line, message };
        match name {
            "Ref" => {
                let target = argument
                    .as_str()
                    .ok_or_else(|| fail("Ref takes a name".into()))?;
                self.reference(target, refs).map_err(fail)
            }
            "Fn::GetAtt" => {
                let (resource, attribute) = match &argument.value {
                    Value::String(text) => text
                        .split_once('.')
                        .map(|(r, a)| (r.to_string(), a.to_string())),
                    Value::Seq(items) if items.len() == 2 => {
                        let attribute = self.value(&items[1], refs)?;
                        match (items[0].as_str(), attribute.as_str()) {
                            (Some(r), Some(a)) => Some((r.to_string(), a.to_string())),
                            _ => None,
                        }
                    }
                    _ => None,
                }
                .ok_or_else(|| fail("Fn::GetAtt takes Resource.Attribute".into()))?;
                self.attribute(&resource, &attribute, refs).map_err(fail)
            }
            "Fn::Sub" => {
                let (text, variables) = match &argument.value {
                    Value::String(text) => (text.clone(), BTreeMap::new()),
                    Value::Seq(items) if items.len() == 2 => {
                        let text = scalar_text(&self.value(&items[0], refs)?)
                            .ok_or_else(|| fail("Fn::Sub takes a string".into()))?;
                        let mut variables = BTreeMap::new();
                        for (key, node) in items[1].entries() {
                            let value = self.value(node, refs)?;
                            let value = scalar_text(&value).ok_or_else(|| {
                                fail(format!("Fn::Sub variable {key} is not a string"))
                            })?;
                            variables.insert(key.clone(), value);
                        }
                        (text, variables)
                    }
                    _ => return Err(fail("Fn::Sub takes a string or [string, map]".into())),
                };
                self.substitute(&text, &variables, refs)
                    .map(Json::String)
                    .map_err(fail)
            }
            "Fn::Join" => {
                let parts = match &argument.value {
                    Value::Seq(items) if items.len() == 2 => items,
                    _ => return Err(fail("Fn::Join takes [delimiter, list]".into())),
                };
                let delimiter = parts[0]
                    .as_str()
                    .ok_or_else(|| fail("Fn::Join's delimiter must be a string".into()))?;
                let list = self.value(&parts[1], refs)?;
                let items = list
                    .as_array()
                    .ok_or_else(|| fail("Fn::Join's second argument must be a list".into()))?;
                let texts = items
                    .iter()
                    .map(|item| {
                        scalar_text(item).ok_or_else(|| fail("Fn::Join joins strings only".into()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Json::String(texts.join(delimiter)))
            }
            "Fn::Select" => {
                let parts = match &argument.value {
                    Value::Seq(items) if items.len() == 2 => items,
                    _ => return Err(fail("Fn::Select takes [index, list]".into())),
                };
                let index = scalar_text(&self.value(&parts[0], refs)?)
                    .and_then(|t| t.parse::<usize>().ok())
                    .ok_or_else(|| fail("Fn::Select's index must be a number".into()))?;
                let list = self.value(&parts[1], refs)?;
                list.as_array()
                    .and_then(|items| items.get(index).cloned())
                    .ok_or_else(|| fail(format!("Fn::Select: no item {index}")))
            }
            "Fn::Split" => {
                let parts = match &argument.value {
                    Value::Seq(items) if items.len() == 2 => items,
                    _ => return Err(fail("Fn::Split takes [delimiter, string]".into())),
                };
                let delimiter = parts[0]
                    .as_str()
                    .filter(|d| !d.is_empty())
                    .ok_or_else(|| fail("Fn::Split's delimiter must be a string".into()))?;
                let text = scalar_text(&self.value(&parts[1], refs)?)
                    .ok_or_else(|| fail("Fn::Split splits a string".into()))?;
                Ok(text.split(delimiter).map(Json::from).collect())
            }
            "Fn::FindInMap" => {
                let parts = match &argument.value {
                    Value::Seq(items) if items.len() == 3 => items,
                    _ => return Err(fail("Fn::FindInMap takes [map, key, key]".into())),
                };
                let keys = parts
                    .iter()
                    .map(|p| {
                        scalar_text(&self.value(p, refs)?)
                            .ok_or_else(|| fail("Fn::FindInMap takes names".into()))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let found = self
                    .mappings
                    .and_then(|m| m.get(&keys[0]))
                    .and_then(|m| m.get(&keys[1]))
                    .and_then(|m| m.get(&keys[2]))
                    .ok_or_else(|| fail(format!("Mappings has no {}", keys.join("."))))?;
                self.value(found, refs)
            }
            other => Err(fail(format!(
                "{other} is not supported by the importer (conditions, imports and transforms are evaluated by CloudFormation only)"
            ))),
        }
    }

    fn reference(&self, target: &str, refs: &mut Vec<String>) -> Result<Json, String> {
        if let Some(value) = self.pseudo_parameter(target) {
            return Ok(value);
        }
        if let Some(value) = self.parameters.get(target) {
            return if value.is_null() {
                Err(format!(
                    "parameter {target} has no Default: give it with --parameter {target}=VALUE"
                ))
            } else {
                Ok(value.clone())
            };
        }
        let Some(resource) = self.resources.get(target) else {
            return Err(format!("Ref to unknown {target}"));
        };
        note_ref(refs, target);
        let kind = self.resource_type(target).unwrap_or_default();
        let property = |name: &str| {
            let node = resource.get("Properties")?.get(name)?;
            self.eval(node).ok().map(|e| e.value)
        };
        Ok(match kind {
            k if FUNCTION_TYPES.contains(&k) => Json::String(self.function_name(target)),
            "AWS::ApiGatewayV2::Stage" => property("StageName").unwrap_or_else(|| target.into()),
            "AWS::ApiGatewayV2::DomainName" => {
                property("DomainName").unwrap_or_else(|| target.into())
            }
            _ => Json::String(target.to_string()),
        })
    }

    fn attribute(
        &self,
        resource: &str,
        attribute: &str,
        refs: &mut Vec<String>,
    ) -> Result<Json, String> {
        let kind = self
            .resource_type(resource)
            .ok_or_else(|| format!("Fn::GetAtt of unknown resource {resource}"))?;
        note_ref(refs, resource);
        let value = match (kind, attribute) {
            (k, "Arn") if FUNCTION_TYPES.contains(&k) => self.function_arn(resource),
            ("AWS::ApiGatewayV2::Api", "ApiEndpoint") => format!(
                "wss://{resource}.execute-api.{}.amazonaws.com",
                self.pseudo.region
            ),
            (_, a) if a.ends_with("Id") => resource.to_string(),
            _ => {
                return Err(format!(
                    "Fn::GetAtt {resource}.{attribute} ({kind}) has no value outside CloudFormation"
                ));
            }
        };
        Ok(Json::String(value))
    }

    fn pseudo_parameter(&self, name: &str) -> Option<Json> {
        let p = &self.pseudo;
        let value = match name {
            "AWS::Region" => p.region.clone(),
            "AWS::AccountId" => p.account_id.clone(),
            "AWS::StackName" => p.stack_name.clone(),
            "AWS::Partition" => "aws".into(),
            "AWS::URLSuffix" => "amazonaws.com".into(),
            "AWS::StackId" => format!(
                "arn:aws:cloudformation:{}:{}:stack/{}/00000000-0000-0000-0000-000000000000",
                p.region, p.account_id, p.stack_name
            ),
            "AWS::NoValue" => return Some(Json::Null),
            _ => return None,
        };
        Some(Json::String(value))
    }

    /// `Fn::Sub`'s `${Name}`, `${Resource.Attribute}` and `${!Literal}`; API Gateway's own
    /// variables (`${stageVariables.x}`, `${context.x}`, `${request.x}`) are kept for the gateway.
    fn substitute(
        &self,
        text: &str,
        variables: &BTreeMap<String, String>,
        refs: &mut Vec<String>,
    ) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(start) = rest.find("${") {
            out.push_str(&rest[..start]);
            let after = &rest[start + 2..];
            let end = after
                .find('}')
                .ok_or_else(|| format!("Fn::Sub: unclosed ${{ in {text:?}"))?;
            let name = after[..end].trim();
            rest = &after[end + 1..];
            if let Some(literal) = name.strip_prefix('!') {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
                continue;
            }
            if let Some(value) = variables.get(name) {
                out.push_str(value);
                continue;
            }
            let gateway_variable = ["stageVariables.", "context.", "request.", "integration."]
                .iter()
                .any(|p| name.starts_with(p));
            if gateway_variable
                && !self
                    .resources
                    .contains_key(name.split('.').next().unwrap_or(""))
            {
                out.push_str("${");
                out.push_str(name);
                out.push('}');
                continue;
            }
            let value = match name.split_once('.') {
                Some((resource, attribute)) if !name.starts_with("AWS::") => {
                    self.attribute(resource, attribute, refs)?
                }
                _ => self.reference(name, refs)?,
            };
            out.push_str(
                &scalar_text(&value).ok_or_else(|| format!("${{{name}}} is not a string"))?,
            );
        }
        out.push_str(rest);
        Ok(out)
    }
}

fn is_function(key: &str) -> bool {
    key == "Ref" || key.starts_with("Fn::")
}

fn note_ref(refs: &mut Vec<String>, id: &str) {
    if !refs.iter().any(|r| r == id) {
        refs.push(id.to_string());
    }
}

/// A scalar as text: strings as they are, numbers and booleans written out.
pub(super) fn scalar_text(value: &Json) -> Option<String> {
    match value {
        Json::String(s) => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        Json::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::yaml;

    const TEMPLATE: &str = r#"
Parameters:
  Table: {Type: String, Default: chat}
Mappings:
  Envs: {prod: {Timeout: 5000}}
Resources:
  Fn1: {Type: AWS::Serverless::Function, Properties: {Handler: a.b}}
  Fn2: {Type: AWS::Lambda::Function, Properties: {FunctionName: !Sub "${Table}-send"}}
  Api: {Type: AWS::ApiGatewayV2::Api}
  Stage: {Type: AWS::ApiGatewayV2::Stage, Properties: {StageName: Prod}}
Values:
  sub: !Sub arn:aws:apigateway:${AWS::Region}:lambda:path/2015-03-31/functions/${Fn1.Arn}/invocations
  long: {"Fn::Sub": ["${A}/${Fn2}", {A: !Ref Table}]}
  join: !Join ['/', [integrations, !Ref Api]]
  getatt: {"Fn::GetAtt": [Fn2, Arn]}
  stage: !Ref Stage
  kept: !Sub "${stageVariables.backend}/x/${!Literal}"
  select: !Select [1, !Split [",", "a,b,c"]]
  map: !FindInMap [Envs, prod, Timeout]
  bad: !GetAtt Stage.Nothing
  cond: !If [C, a, b]
"#;

    fn eval(key: &str) -> Result<Evaluated, EvalError> {
        let doc = yaml::parse(TEMPLATE).expect("parses");
        let parameters = [("Table".to_string(), Json::from("chat"))].into();
        let pseudo = Pseudo {
            region: "eu-west-1".into(),
            account_id: "123456789012".into(),
            stack_name: "s".into(),
        };
        let evaluator = Evaluator::new(&doc, parameters, pseudo);
        let node = doc.get("Values").and_then(|v| v.get(key)).expect("value");
        evaluator.eval(node)
    }

    #[test]
    fn intrinsics_resolve_and_record_references() {
        let sub = eval("sub").expect("sub");
        assert_eq!(
            sub.value,
            "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:Fn1/invocations"
        );
        assert_eq!(sub.refs, ["Fn1"]);
        assert_eq!(eval("long").expect("long").value, "chat/chat-send");
        assert_eq!(eval("join").expect("join").value, "integrations/Api");
        assert_eq!(
            eval("getatt").expect("getatt").value,
            "arn:aws:lambda:eu-west-1:123456789012:function:chat-send"
        );
        assert_eq!(eval("stage").expect("stage").value, "Prod");
        assert_eq!(
            eval("kept").expect("kept").value,
            "${stageVariables.backend}/x/${Literal}"
        );
        assert_eq!(eval("select").expect("select").value, "b");
        assert_eq!(eval("map").expect("map").value, 5000);
    }

    #[test]
    fn what_cannot_be_resolved_names_its_line() {
        let bad = eval("bad").expect_err("no such attribute");
        assert!(bad.message.contains("Stage.Nothing"), "{bad:?}");
        assert_eq!(bad.line, 20);
        let cond = eval("cond").expect_err("conditions");
        assert!(cond.message.contains("Fn::If"), "{cond:?}");
    }
}
