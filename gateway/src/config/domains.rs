//! `domains:` read and checked: custom domain names (exact, or `*.` and one label), each with
//! an optional certificate served by SNI and its API mappings (base path → stage), as Amazon
//! API Gateway's custom domain names and API mappings; each failure names its key.

use std::collections::HashSet;
use std::path::PathBuf;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Config, ConfigError, RESERVED_PATHS};

/// One entry of `domains:`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DomainConfig {
    /// The host name clients use (`chat.example.com`), or a wildcard (`*.example.com`) that
    /// stands for any one label in front of the rest; compared without case.
    pub name: String,
    /// PEM certificate chain served to clients asking for this name by SNI (needs `tls:`);
    /// the default `tls.cert_file` when absent.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM private key of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// Base paths and the stages they lead to.
    pub mappings: Vec<MappingConfig>,
}

/// One API mapping: `wss://{domain}/{path}` (and the callback API under it) is `stage`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MappingConfig {
    /// `""` (the root) or one path segment.
    #[serde(default)]
    pub path: String,
    /// A stage of `api.stages`.
    pub stage: String,
}

/// Longest mapping path, as AWS allows.
const MAX_PATH_CHARS: usize = 300;

/// Checks names, certificate pairs and mappings (the certificates themselves are loaded with
/// `tls:`).
pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let mut names = HashSet::new();
    for (i, domain) in config.domains.iter().enumerate() {
        let at = format!("domains[{i}]");
        check_name(&domain.name).map_err(|m| ConfigError::invalid(format!("{at}.name"), m))?;
        if !names.insert(domain.name.to_ascii_lowercase()) {
            return Err(ConfigError::invalid(
                format!("{at}.name"),
                format!("`{}` is configured twice", domain.name),
            ));
        }
        match (&domain.cert_file, &domain.key_file) {
            (Some(_), None) => {
                return Err(ConfigError::invalid(
                    format!("{at}.key_file"),
                    "required with cert_file",
                ));
            }
            (None, Some(_)) => {
                return Err(ConfigError::invalid(
                    format!("{at}.cert_file"),
                    "required with key_file",
                ));
            }
            (Some(_), Some(_)) if config.tls.is_none() => {
                return Err(ConfigError::invalid(
                    format!("{at}.cert_file"),
                    "needs `tls:` (the listeners serve plain HTTP without it)",
                ));
            }
            _ => {}
        }
        if domain.mappings.is_empty() {
            return Err(ConfigError::invalid(
                format!("{at}.mappings"),
                "give at least one mapping ({path: \"\", stage: ...} maps the root)",
            ));
        }
        let mut paths = HashSet::new();
        for (j, mapping) in domain.mappings.iter().enumerate() {
            let at = format!("{at}.mappings[{j}]");
            check_path(&mapping.path).map_err(|m| ConfigError::invalid(format!("{at}.path"), m))?;
            if !paths.insert(mapping.path.as_str()) {
                return Err(ConfigError::invalid(
                    format!("{at}.path"),
                    format!("`{}` is mapped twice on {}", mapping.path, domain.name),
                ));
            }
            if !config.api.stages.contains_key(&mapping.stage) {
                return Err(ConfigError::invalid(
                    format!("{at}.stage"),
                    format!("`{}` is not a stage of api.stages", mapping.stage),
                ));
            }
        }
    }
    Ok(())
}

/// A host name of labels (letters, digits, `-` inside), optionally after `*.`.
fn check_name(name: &str) -> Result<(), String> {
    let host = name.strip_prefix("*.").unwrap_or(name);
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !label.starts_with('-')
            && !label.ends_with('-')
    };
    if host.is_empty() || host.len() > 253 || !host.split('.').all(label_ok) {
        return Err(format!(
            "`{name}` is not a host name (labels of letters, digits and inner `-`, optionally after `*.`)"
        ));
    }
    if name.starts_with("*.") && !host.contains('.') {
        return Err(format!(
            "`{name}`: a wildcard needs at least two labels after `*.`"
        ));
    }
    Ok(())
}

/// `""` or one segment of up to 300 letters, digits and `$-_.+!*'()` (AWS's characters for
/// API mapping paths), not one of the gateway's own paths.
fn check_path(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Ok(());
    }
    let valid = path.chars().count() <= MAX_PATH_CHARS
        && path
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "$-_.+!*'()".contains(c))
        && !path.chars().all(|c| c == '.');
    if !valid {
        return Err(format!(
            "`{path}`: a mapping path is \"\" or one segment of up to 300 letters, digits and $-_.+!*'() (not only dots)"
        ));
    }
    if RESERVED_PATHS.contains(&path) {
        return Err(format!(
            "`{path}` is reserved for the gateway's own endpoints"
        ));
    }
    Ok(())
}

#[cfg(test)]
#[path = "domains_tests.rs"]
mod tests;
