//! Stage pointers → the definitions this node serves: built from the stored deployments (the
//! ones already built are reused), swapped in whole; the loop that follows the store (every
//! `deployments.check_interval` and on every notification) and writes this node's heartbeat.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use wsgate_connection_store::{
    Canary, DeploymentInfo, DeploymentStore, NodeServing, Pointers, ServedStage, StagePointer,
    StoreError, StoredDeployment,
};

use super::{Built, HEARTBEAT_EVERY, Rollout, build_stored};
use crate::config::Config;
use crate::deployment::{Builder, Definition, Deployment, Pick, Serving};
use crate::error::ReloadError;
use crate::telemetry;

/// Why the pointers could not be served.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SwitchError {
    /// The store could not be read (try again at the next check).
    #[error("deployment store: {0}")]
    Store(#[from] StoreError),
    /// A deployment cannot be served by this node (wait for the next change).
    #[error(transparent)]
    Build(#[from] ReloadError),
}

/// The definitions `pointers` name, built where `built` lacks them (with `previous` as the
/// definition they follow); `built` keeps exactly those afterwards.
pub(crate) async fn serving_from(
    store: &dyn DeploymentStore,
    (builder, start): (&Builder, &Config),
    pointers: &Pointers,
    built: &mut Built,
    previous: &Definition,
) -> Result<Serving, SwitchError> {
    let mut needed = BTreeSet::new();
    for pointer in pointers.stages.values() {
        needed.insert(pointer.deployment.clone());
        if let Some(canary) = &pointer.canary {
            needed.insert(canary.deployment.clone());
        }
    }
    for id in &needed {
        if built.contains_key(id) {
            continue;
        }
        let stored = store.deployment(id).await?.ok_or_else(|| {
            ReloadError::NotFound(format!("deployment {id} is not in the deployment store"))
        })?;
        let definition = build_stored(builder, start, &stored, previous)?;
        built.insert(
            id.clone(),
            (Arc::new(definition), stored.info.created_at_ms),
        );
    }
    let mut stages = HashMap::new();
    let mut main: Option<&(Arc<Definition>, i64)> = None;
    for (stage, pointer) in &pointers.stages {
        let primary = &built[&pointer.deployment];
        if primary.0.stage(stage).is_none() {
            return Err(ReloadError::Invalid(format!(
                "deployment {} has no stage `{stage}`",
                pointer.deployment
            ))
            .into());
        }
        if main.is_none_or(|m| primary.1 > m.1) {
            main = Some(primary);
        }
        let canary = pointer
            .canary
            .as_ref()
            .map(|c| (Arc::clone(&built[&c.deployment].0), c.percent));
        let pick = Pick {
            primary: Arc::clone(&primary.0),
            canary,
        };
        stages.insert(stage.clone(), pick);
    }
    let Some(main) = main.map(|m| Arc::clone(&m.0)) else {
        return Err(ReloadError::Conflict("the stage pointers name no stage".into()).into());
    };
    built.retain(|id, _| needed.contains(id));
    Ok(Serving {
        main,
        stages,
        version: pointers.version,
    })
}

/// What a gateway serves at start: the stage pointers in the store, or (the store has none) its
/// own definition, which then seeds the store. Answers the definitions built for them too.
///
/// # Errors
/// The store cannot be reached, or this node cannot serve what the store says (one line).
pub(crate) async fn initial(
    store: &dyn DeploymentStore,
    (builder, start): (&Builder, &Config),
    mut own: Definition,
) -> Result<(Serving, Built), String> {
    let fail = |e: StoreError| format!("deployments: cannot read the deployment store: {e}");
    let mut pointers = store.pointers().await.map_err(fail)?;
    if pointers.version == 0 {
        let stored = stored_of(start, "the configuration file at start");
        let protect = BTreeSet::new();
        (store
            .put_deployment(&stored, start.deployments.keep, &protect)
            .await)
            .map_err(fail)?;
        let stages: BTreeMap<String, StagePointer> = own
            .stages
            .keys()
            .map(|stage| (stage.clone(), pointer_to(&stored.info.id)))
            .collect();
        if let Some(version) = store.set_pointers(0, &stages).await.map_err(fail)? {
            own.deployment = Deployment::stored(&stored.info);
            let created = stored.info.created_at_ms;
            let id = stored.info.id.clone();
            let mut serving = Serving::single(own);
            serving.version = version;
            let built = [(id, (Arc::clone(&serving.main), created))].into();
            tracing::info!(deployment = %stored.info.id, "the deployment store was empty: seeded it with the configuration file");
            return Ok((serving, built));
        }
        // Another node seeded it meanwhile.
        pointers = store.pointers().await.map_err(fail)?;
    }
    let mut built = Built::new();
    let serving = serving_from(store, (builder, start), &pointers, &mut built, &own)
        .await
        .map_err(|e| {
            format!("deployments: this node cannot serve the deployments the store's stage pointers name (version {}): {e}", pointers.version)
        })?;
    tracing::info!(version = pointers.version, deployment = %serving.main.deployment.id, "serving the deployments of the store's stage pointers (the file did not seed them)");
    Ok((serving, built))
}

/// A new stored deployment of `config`'s live part, made now.
pub(crate) fn stored_of(config: &Config, description: &str) -> StoredDeployment {
    let live = config.live_tree();
    let hash = crate::deployment::content_hash_of(&live);
    let created_at_ms = chrono::Utc::now().timestamp_millis();
    StoredDeployment {
        info: DeploymentInfo {
            id: format!("{hash}-{created_at_ms}"),
            created_at_ms,
            description: description.to_owned(),
            hash,
        },
        definition: live.to_string(),
    }
}

/// A pointer at `id` with no canary and no history.
pub(crate) fn pointer_to(id: &str) -> StagePointer {
    StagePointer {
        deployment: id.to_owned(),
        canary: None,
        history: Vec::new(),
    }
}

impl Rollout {
    /// Reads the pointers' version and switches when it moved (and did not fail before).
    ///
    /// # Errors
    /// The store could not be read.
    pub(crate) async fn follow(&self) -> Result<(), StoreError> {
        let version = self.store.pointers_version().await?;
        if version == self.shared.serving().version || self.failed_at() == Some(version) {
            return Ok(());
        }
        let mut built = self.one.lock().await;
        let pointers = self.store.pointers().await?;
        if pointers.version == 0 {
            return self.reseed(&built).await;
        }
        if pointers.version == self.shared.serving().version {
            return Ok(());
        }
        match self.switch(&pointers, &mut built).await {
            Ok(()) => Ok(()),
            Err(SwitchError::Store(e)) => Err(e),
            Err(SwitchError::Build(_)) => Ok(()),
        }
    }

    /// The store lost its pointers (flushed, or a new Redis): writes back what this node
    /// serves, as the seed of an empty store would be (the first node to do so wins).
    async fn reseed(&self, built: &Built) -> Result<(), StoreError> {
        let serving = self.shared.serving();
        let stages: BTreeMap<String, StagePointer> = (serving.stages.iter())
            .map(|(stage, pick)| {
                let pointer = StagePointer {
                    deployment: pick.primary.deployment.id.clone(),
                    canary: (pick.canary.as_ref()).map(|(d, percent)| Canary {
                        deployment: d.deployment.id.clone(),
                        percent: *percent,
                    }),
                    history: Vec::new(),
                };
                (stage.clone(), pointer)
            })
            .collect();
        let protect = Pointers {
            version: 0,
            stages: stages.clone(),
        }
        .referenced();
        let keep = self.shared.config.deployments.keep;
        for (id, (definition, created_at_ms)) in built {
            if !protect.contains(id) {
                continue;
            }
            let stored = StoredDeployment {
                info: DeploymentInfo {
                    id: id.clone(),
                    created_at_ms: *created_at_ms,
                    description: "stored again after the store lost it".into(),
                    hash: definition.deployment.hash.clone(),
                },
                definition: definition.config.live_tree().to_string(),
            };
            self.store.put_deployment(&stored, keep, &protect).await?;
        }
        if let Some(version) = self.store.set_pointers(0, &stages).await? {
            tracing::warn!(
                version,
                "the deployment store had no stage pointers (flushed or lost): stored again what this node serves"
            );
            self.install(Serving {
                main: Arc::clone(&serving.main),
                stages: serving.stages.clone(),
                version,
            });
            self.publish(version).await;
        }
        Ok(())
    }

    fn failed_at(&self) -> Option<u64> {
        let failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.as_ref().map(|(version, _)| *version)
    }

    /// Builds and swaps in what `pointers` name (the caller holds `one`); a build failure is
    /// remembered for this version, logged and counted, and the definitions in force stay.
    pub(super) async fn switch(
        &self,
        pointers: &Pointers,
        built: &mut Built,
    ) -> Result<(), SwitchError> {
        let previous = self.shared.definition();
        let start = (&self.builder, &self.shared.config);
        let outcome = serving_from(&*self.store, start, pointers, built, &previous).await;
        match outcome {
            Ok(serving) => {
                self.install(serving);
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) = None;
                metrics::counter!(telemetry::DEPLOYMENT_SWITCHES_TOTAL, "outcome" => "applied")
                    .increment(1);
                self.heartbeat().await;
                Ok(())
            }
            Err(SwitchError::Build(error)) => {
                metrics::counter!(telemetry::DEPLOYMENT_SWITCHES_TOTAL, "outcome" => "failed")
                    .increment(1);
                tracing::error!(version = pointers.version, %error, "cannot serve the new stage pointers; the deployments in force stay");
                *self.failed.lock().unwrap_or_else(|e| e.into_inner()) =
                    Some((pointers.version, error.to_string()));
                self.heartbeat().await;
                Err(SwitchError::Build(error))
            }
            Err(error) => Err(error),
        }
    }

    /// Swaps `serving` in and reports it.
    pub(super) fn install(&self, serving: Serving) {
        let before = self.shared.serving();
        for (stage, pick) in &serving.stages {
            let percent = pick.canary.as_ref().map_or(0.0, |(_, p)| *p);
            metrics::gauge!(telemetry::CANARY_PERCENT, "stage" => stage.clone()).set(percent);
        }
        for stage in before.stages.keys() {
            if !serving.stages.contains_key(stage) {
                metrics::gauge!(telemetry::CANARY_PERCENT, "stage" => stage.clone()).set(0.0);
            }
        }
        crate::reload::report(&serving.main.deployment);
        tracing::info!(
            version = serving.version,
            previous_version = before.version,
            stages = ?describe(&serving),
            "deployment switched"
        );
        self.shared.live.store(Arc::new(serving));
    }

    /// What this node serves, as its heartbeat says it.
    pub(crate) fn serving_now(&self) -> NodeServing {
        let serving = self.shared.serving();
        let error = (self.failed.lock().unwrap_or_else(|e| e.into_inner()))
            .as_ref()
            .map(|(version, why)| format!("cannot serve version {version}: {why}"));
        NodeServing {
            node_id: self.shared.node_id.clone(),
            at_ms: chrono::Utc::now().timestamp_millis(),
            version: serving.version,
            stages: describe(&serving),
            error,
        }
    }

    /// Writes this node's heartbeat (a failure is logged; the next one is seconds away).
    pub(crate) async fn heartbeat(&self) {
        if let Err(error) = self.store.heartbeat(&self.serving_now()).await {
            tracing::debug!(%error, "deployment heartbeat not written");
        }
    }
}

/// Stage → what it serves.
fn describe(serving: &Serving) -> BTreeMap<String, ServedStage> {
    (serving.stages.iter())
        .map(|(stage, pick)| {
            let served = ServedStage {
                deployment: pick.primary.deployment.id.clone(),
                canary: (pick.canary.as_ref()).map(|(d, _)| d.deployment.id.clone()),
            };
            (stage.clone(), served)
        })
        .collect()
}

/// Follows the store until `stop`: every `check_interval`, and whenever `notified` (the
/// pub/sub channel) says something changed; writes the heartbeat every few seconds.
pub(crate) async fn run(
    rollout: Arc<Rollout>,
    mut notified: Option<mpsc::Receiver<Bytes>>,
    check_interval: Duration,
    stop: CancellationToken,
) {
    let mut tick = tokio::time::interval(check_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_beat: Option<Instant> = None;
    let mut failing = false;
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {}
            Some(_) = async {
                match notified.as_mut() {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            } => {}
        }
        match rollout.follow().await {
            Ok(()) if failing => {
                failing = false;
                tracing::info!("the deployment store answers again");
            }
            Ok(()) => {}
            Err(error) if !failing => {
                failing = true;
                tracing::warn!(%error, "cannot read the stage pointers; serving on, retrying");
            }
            Err(_) => {}
        }
        if last_beat.is_none_or(|at| at.elapsed() >= HEARTBEAT_EVERY) {
            rollout.heartbeat().await;
            last_beat = Some(Instant::now());
        }
    }
}
