//! Why a connection was refused by the connect-time checks of [`crate::auth`], with no
//! credential material in any message. The statuses are mapped in [`super`].

/// Why a token was not accepted (no token material in the text).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TokenProblem {
    /// Longer than `max_token_bytes`.
    #[error("token too long")]
    TooLong,
    /// Not three base64url parts with a JSON header, or an unknown `alg` (such as `none`).
    #[error("malformed token")]
    Malformed,
    /// `alg` not in the authorizer's allow-list.
    #[error("algorithm not allowed")]
    AlgorithmNotAllowed,
    /// The header lists critical extensions, none of which are understood.
    #[error("unsupported critical header")]
    CriticalHeader,
    /// No configured or published key fits the token's `kid` and `alg`.
    #[error("no matching key")]
    NoMatchingKey,
    /// The signature does not verify.
    #[error("bad signature")]
    BadSignature,
    /// `exp` has passed.
    #[error("token expired")]
    Expired,
    /// `nbf` is in the future.
    #[error("token not yet valid")]
    NotYetValid,
    /// `iss` is not an accepted issuer.
    #[error("wrong issuer")]
    WrongIssuer,
    /// `aud` does not name this API.
    #[error("wrong audience")]
    WrongAudience,
    /// A required claim (`exp`, `iss`, `aud`) is missing or not of its type.
    #[error("missing or malformed claim")]
    BadClaim,
    /// The principal claim is missing or not a string.
    #[error("no principal claim")]
    NoPrincipal,
}

/// Why a call to a `request` authorizer or a JWKS endpoint produced no answer to use.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CallError {
    /// No answer within the timeout.
    #[error("timed out")]
    Timeout,
    /// Connecting, sending or reading failed.
    #[error("request failed: {0}")]
    Transport(#[source] reqwest::Error),
    /// Invoking the Lambda function by ARN failed (the Invoke API refused the call, no
    /// credentials, a transport failure).
    #[error("Lambda invocation failed: {0}")]
    Lambda(#[source] crate::integration::IntegrationError),
    /// The endpoint answered a status that is not 2xx.
    #[error("endpoint answered HTTP {0}")]
    Status(u16),
    /// The function raised an error other than `Unauthorized`.
    #[error("function error")]
    FunctionError,
    /// The answer is over the size limit.
    #[error("response larger than {0} bytes")]
    TooLarge(usize),
    /// The answer is not what the contract says.
    #[error("malformed response: {0}")]
    Malformed(&'static str),
    /// The last attempt failed too recently to try again.
    #[error("not retried yet after a failure")]
    Backoff,
}

/// Why a connection was refused by the checks in this module.
#[derive(Debug, thiserror::Error)]
pub(crate) enum AuthError {
    /// `Origin` is not in `security.allowed_origins` (or missing while that is not allowed).
    #[error("origin not allowed")]
    OriginNotAllowed,
    /// A per-address limit.
    #[error(transparent)]
    Address(#[from] IpRejection),
    /// No value in any identity source.
    #[error("identity source missing")]
    MissingIdentity,
    /// The JWT was refused.
    #[error("invalid token: {0}")]
    InvalidToken(TokenProblem),
    /// The `request` authorizer answered `Unauthorized`.
    #[error("authorizer answered Unauthorized")]
    Unauthorized,
    /// The `request` authorizer's policy does not allow `$connect`.
    #[error("authorizer denied access")]
    Denied,
    /// `api_key_required` and no key was presented.
    #[error("API key missing")]
    MissingApiKey,
    /// The presented key is not one of `api_keys`.
    #[error("API key unknown")]
    UnknownApiKey,
    /// The `request` authorizer could not be used.
    #[error("authorizer failed: {0}")]
    AuthorizerFailed(#[source] CallError),
    /// The JWKS could not be fetched and no keys are cached.
    #[error("signing keys unavailable: {0}")]
    KeysUnavailable(#[source] CallError),
    /// `AWS_IAM` route: the SigV4 authentication is missing or does not verify.
    #[error("SigV4: {0}")]
    Iam(#[source] super::SigV4Error),
    /// `AWS_IAM` route: the principal's policy does not allow `$connect`.
    #[error("IAM policy: {0}")]
    IamDenied(#[source] super::AccessDenied),
}

impl AuthError {
    /// A short label for metrics and logs.
    pub(crate) fn label(&self) -> &'static str {
        match self {
            Self::OriginNotAllowed => "origin",
            Self::Address(IpRejection::TooManyConnections) => "ip_connections",
            Self::Address(_) => "ip_rate",
            Self::MissingIdentity => "missing_identity",
            Self::InvalidToken(_) => "invalid_token",
            Self::Unauthorized => "unauthorized",
            Self::Denied => "denied",
            Self::MissingApiKey | Self::UnknownApiKey => "api_key",
            Self::AuthorizerFailed(_) | Self::KeysUnavailable(_) => "authorizer_error",
            Self::Iam(_) => "iam_signature",
            Self::IamDenied(_) => "iam_denied",
        }
    }
}

/// Why an address may not open another connection now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum IpRejection {
    /// `max_connections_per_ip` open already.
    #[error("too many connections from this address")]
    TooManyConnections,
    /// The handshake bucket is empty; a token is back after this many seconds.
    #[error("too many handshakes from this address")]
    RateLimited {
        /// Whole seconds until the next handshake is allowed (at least 1).
        retry_after_secs: u64,
    },
    /// `max_tracked_ips` busy addresses are tracked already.
    #[error("too many client addresses are being tracked")]
    TableFull,
}
