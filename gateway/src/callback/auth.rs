//! Authentication of callback API callers: loopback-only (when nothing is configured), none,
//! bearer tokens, or AWS Signature V4 as the AWS SDKs sign.

use std::net::SocketAddr;

use http::{HeaderMap, Method};
use subtle::ConstantTimeEq;

use super::sigv4::{Credential, SigV4Verifier, SignedRequest};
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

/// The parts of a callback request that authentication looks at.
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
    /// Body.
    pub body: &'a [u8],
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

    /// Checks a caller.
    ///
    /// # Errors
    /// [`CallbackError::Forbidden`] with a short reason.
    pub fn check(&self, request: &CallerRequest<'_>) -> Result<(), CallbackError> {
        match self {
            Self::None => Ok(()),
            Self::LoopbackOnly => {
                if request.peer.ip().is_loopback() {
                    Ok(())
                } else {
                    Err(CallbackError::Forbidden(
                        "Forbidden: the callback API accepts only loopback callers until callback.auth is configured",
                    ))
                }
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
            Self::SigV4(verifier) => {
                let signed = SignedRequest {
                    method: request.method,
                    raw_path: request.raw_path,
                    raw_query: request.raw_query,
                    headers: request.headers,
                    body: request.body,
                };
                verifier.verify(&signed, chrono::Utc::now()).map(|_| ()).map_err(|error| {
                    tracing::info!(%error, peer = %request.peer, "callback request failed SigV4 verification");
                    CallbackError::Forbidden("Forbidden: the request signature does not match")
                })
            }
        }
    }
}
