//! `cache:` section and a route's `cache:` block: response caching of two-way routes' answers
//! (where entries live, their byte bounds, each route's ttl and key), and their checks.

use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize, de};

use super::{ApiConfig, ConfigError, StoreConfig, duration};

/// Longest `ttl` of a route's cache (AWS caps REST API caching at 3600 s).
pub const MAX_CACHE_TTL: Duration = Duration::from_secs(3600);
/// Most parts in one route's cache key.
pub(super) const MAX_KEY_PARTS: usize = 16;
/// Largest `max_entry_bytes` (an entry's weight must fit the cache's 32-bit weigher).
const MAX_ENTRY_LIMIT: u64 = 256 << 20;

/// Where cached answers live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum CacheKind {
    /// In this node's memory (bounded by `max_bytes`); invalidations reach the other nodes of a
    /// cluster over Redis pub/sub.
    Memory,
    /// In the Redis of `store: {kind: redis}`, shared by every node.
    Redis,
}

/// The top-level `cache:` section (absent: no route caches).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// `memory` or `redis`.
    pub kind: CacheKind,
    /// `memory`: the whole cache in bytes (keys, bodies and bookkeeping); `64MiB`, `512KiB` or
    /// a plain number of bytes.
    #[serde(default = "default_max_bytes", deserialize_with = "deserialize_bytes")]
    pub max_bytes: u64,
    /// An answer whose body is larger than this is not cached (counted).
    #[serde(
        default = "default_max_entry_bytes",
        deserialize_with = "deserialize_bytes"
    )]
    pub max_entry_bytes: u64,
}

fn default_max_bytes() -> u64 {
    64 << 20
}
fn default_max_entry_bytes() -> u64 {
    1 << 20
}

/// A route's `cache:` block.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteCacheConfig {
    /// How long an answer is served from the cache (at most 1h).
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub ttl: Duration,
    /// What makes two requests the same, besides the stage and the route: `$request.body.*`,
    /// `$request.header.*`, `$request.querystring.*`, `$context.*`, `$stageVariables.*`.
    #[serde(default)]
    pub key: Vec<String>,
    /// Obey the answer's `Cache-Control` (`no-store`, `no-cache`, `private`: not cached;
    /// `s-maxage`/`max-age`: shortens the ttl).
    #[serde(default)]
    pub honour_cache_control: bool,
}

/// Parses `64MiB`, `512KiB`, `1GiB`, `10MB`, `10kB`, `100B` or a plain number of bytes.
pub fn parse_bytes(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: u64 = number.parse().ok()?;
    let scale: u64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "kB" | "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return None,
    };
    value.checked_mul(scale)
}

#[derive(Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
enum RawBytes {
    Number(u64),
    Text(String),
}

fn deserialize_bytes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    match RawBytes::deserialize(deserializer)? {
        RawBytes::Number(n) => Ok(n),
        RawBytes::Text(text) => parse_bytes(&text).ok_or_else(|| {
            de::Error::custom(format!(
                "invalid size `{text}` (expected e.g. 64MiB, 512KiB, 10MB or a number of bytes)"
            ))
        }),
    }
}

/// Checks the `cache:` section against the store and every route's `cache:` block.
pub(super) fn validate(
    cache: Option<&CacheConfig>,
    store: &StoreConfig,
    api: &ApiConfig,
) -> Result<(), ConfigError> {
    if let Some(cache) = cache {
        if cache.kind == CacheKind::Redis && matches!(store, StoreConfig::Memory) {
            return Err(ConfigError::invalid(
                "cache.kind",
                "`redis` keeps entries in the Redis of `store: {kind: redis}`; with the memory store use `kind: memory`",
            ));
        }
        if cache.max_bytes == 0 {
            return Err(ConfigError::invalid(
                "cache.max_bytes",
                "must be greater than zero",
            ));
        }
        if cache.max_entry_bytes == 0 || cache.max_entry_bytes > MAX_ENTRY_LIMIT {
            return Err(ConfigError::invalid(
                "cache.max_entry_bytes",
                format!("must be between 1 and {MAX_ENTRY_LIMIT}"),
            ));
        }
        if cache.kind == CacheKind::Memory && cache.max_entry_bytes > cache.max_bytes {
            return Err(ConfigError::invalid(
                "cache.max_entry_bytes",
                "must not exceed cache.max_bytes",
            ));
        }
    }
    for (key, route) in &api.routes {
        let Some(settings) = &route.cache else {
            continue;
        };
        let at = format!("api.routes.{key}.cache");
        if cache.is_none() {
            return Err(ConfigError::invalid(
                at,
                "needs the top-level `cache:` section (kind: memory or redis)",
            ));
        }
        if key.starts_with('$') && key != "$default" {
            return Err(ConfigError::invalid(
                at,
                "only message routes (custom keys and $default) can cache answers",
            ));
        }
        if !route.route_response {
            return Err(ConfigError::invalid(
                at,
                "only two-way routes (`route_response: true`) have answers to cache",
            ));
        }
        if settings.ttl.is_zero() || settings.ttl > MAX_CACHE_TTL {
            return Err(ConfigError::invalid(
                format!("{at}.ttl"),
                "must be greater than zero and at most 1h",
            ));
        }
        if settings.key.len() > MAX_KEY_PARTS {
            return Err(ConfigError::invalid(
                format!("{at}.key"),
                format!("at most {MAX_KEY_PARTS} parts"),
            ));
        }
        for (i, part) in settings.key.iter().enumerate() {
            crate::cache::key::Source::parse(part)
                .map_err(|e| ConfigError::invalid(format!("{at}.key[{i}]"), e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_take_binary_and_decimal_units() {
        assert_eq!(parse_bytes("64MiB"), Some(64 << 20));
        assert_eq!(parse_bytes("512KiB"), Some(512 << 10));
        assert_eq!(parse_bytes("10MB"), Some(10_000_000));
        assert_eq!(parse_bytes("100"), Some(100));
        assert_eq!(parse_bytes("1 GiB"), Some(1 << 30));
        assert_eq!(parse_bytes("1.5MiB"), None);
        assert_eq!(parse_bytes("MiB"), None);
        assert_eq!(parse_bytes("99999999999999999999GiB"), None);
    }
}
