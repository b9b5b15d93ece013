//! Signing keys generated in the test (aws-lc-rs, the gateway's own crypto stack), tokens minted
//! with them, and hand-built tokens for the attacks a verifier must refuse.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, ECDSA_P384_SHA384_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair,
    KeyPair,
};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

/// A private key for minting tokens and its public half for the gateway.
pub struct TestKey {
    pub alg: Algorithm,
    pub encoding: EncodingKey,
    /// The public key in PEM (empty for HMAC keys).
    pub public_pem: String,
}

/// PEM armour around DER.
pub fn pem(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let lines: Vec<&str> = body
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).expect("base64 is ASCII"))
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

impl TestKey {
    /// An HMAC key.
    pub fn hmac(secret: &str, alg: Algorithm) -> Self {
        Self {
            alg,
            encoding: EncodingKey::from_secret(secret.as_bytes()),
            public_pem: String::new(),
        }
    }

    /// A fresh RSA-2048 key, for RS* or PS*.
    pub fn rsa(alg: Algorithm) -> Self {
        let pair = RsaKeyPair::generate(KeySize::Rsa2048).expect("RSA key");
        let private = pair.as_der().expect("PKCS#8");
        let public = pair.public_key().as_der().expect("SPKI");
        Self {
            alg,
            encoding: EncodingKey::from_rsa_pem(pem("PRIVATE KEY", private.as_ref()).as_bytes())
                .expect("RSA encoding key"),
            public_pem: pem("PUBLIC KEY", public.as_ref()),
        }
    }

    /// A fresh P-256 (ES256) or P-384 (ES384) key.
    pub fn ec(alg: Algorithm) -> Self {
        let curve = match alg {
            Algorithm::ES384 => &ECDSA_P384_SHA384_FIXED_SIGNING,
            _ => &ECDSA_P256_SHA256_FIXED_SIGNING,
        };
        let pair = EcdsaKeyPair::generate(curve).expect("EC key");
        let private = pair.to_pkcs8v1().expect("PKCS#8");
        let public = pair.public_key().as_der().expect("SPKI");
        Self {
            alg,
            encoding: EncodingKey::from_ec_der(private.as_ref()),
            public_pem: pem("PUBLIC KEY", public.as_ref()),
        }
    }

    /// A fresh Ed25519 key (EdDSA).
    pub fn ed25519() -> Self {
        let pair = Ed25519KeyPair::generate().expect("Ed25519 key");
        let private = pair.to_pkcs8v1().expect("PKCS#8");
        let public = pair.public_key().as_der().expect("SPKI");
        Self {
            alg: Algorithm::EdDSA,
            encoding: EncodingKey::from_ed_der(private.as_ref()),
            public_pem: pem("PUBLIC KEY", public.as_ref()),
        }
    }

    /// The public key as a JWK with `kid` and `alg`.
    pub fn jwk(&self, kid: &str) -> Value {
        let mut jwk = Jwk::from_encoding_key(&self.encoding, self.alg).expect("JWK");
        jwk.common.key_id = Some(kid.to_string());
        serde_json::to_value(jwk).expect("JWK JSON")
    }

    /// A token with these claims, signed with this key.
    pub fn sign(&self, kid: Option<&str>, claims: &Value) -> String {
        let mut header = Header::new(self.alg);
        header.kid = kid.map(str::to_string);
        jsonwebtoken::encode(&header, claims, &self.encoding).expect("token")
    }

    /// A token with a hand-written header, signed with this key.
    pub fn sign_with_header(&self, header: &Value, claims: &Value) -> String {
        let message = format!("{}.{}", b64(header), b64(claims));
        let signature = jsonwebtoken::crypto::sign(message.as_bytes(), &self.encoding, self.alg)
            .expect("signature");
        format!("{message}.{signature}")
    }
}

/// base64url of a JSON value.
pub fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// A token with any header and a literal signature part.
pub fn forged(header: &Value, claims: &Value, signature: &str) -> String {
    format!("{}.{}.{signature}", b64(header), b64(claims))
}

/// Seconds since the epoch.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Claims for `sub`, valid for five minutes.
pub fn claims(sub: &str) -> Value {
    json!({ "sub": sub, "iat": now(), "exp": now() + 300 })
}

/// A JWKS document.
pub fn jwks(keys: &[Value]) -> String {
    json!({ "keys": keys }).to_string()
}
