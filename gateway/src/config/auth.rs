//! Configuration of who may connect: authorizers (`api.authorizers`), API keys (`api_keys`) and
//! handshake hardening (`security`). Secrets are redacted in `Debug`.

use std::fmt;
use std::time::Duration;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::duration;

/// The header an API key is read from unless `api.api_key_selection_expression` says otherwise.
pub const DEFAULT_API_KEY_SELECTION: &str = "$request.header.x-api-key";

/// One entry of `api.authorizers`.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum AuthorizerConfig {
    /// Verify a JSON Web Token in the gateway.
    Jwt(JwtAuthorizerConfig),
    /// Call an HTTP endpoint with the Lambda REQUEST authorizer event.
    Request(RequestAuthorizerConfig),
}

/// `type: jwt` authorizer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtAuthorizerConfig {
    /// Where the token is looked for, in order (first present wins).
    #[serde(default = "default_jwt_sources")]
    pub identity_sources: Vec<String>,
    /// Algorithms accepted (`HS256`, `RS256`, `PS256`, `ES256`, `EdDSA`, ...); nothing else is.
    #[schemars(with = "Vec<JwtAlgorithm>")]
    pub algorithms: Vec<jsonwebtoken::Algorithm>,
    /// Keys given in the configuration.
    #[serde(default)]
    pub keys: Vec<JwtKeyConfig>,
    /// Keys fetched from a JWKS URL.
    #[serde(default)]
    pub jwks: Option<JwksConfig>,
    /// Required `iss` (one of these).
    #[serde(default)]
    pub issuer: Option<OneOrMany>,
    /// Required `aud` (the token must name one of these).
    #[serde(default)]
    pub audience: Option<OneOrMany>,
    /// Clock skew allowed on `exp` and `nbf` (at most 60 s).
    #[serde(
        default = "default_leeway",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub leeway: Duration,
    /// Reject tokens without `exp` (default true).
    #[serde(default = "default_true")]
    pub require_exp: bool,
    /// The claim that becomes `principalId`.
    #[serde(default = "default_principal_claim")]
    pub principal_claim: String,
    /// Claims copied into the authorizer context (non-scalar values as JSON text).
    #[serde(default)]
    pub claims: Vec<String>,
    /// Longest token accepted.
    #[serde(default = "default_max_token_bytes")]
    pub max_token_bytes: usize,
}

fn default_jwt_sources() -> Vec<String> {
    vec!["route.request.header.Authorization".into()]
}
fn default_leeway() -> Duration {
    Duration::from_secs(30)
}
fn default_true() -> bool {
    true
}
fn default_principal_claim() -> String {
    "sub".into()
}
fn default_max_token_bytes() -> usize {
    8192
}

/// A string or a list of strings.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    /// One value.
    One(String),
    /// Several values.
    Many(Vec<String>),
}

impl OneOrMany {
    /// The values as a list.
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            Self::One(s) => vec![s.clone()],
            Self::Many(v) => v.clone(),
        }
    }
}

/// One key of a JWT authorizer: exactly one of `secret`, `secret_env`, `pem`, `pem_file`.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwtKeyConfig {
    /// Key id matched against the token's `kid` (a key without one is tried for every token).
    #[serde(default)]
    pub kid: Option<String>,
    /// HMAC secret, inline (redacted in logs; prefer `secret_env`).
    #[serde(default)]
    #[serde(serialize_with = "super::secret::hide_opt")]
    pub secret: Option<String>,
    /// Name of the environment variable holding the HMAC secret.
    #[serde(default)]
    pub secret_env: Option<String>,
    /// Public key (RSA, EC or Ed25519) in PEM.
    #[serde(default)]
    pub pem: Option<String>,
    /// Path of a PEM file with the public key.
    #[serde(default)]
    pub pem_file: Option<String>,
}

impl fmt::Debug for JwtKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JwtKey")
            .field("kid", &self.kid)
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("secret_env", &self.secret_env)
            .field("pem", &self.pem.as_ref().map(|_| "(inline)"))
            .field("pem_file", &self.pem_file)
            .finish()
    }
}

/// `jwks:` of a JWT authorizer.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct JwksConfig {
    /// The JWKS document's URL.
    pub url: String,
    /// How long a fetched key set is used before it is fetched again.
    #[serde(
        default = "default_jwks_ttl",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub cache_ttl: Duration,
    /// Least time between two fetches caused by tokens with an unknown `kid`.
    #[serde(
        default = "default_jwks_min_refresh",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub min_refresh_interval: Duration,
    /// Per-request timeout.
    #[serde(
        default = "default_jwks_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub timeout: Duration,
}

fn default_jwks_ttl() -> Duration {
    Duration::from_secs(600)
}
fn default_jwks_min_refresh() -> Duration {
    Duration::from_secs(10)
}
fn default_jwks_timeout() -> Duration {
    Duration::from_secs(5)
}

/// `type: request` authorizer: the Lambda REQUEST authorizer contract over HTTP.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RequestAuthorizerConfig {
    /// URL the event is POSTed to (stage variables allowed), e.g. a Lambda invoke URL.
    pub uri: String,
    /// Per-call timeout.
    #[serde(
        default = "default_authorizer_timeout",
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub timeout: Duration,
    /// Values that must be present (else 401 without a call) and that key the result cache.
    #[serde(default)]
    pub identity_sources: Vec<String>,
    /// How long a result is reused for the same identity-source values (0 turns caching off).
    #[serde(
        default,
        deserialize_with = "duration::deserialize",
        serialize_with = "duration::serialize"
    )]
    #[schemars(with = "duration::Text")]
    pub result_ttl: Duration,
    /// Most results cached.
    #[serde(default = "default_cache_entries")]
    pub max_cached_results: u64,
    /// Region in `methodArn`.
    #[serde(default = "default_region")]
    pub region: String,
    /// Account id in `methodArn`.
    #[serde(default = "default_account")]
    pub account_id: String,
    /// How the answer's `context` values reach events: `string` (default; numbers and booleans
    /// stringified, as AWS delivers them to Lambda proxy integrations) or `typed` (as answered).
    #[serde(default)]
    pub context_values: ContextValues,
}

/// `context_values` of a `request` authorizer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ContextValues {
    /// `123` → `"123"`, `true` → `"true"`; strings and `null` unchanged (as AWS does).
    #[default]
    String,
    /// Numbers and booleans keep their JSON type.
    Typed,
}

fn default_authorizer_timeout() -> Duration {
    Duration::from_secs(10)
}
fn default_cache_entries() -> u64 {
    10_000
}
fn default_region() -> String {
    "us-east-1".into()
}
fn default_account() -> String {
    "000000000000".into()
}

/// One entry of `api_keys`: exactly one of `value_sha256` and `value_env`.
#[derive(Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ApiKeyConfig {
    /// `identity.apiKeyId` in events.
    pub id: String,
    /// Hex SHA-256 of the key value.
    #[serde(default)]
    pub value_sha256: Option<String>,
    /// Name of the environment variable holding the key value.
    #[serde(default)]
    pub value_env: Option<String>,
    /// The usage plan the key belongs to.
    pub usage_plan: String,
}

impl fmt::Debug for ApiKeyConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKey")
            .field("id", &self.id)
            .field("value_sha256", &self.value_sha256.as_ref().map(|_| "***"))
            .field("value_env", &self.value_env)
            .field("usage_plan", &self.usage_plan)
            .finish()
    }
}

/// `security:` section: checks on the upgrade request before any authorizer or integration.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields, default)]
pub struct SecurityConfig {
    /// Origins allowed to connect (`https://app.example.com`, `https://*.example.com`); empty
    /// turns the check off.
    pub allowed_origins: Vec<String>,
    /// Whether requests without `Origin` (non-browser clients) pass the origin check.
    pub allow_missing_origin: bool,
    /// Concurrent connections per client address (IPv6 per /64); absent means no limit.
    pub max_connections_per_ip: Option<usize>,
    /// Upgrade requests per second per client address.
    pub handshake_rate_per_ip: Option<RateConfig>,
    /// Most client addresses tracked for the two limits above (idle ones are evicted).
    pub max_tracked_ips: usize,
    /// Query parameters redacted in logs, in addition to the built-in list and identity sources.
    pub redact_query_params: Vec<String>,
    /// Load balancers and proxies (CIDR blocks or single addresses) whose `X-Forwarded-For` is
    /// believed; see `auth::client_ip`.
    pub trusted_proxies: Vec<String>,
    /// Hosts that integration, `request` authorizer and JWKS URLs may name once their stage
    /// variables are substituted: host names (`api.internal`), `*.suffix`
    /// (`*.svc.cluster.local`), addresses or CIDR blocks (`10.0.0.0/8`); empty allows any
    /// host except link-local and metadata ones.
    pub integration_hosts: Vec<String>,
    /// Whether those URLs may name link-local and cloud metadata addresses (`169.254.0.0/16`
    /// with `169.254.169.254`, `fe80::/10`, `fd00:ec2::254`, `metadata.google.internal`),
    /// also when a host name resolves to one; off by default.
    pub allow_metadata_hosts: bool,
}

impl Default for SecurityConfig {
    fn default() -> Self {
        Self {
            allowed_origins: Vec::new(),
            allow_missing_origin: true,
            max_connections_per_ip: None,
            handshake_rate_per_ip: None,
            max_tracked_ips: 100_000,
            redact_query_params: Vec::new(),
            trusted_proxies: Vec::new(),
            integration_hosts: Vec::new(),
            allow_metadata_hosts: false,
        }
    }
}

/// A token bucket: `rate` per second, up to `burst` at once.
#[derive(Debug, Clone, Copy, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateConfig {
    /// Sustained requests per second.
    pub rate: f64,
    /// Requests allowed at once.
    pub burst: u32,
}

/// The schema of `jsonwebtoken::Algorithm` as serde reads it: its names.
#[derive(JsonSchema)]
#[allow(dead_code, clippy::upper_case_acronyms)]
enum JwtAlgorithm {
    HS256,
    HS384,
    HS512,
    ES256,
    ES384,
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    EdDSA,
}
