//! Verification keys of a JWT authorizer: each bound to one algorithm family (and, for JWKs
//! that say so, one algorithm), so a token can never choose how its key is used.

use jsonwebtoken::jwk::{AlgorithmParameters, EllipticCurve, Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey};

use super::build::{EnvLookup, SecurityError};
use crate::config::JwtKeyConfig;

/// The shortest HMAC secret accepted (256 bits).
const MIN_SECRET_BYTES: usize = 32;

/// Which algorithms a key may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Family {
    /// HS256/384/512.
    Hmac,
    /// RS* and PS*.
    Rsa,
    /// ES256 (P-256).
    EcP256,
    /// ES384 (P-384).
    EcP384,
    /// EdDSA (Ed25519).
    Ed,
}

impl Family {
    /// Whether `alg` belongs to this family.
    pub(super) fn admits(self, alg: Algorithm) -> bool {
        use Algorithm::*;
        match self {
            Self::Hmac => matches!(alg, HS256 | HS384 | HS512),
            Self::Rsa => matches!(alg, RS256 | RS384 | RS512 | PS256 | PS384 | PS512),
            Self::EcP256 => alg == ES256,
            Self::EcP384 => alg == ES384,
            Self::Ed => alg == EdDSA,
        }
    }
}

/// One usable key.
#[derive(Clone)]
pub(super) struct KeyEntry {
    pub(super) kid: Option<String>,
    pub(super) family: Family,
    /// The one algorithm a JWK pinned with `alg`.
    pub(super) alg: Option<Algorithm>,
    pub(super) key: DecodingKey,
}

impl std::fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Key")
            .field("kid", &self.kid)
            .field("family", &self.family)
            .field("alg", &self.alg)
            .finish_non_exhaustive()
    }
}

impl KeyEntry {
    /// Whether this key may verify a token with `kid` and `alg`. A key without a kid fits any
    /// token; a token without a kid fits any key.
    pub(super) fn fits(&self, kid: Option<&str>, alg: Algorithm) -> bool {
        let kid_ok = match (kid, self.kid.as_deref()) {
            (Some(want), Some(have)) => want == have,
            _ => true,
        };
        kid_ok && self.family.admits(alg) && self.alg.is_none_or(|pinned| pinned == alg)
    }
}

/// Loads one configured key.
pub(super) fn load(
    at: &str,
    config: &JwtKeyConfig,
    env: EnvLookup<'_>,
) -> Result<KeyEntry, SecurityError> {
    let bad = |problem| SecurityError::BadKey {
        key: at.to_string(),
        problem,
    };
    let (family, key) = match (
        &config.secret,
        &config.secret_env,
        &config.pem,
        &config.pem_file,
    ) {
        (Some(secret), None, None, None) => {
            (Family::Hmac, secret_key(secret).ok_or_else(|| bad(SHORT))?)
        }
        (None, Some(var), None, None) => {
            let secret = env(var).ok_or_else(|| SecurityError::MissingEnv {
                key: format!("{at}.secret_env"),
                var: var.clone(),
            })?;
            (Family::Hmac, secret_key(&secret).ok_or_else(|| bad(SHORT))?)
        }
        (None, None, Some(pem), None) => {
            public_pem(pem.as_bytes()).ok_or_else(|| bad(NOT_PUBLIC))?
        }
        (None, None, None, Some(path)) => {
            let bytes = std::fs::read(path).map_err(|source| SecurityError::KeyFile {
                key: format!("{at}.pem_file"),
                path: path.clone(),
                source,
            })?;
            public_pem(&bytes).ok_or_else(|| bad(NOT_PUBLIC))?
        }
        _ => return Err(bad("give exactly one of secret, secret_env, pem, pem_file")),
    };
    Ok(KeyEntry {
        kid: config.kid.clone(),
        family,
        alg: None,
        key,
    })
}

const SHORT: &str = "an HMAC secret must be at least 32 bytes";
const NOT_PUBLIC: &str = "not a PEM public key (RSA, EC P-256/P-384 or Ed25519)";

fn secret_key(secret: &str) -> Option<DecodingKey> {
    (secret.len() >= MIN_SECRET_BYTES).then(|| DecodingKey::from_secret(secret.as_bytes()))
}

/// A public key in PEM, with its family. Private keys are refused.
fn public_pem(pem: &[u8]) -> Option<(Family, DecodingKey)> {
    let text = std::str::from_utf8(pem).ok()?;
    // Private keys do not belong in a verifier's configuration; certificates are not read.
    if text.contains("PRIVATE KEY") || text.contains("CERTIFICATE") {
        return None;
    }
    if let Ok(key) = DecodingKey::from_rsa_pem(pem) {
        return Some((Family::Rsa, key));
    }
    if let Ok(key) = DecodingKey::from_ed_pem(pem) {
        return Some((Family::Ed, key));
    }
    let key = DecodingKey::from_ec_pem(pem).ok()?;
    // The point's length tells the curve: 0x04 || X || Y.
    let family = match key.try_get_as_bytes().ok()?.len() {
        65 => Family::EcP256,
        97 => Family::EcP384,
        _ => return None,
    };
    Some((family, key))
}

/// A key from a JWKS entry; `None` for entries that cannot verify signatures here (encryption
/// keys, symmetric keys, unknown curves or algorithms).
pub(super) fn from_jwk(jwk: &Jwk) -> Option<KeyEntry> {
    if matches!(&jwk.common.public_key_use, Some(u) if *u != PublicKeyUse::Signature) {
        return None;
    }
    let alg = match jwk.common.key_algorithm {
        // `KeyAlgorithm` displays as its name; only signature algorithms parse back.
        Some(a) => Some(a.to_string().parse::<Algorithm>().ok()?),
        None => None,
    };
    let family = match &jwk.algorithm {
        AlgorithmParameters::RSA(_) => Family::Rsa,
        AlgorithmParameters::EllipticCurve(p) => match p.curve {
            EllipticCurve::P256 => Family::EcP256,
            EllipticCurve::P384 => Family::EcP384,
            _ => return None,
        },
        AlgorithmParameters::OctetKeyPair(p) if p.curve == EllipticCurve::Ed25519 => Family::Ed,
        // Symmetric keys in a published key set are refused: anyone could read them.
        _ => return None,
    };
    if alg.is_some_and(|a| !family.admits(a)) {
        return None;
    }
    Some(KeyEntry {
        kid: jwk.common.key_id.clone(),
        family,
        alg,
        key: DecodingKey::from_jwk(jwk).ok()?,
    })
}
