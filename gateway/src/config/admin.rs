//! `admin:` section: the admin page at `/@admin` and its JSON API, served wherever the callback
//! API is and behind its authentication.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::CallbackConfig;

/// `admin:` settings.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct AdminConfig {
    /// Serve the admin page. Absent: on exactly when the callback API trusts loopback callers
    /// only (no `callback.auth`); with bearer or SigV4 callers (or `kind: none`) it must be
    /// turned on explicitly.
    pub enabled: Option<bool>,
}

impl AdminConfig {
    /// Whether the admin page is served under `callback`'s settings.
    #[must_use]
    pub fn is_enabled(&self, callback: &CallbackConfig) -> bool {
        self.enabled.unwrap_or(callback.auth.is_none())
    }
}
