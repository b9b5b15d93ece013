//! Authentication of callback API callers: loopback-only (when nothing is configured), none,
//! bearer tokens, or AWS Signature V4 as the AWS SDKs sign.
//!
//! Checks run in two steps so that the body of an unauthenticated request is never read:
//! [`CallbackAuth::check_head`] on the request head decides every scheme but SigV4 and refuses
//! SigV4 requests whose authentication data is missing, malformed, for an unknown key or out of
//! date; [`CallbackAuth::check_body`] then verifies the SigV4 signature, which covers the body.

use std::net::SocketAddr;

use http::{HeaderMap, Method};
use subtle::ConstantTimeEq;

use super::sigv4::{Credential, SigV4Error, SigV4Verifier, SignedRequest};
use crate::config::CallbackAuthConfig;
use crate::error::CallbackError;

/// How callers of the callback API are checked.
#[derive(Debug)]
pub enum CallbackAuth {
    /// No `callback.auth` configured: callers on loopback addresses only.
    LoopbackOnly,
    /// `kind: none`: anyone who can reach the listener.
    None,
    /// `kind: bearer`.
    Bearer(Vec<Vec<u8>>),
    /// `kind: sigv4`.
    SigV4(SigV4Verifier),
}

/// Headers through which a proxy passes on the address of the client it forwards for. A request
/// carrying any of them was relayed, so its loopback peer address is not the caller's.
const FORWARDING_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// The head of a callback request: what authentication looks at besides the body.
#[derive(Debug)]
pub struct CallerRequest<'a> {
    /// The caller's address.
    pub peer: SocketAddr,
    /// Method.
    pub method: &'a Method,
    /// Path as on the request line.
    pub raw_path: &'a str,
    /// Query as sent.
    pub raw_query: Option<&'a str>,
    /// Headers.
    pub headers: &'a HeaderMap,
}

impl CallbackAuth {
    /// Builds the authenticator from config.
    pub fn from_config(config: Option<&CallbackAuthConfig>) -> Self {
        match config {
            None => Self::LoopbackOnly,
            Some(CallbackAuthConfig::None) => Self::None,
            Some(CallbackAuthConfig::Bearer { tokens }) => {
                Self::Bearer(tokens.iter().map(|t| t.as_bytes().to_vec()).collect())
            }
            Some(CallbackAuthConfig::Sigv4 {
                region,
                credentials,
                max_skew,
            }) => {
                let credentials = credentials
                    .iter()
                    .map(|c| Credential {
                        access_key_id: c.access_key_id.clone(),
                        secret_access_key: c.secret_access_key.clone(),
                    })
                    .collect();
                Self::SigV4(
                    SigV4Verifier::new(region.clone(), credentials).with_max_skew(*max_skew),
                )
            }
        }
    }

    /// Whether the request body is needed before [`CallbackAuth::check`] (SigV4 hashes it).
    pub fn needs_body(&self) -> bool {
        matches!(self, Self::SigV4(_))
    }

    /// Checks a caller from the request head, before its body is read. For every scheme but
    /// SigV4 this is the whole check; for SigV4 [`CallbackAuth::check_body`] must follow.
    ///
    /// # Errors
    /// [`CallbackError::Forbidden`] with a short reason.
    pub fn check_head(&self, request: &CallerRequest<'_>) -> Result<(), CallbackError> {
        match self {
            Self::None => Ok(()),
            Self::LoopbackOnly => {
                if !request.peer.ip().is_loopback() {
                    return Err(CallbackError::Forbidden(
                        "Forbidden: the callback API accepts only loopback callers until callback.auth is configured",
                    ));
                }
                if FORWARDING_HEADERS
                    .iter()
                    .any(|name| request.headers.contains_key(*name))
                {
                    tracing::info!(peer = %request.peer, "forwarded callback request refused: loopback trust covers direct callers only");
                    return Err(CallbackError::Forbidden(
                        "Forbidden: a forwarded request is not a loopback caller; configure callback.auth",
                    ));
                }
                Ok(())
            }
            Self::Bearer(tokens) => {
                let presented = request
                    .headers
                    .get(http::header::AUTHORIZATION)
                    .and_then(|v| v.as_bytes().strip_prefix(b"Bearer "))
                    .ok_or(CallbackError::Forbidden("Forbidden: missing bearer token"))?;
                let mut matched = subtle::Choice::from(0);
                for token in tokens {
                    matched |= token.as_slice().ct_eq(presented);
                }
                if bool::from(matched) {
                    Ok(())
                } else {
                    Err(CallbackError::Forbidden("Forbidden: invalid bearer token"))
                }
            }
            Self::SigV4(verifier) => verifier
                .check_head(request.raw_query, request.headers, chrono::Utc::now())
                .map_err(|error| sigv4_refusal(&error, request)),
        }
    }

    /// Completes the check of a caller that passed [`CallbackAuth::check_head`] once its body
    /// is read: verifies the SigV4 signature; nothing to do for the other schemes.
    ///
    /// # Errors
    /// [`CallbackError::Forbidden`] with a short reason.
    pub fn check_body(
        &self,
        request: &CallerRequest<'_>,
        body: &[u8],
    ) -> Result<(), CallbackError> {
        let Self::SigV4(verifier) = self else {
            return Ok(());
        };
        let signed = SignedRequest {
            method: request.method,
            raw_path: request.raw_path,
            raw_query: request.raw_query,
            headers: request.headers,
            body,
        };
        verifier
            .verify(&signed, chrono::Utc::now())
            .map(|_| ())
            .map_err(|error| sigv4_refusal(&error, request))
    }
}

fn sigv4_refusal(error: &SigV4Error, request: &CallerRequest<'_>) -> CallbackError {
    tracing::info!(%error, peer = %request.peer, "callback request failed SigV4 verification");
    CallbackError::from(error)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head_check(auth: &CallbackAuth, peer: &str, headers: &[(&str, &str)]) -> bool {
        let mut map = HeaderMap::new();
        for (name, value) in headers {
            map.insert(
                http::HeaderName::from_bytes(name.as_bytes()).expect("name"),
                http::HeaderValue::from_str(value).expect("value"),
            );
        }
        auth.check_head(&CallerRequest {
            peer: peer.parse().expect("peer"),
            method: &Method::POST,
            raw_path: "/prod/@connections/x",
            raw_query: None,
            headers: &map,
        })
        .is_ok()
    }

    #[test]
    fn loopback_trust_covers_direct_callers_only() {
        let auth = CallbackAuth::LoopbackOnly;
        assert!(head_check(&auth, "127.0.0.1:5000", &[]));
        assert!(head_check(&auth, "[::1]:5000", &[]));
        assert!(!head_check(&auth, "192.0.2.1:5000", &[]));
        for name in ["Forwarded", "X-Forwarded-For", "X-Real-IP"] {
            assert!(
                !head_check(&auth, "127.0.0.1:5000", &[(name, "203.0.113.9")]),
                "{name}"
            );
        }
        // `kind: none` trusts everyone, forwarded or not.
        assert!(head_check(
            &CallbackAuth::None,
            "127.0.0.1:5000",
            &[("x-forwarded-for", "203.0.113.9")]
        ));
    }

    #[test]
    fn sigv4_head_check_refuses_missing_and_unknown_credentials() {
        let verifier = SigV4Verifier::new(
            "us-east-1",
            vec![Credential {
                access_key_id: "AKIDTEST".into(),
                secret_access_key: "secret".into(),
            }],
        );
        let auth = CallbackAuth::SigV4(verifier);
        let now = chrono::Utc::now();
        let header = |key: &str| {
            format!(
                "AWS4-HMAC-SHA256 Credential={key}/{}/us-east-1/execute-api/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature={}",
                now.format("%Y%m%d"),
                "0".repeat(64)
            )
        };
        let date = now.format("%Y%m%dT%H%M%SZ").to_string();
        assert!(!head_check(&auth, "127.0.0.1:5000", &[]));
        let unknown = header("AKIDOTHER");
        assert!(!head_check(
            &auth,
            "127.0.0.1:5000",
            &[("authorization", &unknown), ("x-amz-date", &date)]
        ));
        // Well formed and for a known key: the signature is left to `check_body`.
        let known = header("AKIDTEST");
        let head = [("authorization", known.as_str()), ("x-amz-date", &date)];
        assert!(head_check(&auth, "127.0.0.1:5000", &head));
    }
}
