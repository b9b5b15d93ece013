//! Configuration of IAM callers as plain data: the `iam` section (the principals that may sign
//! `$connect` on an `AWS_IAM` route), the key pairs of `callback.auth` (same shape), and the
//! IAM policy documents either may carry. Secrets are redacted in `Debug`.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{ConfigError, duration};

/// `iam:` section: the SigV4 principals of `AWS_IAM` routes and the ARN facts of the API.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct IamConfig {
    /// Region in the credential scope of a signed `$connect` and in its `execute-api` ARN.
    pub region: String,
    /// Account that owns the API: the account in every `execute-api` ARN (`$connect` and the
    /// callback API), and the default `accountId` of a principal.
    pub account_id: String,
    /// How far a signed request's date may be from the gateway's clock.
    #[serde(
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub max_skew: Duration,
    /// Who may sign `$connect` on an `AWS_IAM` route.
    pub principals: Vec<IamPrincipalConfig>,
}

/// The region used in ARNs and scopes unless configured.
pub const DEFAULT_IAM_REGION: &str = "us-east-1";
/// The account used in ARNs unless configured.
pub const DEFAULT_IAM_ACCOUNT: &str = "000000000000";

impl Default for IamConfig {
    fn default() -> Self {
        Self {
            region: DEFAULT_IAM_REGION.into(),
            account_id: DEFAULT_IAM_ACCOUNT.into(),
            max_skew: Duration::from_secs(300),
            principals: Vec::new(),
        }
    }
}

/// One SigV4 key pair and who it stands for: an entry of `iam.principals` or of
/// `callback.auth.credentials`. Exactly one of `secret_access_key` and
/// `secret_access_key_env`; at most one of `session_token` and `session_token_env`.
#[derive(Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IamPrincipalConfig {
    /// Access key id (`identity.accessKey`).
    pub access_key_id: String,
    /// Secret access key, inline (redacted in logs; prefer `secret_access_key_env`).
    #[serde(default)]
    #[serde(serialize_with = "super::secret::hide_opt")]
    pub secret_access_key: Option<String>,
    /// Name of the environment variable holding the secret access key.
    #[serde(default)]
    pub secret_access_key_env: Option<String>,
    /// STS session token every request signed with this key must carry.
    #[serde(default)]
    #[serde(serialize_with = "super::secret::hide_opt")]
    pub session_token: Option<String>,
    /// Name of the environment variable holding the session token.
    #[serde(default)]
    pub session_token_env: Option<String>,
    /// Principal id (`identity.caller` and `identity.user`), e.g. `AIDAEXAMPLE` or
    /// `AROAEXAMPLE:session`; defaults to the access key id.
    #[serde(default)]
    pub principal_id: Option<String>,
    /// ARN of the caller (`identity.userArn`); defaults to
    /// `arn:aws:iam::{account_id}:user/{access_key_id}`.
    #[serde(default)]
    pub user_arn: Option<String>,
    /// The caller's account (`identity.accountId`); defaults to the account in `user_arn`, else
    /// `iam.account_id`.
    #[serde(default)]
    pub account_id: Option<String>,
    /// Identity policy of this key. Without one the key may do everything its place allows
    /// (every callback request; `$connect` on every stage).
    #[serde(default)]
    pub policy: Option<PolicyDocument>,
}

impl fmt::Debug for IamPrincipalConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IamPrincipal")
            .field("access_key_id", &self.access_key_id)
            .field(
                "secret_access_key",
                &self.secret_access_key.as_ref().map(|_| "***"),
            )
            .field("secret_access_key_env", &self.secret_access_key_env)
            .field("session_token", &self.session_token.as_ref().map(|_| "***"))
            .field("session_token_env", &self.session_token_env)
            .field("principal_id", &self.principal_id)
            .field("user_arn", &self.user_arn)
            .field("account_id", &self.account_id)
            .field("policy", &self.policy.as_ref().map(|_| "(set)"))
            .finish()
    }
}

/// An IAM identity policy document, as AWS writes it (`Version`, `Statement`).
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyDocument {
    /// `2012-10-17` or `2008-10-17`.
    #[serde(rename = "Version", default)]
    pub version: Option<String>,
    /// Optional document id.
    #[serde(rename = "Id", default)]
    pub id: Option<String>,
    /// One statement or a list of them.
    #[serde(rename = "Statement")]
    pub statement: OneOrList<PolicyStatement>,
}

/// One statement of a [`PolicyDocument`]: exactly one of `Action` and `NotAction`, and of
/// `Resource` and `NotResource`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyStatement {
    /// Optional statement id.
    #[serde(rename = "Sid", default)]
    pub sid: Option<String>,
    /// `Allow` or `Deny`.
    #[serde(rename = "Effect")]
    pub effect: String,
    /// Actions the statement covers (`execute-api:ManageConnections`, `execute-api:*`, `*`).
    #[serde(rename = "Action", default)]
    pub action: Option<OneOrList<String>>,
    /// Actions the statement covers by exclusion.
    #[serde(rename = "NotAction", default)]
    pub not_action: Option<OneOrList<String>>,
    /// Resources (`arn:aws:execute-api:…`, `*` and `?` wildcards).
    #[serde(rename = "Resource", default)]
    pub resource: Option<OneOrList<String>>,
    /// Resources the statement covers by exclusion.
    #[serde(rename = "NotResource", default)]
    pub not_resource: Option<OneOrList<String>>,
    /// Conditions, kept as data: the gateway cannot evaluate them, so a statement with a
    /// `Condition` never allows and always denies what its actions and resources cover.
    #[serde(rename = "Condition", default)]
    pub condition: Option<Value>,
}

/// A single value or a list of values, as IAM allows for `Statement`, `Action` and `Resource`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrList<T> {
    /// One value.
    One(T),
    /// Several values.
    List(Vec<T>),
}

impl<T> OneOrList<T> {
    /// The values in order.
    pub fn as_slice(&self) -> &[T] {
        match self {
            Self::One(value) => std::slice::from_ref(value),
            Self::List(values) => values,
        }
    }

    /// The values in order, to change in place.
    pub(crate) fn as_mut_slice(&mut self) -> &mut [T] {
        match self {
            Self::One(value) => std::slice::from_mut(value),
            Self::List(values) => values,
        }
    }
}

/// Checks a list of principals at config key `at` (`iam.principals`,
/// `callback.auth.credentials`).
pub(super) fn validate_principals(
    at: &str,
    principals: &[IamPrincipalConfig],
) -> Result<(), ConfigError> {
    let mut seen = std::collections::HashSet::new();
    for (i, p) in principals.iter().enumerate() {
        let at = format!("{at}[{i}]");
        if p.access_key_id.is_empty()
            || !p
                .access_key_id
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/')
        {
            return Err(invalid(
                format!("{at}.access_key_id"),
                "must be a non-empty access key id without '/' or spaces",
            ));
        }
        if !seen.insert(p.access_key_id.as_str()) {
            return Err(invalid(
                format!("{at}.access_key_id"),
                "listed twice; give each key once",
            ));
        }
        if p.secret_access_key.is_some() == p.secret_access_key_env.is_some() {
            return Err(invalid(
                format!("{at}.secret_access_key"),
                "give exactly one of secret_access_key and secret_access_key_env",
            ));
        }
        if p.secret_access_key.as_ref().is_some_and(String::is_empty) {
            return Err(invalid(
                format!("{at}.secret_access_key"),
                "must not be empty",
            ));
        }
        if p.session_token.is_some() && p.session_token_env.is_some() {
            return Err(invalid(
                format!("{at}.session_token"),
                "give at most one of session_token and session_token_env",
            ));
        }
        if p.session_token.as_ref().is_some_and(String::is_empty) {
            return Err(invalid(format!("{at}.session_token"), "must not be empty"));
        }
        if let Some(arn) = &p.user_arn
            && (arn.split(':').count() < 6 || !arn.starts_with("arn:"))
        {
            return Err(invalid(
                format!("{at}.user_arn"),
                "must be an ARN (arn:aws:iam::123456789012:user/name)",
            ));
        }
        if let Some(policy) = &p.policy {
            validate_policy(&format!("{at}.policy"), policy)?;
        }
    }
    Ok(())
}

/// Checks a policy document: a known `Version`, at least one statement, each with `Effect`
/// `Allow` or `Deny`, exactly one of `Action`/`NotAction` and of `Resource`/`NotResource`,
/// none of them empty, actions `*` or `service:name`, resources `*` or six-part ARNs.
fn validate_policy(at: &str, policy: &PolicyDocument) -> Result<(), ConfigError> {
    if let Some(version) = &policy.version
        && !matches!(version.as_str(), "2012-10-17" | "2008-10-17")
    {
        return Err(invalid(
            format!("{at}.Version"),
            "must be 2012-10-17 or 2008-10-17",
        ));
    }
    let statements = policy.statement.as_slice();
    if statements.is_empty() {
        return Err(invalid(format!("{at}.Statement"), "give at least one"));
    }
    for (i, s) in statements.iter().enumerate() {
        let at = format!("{at}.Statement[{i}]");
        if !matches!(s.effect.as_str(), "Allow" | "Deny") {
            return Err(invalid(format!("{at}.Effect"), "must be Allow or Deny"));
        }
        let actions = exactly_one(&at, "Action", s.action.as_ref(), s.not_action.as_ref())?;
        for action in actions {
            if action != "*" && !action.contains(':') {
                return Err(invalid(
                    format!("{at}.Action"),
                    format!("`{action}` is not * or service:action"),
                ));
            }
        }
        let resources = exactly_one(
            &at,
            "Resource",
            s.resource.as_ref(),
            s.not_resource.as_ref(),
        )?;
        for resource in resources {
            if resource != "*"
                && (!resource.starts_with("arn:") || resource.splitn(6, ':').count() != 6)
            {
                return Err(invalid(
                    format!("{at}.Resource"),
                    format!("`{resource}` is not * or an ARN"),
                ));
            }
        }
    }
    Ok(())
}

/// The values of `X` or `NotX`, exactly one of them given and not empty.
fn exactly_one<'a>(
    at: &str,
    name: &str,
    positive: Option<&'a OneOrList<String>>,
    negative: Option<&'a OneOrList<String>>,
) -> Result<&'a [String], ConfigError> {
    let values = match (positive, negative) {
        (Some(values), None) | (None, Some(values)) => values.as_slice(),
        _ => {
            return Err(invalid(
                format!("{at}.{name}"),
                format!("give exactly one of {name} and Not{name}"),
            ));
        }
    };
    if values.is_empty() || values.iter().any(String::is_empty) {
        return Err(invalid(format!("{at}.{name}"), "must not be empty"));
    }
    Ok(values)
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> ConfigError {
    ConfigError::invalid(key, message)
}
