//! Authentication of callback API callers: loopback-only (when nothing is configured), none,
//! bearer tokens, or AWS Signature V4 as the AWS SDKs sign, with each key's optional STS
//! session token and IAM policy (`execute-api:ManageConnections`).
//!
//! Checks run in two steps so that the body of an unauthenticated request is never read:
//! [`CallbackAuth::check_head`] on the request head decides every scheme but SigV4 and refuses
//! SigV4 requests whose authentication data is missing, malformed, for an unknown key or
//! session token, or out of date; [`CallbackAuth::check_body`] then verifies the SigV4
//! signature, which covers the body, and the signer's policy (the request's action:
//! `execute-api:ManageConnections`, or `execute-api:InvalidateCache` for `@cache`) for
//! `arn:aws:execute-api:{region}:{account}:{api}/{stage}/{METHOD}/{path}` (the request path
//! after the stage, percent-decoded: `@connections/{id}`). A key without a policy may make
//! every callback request.
//!
//! Loopback trust (no `callback.auth`) goes by the client address of
//! [`crate::auth::client_ip`]: a caller whose peer is not a trusted proxy must be on loopback
//! and carry no forwarding header; one relayed by a trusted proxy must resolve through
//! `X-Forwarded-For` to a loopback address, with no malformed entry on the way.

use std::net::SocketAddr;
use std::sync::Arc;

use http::{HeaderMap, Method};
use subtle::ConstantTimeEq;

use crate::auth::client_ip::{Source, TrustedProxies, X_FORWARDED_FOR};
use crate::config::{CallbackAuthConfig, Config};
use crate::error::CallbackError;
use crate::iam::sigv4::SignedRequest;
use crate::iam::{ArnParts, EnvLookup, Keyring, KeyringError, SigV4Error};

/// How callers of the callback API are checked.
#[derive(Debug)]
pub(crate) enum CallbackAuth {
    /// No `callback.auth` configured: callers on loopback addresses only, directly or through
    /// these trusted proxies.
    LoopbackOnly(Arc<TrustedProxies>),
    /// `kind: none`: anyone who can reach the listener.
    None,
    /// `kind: bearer`.
    Bearer(Vec<Vec<u8>>),
    /// `kind: sigv4`: the keys, and the ARN facts their policies are evaluated on.
    SigV4(Box<SigV4Callers>),
}

/// The keys of `kind: sigv4` callers: signatures for `execute-api` (the callback API) and for
/// `apigateway` (the management API, as the AWS SDKs and CLI sign `apigatewayv2` calls).
#[derive(Debug)]
pub(crate) struct SigV4Callers {
    execute_api: Keyring,
    apigateway: Keyring,
    arn: ArnParts,
}

/// Which API a request calls, and so how it is signed and what its signer's policy is asked.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Scope {
    /// The callback API: signed for `execute-api`; the policy is asked for this action on the
    /// `execute-api` ARN of the path.
    Callback(&'static str),
    /// The management API (`/v2/…`): signed for `apigateway`; the policy is asked for
    /// `apigateway:{METHOD}` on `arn:aws:apigateway:{region}::{path}`, as IAM names them.
    Management,
}

impl From<&'static str> for Scope {
    fn from(action: &'static str) -> Self {
        Self::Callback(action)
    }
}

impl SigV4Callers {
    fn keyring(&self, scope: Scope) -> &Keyring {
        match scope {
            Scope::Callback(_) => &self.execute_api,
            Scope::Management => &self.apigateway,
        }
    }
}

/// The IAM action of a management request.
fn management_action(method: &Method) -> &'static str {
    match *method {
        Method::GET => "apigateway:GET",
        Method::POST => "apigateway:POST",
        Method::PUT => "apigateway:PUT",
        Method::PATCH => "apigateway:PATCH",
        Method::DELETE => "apigateway:DELETE",
        _ => "apigateway:*",
    }
}

/// Headers through which a proxy passes on the address of the client it forwards for. A request
/// carrying any of them was relayed, so its loopback peer address is not the caller's.
const FORWARDING_HEADERS: [&str; 3] = ["forwarded", "x-forwarded-for", "x-real-ip"];

/// The head of a callback request: what authentication looks at besides the body.
#[derive(Debug)]
pub(crate) struct CallerRequest<'a> {
    /// The caller's address.
    pub peer: SocketAddr,
    /// Method.
    pub method: &'a Method,
    /// Path as on the request line (what the caller signed).
    pub raw_path: &'a str,
    /// Path as routed: `/{stage}/…`, after a custom domain's mapping replaced its base path
    /// (the same as `raw_path` off custom domains). Policies are evaluated on this one.
    pub routed_path: &'a str,
    /// Query as sent.
    pub raw_query: Option<&'a str>,
    /// Headers.
    pub headers: &'a HeaderMap,
}

impl CallbackAuth {
    /// Builds the authenticator from `config.callback.auth` (ARNs name `config.iam.account_id`
    /// and the API's id); `trusted` are `security.trusted_proxies`; `*_env` secrets are read
    /// through `env`.
    ///
    /// # Errors
    /// A [`KeyringError`] naming the config key.
    pub(crate) fn from_config(
        config: &Config,
        trusted: Arc<TrustedProxies>,
        env: EnvLookup<'_>,
    ) -> Result<Self, KeyringError> {
        Ok(match config.callback.auth.as_ref() {
            None => Self::LoopbackOnly(trusted),
            Some(CallbackAuthConfig::None) => Self::None,
            Some(CallbackAuthConfig::Bearer { tokens }) => {
                Self::Bearer(tokens.iter().map(|t| t.as_bytes().to_vec()).collect())
            }
            Some(CallbackAuthConfig::Sigv4 {
                region,
                credentials,
                max_skew,
            }) => {
                let account_id = &config.iam.account_id;
                let keyring = || {
                    Keyring::build(
                        "callback.auth.credentials",
                        credentials,
                        region,
                        account_id,
                        *max_skew,
                        env,
                    )
                };
                let arn = ArnParts {
                    region: region.clone(),
                    account_id: account_id.clone(),
                    api_id: config.api.api_id().to_string(),
                };
                Self::SigV4(Box::new(SigV4Callers {
                    execute_api: keyring()?,
                    apigateway: keyring()?.with_service("apigateway"),
                    arn,
                }))
            }
        })
    }

    /// Checks a caller from the request head, before its body is read. For every scheme but
    /// SigV4 this is the whole check; for SigV4 [`CallbackAuth::check_body`] must follow.
    ///
    /// # Errors
    /// [`CallbackError::Forbidden`] with a short reason.
    pub(crate) fn check_head(&self, request: &CallerRequest<'_>) -> Result<(), CallbackError> {
        self.check_head_of(request, Scope::Callback(""))
    }

    /// [`CallbackAuth::check_head`] for a request of `scope` (which service its signature
    /// names).
    ///
    /// # Errors
    /// As [`CallbackAuth::check_head`].
    pub(crate) fn check_head_of(
        &self,
        request: &CallerRequest<'_>,
        scope: Scope,
    ) -> Result<(), CallbackError> {
        match self {
            Self::None => Ok(()),
            Self::LoopbackOnly(trusted) => loopback_caller(trusted, request),
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
            Self::SigV4(sigv4) => sigv4
                .keyring(scope)
                .check_head(request.raw_query, request.headers, chrono::Utc::now())
                .map_err(|error| sigv4_refusal(&error, request)),
        }
    }

    /// Completes the check of a caller that passed [`CallbackAuth::check_head`] once its body
    /// is read: verifies the SigV4 signature, then the signer's policy; nothing to do for the
    /// other schemes.
    ///
    /// # Errors
    /// The AWS error of the SigV4 failure, or [`CallbackError::AccessDenied`].
    pub(crate) fn check_body(
        &self,
        request: &CallerRequest<'_>,
        body: &[u8],
        scope: Scope,
    ) -> Result<(), CallbackError> {
        let Self::SigV4(sigv4) = self else {
            return Ok(());
        };
        let keyring = sigv4.keyring(scope);
        let signed = SignedRequest {
            method: request.method,
            raw_path: request.raw_path,
            raw_query: request.raw_query,
            headers: request.headers,
            body,
        };
        let principal = keyring
            .verify(&signed, chrono::Utc::now())
            .map_err(|error| sigv4_refusal(&error, request))?;
        let (action, resource) = match scope {
            Scope::Callback(action) => (action, sigv4.arn.arn(&resource_path(request))),
            Scope::Management => (
                management_action(request.method),
                format!(
                    "arn:aws:apigateway:{}::{}",
                    sigv4.arn.region, request.raw_path
                ),
            ),
        };
        principal
            .authorize(action, resource)
            .map_err(|denied| {
                tracing::info!(peer = %request.peer, %denied, "callback request denied by the key's IAM policy");
                CallbackError::AccessDenied(denied)
            })
    }
}

const NOT_LOOPBACK: CallbackError = CallbackError::Forbidden(
    "Forbidden: the callback API accepts only loopback callers until callback.auth is configured",
);
const FORWARDED: CallbackError = CallbackError::Forbidden(
    "Forbidden: a forwarded request is not a loopback caller; configure callback.auth",
);

/// The loopback-only check (see the module docs).
fn loopback_caller(
    trusted: &TrustedProxies,
    request: &CallerRequest<'_>,
) -> Result<(), CallbackError> {
    let peer = request.peer.ip();
    let headers = request.headers;
    if !trusted.contains(peer) {
        if !peer.is_loopback() {
            return Err(NOT_LOOPBACK);
        }
        if FORWARDING_HEADERS
            .iter()
            .any(|name| headers.contains_key(*name))
        {
            tracing::info!(peer = %request.peer, "forwarded callback request refused: loopback trust covers direct callers only");
            return Err(FORWARDED);
        }
        return Ok(());
    }
    let client = trusted.resolve(peer, headers);
    // `Forwarded` and `X-Real-IP` are not read: from a trusted proxy they are accepted only
    // beside an `X-Forwarded-For`, which decides.
    let unread = !headers.contains_key(X_FORWARDED_FOR)
        && FORWARDING_HEADERS
            .iter()
            .any(|name| headers.contains_key(*name));
    if client.source == Source::CutShort || unread {
        tracing::info!(peer = %request.peer, "forwarded callback request refused: the client address cannot be told");
        return Err(FORWARDED);
    }
    if !client.ip.is_loopback() {
        tracing::info!(peer = %request.peer, client = %client.ip, "forwarded callback request refused: the client is not on loopback");
        return Err(FORWARDED);
    }
    Ok(())
}

/// `{stage}/{METHOD}/{rest of the path}` of the routed path, percent-decoded
/// (`%40connections` is `@connections`, `abc%3D` is `abc=`), as the resource part of an
/// `execute-api` ARN.
fn resource_path(request: &CallerRequest<'_>) -> String {
    let path = request.routed_path.trim_start_matches('/');
    let (stage, rest) = path.split_once('/').unwrap_or((path, ""));
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    format!("{}/{}/{}", decode(stage), request.method, decode(rest))
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
            routed_path: "/prod/@connections/x",
            raw_query: None,
            headers: &map,
        })
        .is_ok()
    }

    #[test]
    fn loopback_trust_covers_direct_callers_only() {
        let auth = CallbackAuth::LoopbackOnly(Arc::default());
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
    fn loopback_trust_through_trusted_proxies_goes_by_the_client_address() {
        let trusted = TrustedProxies::parse(&["127.0.0.1", "10.0.0.0/8"]).expect("valid");
        let auth = CallbackAuth::LoopbackOnly(Arc::new(trusted));
        // Relayed for a loopback client, over any number of trusted hops.
        assert!(head_check(
            &auth,
            "127.0.0.1:5000",
            &[("x-forwarded-for", "127.0.0.1")]
        ));
        assert!(head_check(
            &auth,
            "10.0.0.1:5000",
            &[("x-forwarded-for", "::1, 10.2.2.2")]
        ));
        assert!(head_check(
            &auth,
            "127.0.0.1:5000",
            &[("x-forwarded-for", "127.0.0.1"), ("x-real-ip", "127.0.0.1")]
        ));
        // A trusted proxy without forwarding headers is a direct caller: loopback or not.
        assert!(head_check(&auth, "127.0.0.1:5000", &[]));
        assert!(!head_check(&auth, "10.0.0.1:5000", &[]));
        // Relayed for anyone else, or for an address that cannot be told.
        for xff in [
            "203.0.113.9",
            "127.0.0.1, 203.0.113.9",
            "unknown",
            "127.0.0.1, unknown",
        ] {
            assert!(
                !head_check(&auth, "127.0.0.1:5000", &[("x-forwarded-for", xff)]),
                "{xff}"
            );
        }
        for name in ["Forwarded", "X-Real-IP"] {
            assert!(
                !head_check(&auth, "127.0.0.1:5000", &[(name, "127.0.0.1")]),
                "{name}"
            );
        }
        // An untrusted loopback peer's forwarding headers still refuse it.
        let auth = CallbackAuth::LoopbackOnly(Arc::new(
            TrustedProxies::parse(&["10.0.0.0/8"]).expect("valid"),
        ));
        assert!(!head_check(
            &auth,
            "[::1]:5000",
            &[("x-forwarded-for", "127.0.0.1")]
        ));
    }

    #[test]
    fn resource_paths_are_decoded_after_the_stage() {
        let headers = HeaderMap::new();
        let request = |method, raw_path| CallerRequest {
            peer: "127.0.0.1:1".parse().expect("peer"),
            method,
            raw_path,
            routed_path: raw_path,
            raw_query: None,
            headers: &headers,
        };
        assert_eq!(
            resource_path(&request(&Method::POST, "/prod/%40connections/abc%3D")),
            "prod/POST/@connections/abc="
        );
        assert_eq!(
            resource_path(&request(&Method::DELETE, "/dev/@connections/x")),
            "dev/DELETE/@connections/x"
        );
        // On a custom domain the caller signs its own path (`/@connections/x` on a root
        // mapping, `/v1/@connections/x` on a `v1` mapping); the resource names the stage it is
        // routed to, so a policy on `…/prod/*` covers it.
        for signed in ["/@connections/x", "/v1/@connections/x"] {
            let mapped = CallerRequest {
                routed_path: "/prod/@connections/x",
                ..request(&Method::POST, signed)
            };
            assert_eq!(resource_path(&mapped), "prod/POST/@connections/x");
        }
    }

    #[test]
    fn sigv4_head_check_refuses_missing_and_unknown_credentials() {
        let key = crate::config::IamPrincipalConfig {
            access_key_id: "AKIDTEST".into(),
            secret_access_key: Some("secret".into()),
            ..Default::default()
        };
        let keyring = || {
            Keyring::build(
                "callback.auth.credentials",
                std::slice::from_ref(&key),
                "us-east-1",
                "000000000000",
                std::time::Duration::from_mins(5),
                &|_| None,
            )
            .expect("builds")
        };
        let arn = ArnParts {
            region: "us-east-1".into(),
            account_id: "000000000000".into(),
            api_id: "api".into(),
        };
        let auth = CallbackAuth::SigV4(Box::new(SigV4Callers {
            execute_api: keyring(),
            apigateway: keyring().with_service("apigateway"),
            arn,
        }));
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
