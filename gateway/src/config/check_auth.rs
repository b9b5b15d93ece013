//! Validation of `api.authorizers`, the `$connect` security settings, `api_keys` and
//! `security`, each failure naming its key.

use std::collections::HashSet;
use std::time::Duration;

use super::{
    ApiConfig, AuthorizationType, AuthorizerConfig, BackendProtocol, Config, ConfigError,
    IntegrationConfig, JwtAuthorizerConfig, RequestAuthorizerConfig, validate_integration,
};
use crate::grammar::{IdentitySource, KeySelection, TrustedProxies};

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(key, message)
}

pub(super) fn validate(config: &Config) -> Result<(), ConfigError> {
    let api = &config.api;
    for (name, authorizer) in &api.authorizers {
        let at = format!("api.authorizers.{name}");
        match authorizer {
            AuthorizerConfig::Jwt(jwt) => jwt_authorizer(&at, jwt)?,
            AuthorizerConfig::Request(req) => request_authorizer(&at, req, api)?,
        }
    }
    for (key, route) in &api.routes {
        let at = format!("api.routes.{key}");
        if key != "$connect" && route.authorizer.is_some() {
            return Err(invalid(
                format!("{at}.authorizer"),
                "authorizers run on $connect only",
            ));
        }
        if key != "$connect" && route.api_key_required {
            return Err(invalid(
                format!("{at}.api_key_required"),
                "API keys are checked on $connect only",
            ));
        }
        if key != "$connect" && route.authorization_type.is_some() {
            return Err(invalid(
                format!("{at}.authorization_type"),
                "authorization is configured on $connect only",
            ));
        }
        match (route.authorization(), &route.authorizer) {
            (AuthorizationType::Custom, None) => {
                return Err(invalid(
                    format!("{at}.authorization_type"),
                    "CUSTOM needs an authorizer",
                ));
            }
            (AuthorizationType::None | AuthorizationType::AwsIam, Some(_)) => {
                return Err(invalid(
                    format!("{at}.authorizer"),
                    "an authorizer needs authorization_type CUSTOM (a route has one authorization type)",
                ));
            }
            (AuthorizationType::AwsIam, None) if config.iam.principals.is_empty() => {
                return Err(invalid(
                    "iam.principals",
                    "AWS_IAM on $connect needs at least one principal",
                ));
            }
            _ => {}
        }
        if let Some(name) = &route.authorizer
            && !api.authorizers.contains_key(name)
        {
            return Err(invalid(
                format!("{at}.authorizer"),
                format!("no authorizer `{name}` in api.authorizers"),
            ));
        }
    }
    let selection = KeySelection::parse(&api.api_key_selection_expression).ok_or_else(|| {
        invalid(
            "api.api_key_selection_expression",
            "use $request.header.<name>, $request.querystring.<name> or $context.authorizer.usageIdentifierKey",
        )
    })?;
    let connect = api.routes.get("$connect");
    if connect.is_some_and(|r| r.api_key_required) {
        if config.api_keys.is_empty() {
            return Err(invalid(
                "api.routes.$connect.api_key_required",
                "no keys are configured in api_keys",
            ));
        }
        let request_authorizer = connect
            .and_then(|r| r.authorizer.as_ref())
            .and_then(|name| api.authorizers.get(name))
            .is_some_and(|a| matches!(a, AuthorizerConfig::Request(_)));
        if selection == KeySelection::UsageIdentifierKey && !request_authorizer {
            return Err(invalid(
                "api.api_key_selection_expression",
                "$context.authorizer.usageIdentifierKey needs a request authorizer on $connect",
            ));
        }
    }
    api_keys(config)?;
    iam(config)?;
    security(config)
}

fn iam(config: &Config) -> Result<(), ConfigError> {
    let iam = &config.iam;
    if iam.region.is_empty() {
        return Err(invalid("iam.region", "must not be empty"));
    }
    if iam.account_id.is_empty() || iam.account_id.contains(':') {
        return Err(invalid("iam.account_id", "must be an account id"));
    }
    super::iam::validate_principals("iam.principals", &iam.principals)
}

fn sources(at: &str, sources: &[String]) -> Result<(), ConfigError> {
    for source in sources {
        IdentitySource::parse(source)
            .map_err(|e| invalid(format!("{at}.identity_sources"), e.to_string()))?;
    }
    Ok(())
}

fn jwt_authorizer(at: &str, jwt: &JwtAuthorizerConfig) -> Result<(), ConfigError> {
    if jwt.identity_sources.is_empty() {
        return Err(invalid(
            format!("{at}.identity_sources"),
            "give at least one",
        ));
    }
    sources(at, &jwt.identity_sources)?;
    if jwt.algorithms.is_empty() {
        return Err(invalid(format!("{at}.algorithms"), "give at least one"));
    }
    if jwt.keys.is_empty() && jwt.jwks.is_none() {
        return Err(invalid(at, "give keys, jwks or both"));
    }
    for (i, key) in jwt.keys.iter().enumerate() {
        let given = [
            key.secret.is_some(),
            key.secret_env.is_some(),
            key.pem.is_some(),
            key.pem_file.is_some(),
        ];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(invalid(
                format!("{at}.keys[{i}]"),
                "give exactly one of secret, secret_env, pem, pem_file",
            ));
        }
    }
    if jwt.leeway > Duration::from_secs(60) {
        return Err(invalid(format!("{at}.leeway"), "must be at most 60s"));
    }
    if jwt.principal_claim.is_empty() {
        return Err(invalid(
            format!("{at}.principal_claim"),
            "must not be empty",
        ));
    }
    if !(256..=65_536).contains(&jwt.max_token_bytes) {
        return Err(invalid(
            format!("{at}.max_token_bytes"),
            "must be between 256 and 65536",
        ));
    }
    if let Some(jwks) = &jwt.jwks {
        let url = reqwest::Url::parse(&jwks.url)
            .map_err(|e| invalid(format!("{at}.jwks.url"), e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(
                format!("{at}.jwks.url"),
                "must be an http:// or https:// URL",
            ));
        }
        if jwks.cache_ttl.is_zero() {
            return Err(invalid(
                format!("{at}.jwks.cache_ttl"),
                "must be greater than zero",
            ));
        }
        if !(Duration::from_millis(50)..=Duration::from_secs(60)).contains(&jwks.timeout) {
            return Err(invalid(
                format!("{at}.jwks.timeout"),
                "must be between 50ms and 60s",
            ));
        }
    }
    Ok(())
}

fn request_authorizer(
    at: &str,
    req: &RequestAuthorizerConfig,
    api: &ApiConfig,
) -> Result<(), ConfigError> {
    let as_integration = IntegrationConfig::AwsProxy {
        uri: req.uri.clone(),
        timeout: req.timeout,
        protocol: BackendProtocol::Http1,
    };
    validate_integration(at, &as_integration, api)?;
    sources(at, &req.identity_sources)?;
    if req.result_ttl > Duration::from_secs(3600) {
        return Err(invalid(format!("{at}.result_ttl"), "must be at most 1h"));
    }
    if !req.result_ttl.is_zero() && req.identity_sources.is_empty() {
        return Err(invalid(
            format!("{at}.result_ttl"),
            "results are cached per identity-source values: give identity_sources",
        ));
    }
    if req.max_cached_results == 0 {
        return Err(invalid(
            format!("{at}.max_cached_results"),
            "must be greater than zero",
        ));
    }
    Ok(())
}

fn api_keys(config: &Config) -> Result<(), ConfigError> {
    let mut ids = HashSet::new();
    for (i, key) in config.api_keys.iter().enumerate() {
        let at = format!("api_keys[{i}]");
        if key.id.is_empty() || !ids.insert(key.id.as_str()) {
            return Err(invalid(
                format!("{at}.id"),
                "ids must be unique and not empty",
            ));
        }
        if key.usage_plan.is_empty() {
            return Err(invalid(format!("{at}.usage_plan"), "must not be empty"));
        }
        match (&key.value_sha256, &key.value_env) {
            (Some(digest), None) => {
                let digest = digest.trim();
                if digest.len() != 64 || !digest.chars().all(|c| c.is_ascii_hexdigit()) {
                    return Err(invalid(
                        format!("{at}.value_sha256"),
                        "must be 64 hex digits (the SHA-256 of the key)",
                    ));
                }
            }
            (None, Some(var)) if !var.is_empty() => {}
            _ => {
                return Err(invalid(
                    at,
                    "give exactly one of value_sha256 and value_env",
                ));
            }
        }
    }
    Ok(())
}

fn security(config: &Config) -> Result<(), ConfigError> {
    let s = &config.security;
    for (i, origin) in s.allowed_origins.iter().enumerate() {
        if !crate::grammar::origin::valid_entry(origin) {
            return Err(invalid(
                format!("security.allowed_origins[{i}]"),
                format!(
                    "`{origin}` is not an origin: use scheme://host[:port], optionally with a leading *. label"
                ),
            ));
        }
    }
    if s.max_connections_per_ip == Some(0) {
        return Err(invalid(
            "security.max_connections_per_ip",
            "must be greater than zero",
        ));
    }
    if let Some(rate) = &s.handshake_rate_per_ip {
        if !(rate.rate.is_finite() && rate.rate > 0.0) {
            return Err(invalid(
                "security.handshake_rate_per_ip.rate",
                "must be a positive number",
            ));
        }
        if rate.burst == 0 {
            return Err(invalid(
                "security.handshake_rate_per_ip.burst",
                "must be at least 1",
            ));
        }
    }
    if s.max_tracked_ips == 0 {
        return Err(invalid(
            "security.max_tracked_ips",
            "must be greater than zero",
        ));
    }
    if s.redact_query_params.iter().any(String::is_empty) {
        return Err(invalid(
            "security.redact_query_params",
            "names must not be empty",
        ));
    }
    if let Err((i, error)) = TrustedProxies::parse(&s.trusted_proxies) {
        return Err(invalid(
            format!("security.trusted_proxies[{i}]"),
            error.to_string(),
        ));
    }
    Ok(())
}
