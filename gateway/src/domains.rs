//! Custom domain names and API mappings in front of the routers: a request whose `Host` is a
//! configured domain has its path rewritten from `/{mapping path}/…` (or `/…` under the root
//! mapping) to `/{stage}/…`, so the `/{stage}` upgrade and callback routes serve it unchanged;
//! it carries the domain in [`CustomDomain`] (for `domainName`) and the path the client used in
//! [`OriginalUri`] (for SigV4). A path no mapping covers is answered 403, as AWS answers it.
//! Other hosts, and the gateway's own `/healthz`, `/readyz` and `/metrics`, pass unchanged.
//! A reload swaps the domains whole ([`LiveDomains`]): requests after it are mapped by the new
//! `domains:`, connections already upgraded keep their stage and `domainName`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::OriginalUri;
use http::{Request, Uri, header};
use percent_encoding::percent_decode_str;

use crate::config::DomainConfig;
use crate::error::CallbackError;

/// The custom domain a request came in on: its `Host` without the port, lowercase (a request
/// extension; it is the connection's `domainName`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CustomDomain(pub(crate) Arc<str>);

/// Paths served on every host as they are.
const OWN_PATHS: [&str; 3] = ["/healthz", "/readyz", "/metrics"];

/// The domains in force (a reload swaps them).
pub(crate) type LiveDomains = Arc<arc_swap::ArcSwap<Domains>>;

/// The configured domains, by lowercase name.
#[derive(Debug, Default)]
pub(crate) struct Domains {
    /// `domains:` as configured (what the management API lists).
    configured: Vec<DomainConfig>,
    /// Exact names.
    exact: HashMap<String, Mappings>,
    /// Names after `*.`.
    wildcard: HashMap<String, Mappings>,
}

/// Mapping path (`""` for the root) → stage.
type Mappings = HashMap<String, String>;

impl Domains {
    /// The domains of `domains:` (already checked).
    pub(crate) fn new(config: &[DomainConfig]) -> Self {
        let mut domains = Self {
            configured: config.to_vec(),
            ..Self::default()
        };
        for domain in config {
            let mappings: Mappings = (domain.mappings.iter())
                .map(|m| (m.path.clone(), m.stage.clone()))
                .collect();
            let name = domain.name.to_ascii_lowercase();
            match name.strip_prefix("*.") {
                Some(parent) => domains.wildcard.insert(parent.to_owned(), mappings),
                None => domains.exact.insert(name, mappings),
            };
        }
        domains
    }

    /// `domains:` as configured.
    pub(crate) fn configured(&self) -> &[DomainConfig] {
        &self.configured
    }

    /// The mappings of the domain `host` (a request's `Host`, port and all) names.
    fn find(&self, host: &str) -> Option<(String, &Mappings)> {
        if host.starts_with('[') {
            return None;
        }
        let name = host.split(':').next().unwrap_or_default();
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(mappings) = self.exact.get(&name) {
            return Some((name, mappings));
        }
        let (label, parent) = name.split_once('.')?;
        if label.is_empty() {
            return None;
        }
        let mappings = self.wildcard.get(parent)?;
        Some((name, mappings))
    }

    /// Rewrites `request` when its host is a custom domain.
    ///
    /// # Errors
    /// [`CallbackError::UnknownStage`] (403 `{"message":"Forbidden"}`) when no mapping covers
    /// the path.
    pub(crate) fn route<B>(&self, request: &mut Request<B>) -> Result<(), CallbackError> {
        if self.exact.is_empty() && self.wildcard.is_empty() {
            return Ok(());
        }
        let host = match request.headers().get(header::HOST) {
            Some(value) => value.to_str().ok(),
            None => request.uri().authority().map(|a| a.as_str()),
        };
        let Some((name, mappings)) = host.and_then(|host| self.find(host)) else {
            return Ok(());
        };
        let original = request.uri().clone();
        let path = original.path();
        if OWN_PATHS.contains(&path) {
            return Ok(());
        }
        let stage_path = mapped_path(mappings, path).ok_or(CallbackError::UnknownStage)?;
        let target = match original.query() {
            Some(query) => format!("{stage_path}?{query}"),
            None => stage_path,
        };
        let mut parts = original.clone().into_parts();
        parts.path_and_query = Some(target.parse().map_err(|_| CallbackError::UnknownStage)?);
        *request.uri_mut() = Uri::from_parts(parts).map_err(|_| CallbackError::UnknownStage)?;
        request.extensions_mut().insert(OriginalUri(original));
        request
            .extensions_mut()
            .insert(CustomDomain(Arc::from(name)));
        Ok(())
    }
}

/// `/{stage}/…` for `path` under `mappings`: its first segment's mapping (compared after
/// percent-decoding) with the rest of the path, else the root mapping with the whole path.
fn mapped_path(mappings: &Mappings, path: &str) -> Option<String> {
    let rest = path.strip_prefix('/').unwrap_or(path);
    let (segment, tail) = match rest.find('/') {
        Some(at) => rest.split_at(at),
        None => (rest, ""),
    };
    let segment = percent_decode_str(segment).decode_utf8_lossy();
    if !segment.is_empty()
        && let Some(stage) = mappings.get(segment.as_ref())
    {
        return Some(format!("/{stage}{tail}"));
    }
    let stage = mappings.get("")?;
    Some(format!("/{stage}/{rest}"))
}

#[cfg(test)]
#[path = "domains_tests.rs"]
mod tests;
