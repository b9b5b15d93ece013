//! The changes an operator makes (through the admin API): apply a configuration as a new
//! deployment (to every stage of it, to some stages, or as their canary), roll a stage back,
//! promote or drop its canary; and the listing. Each change reads the pointers, computes the
//! new ones, makes sure this node can serve them (builds what they name), then writes them with
//! compare-and-set on the version (retried a few times when another change landed meanwhile),
//! switches this node and tells the others.

use std::collections::BTreeMap;

use serde::Serialize;
use wsgate_connection_store::{
    Canary, DeploymentInfo, NodeServing, Pointers, StagePointer, StoreError,
};

use super::switch::{SwitchError, pointer_to, stored_of};
use super::{Built, HEARTBEAT_HORIZON_MS, Rollout, hash_of_id, refuse_fixed_keys};
use crate::config::Config;
use crate::deployment;
use crate::error::ReloadError;

/// Attempts of one change against concurrent ones.
const ATTEMPTS: usize = 5;

/// What `apply` deploys to.
#[derive(Debug, Default, Clone)]
pub(crate) struct ApplyRequest {
    /// The stages to point at it; empty: every stage of the configuration, and stages it lacks
    /// stop being served (as a reload of the file would do).
    pub stages: Vec<String>,
    /// Kept with the deployment.
    pub description: String,
    /// Run it as the stages' canary with this share of new connections instead.
    pub canary: Option<f64>,
}

/// The answer of a change.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Changed {
    /// The deployment applied (for `apply`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub deployment: Option<DeploymentInfo>,
    /// True when the stages already served the same content: nothing was written.
    pub unchanged: bool,
    /// The pointers' version now.
    pub version: u64,
    /// Every stage's pointer now.
    pub stages: BTreeMap<String, StagePointer>,
}

/// A deployment's definition, as `wsgate export definition` asks for it.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Exported {
    /// Its identity and description.
    pub deployment: DeploymentInfo,
    /// `{api, throttling}` as stored: what `wsgate apply` takes back.
    pub definition: serde_json::Value,
}

/// The listing.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Listing {
    /// The kept deployments, newest first.
    pub deployments: Vec<DeploymentInfo>,
    /// The pointers' version.
    pub version: u64,
    /// Every stage's pointer.
    pub stages: BTreeMap<String, StagePointer>,
    /// What each node said it serves in the last seconds.
    pub nodes: Vec<NodeServing>,
}

fn store_error(error: StoreError) -> ReloadError {
    ReloadError::Store(error.to_string())
}

impl Rollout {
    /// Applies `config` (read and checked as a start would) as described by `request`.
    ///
    /// # Errors
    /// Why nothing changed.
    pub(crate) async fn apply(
        &self,
        config: Config,
        request: ApplyRequest,
    ) -> Result<Changed, ReloadError> {
        refuse_fixed_keys(&self.shared.config, &config)?;
        if let Some(percent) = request.canary
            && !(percent > 0.0 && percent <= 100.0)
        {
            return Err(ReloadError::BadRequest(format!(
                "canary: {percent} is not a percentage in (0, 100]"
            )));
        }
        for stage in &request.stages {
            if !config.api.stages.contains_key(stage) {
                return Err(ReloadError::BadRequest(format!(
                    "stage `{stage}` is not in the definition (api.stages)"
                )));
            }
        }
        let description = if request.description.is_empty() {
            "applied".to_string()
        } else {
            request.description.clone()
        };
        let (stored, definition) = self.built(config, &description)?;
        let definition = std::sync::Arc::new(definition);
        let all: Vec<String> = definition.stages.keys().cloned().collect();
        let id = stored.info.id.clone();
        let mut built = self.one.lock().await;
        built.insert(
            id.clone(),
            (
                std::sync::Arc::clone(&definition),
                stored.info.created_at_ms,
            ),
        );
        let outcome = self
            .change(
                &mut built,
                |pointers| next_pointers(pointers, &request, &id, &all),
                Some(&stored),
            )
            .await;
        match outcome {
            Ok((pointers, true)) => Ok(Changed {
                deployment: Some(stored.info),
                unchanged: false,
                version: pointers.version,
                stages: pointers.stages,
            }),
            Ok((pointers, false)) => {
                built.remove(&id);
                let served = request.stages.first().or(all.first());
                let current = served
                    .and_then(|s| pointers.stages.get(s))
                    .map(|p| p.deployment.clone());
                let info = match current {
                    Some(current) => (self.store.deployments().await)
                        .map_err(store_error)?
                        .into_iter()
                        .find(|d| d.id == current),
                    None => None,
                };
                Ok(Changed {
                    deployment: info,
                    unchanged: true,
                    version: pointers.version,
                    stages: pointers.stages,
                })
            }
            Err(error) => {
                built.remove(&id);
                Err(error)
            }
        }
    }

    /// Stores `config` as a deployment that no stage serves yet (it is built first: this node
    /// can serve it); a stage is pointed at it later by id.
    ///
    /// # Errors
    /// Why nothing was stored.
    pub(crate) async fn store_only(
        &self,
        config: Config,
        description: &str,
    ) -> Result<DeploymentInfo, ReloadError> {
        refuse_fixed_keys(&self.shared.config, &config)?;
        let (stored, _) = self.built(config, description)?;
        let _one = self.one.lock().await;
        let pointers = self.store.pointers().await.map_err(store_error)?;
        (self.store)
            .put_deployment(
                &stored,
                self.shared.config.deployments.keep,
                &pointers.referenced(),
            )
            .await
            .map_err(store_error)?;
        Ok(stored.info)
    }

    /// `config` as a deployment to store and the definition this node builds from it: built
    /// here first, so that what the store gets is known to be servable.
    ///
    /// # Errors
    /// The one line a start with `config` would print.
    fn built(
        &self,
        config: Config,
        description: &str,
    ) -> Result<
        (
            wsgate_connection_store::StoredDeployment,
            deployment::Definition,
        ),
        ReloadError,
    > {
        let stored = stored_of(&config, description);
        let previous = self.shared.definition();
        let throttle = deployment::throttle_after(&config, &previous);
        let mut definition = (self.builder)
            .build(config, throttle, Some(&previous))
            .map_err(|e| ReloadError::Invalid(e.to_string()))?;
        definition.deployment = deployment::Deployment::stored(&stored.info);
        Ok((stored, definition))
    }

    /// Every stage's pointer (one store read).
    ///
    /// # Errors
    /// The store could not be read.
    pub(crate) async fn stage_pointers(&self) -> Result<Pointers, ReloadError> {
        self.store.pointers().await.map_err(store_error)
    }

    /// Points `stage` back at its previous deployment, or at `to` (also a stage that serves
    /// nothing yet); drops its canary.
    ///
    /// # Errors
    /// Why nothing changed.
    pub(crate) async fn rollback(
        &self,
        stage: &str,
        to: Option<&str>,
    ) -> Result<Changed, ReloadError> {
        let mut built = self.one.lock().await;
        let (pointers, _) = self
            .change(
                &mut built,
                |pointers| {
                    // A stage without a pointer yet can be pointed at a deployment by id.
                    let current = match (to, pointers.stages.get(stage)) {
                        (Some(target), None) => {
                            let mut stages = pointers.stages.clone();
                            stages.insert(stage.to_owned(), pointer_to(target));
                            return Ok(Some(stages));
                        }
                        _ => stage_of(pointers, stage)?,
                    };
                    let next = match to {
                        Some(target) => current.moved_to(target),
                        None => {
                            let Some(previous) = current.history.first() else {
                                return Err(ReloadError::Conflict(format!(
                                    "stage `{stage}` has no previous deployment to roll back to"
                                )));
                            };
                            StagePointer {
                                deployment: previous.clone(),
                                canary: None,
                                history: current.history[1..].to_vec(),
                            }
                        }
                    };
                    let mut stages = pointers.stages.clone();
                    stages.insert(stage.to_owned(), next);
                    Ok(Some(stages))
                },
                None,
            )
            .await?;
        Ok(changed(pointers))
    }

    /// Stops serving `stage`: its pointer goes (new connections and callback requests for it
    /// get 404; its open connections go on as after a reload that removed it). The last stage
    /// served cannot go.
    ///
    /// # Errors
    /// Why nothing changed (no pointer: 404; the last stage: 409).
    pub(crate) async fn retire(&self, stage: &str) -> Result<Changed, ReloadError> {
        let mut built = self.one.lock().await;
        let (pointers, _) = self
            .change(
                &mut built,
                |pointers| {
                    stage_of(pointers, stage)?;
                    if pointers.stages.len() == 1 {
                        return Err(ReloadError::Conflict(format!(
                            "stage `{stage}` is the only stage served: deploy another stage before deleting it"
                        )));
                    }
                    let mut stages = pointers.stages.clone();
                    stages.remove(stage);
                    Ok(Some(stages))
                },
                None,
            )
            .await?;
        Ok(changed(pointers))
    }

    /// Makes `stage`'s canary its deployment.
    ///
    /// # Errors
    /// Why nothing changed (no canary: 409).
    pub(crate) async fn promote(&self, stage: &str) -> Result<Changed, ReloadError> {
        self.canary_change(stage, |current, canary| {
            current.moved_to(&canary.deployment)
        })
        .await
    }

    /// Stops `stage`'s canary (its connections go on with the stage's deployment).
    ///
    /// # Errors
    /// Why nothing changed (no canary: 409).
    pub(crate) async fn drop_canary(&self, stage: &str) -> Result<Changed, ReloadError> {
        self.canary_change(stage, |current, _| StagePointer {
            canary: None,
            ..current.clone()
        })
        .await
    }

    async fn canary_change(
        &self,
        stage: &str,
        next: impl Fn(&StagePointer, &Canary) -> StagePointer,
    ) -> Result<Changed, ReloadError> {
        let mut built = self.one.lock().await;
        let (pointers, _) = self
            .change(
                &mut built,
                |pointers| {
                    let current = stage_of(pointers, stage)?;
                    let Some(canary) = &current.canary else {
                        return Err(ReloadError::Conflict(format!(
                            "stage `{stage}` runs no canary"
                        )));
                    };
                    let mut stages = pointers.stages.clone();
                    stages.insert(stage.to_owned(), next(current, canary));
                    Ok(Some(stages))
                },
                None,
            )
            .await?;
        Ok(changed(pointers))
    }

    /// The kept deployments, the pointers and what the nodes serve.
    ///
    /// # Errors
    /// The store could not be read.
    pub(crate) async fn listing(&self) -> Result<Listing, ReloadError> {
        let deployments = self.store.deployments().await.map_err(store_error)?;
        let pointers = self.store.pointers().await.map_err(store_error)?;
        let nodes = self.nodes_serving().await.map_err(store_error)?;
        Ok(Listing {
            deployments,
            version: pointers.version,
            stages: pointers.stages,
            nodes,
        })
    }

    /// What each node serves (heartbeats of the last 15 s; this node's own view is always
    /// current), by node id.
    ///
    /// # Errors
    /// The store could not be read.
    pub(crate) async fn nodes_serving(&self) -> Result<Vec<NodeServing>, StoreError> {
        let since = chrono::Utc::now().timestamp_millis() - HEARTBEAT_HORIZON_MS;
        let mut nodes = self.store.nodes(since).await?;
        let mine = self.serving_now();
        nodes.retain(|n| n.node_id != mine.node_id);
        nodes.push(mine);
        nodes.sort_by(|a, b| a.node_id.cmp(&b.node_id));
        Ok(nodes)
    }

    /// The stored deployment `deployment`, else the one `stage` serves, else the one this
    /// node's main definition comes from: its identity and its definition (`api`,
    /// `throttling`) as a JSON tree.
    ///
    /// # Errors
    /// 404 (`NotFound`) for a stage that serves nothing or a deployment the store does not
    /// keep; 503 when the store cannot be reached.
    pub(crate) async fn definition(
        &self,
        stage: Option<&str>,
        deployment: Option<&str>,
    ) -> Result<Exported, ReloadError> {
        let id = match (deployment, stage) {
            (Some(id), _) => id.to_string(),
            (None, Some(stage)) => {
                let pointers = self.store.pointers().await.map_err(store_error)?;
                stage_of(&pointers, stage)?.deployment.clone()
            }
            (None, None) => self.shared.definition().deployment.id.clone(),
        };
        let stored = (self.store.deployment(&id).await)
            .map_err(store_error)?
            .ok_or_else(|| ReloadError::NotFound(format!("no deployment `{id}` is kept")))?;
        let definition = serde_json::from_str(&stored.definition)
            .map_err(|e| ReloadError::Invalid(format!("deployment {id}: not JSON: {e}")))?;
        Ok(Exported {
            deployment: stored.info,
            definition,
        })
    }

    /// One change: `next` computes the new pointers from the current ones (`None`: nothing to
    /// change); this node must be able to serve them; then compare-and-set, switch, notify.
    /// `stored` is first written to the store (a new deployment). Answers the pointers in force
    /// and whether they were written.
    async fn change(
        &self,
        built: &mut Built,
        next: impl Fn(&Pointers) -> Result<Option<BTreeMap<String, StagePointer>>, ReloadError>,
        stored: Option<&wsgate_connection_store::StoredDeployment>,
    ) -> Result<(Pointers, bool), ReloadError> {
        for _ in 0..ATTEMPTS {
            let pointers = self.store.pointers().await.map_err(store_error)?;
            let Some(stages) = next(&pointers)? else {
                return Ok((pointers, false));
            };
            let proposed = Pointers {
                version: pointers.version + 1,
                stages,
            };
            // This node must be able to serve them before anyone is told to.
            let previous = self.shared.definition();
            let start = (&self.builder, &self.shared.config);
            let mut trial = built.clone();
            let serving =
                super::switch::serving_from(&*self.store, start, &proposed, &mut trial, &previous)
                    .await
                    .map_err(|e| match e {
                        SwitchError::Store(e) => store_error(e),
                        SwitchError::Build(e) => e,
                    })?;
            if let Some(stored) = stored {
                let mut protect = pointers.referenced();
                protect.extend(proposed.referenced());
                (self.store)
                    .put_deployment(stored, self.shared.config.deployments.keep, &protect)
                    .await
                    .map_err(store_error)?;
            }
            let Some(version) = (self.store)
                .set_pointers(pointers.version, &proposed.stages)
                .await
                .map_err(store_error)?
            else {
                continue;
            };
            let written = Pointers {
                version,
                stages: proposed.stages,
            };
            *built = trial;
            let serving = deployment::Serving { version, ..serving };
            self.install_now(serving);
            self.heartbeat().await;
            self.publish(version).await;
            return Ok((written, true));
        }
        Err(ReloadError::Conflict(
            "the stage pointers kept changing under concurrent deploys; nothing changed, try again"
                .into(),
        ))
    }

    fn install_now(&self, serving: deployment::Serving) {
        *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
        metrics::counter!(crate::telemetry::DEPLOYMENT_SWITCHES_TOTAL, "outcome" => "applied")
            .increment(1);
        self.install(serving);
    }

    /// Tells the other nodes (a lost notification is caught by their periodic check).
    pub(super) async fn publish(&self, version: u64) {
        if let Some(channels) = &self.notify {
            let frame = bytes::Bytes::from(version.to_string());
            if let Err(error) = channels.publish(&self.channel, frame).await {
                tracing::warn!(%error, "cannot publish the deployment change; nodes see it at their next check");
            }
        }
    }
}

/// The pointer of `stage`, or 404.
fn stage_of<'a>(pointers: &'a Pointers, stage: &str) -> Result<&'a StagePointer, ReloadError> {
    pointers
        .stages
        .get(stage)
        .ok_or_else(|| ReloadError::NotFound(format!("stage `{stage}` serves no deployment")))
}

fn changed(pointers: Pointers) -> Changed {
    Changed {
        deployment: None,
        unchanged: false,
        version: pointers.version,
        stages: pointers.stages,
    }
}

/// The pointers after applying deployment `id` (whose stages are `all`) as `request` says;
/// `None` when the stages already serve the same content.
fn next_pointers(
    pointers: &Pointers,
    request: &ApplyRequest,
    id: &str,
    all: &[String],
) -> Result<Option<BTreeMap<String, StagePointer>>, ReloadError> {
    let hash = hash_of_id(id);
    let targets: Vec<String> = if request.stages.is_empty() {
        all.to_vec()
    } else {
        request.stages.clone()
    };
    let mut stages = pointers.stages.clone();
    if let Some(percent) = request.canary {
        for stage in &targets {
            let Some(current) = stages.get_mut(stage) else {
                return Err(ReloadError::Conflict(format!(
                    "stage `{stage}` serves no deployment yet: apply it without --canary first"
                )));
            };
            current.canary = Some(Canary {
                deployment: id.to_owned(),
                percent,
            });
        }
        return Ok(Some(stages));
    }
    let same = |p: Option<&StagePointer>| {
        p.is_some_and(|p| hash_of_id(&p.deployment) == hash && p.canary.is_none())
    };
    let whole = request.stages.is_empty();
    let unchanged = targets.iter().all(|s| same(pointers.stages.get(s)))
        && (!whole || pointers.stages.len() == targets.len());
    if unchanged {
        return Ok(None);
    }
    if whole {
        stages.retain(|stage, _| targets.contains(stage));
    }
    for stage in &targets {
        let next = match stages.get(stage) {
            Some(current) => current.moved_to(id),
            None => pointer_to(id),
        };
        stages.insert(stage.clone(), next);
    }
    Ok(Some(stages))
}
