//! The `jwt` authorizer: a token from the identity sources, verified in the gateway.
//!
//! The algorithm must be in the authorizer's allow-list and fit the key's family (`alg: none`
//! does not parse at all, and an HMAC token can never be checked against an RSA public key).
//! Keys come only from the configuration or the configured JWKS URL (`jku`, `x5u` and `jwk`
//! headers are ignored). `exp`, `nbf`, `iss` and `aud` are checked with the configured leeway.

use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, Validation};
use serde_json::{Map, Value};

use super::build::{EnvLookup, SecurityError};
use super::identity::IdentitySource;
use super::jwks::Jwks;
use super::jwt_keys::{self, KeyEntry};
use super::{AuthError, AuthRequest, Authorized, Authorizer, TokenProblem};
use crate::config::JwtAuthorizerConfig;

/// Most keys tried for one token (tokens without `kid` against key sets without it).
const MAX_KEYS_TRIED: usize = 8;

/// A configured `jwt` authorizer.
#[derive(Debug)]
pub(crate) struct JwtAuthorizer {
    sources: Vec<IdentitySource>,
    algorithms: Vec<Algorithm>,
    keys: Vec<KeyEntry>,
    jwks: Option<Jwks>,
    validation: Validation,
    principal_claim: String,
    claims: Vec<String>,
    max_token_bytes: usize,
}

impl JwtAuthorizer {
    /// Builds the authorizer configured at `at`.
    ///
    /// # Errors
    /// A [`SecurityError`] naming the key at fault.
    pub(crate) fn new(
        at: &str,
        config: &JwtAuthorizerConfig,
        client: &reqwest::Client,
        env: EnvLookup<'_>,
    ) -> Result<Self, SecurityError> {
        let sources = config
            .identity_sources
            .iter()
            .map(|s| IdentitySource::parse(s))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| SecurityError::Invalid {
                key: format!("{at}.identity_sources"),
            })?;
        let mut keys = Vec::with_capacity(config.keys.len());
        for (i, key_config) in config.keys.iter().enumerate() {
            let key_at = format!("{at}.keys[{i}]");
            let key = jwt_keys::load(&key_at, key_config, env)?;
            if !config.algorithms.iter().any(|a| key.family.admits(*a)) {
                return Err(SecurityError::BadKey {
                    key: key_at,
                    problem: "no algorithm in `algorithms` can use this key",
                });
            }
            keys.push(key);
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = config.leeway.as_secs();
        validation.validate_exp = true;
        validation.validate_nbf = true;
        validation.required_spec_claims.clear();
        if config.require_exp {
            validation.required_spec_claims.insert("exp".into());
        }
        if let Some(issuer) = &config.issuer {
            validation.set_issuer(&issuer.to_vec());
            validation.required_spec_claims.insert("iss".into());
        }
        match &config.audience {
            Some(audience) => {
                validation.set_audience(&audience.to_vec());
                validation.required_spec_claims.insert("aud".into());
            }
            None => validation.validate_aud = false,
        }
        Ok(Self {
            sources,
            algorithms: config.algorithms.clone(),
            keys,
            jwks: config.jwks.as_ref().map(|j| Jwks::new(j, client.clone())),
            validation,
            principal_claim: config.principal_claim.clone(),
            claims: config.claims.clone(),
            max_token_bytes: config.max_token_bytes,
        })
    }

    /// The token from the first identity source that has one.
    fn token(&self, request: &AuthRequest<'_>) -> Option<String> {
        self.sources.iter().find_map(|source| {
            let value = request.view.value(source)?;
            match source {
                IdentitySource::Header(_) => Some(strip_bearer(&value).to_string()),
                _ => Some(value),
            }
        })
    }

    fn context(&self, claims: &Map<String, Value>) -> Result<Authorized, TokenProblem> {
        let principal = match claims.get(&self.principal_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => return Err(TokenProblem::NoPrincipal),
        };
        let mut context = Map::new();
        context.insert("principalId".into(), Value::String(principal));
        for name in self.claims.iter().filter(|n| *n != "principalId") {
            let value = match claims.get(name) {
                None | Some(Value::Null) => continue,
                Some(v @ (Value::String(_) | Value::Number(_) | Value::Bool(_))) => v.clone(),
                // Context values are scalars (as AWS requires): others travel as JSON text.
                Some(other) => Value::String(other.to_string()),
            };
            context.insert(name.clone(), value);
        }
        Ok(Authorized {
            context,
            usage_identifier_key: None,
        })
    }
}

/// `Bearer <token>` → `<token>` (scheme case-insensitive); other values unchanged.
fn strip_bearer(value: &str) -> &str {
    match value.split_once(' ') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim(),
        _ => value,
    }
}

fn problem(kind: &ErrorKind) -> TokenProblem {
    match kind {
        ErrorKind::InvalidSignature
        | ErrorKind::InvalidEcdsaKey
        | ErrorKind::InvalidEddsaKey
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidKeyFormat => TokenProblem::BadSignature,
        ErrorKind::ExpiredSignature => TokenProblem::Expired,
        ErrorKind::ImmatureSignature => TokenProblem::NotYetValid,
        ErrorKind::InvalidIssuer => TokenProblem::WrongIssuer,
        ErrorKind::InvalidAudience => TokenProblem::WrongAudience,
        ErrorKind::MissingRequiredClaim(_)
        | ErrorKind::InvalidClaimFormat(_)
        | ErrorKind::InvalidSubject => TokenProblem::BadClaim,
        ErrorKind::InvalidAlgorithm | ErrorKind::MissingAlgorithm => {
            TokenProblem::AlgorithmNotAllowed
        }
        _ => TokenProblem::Malformed,
    }
}

#[async_trait]
impl Authorizer for JwtAuthorizer {
    async fn authorize(&self, request: &AuthRequest<'_>) -> Result<Authorized, AuthError> {
        let token = self.token(request).ok_or(AuthError::MissingIdentity)?;
        self.verify(&token).await
    }
}

impl JwtAuthorizer {
    /// Verifies `token` (as taken from the identity sources) and answers its context.
    ///
    /// # Errors
    /// [`AuthError::InvalidToken`] saying what is wrong with the token, or
    /// [`AuthError::KeysUnavailable`] when the JWKS cannot be fetched and no configured key fits.
    pub(crate) async fn verify(&self, token: &str) -> Result<Authorized, AuthError> {
        let invalid = AuthError::InvalidToken;
        if token.len() > self.max_token_bytes {
            return Err(invalid(TokenProblem::TooLong));
        }
        let header =
            jsonwebtoken::decode_header(token).map_err(|_| invalid(TokenProblem::Malformed))?;
        let alg = header.alg;
        if !self.algorithms.contains(&alg) {
            return Err(invalid(TokenProblem::AlgorithmNotAllowed));
        }
        if header.crit.is_some() {
            return Err(invalid(TokenProblem::CriticalHeader));
        }
        let kid = header.kid.as_deref();
        let exact_static = kid.is_some()
            && self
                .keys
                .iter()
                .any(|k| k.kid.as_deref() == kid && k.fits(kid, alg));
        let mut published = None;
        if let Some(jwks) = &self.jwks
            && !exact_static
        {
            match jwks.keys(kid).await {
                Ok(set) => published = Some(set),
                Err(error) if !self.keys.iter().any(|k| k.fits(kid, alg)) => {
                    return Err(AuthError::KeysUnavailable(error));
                }
                Err(error) => {
                    tracing::warn!(%error, "JWKS unavailable; trying the configured keys only");
                }
            }
        }
        let candidates = self
            .keys
            .iter()
            .chain(published.iter().flat_map(|set| set.keys.iter()))
            .filter(|k| k.fits(kid, alg))
            .take(MAX_KEYS_TRIED);
        let mut validation = self.validation.clone();
        validation.algorithms = vec![alg];
        let mut outcome = TokenProblem::NoMatchingKey;
        for key in candidates {
            match jsonwebtoken::decode::<Map<String, Value>>(token, &key.key, &validation) {
                Ok(data) => return self.context(&data.claims).map_err(invalid),
                Err(error) => match problem(error.kind()) {
                    TokenProblem::BadSignature => outcome = TokenProblem::BadSignature,
                    // The signature verified; the claims are what they are for every key.
                    other => return Err(invalid(other)),
                },
            }
        }
        Err(invalid(outcome))
    }
}

#[cfg(feature = "fuzzing")]
impl JwtAuthorizer {
    /// Adds the signing keys of a JWKS document to the configured keys, as if the document had
    /// been fetched (the fuzz targets read documents without a server).
    ///
    /// # Errors
    /// What a fetch of this document would have failed with.
    pub(crate) fn with_jwks_document(mut self, body: &[u8]) -> Result<Self, super::CallError> {
        self.keys.extend(super::jwks::parse_document(body)?);
        Ok(self)
    }
}
