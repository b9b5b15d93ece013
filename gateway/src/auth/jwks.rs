//! A JWKS URL's keys: fetched on first use, reused for `cache_ttl`, fetched again early when a
//! token names an unknown `kid` (key rotation) but at most once per `min_refresh_interval`, and
//! kept (stale) when a refresh fails so an identity provider's outage does not lock users out.

use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use serde::Deserialize;
use serde_json::Value;

use super::CallError;
use super::jwt_keys::{self, KeyEntry};
use super::request::read_capped;
use crate::config::JwksConfig;
use crate::telemetry;

/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;
/// Most keys kept from one document.
const MAX_KEYS: usize = 100;

/// One fetched key set.
#[derive(Debug)]
pub(super) struct KeySet {
    pub(super) keys: Vec<KeyEntry>,
    fetched_at: Instant,
}

impl KeySet {
    fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }
}

#[derive(Deserialize)]
struct Document {
    keys: Vec<Value>,
}

/// The cache of one JWKS URL.
#[derive(Debug)]
pub(super) struct Jwks {
    url: String,
    client: reqwest::Client,
    ttl: Duration,
    min_refresh: Duration,
    timeout: Duration,
    current: RwLock<Option<Arc<KeySet>>>,
    /// One fetch at a time; holds the instant of the last attempt.
    fetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    pub(super) fn new(config: &JwksConfig, client: reqwest::Client) -> Self {
        Self {
            url: config.url.clone(),
            client,
            ttl: config.cache_ttl,
            min_refresh: config.min_refresh_interval,
            timeout: config.timeout,
            current: RwLock::new(None),
            fetch: tokio::sync::Mutex::new(None),
        }
    }

    fn current(&self) -> Option<Arc<KeySet>> {
        // A poisoned lock still holds a consistent `Option<Arc<_>>`.
        self.current
            .read()
            .map_or_else(|p| p.into_inner().clone(), |g| g.clone())
    }

    /// The keys to try for a token with `kid`.
    pub(super) async fn keys(&self, kid: Option<&str>) -> Result<Arc<KeySet>, CallError> {
        let current = self.current();
        if let Some(set) = &current {
            let fresh = set.fetched_at.elapsed() < self.ttl;
            let known = kid.is_none_or(|k| set.has_kid(k));
            if fresh && known {
                return Ok(Arc::clone(set));
            }
        }
        self.refresh(current, kid).await
    }

    async fn refresh(
        &self,
        seen: Option<Arc<KeySet>>,
        kid: Option<&str>,
    ) -> Result<Arc<KeySet>, CallError> {
        let mut last_attempt = self.fetch.lock().await;
        // Someone else refreshed while this task waited.
        let now = self.current();
        if let Some(set) = &now
            && !seen.as_ref().is_some_and(|s| Arc::ptr_eq(s, set))
            && kid.is_none_or(|k| set.has_kid(k))
        {
            return Ok(Arc::clone(set));
        }
        // Unknown kids (or a failing endpoint) may not cause more than one fetch per interval.
        if let Some(at) = *last_attempt
            && at.elapsed() < self.min_refresh
        {
            return now.ok_or(CallError::Backoff);
        }
        *last_attempt = Some(Instant::now());
        match self.fetch_once().await {
            Ok(set) => {
                let set = Arc::new(set);
                match self.current.write() {
                    Ok(mut guard) => *guard = Some(Arc::clone(&set)),
                    Err(poisoned) => *poisoned.into_inner() = Some(Arc::clone(&set)),
                }
                Ok(set)
            }
            Err(error) => match now {
                Some(stale) => {
                    tracing::warn!(url = %self.url, %error, "JWKS refresh failed; keeping the keys fetched before");
                    Ok(stale)
                }
                None => Err(error),
            },
        }
    }

    async fn fetch_once(&self) -> Result<KeySet, CallError> {
        metrics::counter!(telemetry::JWKS_FETCH_TOTAL).increment(1);
        let response = self
            .client
            .get(&self.url)
            .timeout(self.timeout)
            .header(http::header::ACCEPT, "application/json")
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    CallError::Timeout
                } else {
                    CallError::Transport(e)
                }
            })?;
        if !response.status().is_success() {
            return Err(CallError::Status(response.status().as_u16()));
        }
        let body = read_capped(response, MAX_JWKS_BYTES).await?;
        let keys = parse_document(&body)?;
        tracing::debug!(url = %self.url, keys = keys.len(), "JWKS fetched");
        Ok(KeySet {
            keys,
            fetched_at: Instant::now(),
        })
    }
}

/// The signing keys of a JWKS document (at most [`MAX_KEYS`]; unusable entries skipped).
///
/// # Errors
/// [`CallError::Malformed`] for a body that is not a JWKS document or has no usable key.
pub(super) fn parse_document(body: &[u8]) -> Result<Vec<KeyEntry>, CallError> {
    let document: Document =
        serde_json::from_slice(body).map_err(|_| CallError::Malformed("not a JWKS document"))?;
    let keys: Vec<KeyEntry> = document
        .keys
        .into_iter()
        .filter_map(|v| serde_json::from_value(v).ok())
        .filter_map(|jwk| jwt_keys::from_jwk(&jwk))
        .take(MAX_KEYS)
        .collect();
    if keys.is_empty() {
        return Err(CallError::Malformed("no usable signing keys"));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
