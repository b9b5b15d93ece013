//! IAM on both sides of the gateway: SigV4-signed callers resolved to configured principals
//! (key pair, optional STS session token, identity facts, optional identity policy), and the
//! `execute-api` ARNs their policies are evaluated on. Used by the callback API
//! (`execute-api:ManageConnections`) and by `AWS_IAM` authorization of `$connect`
//! (`execute-api:Invoke`).

pub(crate) mod policy;
pub(crate) mod sigv4;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use http::HeaderMap;

use self::policy::{Decision, Policy};
use self::sigv4::{Credential, SigV4Verifier, SignedRequest};
use crate::config::IamPrincipalConfig;
pub(crate) use crate::error::{AccessDenied, SigV4Error};
use crate::events::CallerIdentity;

/// The action of the callback API.
pub(crate) const MANAGE_CONNECTIONS: &str = "execute-api:ManageConnections";
/// The action of a route (`$connect`).
pub(crate) const INVOKE: &str = "execute-api:Invoke";
/// The action of response-cache invalidation through the callback API (`DELETE /{stage}/@cache…`;
/// AWS's name for REST API cache invalidation).
pub(crate) const INVALIDATE_CACHE: &str = "execute-api:InvalidateCache";

/// Why configured principals could not be put to use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum KeyringError {
    /// A `*_env` reference names a variable that is not set.
    #[error("config key `{key}`: environment variable {var} is not set")]
    MissingEnv {
        /// Dotted config key.
        key: String,
        /// The variable.
        var: String,
    },
    /// A value the validation should have refused.
    #[error("config key `{key}`: invalid value")]
    Invalid {
        /// Dotted config key.
        key: String,
    },
}

/// Reads one environment variable (injected so tests need not change the process environment).
pub(crate) type EnvLookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// A configured caller: who a verified signature stands for and what it may do.
#[derive(Debug)]
pub(crate) struct Principal {
    /// `identity` fields for events.
    pub identity: Arc<CallerIdentity>,
    /// Its identity policy; `None` allows everything.
    pub policy: Option<Policy>,
}

impl Principal {
    /// Whether the principal may do `action` on `resource`: `Ok` or why not.
    ///
    /// # Errors
    /// [`AccessDenied`] naming the caller, the action and the resource, as AWS words it.
    pub(crate) fn authorize(
        &self,
        action: &'static str,
        resource: String,
    ) -> Result<(), AccessDenied> {
        let Some(policy) = &self.policy else {
            return Ok(());
        };
        let explicit = match policy.evaluate(action, &resource) {
            Decision::Allow => return Ok(()),
            Decision::ImplicitDeny => false,
            Decision::ExplicitDeny => true,
        };
        Err(AccessDenied {
            user_arn: self.identity.user_arn.clone(),
            action,
            resource,
            explicit,
        })
    }
}

/// The region, account and API id an `execute-api` ARN is made of.
#[derive(Debug, Clone)]
pub(crate) struct ArnParts {
    /// Region.
    pub region: String,
    /// Account that owns the API.
    pub account_id: String,
    /// `apiId`.
    pub api_id: String,
}

impl ArnParts {
    /// `arn:aws:execute-api:{region}:{account}:{api}/{path}`.
    pub(crate) fn arn(&self, path: &str) -> String {
        format!(
            "arn:aws:execute-api:{}:{}:{}/{path}",
            self.region, self.account_id, self.api_id
        )
    }
}

/// A set of principals and the verifier of their signatures.
pub(crate) struct Keyring {
    verifier: SigV4Verifier,
    principals: HashMap<String, Arc<Principal>>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("verifier", &self.verifier)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    /// Resolves `configs` (the list at config key `at`) for signatures scoped to `region`;
    /// `account_id` is the default account of a principal.
    ///
    /// # Errors
    /// A [`KeyringError`] naming the config key.
    pub(crate) fn build(
        at: &str,
        configs: &[IamPrincipalConfig],
        region: &str,
        account_id: &str,
        max_skew: Duration,
        env: EnvLookup<'_>,
    ) -> Result<Self, KeyringError> {
        let mut credentials = Vec::with_capacity(configs.len());
        let mut principals = HashMap::with_capacity(configs.len());
        for (i, config) in configs.iter().enumerate() {
            let at = format!("{at}[{i}]");
            let secret = one_of(
                &at,
                "secret_access_key",
                config.secret_access_key.as_ref(),
                config.secret_access_key_env.as_ref(),
                env,
            )?
            .ok_or_else(|| KeyringError::Invalid {
                key: format!("{at}.secret_access_key"),
            })?;
            let session_token = one_of(
                &at,
                "session_token",
                config.session_token.as_ref(),
                config.session_token_env.as_ref(),
                env,
            )?;
            credentials.push(Credential {
                access_key_id: config.access_key_id.clone(),
                secret_access_key: secret,
                session_token,
            });
            principals.insert(
                config.access_key_id.clone(),
                Arc::new(Principal {
                    identity: Arc::new(identity(config, account_id)),
                    policy: config.policy.as_ref().map(Policy::new),
                }),
            );
        }
        Ok(Self {
            verifier: SigV4Verifier::new(region, credentials).with_max_skew(max_skew),
            principals,
        })
    }

    /// The same keys for signatures scoped to `service` (default `execute-api`).
    #[must_use]
    pub(crate) fn with_service(mut self, service: &str) -> Self {
        self.verifier = self.verifier.with_service(service);
        self
    }

    /// The checks that need no body (see [`SigV4Verifier::check_head`]).
    ///
    /// # Errors
    /// Why the request is refused.
    pub(crate) fn check_head(
        &self,
        raw_query: Option<&str>,
        headers: &HeaderMap,
        now: DateTime<Utc>,
    ) -> Result<(), SigV4Error> {
        self.verifier.check_head(raw_query, headers, now)
    }

    /// Verifies the signature; answers the principal that signed.
    ///
    /// # Errors
    /// Why the request is refused.
    pub(crate) fn verify(
        &self,
        request: &SignedRequest<'_>,
        now: DateTime<Utc>,
    ) -> Result<&Arc<Principal>, SigV4Error> {
        let key = self.verifier.verify(request, now)?;
        self.principals
            .get(&key)
            .ok_or(SigV4Error::UnknownAccessKey)
    }
}

/// `value` or the variable named by `env_name`, at most one of them.
fn one_of(
    at: &str,
    name: &str,
    value: Option<&String>,
    env_name: Option<&String>,
    env: EnvLookup<'_>,
) -> Result<Option<String>, KeyringError> {
    match (value, env_name) {
        (Some(value), None) => Ok(Some(value.clone())),
        (None, Some(var)) => env(var).map(Some).ok_or_else(|| KeyringError::MissingEnv {
            key: format!("{at}.{name}_env"),
            var: var.clone(),
        }),
        (None, None) => Ok(None),
        (Some(_), Some(_)) => Err(KeyringError::Invalid {
            key: format!("{at}.{name}"),
        }),
    }
}

/// The `identity` fields of a principal, with the documented defaults.
fn identity(config: &IamPrincipalConfig, default_account: &str) -> CallerIdentity {
    let account_id = config
        .account_id
        .clone()
        .or_else(|| {
            config
                .user_arn
                .as_deref()
                .and_then(|arn| arn.split(':').nth(4))
                .filter(|account| !account.is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| default_account.to_string());
    let principal_id = config
        .principal_id
        .clone()
        .unwrap_or_else(|| config.access_key_id.clone());
    let user_arn = config
        .user_arn
        .clone()
        .unwrap_or_else(|| format!("arn:aws:iam::{account_id}:user/{}", config.access_key_id));
    CallerIdentity {
        access_key: config.access_key_id.clone(),
        account_id,
        caller: principal_id.clone(),
        user: principal_id,
        user_arn,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_defaults_follow_the_arn_then_the_api_account() {
        let config = IamPrincipalConfig {
            access_key_id: "AKIDA".into(),
            user_arn: Some("arn:aws:sts::111122223333:assumed-role/R/s".into()),
            principal_id: Some("AROAEXAMPLE:s".into()),
            ..Default::default()
        };
        let id = identity(&config, "000000000000");
        assert_eq!(id.account_id, "111122223333");
        assert_eq!(
            (id.caller.as_str(), id.user.as_str()),
            ("AROAEXAMPLE:s", "AROAEXAMPLE:s")
        );
        let bare = IamPrincipalConfig {
            access_key_id: "AKIDB".into(),
            ..Default::default()
        };
        let id = identity(&bare, "444455556666");
        assert_eq!(id.account_id, "444455556666");
        assert_eq!(id.user_arn, "arn:aws:iam::444455556666:user/AKIDB");
        assert_eq!(id.caller, "AKIDB");
    }

    #[test]
    fn secrets_and_tokens_come_from_the_environment() {
        let config = IamPrincipalConfig {
            access_key_id: "AKIDA".into(),
            secret_access_key_env: Some("SECRET".into()),
            session_token_env: Some("TOKEN".into()),
            ..Default::default()
        };
        let env = |name: &str| (name == "SECRET").then(|| "s".to_string());
        let error = Keyring::build(
            "iam.principals",
            &[config],
            "us-east-1",
            "0",
            Duration::ZERO,
            &env,
        )
        .expect_err("TOKEN is unset");
        assert_eq!(
            error,
            KeyringError::MissingEnv {
                key: "iam.principals[0].session_token_env".into(),
                var: "TOKEN".into()
            }
        );
    }
}
