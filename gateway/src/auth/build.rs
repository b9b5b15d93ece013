//! Building [`Security`] from the validated configuration: secrets from the environment, key
//! files from disk, authorizers with their caches.

use std::sync::Arc;

use super::api_keys::{ApiKeys, KeySelection};
use super::client_ip::TrustedProxies;
use super::identity::IdentitySource;
use super::jwt::JwtAuthorizer;
use super::origin::OriginPolicy;
use super::per_ip::PerIpLimiter;
use super::redact::QueryRedactor;
use super::request::RequestAuthorizer;
use super::{Authorizer, IamConnect, Security};
use crate::config::{AuthorizationType, AuthorizerConfig, Config};
use crate::iam::{ArnParts, Keyring, KeyringError};

/// Why the security configuration could not be put to use (each names its config key).
#[derive(Debug, thiserror::Error)]
pub enum SecurityError {
    /// A `*_env` reference names a variable that is not set.
    #[error("config key `{key}`: environment variable {var} is not set")]
    MissingEnv {
        /// Dotted config key.
        key: String,
        /// The variable.
        var: String,
    },
    /// A key file could not be read.
    #[error("config key `{key}`: cannot read {path}: {source}")]
    KeyFile {
        /// Dotted config key.
        key: String,
        /// The path.
        path: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A key or secret is not usable.
    #[error("config key `{key}`: {problem}")]
    BadKey {
        /// Dotted config key.
        key: String,
        /// What is wrong.
        problem: &'static str,
    },
    /// A value the validation should have refused (an internal inconsistency).
    #[error("config key `{key}`: invalid value")]
    Invalid {
        /// Dotted config key.
        key: String,
    },
}

impl From<KeyringError> for SecurityError {
    fn from(error: KeyringError) -> Self {
        match error {
            KeyringError::MissingEnv { key, var } => Self::MissingEnv { key, var },
            KeyringError::Invalid { key } => Self::Invalid { key },
        }
    }
}

/// Reads one environment variable (injected so tests need not change the process environment).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Security {
    /// Builds the checks from `config`, reading `*_env` secrets through `env`; `request`
    /// authorizers given as a Lambda ARN are invoked through `aws`.
    ///
    /// # Errors
    /// A [`SecurityError`] naming the config key.
    pub(crate) fn build(
        config: &Config,
        client: &reqwest::Client,
        aws: &crate::integration::lambda::Aws,
        env: EnvLookup<'_>,
    ) -> Result<Self, SecurityError> {
        // Name the provider rather than let jsonwebtoken infer it from its features (which
        // panics if feature unification ever enables two). Already installed is fine.
        let _ = jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER.install_default();
        let security = &config.security;
        let trusted_proxies =
            TrustedProxies::parse(&security.trusted_proxies).map_err(|(i, _)| {
                SecurityError::Invalid {
                    key: format!("security.trusted_proxies[{i}]"),
                }
            })?;
        let origin = (!security.allowed_origins.is_empty())
            .then(|| {
                OriginPolicy::new(&security.allowed_origins, security.allow_missing_origin).ok_or(
                    SecurityError::Invalid {
                        key: "security.allowed_origins".into(),
                    },
                )
            })
            .transpose()?;
        let per_ip = (security.max_connections_per_ip.is_some()
            || security.handshake_rate_per_ip.is_some())
        .then(|| {
            Arc::new(PerIpLimiter::new(
                security.max_connections_per_ip,
                security.handshake_rate_per_ip,
                security.max_tracked_ips,
            ))
        });
        let connect = config.api.routes.get("$connect");
        let mut authorizer: Option<Arc<dyn Authorizer>> = None;
        let mut sources = Vec::new();
        if let Some(name) = connect.and_then(|r| r.authorizer.as_deref()) {
            let key = format!("api.authorizers.{name}");
            let built: Arc<dyn Authorizer> = match config.api.authorizers.get(name) {
                Some(AuthorizerConfig::Jwt(jwt)) => {
                    sources = parse_sources(&key, &jwt.identity_sources)?;
                    Arc::new(JwtAuthorizer::new(&key, jwt, client, env)?)
                }
                Some(AuthorizerConfig::Request(req)) => {
                    sources = parse_sources(&key, &req.identity_sources)?;
                    Arc::new(RequestAuthorizer::new(
                        &key,
                        req,
                        client.clone(),
                        aws,
                        &config.api.stages,
                    )?)
                }
                None => return Err(SecurityError::Invalid { key }),
            };
            authorizer = Some(built);
        }
        let iam = connect
            .is_some_and(|r| r.authorization() == AuthorizationType::AwsIam)
            .then(|| iam_connect(config, env))
            .transpose()?;
        let key_selection = KeySelection::parse(&config.api.api_key_selection_expression).ok_or(
            SecurityError::Invalid {
                key: "api.api_key_selection_expression".into(),
            },
        )?;
        let api_keys = ApiKeys::build(&config.api_keys, env)?;
        let mut redacted: Vec<String> = security.redact_query_params.clone();
        redacted.extend(
            sources
                .iter()
                .filter_map(IdentitySource::query_name)
                .map(str::to_string),
        );
        if let Some(name) = key_selection.query_name() {
            redacted.push(name.to_string());
        }
        let token_protocol_prefixes = sources
            .iter()
            .filter_map(|s| match s {
                IdentitySource::Subprotocol(prefix) => Some(prefix.clone()),
                _ => None,
            })
            .collect();
        Ok(Self {
            trusted_proxies: Arc::new(trusted_proxies),
            origin,
            per_ip,
            authorizer,
            iam,
            api_key_required: connect.is_some_and(|r| r.api_key_required),
            api_keys,
            key_selection,
            redactor: QueryRedactor::new(&redacted),
            token_protocol_prefixes,
            in_flight: Default::default(),
        })
    }
}

/// The principals of `iam` and the ARN facts of the API, for `AWS_IAM` on `$connect`.
fn iam_connect(config: &Config, env: EnvLookup<'_>) -> Result<IamConnect, SecurityError> {
    let iam = &config.iam;
    let keyring = Keyring::build(
        "iam.principals",
        &iam.principals,
        &iam.region,
        &iam.account_id,
        iam.max_skew,
        env,
    )?;
    Ok(IamConnect {
        keyring,
        arn: ArnParts {
            region: iam.region.clone(),
            account_id: iam.account_id.clone(),
            api_id: config.api.api_id().to_string(),
        },
    })
}

fn parse_sources(key: &str, texts: &[String]) -> Result<Vec<IdentitySource>, SecurityError> {
    texts
        .iter()
        .map(|t| {
            IdentitySource::parse(t).map_err(|_| SecurityError::Invalid {
                key: format!("{key}.identity_sources"),
            })
        })
        .collect()
}
