//! The definition in force as apigatewayv2 resources: what the management API shows before a
//! caller changes anything. Ids are derived from names (the same on every node and after a
//! restart); wsgate's own integration types (brokers) show as `WSGATE_*` types that the
//! management API can show but not create.

use std::collections::BTreeMap;

use serde_json::{Map, Value as Json, json};

use super::draft::{Collection, Resources, Seed, stable_id};
use crate::config::{AuthorizerConfig, Config, IntegrationConfig, IntegrationResponseConfig};

/// The resources of `config`'s API (its definition as stored is `live`, from `deployment`);
/// `endpoint` is the API's `ws://` or `wss://` base, `created` the API's creation date.
pub(super) fn seed(
    config: &Config,
    live: &Json,
    deployment: &str,
    endpoint: &str,
    created: &str,
) -> Seed {
    let api = &config.api;
    let mut resources = Resources {
        api: {
            let mut out = Map::new();
            out.insert("apiId".into(), json!(api.api_id()));
            out.insert("name".into(), json!(api.name));
            out.insert("protocolType".into(), json!("WEBSOCKET"));
            out.insert(
                "routeSelectionExpression".into(),
                json!(api.route_selection_expression),
            );
            out.insert(
                "apiKeySelectionExpression".into(),
                json!(api.api_key_selection_expression),
            );
            if let Some(description) = &api.description {
                out.insert("description".into(), json!(description));
            }
            if let Some(version) = &api.version {
                out.insert("version".into(), json!(version));
            }
            out.insert("apiEndpoint".into(), json!(endpoint));
            out.insert("createdDate".into(), json!(created));
            out.insert("disableSchemaValidation".into(), json!(false));
            out.insert("disableExecuteApiEndpoint".into(), json!(false));
            out.insert("tags".into(), json!({}));
            Json::Object(out)
        },
        ..Resources::default()
    };
    let mut routes = BTreeMap::new();
    for (key, route) in &api.routes {
        let route_id = stable_id("route", key);
        let integration_id = stable_id("integration", key);
        let (integration, responses) = integration(&route.integration, &integration_id, config);
        resources
            .integrations
            .insert(integration_id.clone(), integration);
        if !responses.is_empty() {
            resources
                .integration_responses
                .insert(integration_id.clone(), responses);
        }
        let mut out = Map::new();
        out.insert("routeId".into(), json!(route_id));
        out.insert("routeKey".into(), json!(key));
        out.insert(
            "target".into(),
            json!(format!("integrations/{integration_id}")),
        );
        out.insert("apiKeyRequired".into(), json!(route.api_key_required));
        let authorization = if key == "$connect" {
            serde_json::to_value(route.authorization()).unwrap_or(json!("NONE"))
        } else {
            json!("NONE")
        };
        out.insert("authorizationType".into(), authorization);
        if let Some(name) = &route.authorizer {
            out.insert("authorizerId".into(), json!(stable_id("authorizer", name)));
        }
        if let Some(expression) = &route.model_selection_expression {
            out.insert("modelSelectionExpression".into(), json!(expression));
        }
        if !route.request_models.is_empty() {
            out.insert("requestModels".into(), json!(route.request_models));
        }
        if route.route_response {
            out.insert("routeResponseSelectionExpression".into(), json!("$default"));
            let id = stable_id("routeresponse", key);
            let mut response = Map::new();
            response.insert("routeResponseId".into(), json!(id));
            response.insert("routeResponseKey".into(), json!("$default"));
            if !route.response_models.is_empty() {
                response.insert("responseModels".into(), json!(route.response_models));
            }
            resources.route_responses.insert(
                route_id.clone(),
                Collection::from([(id, Json::Object(response))]),
            );
        }
        out.insert("apiGatewayManaged".into(), json!(false));
        resources.routes.insert(route_id.clone(), Json::Object(out));
        routes.insert(key.clone(), route_id);
    }
    for (name, model) in &api.models {
        let id = stable_id("model", name);
        let mut out = Map::new();
        out.insert("modelId".into(), json!(id));
        out.insert("name".into(), json!(name));
        out.insert("contentType".into(), json!(model.content_type));
        if let Some(description) = &model.description {
            out.insert("description".into(), json!(description));
        }
        let schema = match (&model.schema, &model.schema_file) {
            (Some(schema), _) => schema.to_string(),
            (None, Some(file)) => std::fs::read_to_string(file).unwrap_or_default(),
            (None, None) => String::new(),
        };
        out.insert("schema".into(), json!(schema));
        resources.models.insert(id, Json::Object(out));
    }
    for (name, authorizer) in &api.authorizers {
        let id = stable_id("authorizer", name);
        let mut out = Map::new();
        out.insert("authorizerId".into(), json!(id));
        out.insert("name".into(), json!(name));
        match authorizer {
            AuthorizerConfig::Request(request) => {
                out.insert("authorizerType".into(), json!("REQUEST"));
                out.insert("authorizerUri".into(), json!(request.uri));
                out.insert("identitySource".into(), json!(request.identity_sources));
                out.insert(
                    "authorizerResultTtlInSeconds".into(),
                    json!(request.result_ttl.as_secs()),
                );
            }
            AuthorizerConfig::Jwt(jwt) => {
                out.insert("authorizerType".into(), json!("JWT"));
                out.insert("identitySource".into(), json!(jwt.identity_sources));
                let mut configuration = Map::new();
                if let Some(issuer) = &jwt.issuer {
                    configuration.insert("issuer".into(), json!(issuer.to_vec().join(",")));
                }
                if let Some(audience) = &jwt.audience {
                    configuration.insert("audience".into(), json!(audience.to_vec()));
                }
                out.insert("jwtConfiguration".into(), Json::Object(configuration));
            }
        }
        resources.authorizers.insert(id, Json::Object(out));
    }
    for (name, stage) in &api.stages {
        let mut out = Map::new();
        out.insert("stageName".into(), json!(name));
        out.insert("stageVariables".into(), json!(stage.variables));
        out.insert("autoDeploy".into(), json!(false));
        out.insert("apiGatewayManaged".into(), json!(false));
        out.insert("createdDate".into(), json!(created));
        out.insert("lastUpdatedDate".into(), json!(created));
        resources.stages.insert(name.clone(), Json::Object(out));
    }
    Seed {
        deployment: deployment.to_string(),
        live: live.clone(),
        resources,
        routes,
    }
}

/// An integration and its integration responses.
fn integration(integration: &IntegrationConfig, id: &str, config: &Config) -> (Json, Collection) {
    let mut out = Map::new();
    out.insert("integrationId".into(), json!(id));
    out.insert("connectionType".into(), json!("INTERNET"));
    out.insert("payloadFormatVersion".into(), json!("1.0"));
    let mut responses = Collection::new();
    let templates = |out: &mut Map<String, Json>,
                     selection: &Option<String>,
                     templates: &BTreeMap<String, String>| {
        if let Some(selection) = selection {
            out.insert("templateSelectionExpression".into(), json!(selection));
        }
        if !templates.is_empty() {
            out.insert("requestTemplates".into(), json!(templates));
        }
    };
    let mut integration_responses = |found: &BTreeMap<String, IntegrationResponseConfig>| {
        for (key, response) in found {
            let response_id = stable_id("integrationresponse", &format!("{id}{key}"));
            let mut r = Map::new();
            r.insert("integrationResponseId".into(), json!(response_id));
            r.insert("integrationResponseKey".into(), json!(key));
            if !response.response_templates.is_empty() {
                r.insert(
                    "responseTemplates".into(),
                    json!(response.response_templates),
                );
            }
            if let Some(selection) = &response.template_selection_expression {
                r.insert("templateSelectionExpression".into(), json!(selection));
            }
            if let Some(strategy) = response.content_handling_strategy {
                r.insert("contentHandlingStrategy".into(), json!(strategy));
            }
            responses.insert(response_id, Json::Object(r));
        }
    };
    if let Some(timeout) = integration.timeout() {
        out.insert(
            "timeoutInMillis".into(),
            json!(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX)),
        );
    }
    match integration {
        IntegrationConfig::AwsProxy { uri, .. } => {
            out.insert("integrationType".into(), json!("AWS_PROXY"));
            out.insert("integrationUri".into(), json!(uri));
            out.insert("integrationMethod".into(), json!("POST"));
        }
        IntegrationConfig::HttpProxy {
            uri,
            method,
            request_parameters,
            ..
        } => {
            out.insert("integrationType".into(), json!("HTTP_PROXY"));
            out.insert("integrationUri".into(), json!(uri));
            out.insert("integrationMethod".into(), json!(method));
            if !request_parameters.is_empty() {
                out.insert("requestParameters".into(), json!(request_parameters));
            }
        }
        IntegrationConfig::Http {
            uri,
            method,
            request_parameters,
            template_selection_expression,
            request_templates,
            passthrough_behavior,
            content_handling_strategy,
            integration_responses: found,
            ..
        } => {
            out.insert("integrationType".into(), json!("HTTP"));
            out.insert("integrationUri".into(), json!(uri));
            out.insert("integrationMethod".into(), json!(method));
            if !request_parameters.is_empty() {
                out.insert("requestParameters".into(), json!(request_parameters));
            }
            templates(&mut out, template_selection_expression, request_templates);
            out.insert("passthroughBehavior".into(), json!(passthrough_behavior));
            if let Some(strategy) = content_handling_strategy {
                out.insert("contentHandlingStrategy".into(), json!(strategy));
            }
            integration_responses(found);
        }
        IntegrationConfig::Mock {
            template_selection_expression,
            request_templates,
            integration_responses: found,
            ..
        } => {
            out.insert("integrationType".into(), json!("MOCK"));
            templates(&mut out, template_selection_expression, request_templates);
            integration_responses(found);
        }
        IntegrationConfig::Aws(aws) => {
            let region = aws
                .region
                .clone()
                .or_else(|| config.aws.region.clone())
                .unwrap_or_else(|| "us-east-1".into());
            out.insert("integrationType".into(), json!("AWS"));
            out.insert(
                "integrationUri".into(),
                json!(format!(
                    "arn:aws:apigateway:{region}:{}:action/{}",
                    aws.service, aws.action
                )),
            );
            out.insert("integrationMethod".into(), json!("POST"));
            templates(
                &mut out,
                &aws.template_selection_expression,
                &aws.request_templates,
            );
            out.insert(
                "passthroughBehavior".into(),
                json!(aws.passthrough_behavior),
            );
            if let Some(strategy) = aws.content_handling_strategy {
                out.insert("contentHandlingStrategy".into(), json!(strategy));
            }
            integration_responses(&aws.integration_responses);
        }
        IntegrationConfig::Nats(_)
        | IntegrationConfig::Rabbitmq(_)
        | IntegrationConfig::RedisStream(_) => {
            let kind = serde_json::to_value(integration)
                .ok()
                .and_then(|v| v["type"].as_str().map(str::to_ascii_uppercase))
                .unwrap_or_default();
            out.insert("integrationType".into(), json!(format!("WSGATE_{kind}")));
            out.insert(
                "description".into(),
                json!("a wsgate broker integration: shown here, changed in the definition (wsgate apply)"),
            );
        }
    }
    (Json::Object(out), responses)
}
