//! `reload:` section: whether the gateway re-reads its configuration file by itself when the
//! file changes (`SIGHUP` and `wsgate reload` always work); see `docs/deployments.md`.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration;

/// `reload:` settings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct ReloadConfig {
    /// Watch the configuration file (and its directory, so editors that replace the file and
    /// Kubernetes ConfigMap updates are seen) and reload when its content changes.
    pub watch: bool,
    /// How long the file must be quiet after a change before it is re-read (editors write in
    /// several steps).
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub debounce: Duration,
}

impl Default for ReloadConfig {
    fn default() -> Self {
        Self {
            watch: false,
            debounce: Duration::from_millis(500),
        }
    }
}
