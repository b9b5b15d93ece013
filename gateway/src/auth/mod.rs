//! Who may connect: the checks on an upgrade request before `$connect` runs.
//!
//! Order (cheapest and most abusable first): origin allow-list → per-address limits →
//! `AWS_IAM` (SigV4 against `iam.principals`, then the principal's policy) or an authorizer
//! (`jwt` or `request`, attached to `$connect`) → API key. Each failure is an [`AuthError`],
//! mapped to a handshake status in [`crate::error`].

pub(crate) mod api_keys;
mod build;
pub(crate) mod client_ip;
pub(crate) mod identity;
mod jwks;
pub(crate) mod jwt;
mod jwt_keys;
pub(crate) mod origin;
pub(crate) mod per_ip;
mod policy;
pub(crate) mod redact;
pub(crate) mod request;

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use http::{HeaderMap, Method, Uri};
use serde_json::{Map, Value};

use self::api_keys::{ApiKeys, KeySelection};
pub(crate) use self::build::SecurityError;
use self::client_ip::{ClientAddr, TrustedProxies};
use self::identity::RequestView;
use self::origin::OriginPolicy;
use self::per_ip::{IpSlot, PerIpLimiter};
use self::redact::QueryRedactor;
pub(crate) use crate::error::{AuthError, CallError, TokenProblem};
use crate::events::{CallerIdentity, ConnectionMeta};
use crate::iam::sigv4::SignedRequest;
use crate::iam::{ArnParts, INVOKE, Keyring};
use crate::telemetry;

/// What an authorizer sees of a pending connection.
#[derive(Debug, Clone, Copy)]
pub(crate) struct AuthRequest<'a> {
    /// The upgrade request's method (what an `AWS_IAM` signature covers).
    pub method: &'a Method,
    /// The upgrade request's target as on the request line (path and raw query).
    pub uri: &'a Uri,
    /// The upgrade request's headers, query, offered subprotocols and stage variables.
    pub view: RequestView<'a>,
    /// The connection being authorized (no authorizer context yet).
    pub meta: &'a ConnectionMeta,
    /// `requestId` of the `$connect` event.
    pub request_id: &'a str,
}

/// A successful authorization.
#[derive(Clone, Default, PartialEq)]
pub(crate) struct Authorized {
    /// `requestContext.authorizer`: `principalId` and the context values (all scalars).
    pub context: Map<String, Value>,
    /// An API key chosen by the authorizer (`$context.authorizer.usageIdentifierKey`).
    pub usage_identifier_key: Option<String>,
}

impl fmt::Debug for Authorized {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authorized")
            .field("context_keys", &self.context.keys().collect::<Vec<_>>())
            .field(
                "usage_identifier_key",
                &self.usage_identifier_key.as_ref().map(|_| "***"),
            )
            .finish()
    }
}

/// An authorizer attached to `$connect`.
#[async_trait]
pub(crate) trait Authorizer: Send + Sync + fmt::Debug {
    /// Decides on one pending connection.
    async fn authorize(&self, request: &AuthRequest<'_>) -> Result<Authorized, AuthError>;
}

/// What the checks established about an admitted connection.
#[derive(Debug, Default)]
pub(crate) struct Admission {
    /// `requestContext.authorizer` for every event of the connection.
    pub authorizer: Option<Map<String, Value>>,
    /// The API key presented (`identity.apiKey`).
    pub api_key: Option<String>,
    /// Its id (`identity.apiKeyId`).
    pub api_key_id: Option<String>,
    /// The IAM caller of an `AWS_IAM` route (`identity.accessKey`, `userArn`, …).
    pub iam: Option<Arc<CallerIdentity>>,
}

/// `AWS_IAM` authorization of `$connect`: the principals and the ARN facts of the API.
#[derive(Debug)]
pub(crate) struct IamConnect {
    pub(super) keyring: Keyring,
    pub(super) arn: ArnParts,
}

impl IamConnect {
    /// Verifies the upgrade request's SigV4 signature and the signer's policy for
    /// `execute-api:Invoke` on `…/{stage}/$connect`; answers who signed.
    fn authorize(&self, request: &AuthRequest<'_>) -> Result<Arc<CallerIdentity>, AuthError> {
        let signed = SignedRequest {
            method: request.method,
            raw_path: request.uri.path(),
            raw_query: request.uri.query(),
            headers: request.view.headers,
            body: b"",
        };
        let principal = self
            .keyring
            .verify(&signed, chrono::Utc::now())
            .map_err(AuthError::Iam)?;
        let resource = self.arn.arn(&format!("{}/$connect", request.meta.stage));
        principal
            .authorize(INVOKE, resource)
            .map_err(AuthError::IamDenied)?;
        Ok(Arc::clone(&principal.identity))
    }
}

/// Every check configured for the API, built once at start.
#[derive(Debug)]
pub(crate) struct Security {
    trusted_proxies: Arc<TrustedProxies>,
    origin: Option<OriginPolicy>,
    per_ip: Option<Arc<PerIpLimiter>>,
    authorizer: Option<Arc<dyn Authorizer>>,
    iam: Option<IamConnect>,
    api_key_required: bool,
    api_keys: ApiKeys,
    key_selection: KeySelection,
    redactor: QueryRedactor,
    token_protocol_prefixes: Vec<String>,
    /// Upgrade requests inside [`Security::admit`] (they count against `max_connections`).
    in_flight: AtomicUsize,
}

/// Counts one upgrade request as in flight while alive.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Security {
    /// The client behind `peer` (the TCP peer or the PROXY protocol source), read from
    /// `X-Forwarded-For` when `peer` is in `security.trusted_proxies`; see [`client_ip`].
    pub(crate) fn client_addr(&self, peer: IpAddr, headers: &HeaderMap) -> ClientAddr {
        self.trusted_proxies.resolve(peer, headers)
    }

    /// `security.trusted_proxies`, parsed.
    pub(crate) fn trusted_proxies(&self) -> &Arc<TrustedProxies> {
        &self.trusted_proxies
    }

    /// Origin and per-address checks: run first, before anything is recorded or called.
    /// `client` is the resolved client address ([`Security::client_addr`]). The returned slot
    /// counts the connection against that address until dropped.
    ///
    /// # Errors
    /// [`AuthError::OriginNotAllowed`] or [`AuthError::Address`].
    pub(crate) fn screen(
        &self,
        client: IpAddr,
        headers: &HeaderMap,
    ) -> Result<Option<IpSlot>, AuthError> {
        if let Some(policy) = &self.origin
            && !policy.allows(headers)
        {
            return Err(AuthError::OriginNotAllowed);
        }
        match &self.per_ip {
            Some(limiter) => Ok(Some(PerIpLimiter::acquire(limiter, client)?)),
            None => Ok(None),
        }
    }

    /// `AWS_IAM` or the authorizer, then the API key.
    ///
    /// # Errors
    /// The [`AuthError`] that refuses the connection.
    pub(crate) async fn admit(&self, request: &AuthRequest<'_>) -> Result<Admission, AuthError> {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        let _in_flight = InFlight(&self.in_flight);
        let mut admission = Admission::default();
        if let Some(iam) = &self.iam {
            admission.iam = Some(iam.authorize(request)?);
        }
        let authorized = match &self.authorizer {
            Some(authorizer) => Some(authorizer.authorize(request).await?),
            None => None,
        };
        if self.api_key_required {
            let presented = self
                .key_selection
                .select(&request.view, authorized.as_ref())
                .ok_or(AuthError::MissingApiKey)?;
            let key = self
                .api_keys
                .lookup(&presented)
                .ok_or(AuthError::UnknownApiKey)?;
            admission.api_key_id = Some(key.id.clone());
            admission.api_key = Some(presented);
        }
        admission.authorizer = authorized.map(|a| a.context);
        Ok(admission)
    }

    /// Logs and counts a refusal from `client` (the resolved address); `uri` is logged with
    /// credentials redacted.
    pub(crate) fn refused(&self, error: &AuthError, stage: &str, client: IpAddr, uri: &Uri) {
        metrics::counter!(telemetry::CONNECT_REFUSED_TOTAL, "reason" => error.label()).increment(1);
        let target = self.redactor.redact(uri);
        match error {
            AuthError::Address(_) => {
                tracing::debug!(%stage, source_ip = %client, target = ?target, reason = %error, "connection refused");
            }
            AuthError::AuthorizerFailed(_) | AuthError::KeysUnavailable(_) => {
                tracing::warn!(%stage, source_ip = %client, target = ?target, reason = %error, "connection refused");
            }
            _ => {
                tracing::info!(%stage, source_ip = %client, target = ?target, reason = %error, "connection refused");
            }
        }
    }

    /// Whether `protocol` may be selected in the 101 (a subprotocol that carries a token
    /// never is).
    pub(crate) fn selectable(&self, protocol: &str) -> bool {
        !self.is_token_protocol(protocol)
    }

    /// When the client carried its token in a subprotocol and `$connect` selected none: the
    /// first other offered subprotocol, so that browsers accept the 101.
    pub(crate) fn fallback_protocol(&self, offered: &[String]) -> Option<String> {
        if !offered.iter().any(|p| self.is_token_protocol(p)) {
            return None;
        }
        offered.iter().find(|p| !self.is_token_protocol(p)).cloned()
    }

    fn is_token_protocol(&self, protocol: &str) -> bool {
        self.token_protocol_prefixes
            .iter()
            .any(|prefix| protocol.starts_with(prefix.as_str()))
    }

    /// The usage plan of API key `id`.
    pub(crate) fn usage_plan(&self, id: &str) -> Option<&str> {
        self.api_keys.usage_plan(id)
    }

    /// Takes over the per-address counts of `before` (the checks a reload replaces): open
    /// connections hold slots of that limiter, and `security` never changes on a reload.
    pub(crate) fn keeping_counts_of(mut self, before: &Self) -> Self {
        self.per_ip.clone_from(&before.per_ip);
        self
    }
}
