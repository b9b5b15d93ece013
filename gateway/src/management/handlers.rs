//! One function per apigatewayv2 operation the management API serves, and the dispatch from
//! method and path to them. Answers are the service's shapes: 201 for a create, 200 with the
//! resource for a get or an update, 204 for a delete, `{"items": […], "nextToken"?}` for a
//! list.

use std::collections::HashMap;

use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{Method, StatusCode};
use serde_json::{Value as Json, json};

use super::draft::{
    self, AUTHORIZER, Collection, Draft, INTEGRATION, INTEGRATION_RESPONSE, Kind, MODEL, ROUTE,
    ROUTE_RESPONSE, Seed,
};
use super::{Management, build, reply, seed};
use crate::error::ManagementError;
use crate::rollout::ApplyRequest;

/// Integration types a caller may create.
const INTEGRATION_TYPES: [&str; 5] = ["AWS", "AWS_PROXY", "HTTP", "HTTP_PROXY", "MOCK"];

/// The fields `UpdateApi` sets.
const API: Kind = Kind {
    what: "API",
    id: "apiId",
    fields: &[
        "apiKeySelectionExpression",
        "description",
        "name",
        "routeSelectionExpression",
        "version",
    ],
    required: &[],
};

/// A parsed request.
pub(super) struct Call<'a> {
    pub(super) method: &'a Method,
    query: HashMap<String, String>,
    body: &'a Bytes,
}

impl Call<'_> {
    /// The JSON body (an empty body is `{}`).
    pub(super) fn json(&self) -> Result<Json, ManagementError> {
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(json!({}));
        }
        serde_json::from_slice(self.body)
            .map_err(|e| ManagementError::BadRequest(format!("Invalid request body: {e}")))
    }

    /// One page of `items`.
    pub(super) fn page(&self, items: Vec<Json>) -> Result<Response, ManagementError> {
        let page = draft::page(
            items,
            self.query.get("maxResults").map(String::as_str),
            self.query.get("nextToken").map(String::as_str),
        )?;
        Ok(reply(StatusCode::OK, &page))
    }
}

pub(super) fn ok(body: &Json) -> Result<Response, ManagementError> {
    Ok(reply(StatusCode::OK, body))
}

pub(super) fn created(body: &Json) -> Result<Response, ManagementError> {
    Ok(reply(StatusCode::CREATED, body))
}

pub(super) fn deleted() -> Result<Response, ManagementError> {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A method the path does not take.
pub(super) fn unsupported(method: &Method, path: &str) -> ManagementError {
    ManagementError::NotFound(format!(
        "wsgate's management API has no operation {method} {path} (see docs/deployments.md)"
    ))
}

/// Answers one request.
pub(super) async fn dispatch(
    m: &Management,
    parts: &http::request::Parts,
    body: &Bytes,
) -> Result<Response, ManagementError> {
    let path = parts.uri.path();
    let segments: Vec<String> = path
        .trim_start_matches("/v2/")
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        })
        .collect();
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let call = Call {
        method: &parts.method,
        query: form_urlencoded::parse(parts.uri.query().unwrap_or_default().as_bytes())
            .into_owned()
            .collect(),
        body,
    };
    let method = &parts.method;
    let unsupported = || unsupported(method, path);
    match segments.as_slice() {
        ["domainnames", rest @ ..] => domains(m, &call, rest).ok_or_else(unsupported)?,
        ["apis"] => {
            let mut guard = m.draft.lock().await;
            let draft = current(m, &mut guard).await?;
            match *method {
                Method::GET => call.page(vec![draft.resources.api.clone()]),
                Method::POST => Err(ManagementError::Conflict(format!(
                    "this gateway serves one API (apiId {}): manage it by its id; several APIs on one gateway are not supported",
                    draft.resources.api["apiId"].as_str().unwrap_or_default()
                ))),
                Method::PUT => Err(ManagementError::BadRequest(
                    "ImportApi reads OpenAPI definitions of HTTP APIs; import WebSocket APIs with `wsgate import cloudformation|asyncapi`".into(),
                )),
                _ => Err(unsupported()),
            }
        }
        ["apis", api, rest @ ..] => {
            let mut guard = m.draft.lock().await;
            let draft = current(m, &mut guard).await?;
            if draft.resources.api["apiId"] != *api {
                return Err(ManagementError::NotFound(format!(
                    "Invalid API identifier specified {api}"
                )));
            }
            let answer = match rest {
                [] => the_api(draft, &call),
                ["routes", rest @ ..] => routes(draft, &call, rest),
                ["integrations", rest @ ..] => integrations(draft, &call, rest),
                ["models", rest @ ..] => models(draft, &call, rest),
                ["authorizers", rest @ ..] => authorizers(draft, &call, rest),
                ["stages", rest @ ..] => return super::stages::stages(m, draft, &call, rest).await,
                ["deployments", rest @ ..] => return deployments(m, draft, &call, rest).await,
                _ => None,
            };
            answer.ok_or_else(unsupported)?
        }
        _ => Err(unsupported()),
    }
}

/// The draft, seeded from the definition in force when there is none yet, or when the
/// definition in force changed by something else than this API (`wsgate apply`, a reload) and
/// the caller has not changed anything since the last seed.
async fn current<'a>(
    m: &Management,
    guard: &'a mut Option<Draft>,
) -> Result<&'a mut Draft, ManagementError> {
    let definition = m.rollout.in_force();
    let id = definition.deployment.id.clone();
    let stale = guard
        .as_ref()
        .is_none_or(|d| d.seed.deployment != id && !d.deployed.contains(&id) && !d.edited());
    if stale {
        let exported = m.rollout.definition(None, Some(&id)).await?;
        let seed = seed::seed(
            &definition.config,
            &exported.definition,
            &id,
            &m.endpoint(),
            &m.created,
        );
        *guard = Some(Draft {
            resources: seed.resources.clone(),
            seed,
            deployed: Vec::new(),
        });
    }
    guard
        .as_mut()
        .ok_or_else(|| ManagementError::Unavailable("the API could not be read".into()))
}

// ---------------------------------------------------------------------------------------
// The API

fn the_api(draft: &mut Draft, call: &Call<'_>) -> Option<Result<Response, ManagementError>> {
    Some(match *call.method {
        Method::GET => ok(&draft.resources.api),
        Method::PATCH => (|| {
            let body = call.json()?;
            let updated = draft::update(&API, &draft.resources.api, &body)?;
            if updated["name"] != draft.resources.api["name"] {
                return Err(ManagementError::BadRequest(
                    "the API's name is fixed at start (api.name): restart the gateway with a new name".into(),
                ));
            }
            draft.resources.api = updated;
            ok(&draft.resources.api)
        })(),
        Method::DELETE => Err(ManagementError::Conflict(
            "the gateway's API cannot be deleted: it serves as long as the gateway runs".into(),
        )),
        Method::PUT => Err(ManagementError::BadRequest(
            "ReimportApi reads OpenAPI definitions of HTTP APIs; deploy a definition with `wsgate apply`".into(),
        )),
        _ => return None,
    })
}

// ---------------------------------------------------------------------------------------
// Routes and route responses

fn routes(
    draft: &mut Draft,
    call: &Call<'_>,
    rest: &[&str],
) -> Option<Result<Response, ManagementError>> {
    let r = &mut draft.resources;
    if let [route, "routeresponses", rest @ ..] = rest {
        if let Err(e) = draft::get(&ROUTE, &r.routes, route) {
            return Some(Err(e));
        }
        let (models, all) = (&r.models, &mut r.route_responses);
        let responses = all.entry((*route).to_string()).or_default();
        let answer = crud(
            &ROUTE_RESPONSE,
            responses,
            call,
            rest,
            |responses, response, own| {
                let key = response["routeResponseKey"].as_str().unwrap_or_default();
                if key != "$default" {
                    return Err(ManagementError::BadRequest(format!(
                        "route response key {key}: WebSocket routes have the $default route response only"
                    )));
                }
                if let Some(other) = taken(responses, "routeResponseKey", key, own) {
                    return Err(ManagementError::Conflict(format!(
                        "RouteResponse with key {key} already exists for this route ({other})"
                    )));
                }
                check_model_names(models, response.get("responseModels"))
            },
        );
        if responses.is_empty() {
            all.remove(*route);
        }
        return answer;
    }
    if *call.method == Method::DELETE
        && let [id] = rest
        && r.routes.contains_key(*id)
    {
        r.route_responses.remove(*id);
    }
    let (integrations, authorizers, models) = (&r.integrations, &r.authorizers, &r.models);
    crud(&ROUTE, &mut r.routes, call, rest, |routes, route, own| {
        let key = route["routeKey"].as_str().unwrap_or_default();
        if key.is_empty() {
            return Err(ManagementError::BadRequest(
                "routeKey must not be empty".into(),
            ));
        }
        if taken(routes, "routeKey", key, own).is_some() {
            return Err(ManagementError::Conflict(format!(
                "Route with key {key} already exists for this API"
            )));
        }
        if let Some(target) = route.get("target") {
            let integration = target
                .as_str()
                .and_then(|t| t.strip_prefix("integrations/"))
                .filter(|i| integrations.contains_key(*i));
            if integration.is_none() {
                return Err(ManagementError::BadRequest(format!(
                    "Invalid target {target}: integrations/{{integrationId}} of one of this API's integrations"
                )));
            }
        }
        match route["authorizationType"].as_str() {
            None | Some("NONE" | "AWS_IAM" | "CUSTOM") => {}
            Some(other) => {
                return Err(ManagementError::BadRequest(format!(
                    "authorizationType {other}: WebSocket routes take NONE, AWS_IAM or CUSTOM"
                )));
            }
        }
        if let Some(authorizer) = route.get("authorizerId")
            && !authorizer
                .as_str()
                .is_some_and(|a| authorizers.contains_key(a))
        {
            return Err(ManagementError::BadRequest(format!(
                "Invalid authorizer identifier specified {authorizer}"
            )));
        }
        check_model_names(models, route.get("requestModels"))
    })
}

/// Create, get, list, update and delete of the resources of one collection (route responses
/// of a route, integration responses of an integration, models, authorizers); `check` sees the
/// collection, the new or updated resource (and may fill defaults in it) and its own id.
fn crud(
    kind: &Kind,
    collection: &mut Collection,
    call: &Call<'_>,
    rest: &[&str],
    check: impl Fn(&Collection, &mut Json, &str) -> Result<(), ManagementError>,
) -> Option<Result<Response, ManagementError>> {
    Some(match (call.method.clone(), rest) {
        (Method::GET, []) => call.page(collection.values().cloned().collect()),
        (Method::POST, []) => (|| {
            draft::room(kind, collection)?;
            let id = draft::new_id();
            let mut resource = draft::create(kind, &call.json()?, &id)?;
            check(collection, &mut resource, &id)?;
            collection.insert(id, resource.clone());
            created(&resource)
        })(),
        (Method::GET, [id]) => draft::get(kind, collection, id).and_then(ok),
        (Method::PATCH, [id]) => (|| {
            let mut updated =
                draft::update(kind, draft::get(kind, collection, id)?, &call.json()?)?;
            check(collection, &mut updated, id)?;
            collection.insert((*id).to_string(), updated.clone());
            ok(&updated)
        })(),
        (Method::DELETE, [id]) => (|| {
            draft::get(kind, collection, id)?;
            collection.remove(*id);
            deleted()
        })(),
        _ => return None,
    })
}

/// The id of another resource of `collection` whose `field` is `value` (not `own`).
fn taken<'a>(collection: &'a Collection, field: &str, value: &str, own: &str) -> Option<&'a str> {
    collection
        .iter()
        .find(|(id, r)| id.as_str() != own && r[field] == value)
        .map(|(id, _)| id.as_str())
}

/// Every value of a `requestModels` / `responseModels` map names one of `models`.
fn check_model_names(models: &Collection, map: Option<&Json>) -> Result<(), ManagementError> {
    for name in map
        .and_then(Json::as_object)
        .into_iter()
        .flat_map(|m| m.values())
    {
        if !models.values().any(|m| m["name"] == *name) {
            return Err(ManagementError::BadRequest(format!(
                "Invalid model {name}: no model of this API has that name"
            )));
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Integrations and integration responses

fn integrations(
    draft: &mut Draft,
    call: &Call<'_>,
    rest: &[&str],
) -> Option<Result<Response, ManagementError>> {
    let r = &mut draft.resources;
    if let [integration, "integrationresponses", rest @ ..] = rest {
        let kind = match draft::get(&INTEGRATION, &r.integrations, integration) {
            Ok(i) => i["integrationType"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            Err(e) => return Some(Err(e)),
        };
        let responses = r
            .integration_responses
            .entry((*integration).to_string())
            .or_default();
        let answer = crud(
            &INTEGRATION_RESPONSE,
            responses,
            call,
            rest,
            |responses, response, own| {
                if !["HTTP", "MOCK", "AWS"].contains(&kind.as_str()) {
                    return Err(ManagementError::BadRequest(format!(
                        "a {kind} integration's answer is used as it is: integration responses apply to HTTP, AWS and MOCK integrations"
                    )));
                }
                let key = response["integrationResponseKey"]
                    .as_str()
                    .unwrap_or_default();
                let regex = key.len() >= 2 && key.starts_with('/') && key.ends_with('/');
                if key != "$default" && !regex {
                    return Err(ManagementError::BadRequest(format!(
                        "integration response key {key}: $default or /regex/ of the status code"
                    )));
                }
                if taken(responses, "integrationResponseKey", key, own).is_some() {
                    return Err(ManagementError::Conflict(format!(
                        "IntegrationResponse with key {key} already exists for this integration"
                    )));
                }
                Ok(())
            },
        );
        if responses.is_empty() {
            r.integration_responses.remove(*integration);
        }
        return answer;
    }
    if let [id] = rest
        && let Some(current) = r.integrations.get(*id)
    {
        match *call.method {
            Method::PATCH => {
                if let Err(e) = refuse_wsgate_type(current) {
                    return Some(Err(e));
                }
            }
            Method::DELETE => {
                let target = format!("integrations/{id}");
                if let Some(route) = r.routes.values().find(|route| route["target"] == *target) {
                    return Some(Err(ManagementError::Conflict(format!(
                        "Integration {id} is the target of route {}: change or delete the route first",
                        route["routeKey"].as_str().unwrap_or_default()
                    ))));
                }
                r.integration_responses.remove(*id);
            }
            _ => {}
        }
    }
    crud(
        &INTEGRATION,
        &mut r.integrations,
        call,
        rest,
        |_, integration, _| check_integration(integration),
    )
}

fn refuse_wsgate_type(integration: &Json) -> Result<(), ManagementError> {
    let kind = integration["integrationType"].as_str().unwrap_or_default();
    if kind.starts_with("WSGATE_") {
        return Err(ManagementError::BadRequest(format!(
            "a {kind} integration is changed in the definition (wsgate apply), not through apigatewayv2"
        )));
    }
    Ok(())
}

/// Checks an integration and fills the defaults the service shows.
fn check_integration(integration: &mut Json) -> Result<(), ManagementError> {
    let kind = integration["integrationType"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let kind = kind.as_str();
    if !INTEGRATION_TYPES.contains(&kind) {
        return Err(ManagementError::BadRequest(format!(
            "integrationType {kind}: one of {}",
            INTEGRATION_TYPES.join(", ")
        )));
    }
    if kind != "MOCK" && integration.get("integrationUri").is_none() {
        return Err(ManagementError::BadRequest(format!(
            "a {kind} integration needs integrationUri"
        )));
    }
    if let Some(ms) = integration.get("timeoutInMillis")
        && !ms.as_u64().is_some_and(|ms| (50..=900_000).contains(&ms))
    {
        return Err(ManagementError::BadRequest(format!(
            "timeoutInMillis {ms}: 50 to 900000"
        )));
    }
    let out = integration.as_object_mut().expect("created as an object");
    out.entry("connectionType").or_insert(json!("INTERNET"));
    out.entry("payloadFormatVersion").or_insert(json!("1.0"));
    if kind != "MOCK" {
        out.entry("integrationMethod").or_insert(json!("POST"));
        out.entry("timeoutInMillis").or_insert(json!(29_000));
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Models and authorizers

fn models(
    draft: &mut Draft,
    call: &Call<'_>,
    rest: &[&str],
) -> Option<Result<Response, ManagementError>> {
    let r = &mut draft.resources;
    if let [id, "template"] = rest {
        return (*call.method == Method::GET).then(|| {
            let model = draft::get(&MODEL, &r.models, id)?;
            ok(&json!({ "value": model["schema"] }))
        });
    }
    let used = |name: &Json| {
        r.routes.values().any(|route| {
            route["requestModels"]
                .as_object()
                .is_some_and(|m| m.values().any(|v| v == name))
        }) || r
            .route_responses
            .values()
            .flat_map(Collection::values)
            .any(|response| {
                response["responseModels"]
                    .as_object()
                    .is_some_and(|m| m.values().any(|v| v == name))
            })
    };
    if *call.method == Method::DELETE
        && let [id] = rest
        && let Some(model) = r.models.get(*id)
        && used(&model["name"])
    {
        return Some(Err(ManagementError::Conflict(format!(
            "Model {} is used by a route or route response: change those first",
            model["name"]
        ))));
    }
    named(&MODEL, &mut r.models, call, rest, |model| {
        let name = model["name"].as_str().unwrap_or_default();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric()) {
            return Err(ManagementError::BadRequest(format!(
                "model name {name}: letters and digits only"
            )));
        }
        let schema = model["schema"].as_str().unwrap_or_default();
        if let Err(e) = serde_json::from_str::<Json>(schema) {
            return Err(ManagementError::BadRequest(format!(
                "schema of model {name} is not JSON: {e}"
            )));
        }
        let out = model.as_object_mut().expect("created as an object");
        out.entry("contentType")
            .or_insert(json!("application/json"));
        Ok(())
    })
}

fn authorizers(
    draft: &mut Draft,
    call: &Call<'_>,
    rest: &[&str],
) -> Option<Result<Response, ManagementError>> {
    let r = &mut draft.resources;
    if *call.method == Method::DELETE
        && let [id] = rest
        && let Some(route) = r
            .routes
            .values()
            .find(|route| route["authorizerId"] == **id)
    {
        return Some(Err(ManagementError::Conflict(format!(
            "Authorizer {id} is used by route {}: change the route first",
            route["routeKey"].as_str().unwrap_or_default()
        ))));
    }
    named(&AUTHORIZER, &mut r.authorizers, call, rest, |authorizer| {
        let kind = authorizer["authorizerType"].as_str().unwrap_or_default();
        if kind != "REQUEST" {
            return Err(ManagementError::BadRequest(format!(
                "authorizerType {kind}: WebSocket APIs have REQUEST authorizers (JWT authorizers are set in the definition)"
            )));
        }
        if authorizer.get("authorizerUri").is_none() {
            return Err(ManagementError::BadRequest(
                "a REQUEST authorizer needs authorizerUri".into(),
            ));
        }
        Ok(())
    })
}

/// [`crud`] of resources with a unique `name` (models, authorizers); `check` may fill
/// defaults.
fn named(
    kind: &Kind,
    collection: &mut Collection,
    call: &Call<'_>,
    rest: &[&str],
    check: impl Fn(&mut Json) -> Result<(), ManagementError>,
) -> Option<Result<Response, ManagementError>> {
    crud(kind, collection, call, rest, |collection, resource, own| {
        check(resource)?;
        let name = resource["name"].as_str().unwrap_or_default();
        match taken(collection, "name", name, own) {
            Some(_) => Err(ManagementError::Conflict(format!(
                "{} with name {name} already exists for this API",
                kind.what
            ))),
            None => Ok(()),
        }
    })
}

// ---------------------------------------------------------------------------------------
// Deployments

/// A deployment as the service shows it.
fn deployment_view(info: &wsgate_connection_store::DeploymentInfo, message: Option<&str>) -> Json {
    let created = chrono::DateTime::from_timestamp_millis(info.created_at_ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let mut out = json!({
        "deploymentId": info.id,
        "deploymentStatus": "DEPLOYED",
        "createdDate": created,
        "description": info.description,
        "autoDeployed": false,
    });
    if let Some(message) = message {
        out["deploymentStatusMessage"] = json!(message);
    }
    out
}

async fn deployments(
    m: &Management,
    draft: &mut Draft,
    call: &Call<'_>,
    rest: &[&str],
) -> Result<Response, ManagementError> {
    match (call.method.clone(), rest) {
        (Method::GET, []) => {
            let listing = m.rollout.listing().await?;
            call.page(
                listing
                    .deployments
                    .iter()
                    .map(|d| deployment_view(d, None))
                    .collect(),
            )
        }
        (Method::POST, []) => create_deployment(m, draft, &call.json()?).await,
        (Method::GET, [id]) => {
            let listing = m.rollout.listing().await?;
            let found = listing
                .deployments
                .iter()
                .find(|d| d.id == *id)
                .ok_or_else(|| {
                    ManagementError::NotFound(format!(
                        "Invalid Deployment identifier specified {id}"
                    ))
                })?;
            ok(&deployment_view(found, None))
        }
        (Method::DELETE, [id]) => {
            let listing = m.rollout.listing().await?;
            if !listing.deployments.iter().any(|d| d.id == *id) {
                return Err(ManagementError::NotFound(format!(
                    "Invalid Deployment identifier specified {id}"
                )));
            }
            let active = listing.stages.values().any(|p| {
                p.deployment == *id || p.canary.as_ref().is_some_and(|c| c.deployment == *id)
            });
            if active {
                return Err(ManagementError::BadRequest(
                    "Active stages pointing to this deployment must be moved or deleted".into(),
                ));
            }
            Err(ManagementError::Conflict(format!(
                "deployment {id} is kept for rollbacks: the store keeps the newest deployments.keep deployments and drops older ones itself"
            )))
        }
        (Method::PATCH, [_]) => Err(ManagementError::BadRequest(
            "deployments are immutable: their description is given when they are created".into(),
        )),
        _ => Err(unsupported(
            call.method,
            &format!("deployments/{}", rest.join("/")),
        )),
    }
}

/// `CreateDeployment`: the resources become a definition, stored as a deployment and, with
/// `stageName`, served by that stage.
async fn create_deployment(
    m: &Management,
    draft: &mut Draft,
    body: &Json,
) -> Result<Response, ManagementError> {
    let fields = draft::fields_of(
        &Kind {
            what: "Deployment",
            id: "deploymentId",
            fields: &["description", "stageName"],
            required: &[],
        },
        body,
    )?;
    let stage = fields.get("stageName").and_then(Json::as_str);
    if let Some(stage) = stage
        && !draft.resources.stages.contains_key(stage)
    {
        return Err(ManagementError::NotFound(format!(
            "Invalid stage identifier specified {stage}"
        )));
    }
    let description = fields
        .get("description")
        .and_then(Json::as_str)
        .unwrap_or_default()
        .to_string();
    let start = m.rollout.start_config();
    let built = build::definition(draft, &start.iam.region, &start.iam.account_id)?;
    let config = start
        .with_live(&built.live)
        .map_err(|e| ManagementError::BadRequest(format!("cannot deploy: {e}")))?;
    let info = match stage {
        Some(stage) => {
            let request = ApplyRequest {
                stages: vec![stage.to_string()],
                description: if description.is_empty() {
                    "management API".into()
                } else {
                    description.clone()
                },
                canary: None,
            };
            let changed = m.rollout.apply(config, request).await?;
            changed.deployment.ok_or_else(|| {
                ManagementError::Unavailable("the deployment could not be read back".into())
            })?
        }
        None => m.rollout.store_only(config, &description).await?,
    };
    tracing::info!(deployment = %info.id, stage = ?stage, "management API: deployment created");
    draft.deployed.push(info.id.clone());
    draft.seed = Seed {
        deployment: info.id.clone(),
        live: built.live,
        resources: draft.resources.clone(),
        routes: draft
            .resources
            .routes
            .iter()
            .filter_map(|(id, r)| Some((r["routeKey"].as_str()?.to_string(), id.clone())))
            .collect(),
    };
    let message = (!built.ignored.is_empty()).then(|| {
        let mut text = format!("ignored: {}", built.ignored.join("; "));
        if text.len() > 2000 {
            let mut end = 2000;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
            text.push('…');
        }
        text
    });
    created(&deployment_view(&info, message.as_deref()))
}

// ---------------------------------------------------------------------------------------
// Domain names and API mappings (the configuration's `domains` in force, read-only)

fn domains(
    m: &Management,
    call: &Call<'_>,
    rest: &[&str],
) -> Option<Result<Response, ManagementError>> {
    let api_id = m.rollout.start_config().api.api_id().to_string();
    let domains = m.domains.load();
    let configured = domains.configured();
    let view = |d: &crate::config::DomainConfig| {
        json!({
            "domainName": d.name,
            "apiMappingSelectionExpression": "$request.basepath",
            "domainNameConfigurations": [{
                "endpointType": "REGIONAL",
                "domainNameStatus": "AVAILABLE",
                "securityPolicy": "TLS_1_2",
            }],
            "tags": {},
        })
    };
    let mapping = |d: &crate::config::DomainConfig, path: &str, stage: &str| {
        json!({
            "apiMappingId": draft::stable_id("apimapping", &format!("{}/{path}", d.name)),
            "apiId": api_id,
            "stage": stage,
            "apiMappingKey": path.trim_matches('/'),
        })
    };
    let find = |name: &str| {
        (configured.iter())
            .find(|d| d.name.eq_ignore_ascii_case(name))
            .ok_or_else(|| {
                ManagementError::NotFound(format!(
                    "Invalid domain name identifier specified {name}"
                ))
            })
    };
    if *call.method != Method::GET {
        return Some(Err(ManagementError::BadRequest(
            "custom domain names and API mappings are set in the configuration file's `domains` (a reload applies them)".into(),
        )));
    }
    Some(match rest {
        [] => call.page(configured.iter().map(view).collect()),
        [name] => find(name).and_then(|d| ok(&view(d))),
        [name, "apimappings"] => find(name).and_then(|d| {
            call.page(
                d.mappings
                    .iter()
                    .map(|x| mapping(d, &x.path, &x.stage))
                    .collect(),
            )
        }),
        [name, "apimappings", id] => find(name).and_then(|d| {
            d.mappings
                .iter()
                .map(|x| mapping(d, &x.path, &x.stage))
                .find(|x| x["apiMappingId"] == **id)
                .ok_or_else(|| {
                    ManagementError::NotFound(format!(
                        "Invalid API mapping identifier specified {id}"
                    ))
                })
                .and_then(|x| ok(&x))
        }),
        _ => return None,
    })
}
