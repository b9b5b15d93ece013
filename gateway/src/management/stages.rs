//! The stage operations of the management API. As in Amazon API Gateway, a stage's changes take
//! effect at once: `UpdateStage` with `deploymentId` points it at that deployment (a deploy or a
//! rollback), `UpdateStage` with `stageVariables` serves a new deployment of what the stage
//! serves with those variables (in wsgate a stage's variables are part of the definition), and
//! `DeleteStage` stops serving it. A stage created without a deployment serves nothing until one
//! is made for it.

use axum::response::Response;
use http::Method;
use serde_json::{Map, Value as Json, json};

use super::draft::{self, Draft, STAGE};
use super::handlers::{Call, created, deleted, ok, unsupported};
use super::{Management, now};
use crate::error::{ManagementError, ReloadError};
use crate::rollout::ApplyRequest;

/// A stage as the service shows it: the resource with the deployment it serves.
fn stage_view(stage: &Json, pointers: &Map<String, Json>) -> Json {
    let mut out = stage.clone();
    let name = stage["stageName"].as_str().unwrap_or_default();
    if let Some(deployment) = pointers.get(name).and_then(|p| p.get("deployment")) {
        out["deploymentId"] = deployment.clone();
    }
    out
}

/// Every stage's pointer (`{stage: {deployment, canary?, history}}`).
async fn pointers(m: &Management) -> Result<Map<String, Json>, ManagementError> {
    let pointers = m.rollout.stage_pointers().await?;
    Ok(serde_json::to_value(pointers.stages)
        .ok()
        .and_then(|v| v.as_object().cloned())
        .unwrap_or_default())
}

/// The definition of the kept deployment `deployment`, which must define `stage`.
async fn definition_with(
    m: &Management,
    stage: &str,
    deployment: &str,
) -> Result<Json, ManagementError> {
    let exported = m
        .rollout
        .definition(None, Some(deployment))
        .await
        .map_err(|_| {
            ManagementError::NotFound(format!(
                "Invalid Deployment identifier specified {deployment}"
            ))
        })?;
    if exported.definition["api"]["stages"].get(stage).is_none() {
        return Err(ManagementError::BadRequest(format!(
            "deployment {deployment} was made before stage {stage} existed: create a deployment of the stage (CreateDeployment with stageName)"
        )));
    }
    Ok(exported.definition)
}

/// Points `stage` at `deployment`, which must be kept and define the stage.
async fn point(m: &Management, stage: &str, deployment: &str) -> Result<(), ManagementError> {
    definition_with(m, stage, deployment).await?;
    m.rollout.rollback(stage, Some(deployment)).await?;
    Ok(())
}

/// Serves `stage` with `variables` at once: `base` (else what the stage serves now) with the
/// stage's variables replaced becomes a new deployment, and the stage alone is pointed at it.
/// Answers the deployment the stage now serves, or `None` when it serves nothing yet (its
/// variables then come with its first deployment).
async fn serve_variables(
    m: &Management,
    stage: &str,
    base: Option<&str>,
    variables: &Json,
) -> Result<Option<String>, ManagementError> {
    let explicit = base.is_some();
    let base = match base {
        Some(base) => base.to_string(),
        None => {
            let pointers = m.rollout.stage_pointers().await?;
            let Some(current) = pointers.stages.get(stage) else {
                return Ok(None);
            };
            if current.canary.is_some() {
                return Err(ManagementError::Conflict(format!(
                    "stage {stage} runs a canary: promote or drop it before changing its variables"
                )));
            }
            current.deployment.clone()
        }
    };
    let mut definition = definition_with(m, stage, &base).await?;
    let entry = &mut definition["api"]["stages"][stage];
    if !entry.is_object() {
        *entry = json!({});
    }
    let same = entry.get("variables").unwrap_or(&json!({})) == variables;
    if same {
        // Only a `deploymentId` given with the variables moves the stage; else nothing changes.
        if explicit {
            m.rollout.rollback(stage, Some(&base)).await?;
        }
        return Ok(Some(base));
    }
    entry["variables"] = variables.clone();
    let config = (m.rollout.start_config())
        .with_live(&definition)
        .map_err(|e| ManagementError::BadRequest(format!("cannot serve these variables: {e}")))?;
    let request = ApplyRequest {
        stages: vec![stage.to_string()],
        description: format!("stage variables of {stage} (management API)"),
        canary: None,
    };
    let changed = m.rollout.apply(config, request).await?;
    let served = (changed.stages.get(stage)).map(|p| p.deployment.clone());
    tracing::info!(%stage, deployment = ?served, "management API: stage variables served");
    Ok(served)
}

pub(super) async fn stages(
    m: &Management,
    draft: &mut Draft,
    call: &Call<'_>,
    rest: &[&str],
) -> Result<Response, ManagementError> {
    let r = &mut draft.resources;
    match (call.method.clone(), rest) {
        (Method::GET, []) => {
            let pointers = pointers(m).await?;
            call.page(
                r.stages
                    .values()
                    .map(|s| stage_view(s, &pointers))
                    .collect(),
            )
        }
        (Method::POST, []) => {
            draft::room(&STAGE, &r.stages)?;
            let body = call.json()?;
            let name = body["stageName"].as_str().unwrap_or_default().to_string();
            let mut stage = draft::create(&STAGE, &body, &name)?;
            if !crate::config::is_stage_name(&name) {
                return Err(ManagementError::BadRequest(format!(
                    "stage name {name}: 1 to 128 letters, digits, - and _"
                )));
            }
            if r.stages.contains_key(&name) {
                return Err(ManagementError::Conflict(format!(
                    "Stage {name} already exists"
                )));
            }
            check_variables(&stage)?;
            if let Some(deployment) = stage["deploymentId"].as_str() {
                match stage.get("stageVariables") {
                    Some(variables) => {
                        serve_variables(m, &name, Some(deployment), variables).await?;
                    }
                    None => point(m, &name, deployment).await?,
                }
                draft.deployed.push(deployment.to_string());
            }
            let out = stage.as_object_mut().expect("created as an object");
            out.remove("deploymentId");
            out.insert("createdDate".into(), json!(now()));
            out.insert("lastUpdatedDate".into(), json!(now()));
            out.insert("autoDeploy".into(), json!(false));
            out.insert("apiGatewayManaged".into(), json!(false));
            out.entry("stageVariables").or_insert(json!({}));
            draft.resources.stages.insert(name, stage.clone());
            let pointers = pointers(m).await?;
            created(&stage_view(&stage, &pointers))
        }
        (Method::GET, [name]) => {
            let stage = draft::get(&STAGE, &r.stages, name)?.clone();
            let pointers = pointers(m).await?;
            ok(&stage_view(&stage, &pointers))
        }
        (Method::PATCH, [name]) => {
            let body = call.json()?;
            let mut updated = draft::update(&STAGE, draft::get(&STAGE, &r.stages, name)?, &body)?;
            check_variables(&updated)?;
            let base = body["deploymentId"].as_str();
            let served = match (base, body.get("stageVariables")) {
                (_, Some(_)) => {
                    let variables = updated.get("stageVariables").cloned();
                    let variables = variables.unwrap_or_else(|| json!({}));
                    serve_variables(m, name, base, &variables).await?
                }
                (Some(deployment), None) => {
                    point(m, name, deployment).await?;
                    Some(deployment.to_string())
                }
                (None, None) => None,
            };
            draft.deployed.extend(served);
            let out = updated.as_object_mut().expect("an object");
            out.remove("deploymentId");
            out.insert("lastUpdatedDate".into(), json!(now()));
            draft
                .resources
                .stages
                .insert((*name).to_string(), updated.clone());
            let pointers = pointers(m).await?;
            ok(&stage_view(&updated, &pointers))
        }
        (Method::DELETE, [name]) => {
            draft::get(&STAGE, &r.stages, name)?;
            // A stage that serves nothing yet (no pointer: 404 from the store) has nothing to stop.
            match m.rollout.retire(name).await {
                Ok(_) => {
                    tracing::info!(stage = %name, "management API: stage deleted, no longer served")
                }
                Err(ReloadError::NotFound(_)) => {}
                Err(error) => return Err(error.into()),
            }
            draft.resources.stages.remove(*name);
            deleted()
        }
        _ => Err(unsupported(
            call.method,
            &format!("stages/{}", rest.join("/")),
        )),
    }
}

/// `stageVariables` is a map of strings.
fn check_variables(stage: &Json) -> Result<(), ManagementError> {
    match stage.get("stageVariables") {
        None => Ok(()),
        Some(Json::Object(map)) if map.values().all(Json::is_string) => Ok(()),
        Some(_) => Err(ManagementError::BadRequest(
            "stageVariables: a map of strings".into(),
        )),
    }
}
