//! Reloading (what is reloaded is [`crate::deployment`]): re-read the configuration file, refuse
//! it if a key fixed at start changed or it is not valid (with the one line a start would
//! print; logged, and answered to whoever asked), else apply it as a new deployment of every
//! stage it names ([`crate::rollout`]: with a shared store, a reload of one node's file deploys
//! it to every node), swap the TLS settings and the custom domains and move the listeners whose address changed. Open connections are never touched: their next
//! message and their `$disconnect` use the definition in force at that moment. One reload runs
//! at a time.
//!
//! - `watch`: the opt-in file watch (`reload.watch`).
//! - `client`: `wsgate reload`, the command that asks a running gateway to reload.

pub(crate) mod client;
pub(crate) mod watch;

use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use crate::accept::Accepting;
use crate::config::Config;
use crate::deployment::Deployment;
use crate::domains::{Domains, LiveDomains};
use crate::error::ReloadError;
use crate::rollout::{ApplyRequest, Rollout};
use crate::telemetry;
use crate::tls::LiveTls;

/// Everything a reload needs; one per gateway.
#[derive(Debug)]
pub(crate) struct Reloader {
    rollout: Arc<Rollout>,
    tls: Option<LiveTls>,
    /// The listeners: a reload that changes `listen` or `callback.listen` moves them.
    accepting: Arc<Accepting>,
    /// The custom domains and their API mappings (`domains:`), swapped by a reload.
    domains: LiveDomains,
    /// The file re-read (`--config`); unset for a gateway started from a value.
    file: OnceLock<PathBuf>,
    /// One reload at a time.
    one: tokio::sync::Mutex<()>,
}

impl Reloader {
    /// The reloader that deploys through `rollout`; `tls` is what the listeners serve with,
    /// when TLS is on; `accepting` the listeners it moves.
    pub(crate) fn new(
        rollout: Arc<Rollout>,
        tls: Option<LiveTls>,
        accepting: Arc<Accepting>,
        domains: LiveDomains,
    ) -> Self {
        Self {
            rollout,
            tls,
            accepting,
            domains,
            file: OnceLock::new(),
            one: tokio::sync::Mutex::new(()),
        }
    }

    /// Remembers the file to re-read; false when one is set already.
    pub(crate) fn set_file(&self, path: PathBuf) -> bool {
        self.file.set(path).is_ok()
    }

    /// The definition's identity in force.
    pub(crate) fn current(&self) -> Deployment {
        self.rollout.current()
    }

    /// Re-reads the file and applies it.
    ///
    /// # Errors
    /// Why nothing changed.
    pub(crate) async fn reload(self: &Arc<Self>) -> Result<Deployment, ReloadError> {
        let Some(path) = self.file.get().cloned() else {
            return Err(refused(ReloadError::NoFile));
        };
        let description = format!("reload of {}", path.display());
        let loaded = tokio::task::spawn_blocking(move || Config::load(&path)).await;
        match loaded {
            Ok(Ok(config)) => self.apply_whole(config, description).await,
            Ok(Err(error)) => Err(refused(ReloadError::Invalid(error.to_string()))),
            Err(error) => Err(refused(ReloadError::Invalid(format!(
                "cannot read the configuration: {error}"
            )))),
        }
    }

    /// Applies `config` (already read and validated on its own).
    ///
    /// # Errors
    /// Why nothing changed.
    pub(crate) async fn apply(self: &Arc<Self>, config: Config) -> Result<Deployment, ReloadError> {
        self.apply_whole(config, "applied by the library".into())
            .await
    }

    /// Applies `config` on a task of its own: a caller that goes away (`wsgate reload`
    /// interrupted, its request dropped) cannot cut a reload in half, with the deployment
    /// switched but the certificates, domains or listeners not.
    async fn apply_whole(
        self: &Arc<Self>,
        config: Config,
        description: String,
    ) -> Result<Deployment, ReloadError> {
        let this = Arc::clone(self);
        let task = tokio::spawn(async move { this.apply_as(config, description).await });
        task.await.unwrap_or_else(|error| {
            Err(refused(ReloadError::Invalid(format!(
                "the reload stopped: {error}"
            ))))
        })
    }

    async fn apply_as(
        &self,
        config: Config,
        description: String,
    ) -> Result<Deployment, ReloadError> {
        let _one = self.one.lock().await;
        let before = self.current();
        let invalid = |error: &dyn std::fmt::Display| ReloadError::Invalid(error.to_string());
        // Certificates are this node's own: checked before anything is deployed, swapped after.
        let tls = match (&config.tls, &self.tls) {
            (Some(settings), Some(_)) => Some(
                crate::tls::server_config(settings, &config.domains)
                    .map_err(|e| refused(invalid(&e)))?,
            ),
            _ => None,
        };
        // So are the listeners: the new addresses are bound before anything is deployed (a bind
        // that fails refuses the reload), and served once it is applied.
        let moves =
            (self.accepting.bind_changed(&config)).map_err(|e| refused(ReloadError::Invalid(e)))?;
        let domains = Domains::new(&config.domains);
        let request = ApplyRequest {
            description,
            ..ApplyRequest::default()
        };
        match self.rollout.apply(config, request).await {
            Ok(changed) => {
                if let (Some(server), Some(live)) = (tls, &self.tls) {
                    live.store(Arc::new(server));
                }
                self.domains.store(Arc::new(domains));
                self.accepting.switch(moves);
                let after = self.current();
                metrics::counter!(telemetry::RELOADS_TOTAL, "outcome" => "applied").increment(1);
                tracing::info!(deployment = %after.id, previous = %before.id, unchanged = changed.unchanged, "configuration reloaded");
                Ok(after)
            }
            Err(error) => Err(refused(error)),
        }
    }
}

/// Sets the gauges of the deployment now served.
pub(crate) fn report(deployment: &Deployment) {
    let hash = u64::from_str_radix(&deployment.hash, 16).unwrap_or(0);
    #[allow(clippy::cast_precision_loss)] // 48 bits: exact
    metrics::gauge!(telemetry::DEPLOYMENT_HASH).set(hash as f64);
    #[allow(clippy::cast_precision_loss)]
    metrics::gauge!(telemetry::DEPLOYMENT_LOADED).set(deployment.loaded_at_ms as f64 / 1000.0);
}

/// Counts and logs a refused reload.
fn refused(error: ReloadError) -> ReloadError {
    metrics::counter!(telemetry::RELOADS_TOTAL, "outcome" => "refused").increment(1);
    tracing::error!(%error, "reload refused; the running configuration stays");
    error
}
