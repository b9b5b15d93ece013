//! What a node serves: per stage, the definition of the deployment its pointer names and,
//! when a canary runs, the canary's definition with its percentage. Swapped whole (one
//! [`arc_swap::ArcSwap`]) when the pointers change, like a single definition was before.
//!
//! A new connection picks its side once ([`Serving::pick`]); every message and its
//! `$disconnect` then load the definition of that side in force at that moment
//! ([`Serving::of`]): after a promote the canary side is the primary, after a drop the
//! canary side falls back to the primary.

use std::collections::HashMap;
use std::sync::Arc;

use super::Definition;

/// One stage's definitions.
#[derive(Debug, Clone)]
pub(crate) struct Pick {
    /// What the stage serves.
    pub primary: Arc<Definition>,
    /// The canary and its share of new connections (percent, in (0, 100]).
    pub canary: Option<(Arc<Definition>, f64)>,
}

/// The definitions in force on this node.
#[derive(Debug)]
pub(crate) struct Serving {
    /// The definition of what is not tied to one stage (the admin page's configuration, the
    /// consumers' stages, [`crate::Gateway::deployment`]): the newest primary.
    pub main: Arc<Definition>,
    /// Stage → its definitions.
    pub stages: HashMap<String, Pick>,
    /// The pointer version this reflects (0: the start file, before the store was read).
    pub version: u64,
}

impl Serving {
    /// Every stage of `definition` served by it, no canary.
    pub(crate) fn single(definition: Definition) -> Self {
        let main = Arc::new(definition);
        let stages = main
            .stages
            .keys()
            .map(|stage| {
                let pick = Pick {
                    primary: Arc::clone(&main),
                    canary: None,
                };
                (stage.clone(), pick)
            })
            .collect();
        Self {
            main,
            stages,
            version: 0,
        }
    }

    /// The definition a connection of `stage` on the given side uses; `main` for a stage
    /// served by none (its routes are then missing, as for any unknown stage).
    pub(crate) fn of(&self, stage: &str, canary: bool) -> &Arc<Definition> {
        match self.stages.get(stage) {
            Some(pick) => match (&pick.canary, canary) {
                (Some((definition, _)), true) => definition,
                _ => &pick.primary,
            },
            None => &self.main,
        }
    }

    /// True when a pointer names `stage` (or, before the store was read, the start file has
    /// it): new connections and callback requests are taken for it. A stage whose pointer went
    /// (`DeleteStage`, a whole apply without it) is not served even when another stage's
    /// deployment still defines it.
    pub(crate) fn serves(&self, stage: &str) -> bool {
        self.stages.contains_key(stage)
    }

    /// A new connection's side: the canary with its percentage's probability.
    pub(crate) fn pick(&self, stage: &str) -> bool {
        match self.stages.get(stage).and_then(|p| p.canary.as_ref()) {
            Some((_, percent)) => rand::random::<f64>() * 100.0 < *percent,
            None => false,
        }
    }
}

impl Serving {
    /// `{"version": N, "stages": {stage: {"deployment": id, "canary"?: {"deployment": id,
    /// "percent": p}}}}`: what `/healthz` and the admin overview report.
    pub(crate) fn report(&self) -> serde_json::Value {
        let mut stages = serde_json::Map::new();
        let mut names: Vec<&String> = self.stages.keys().collect();
        names.sort();
        for stage in names {
            let pick = &self.stages[stage];
            let mut entry = serde_json::json!({ "deployment": &pick.primary.deployment.id });
            if let Some((canary, percent)) = &pick.canary {
                entry["canary"] =
                    serde_json::json!({ "deployment": &canary.deployment.id, "percent": percent });
            }
            stages.insert(stage.clone(), entry);
        }
        serde_json::json!({ "version": self.version, "stages": stages })
    }
}
