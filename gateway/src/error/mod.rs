//! Every client-visible failure in one place: handshake rejections (HTTP status + JSON body),
//! close reasons (WebSocket close code + reason), and callback API errors (the AWS error names).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode, header};
use serde_json::json;

mod auth;
mod iam;
mod management;
mod reload;
mod sigv4;

pub(crate) use self::auth::{AuthError, CallError, IpRejection, TokenProblem};
pub(crate) use self::iam::AccessDenied;
pub(crate) use self::management::ManagementError;
pub use self::reload::ReloadError;
pub(crate) use self::sigv4::SigV4Error;

/// Why an upgrade request was answered without a 101.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HandshakeRejection {
    /// No such stage.
    #[error("Not Found")]
    UnknownStage,
    /// Not a WebSocket upgrade request.
    #[error("This endpoint accepts WebSocket connections only")]
    NotUpgrade,
    /// `Sec-WebSocket-Version` other than 13.
    #[error("Unsupported WebSocket version; use 13")]
    UnsupportedVersion,
    /// Malformed handshake headers.
    #[error("Bad WebSocket handshake: {0}")]
    BadHandshake(&'static str),
    /// A malformed `recover` or `envelope` query parameter (see docs/recovery.md).
    #[error("Bad recovery parameter: {0}")]
    BadRecovery(&'static str),
    /// The node is draining.
    #[error("Service is shutting down")]
    Draining,
    /// `limits.max_connections` reached.
    #[error("Too many connections")]
    TooManyConnections,
    /// The `$connect` integration answered this non-2xx status.
    #[error("Connection rejected by the $connect integration")]
    Rejected(u16),
    /// The `$connect` integration failed or timed out.
    #[error("Internal server error")]
    IntegrationFailed,
    /// The connection store could not record the connection.
    #[error("Service unavailable")]
    StoreUnavailable,
    /// A throttling limit (new connections, the `$connect` route, gateway) refused it.
    #[error("Too Many Requests")]
    Throttled {
        /// Seconds until a new attempt may succeed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// `Origin` is not in `security.allowed_origins`.
    #[error("Origin not allowed")]
    OriginNotAllowed,
    /// `security.max_connections_per_ip` open already.
    #[error("Too many connections from this address")]
    TooManyFromAddress,
    /// `security.handshake_rate_per_ip` exceeded.
    #[error("Too many requests")]
    RateLimited {
        /// Seconds until a new handshake is allowed (`Retry-After`).
        retry_after_secs: u64,
    },
    /// No credential, or one the authorizer refused (as AWS answers).
    #[error("Unauthorized")]
    Unauthorized,
    /// The authorizer denied access, or the API key is missing or unknown (as AWS answers).
    #[error("Forbidden")]
    Forbidden,
    /// The authorizer could not be used (it failed, timed out or answered malformed output).
    #[error("Internal server error")]
    AuthorizerFailed,
    /// `AWS_IAM` route: the SigV4 authentication is missing or does not verify; answered as
    /// the callback API answers the same failure (403, AWS error name and message).
    #[error("{}", CallbackError::from(.0))]
    IamSignature(SigV4Error),
    /// `AWS_IAM` route: the principal's policy does not allow `execute-api:Invoke`.
    #[error("{0}")]
    IamDenied(AccessDenied),
}

impl From<&AuthError> for HandshakeRejection {
    fn from(error: &AuthError) -> Self {
        match error {
            AuthError::OriginNotAllowed => Self::OriginNotAllowed,
            AuthError::Address(IpRejection::TooManyConnections) => Self::TooManyFromAddress,
            AuthError::Address(IpRejection::RateLimited { retry_after_secs }) => {
                Self::RateLimited {
                    retry_after_secs: *retry_after_secs,
                }
            }
            AuthError::Address(IpRejection::TableFull) => Self::TooManyConnections,
            AuthError::MissingIdentity | AuthError::InvalidToken(_) | AuthError::Unauthorized => {
                Self::Unauthorized
            }
            AuthError::Denied | AuthError::MissingApiKey | AuthError::UnknownApiKey => {
                Self::Forbidden
            }
            AuthError::AuthorizerFailed(_) | AuthError::KeysUnavailable(_) => {
                Self::AuthorizerFailed
            }
            AuthError::Iam(error) => Self::IamSignature(error.clone()),
            AuthError::IamDenied(denied) => Self::IamDenied(denied.clone()),
        }
    }
}

impl HandshakeRejection {
    /// The HTTP status sent instead of 101.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::UnknownStage => StatusCode::NOT_FOUND,
            Self::NotUpgrade | Self::UnsupportedVersion => StatusCode::UPGRADE_REQUIRED,
            Self::BadHandshake(_) | Self::BadRecovery(_) => StatusCode::BAD_REQUEST,
            Self::Draining | Self::TooManyConnections | Self::StoreUnavailable => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Rejected(code) => StatusCode::from_u16(*code).unwrap_or(StatusCode::FORBIDDEN),
            Self::IntegrationFailed => StatusCode::BAD_GATEWAY,
            Self::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::OriginNotAllowed
            | Self::Forbidden
            | Self::IamSignature(_)
            | Self::IamDenied(_) => StatusCode::FORBIDDEN,
            Self::TooManyFromAddress | Self::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::AuthorizerFailed => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for HandshakeRejection {
    fn into_response(self) -> Response {
        match self {
            Self::IamSignature(error) => return CallbackError::from(&error).into_response(),
            Self::IamDenied(denied) => return CallbackError::AccessDenied(denied).into_response(),
            _ => {}
        }
        let status = self.status();
        let message = match &self {
            Self::Rejected(_) => status.canonical_reason().unwrap_or("Rejected").to_string(),
            other => other.to_string(),
        };
        let mut response = (status, axum::Json(json!({ "message": message }))).into_response();
        let headers = response.headers_mut();
        match self {
            Self::NotUpgrade => {
                headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
            }
            Self::UnsupportedVersion => {
                headers.insert(
                    header::SEC_WEBSOCKET_VERSION,
                    HeaderValue::from_static("13"),
                );
            }
            Self::Draining | Self::TooManyConnections | Self::StoreUnavailable => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::Throttled { retry_after_secs } | Self::RateLimited { retry_after_secs } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
            }
            _ => {}
        }
        response
    }
}

/// Why the gateway closed a connection: the close code and reason the client sees, and the
/// `disconnectStatusCode`/`disconnectReason` the `$disconnect` integration gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CloseReason {
    /// Gateway shutdown.
    ShuttingDown,
    /// No data frames for `limits.idle_timeout`.
    IdleTimeout,
    /// `limits.max_connection_duration` reached.
    MaxDuration,
    /// A frame or message over the limits.
    MessageTooBig,
    /// A binary frame while `limits.binary_frames: reject`.
    BinaryNotSupported,
    /// A protocol violation by the client.
    ProtocolError,
    /// A text frame that is not UTF-8.
    InvalidUtf8,
    /// No pong within `limits.pong_timeout`.
    PingTimeout,
    /// The client did not accept a frame within `limits.send_timeout`.
    SlowConsumer,
    /// `DELETE @connections/{id}`, optionally with a custom code and reason.
    Deleted {
        /// Close code (1000 unless given).
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The client closed (code as received; 1005 when none was sent).
    ByClient {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// The TCP connection dropped without a close frame.
    Abnormal,
    /// `$connect` succeeded but the connection could not be recorded (the client got 503 and
    /// never an upgrade; the code reaches `$disconnect` only).
    StoreUnavailable,
}

impl CloseReason {
    /// The close code.
    pub(crate) fn code(&self) -> u16 {
        match self {
            Self::ShuttingDown | Self::IdleTimeout | Self::MaxDuration => 1001,
            Self::MessageTooBig => 1009,
            Self::BinaryNotSupported => 1003,
            Self::ProtocolError => 1002,
            Self::InvalidUtf8 => 1007,
            Self::PingTimeout | Self::StoreUnavailable => 1011,
            Self::SlowConsumer => 1013,
            Self::Deleted { code, .. } | Self::ByClient { code, .. } => *code,
            Self::Abnormal => 1006,
        }
    }

    /// The close reason text.
    pub(crate) fn reason(&self) -> &str {
        match self {
            Self::ShuttingDown => "Going away",
            Self::IdleTimeout => "Going away: idle timeout",
            Self::MaxDuration => "Going away: maximum connection duration reached",
            Self::MessageTooBig => "Message too big",
            Self::BinaryNotSupported => "Binary frames are not supported",
            Self::ProtocolError => "Protocol error",
            Self::InvalidUtf8 => "Invalid UTF-8 in text frame",
            Self::PingTimeout => "Ping timeout",
            Self::SlowConsumer => "Slow consumer: send timeout",
            Self::Deleted { reason, .. } | Self::ByClient { reason, .. } => reason,
            Self::Abnormal => "Connection closed abnormally",
            Self::StoreUnavailable => "Internal error: the connection could not be recorded",
        }
    }

    /// Whether a close frame should be sent to the client for this reason.
    pub(crate) fn sends_close_frame(&self) -> bool {
        !matches!(
            self,
            Self::ByClient { .. } | Self::Abnormal | Self::SlowConsumer
        )
    }
}

/// Errors of the callback API, named and shaped as Amazon API Gateway's management API answers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallbackError {
    /// Unknown or closed connection id.
    #[error("Gone")]
    Gone,
    /// The caller is not authorised.
    #[error("{0}")]
    Forbidden(&'static str),
    /// No SigV4 authentication at all.
    #[error("Missing Authentication Token")]
    MissingAuthenticationToken,
    /// The key's IAM policy does not allow the request.
    #[error("{0}")]
    AccessDenied(AccessDenied),
    /// A SigV4 signature (or its date or scope) that does not verify.
    #[error(
        "The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details."
    )]
    InvalidSignature,
    /// A SigV4 access key id that is not configured.
    #[error("The security token included in the request is invalid.")]
    UnrecognizedClient,
    /// SigV4 authentication data that cannot be parsed; the detail says which part.
    #[error("{0}")]
    IncompleteSignature(String),
    /// The connection's outbound queue is full.
    #[error("Limit exceeded: the client's outbound queue is full")]
    LimitExceeded,
    /// A throttling limit (`throttling.callback`, gateway) refused the request.
    #[error("Too Many Requests")]
    Throttled,
    /// Body over the message limit.
    #[error("Payload too large: {size} bytes exceeds the limit of {limit} bytes")]
    PayloadTooLarge {
        /// Bytes received (at least).
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The body did not arrive within `callback.body_timeout`.
    #[error("Request Timeout")]
    BodyTimeout,
    /// Unknown stage (AWS answers a path it does not serve with 403 Forbidden).
    #[error("Forbidden")]
    UnknownStage,
    /// Invalid parameters (e.g. a close code outside 1000 and 3000-4999).
    #[error("{0}")]
    BadRequest(String),
    /// The connection store is unavailable.
    #[error("Service unavailable")]
    Unavailable,
    /// The connection is in `groups.max_groups_per_connection` groups already.
    #[error("Limit exceeded: the connection is in {limit} groups already")]
    TooManyGroups {
        /// The limit.
        limit: usize,
    },
    /// No such resource (a route without a response cache).
    #[error("{0}")]
    NotFound(String),
    /// `groups.max_inflight_posts` group posts are being handled on this node.
    #[error("Limit exceeded: too many group messages in flight; retry later")]
    GroupPostsBusy,
}

impl CallbackError {
    #[cfg(test)]
    /// The `x-amzn-ErrorType` this error is answered with.
    #[must_use]
    pub(crate) fn error_type(&self) -> &'static str {
        self.status_and_type().1
    }

    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Self::Gone => (StatusCode::GONE, "GoneException"),
            Self::Forbidden(_) | Self::UnknownStage => {
                (StatusCode::FORBIDDEN, "ForbiddenException")
            }
            Self::MissingAuthenticationToken => {
                (StatusCode::FORBIDDEN, "MissingAuthenticationTokenException")
            }
            Self::AccessDenied(_) => (StatusCode::FORBIDDEN, "AccessDeniedException"),
            Self::InvalidSignature => (StatusCode::FORBIDDEN, "InvalidSignatureException"),
            Self::UnrecognizedClient => (StatusCode::FORBIDDEN, "UnrecognizedClientException"),
            Self::IncompleteSignature(_) => (StatusCode::FORBIDDEN, "IncompleteSignatureException"),
            Self::LimitExceeded
            | Self::Throttled
            | Self::TooManyGroups { .. }
            | Self::GroupPostsBusy => (StatusCode::TOO_MANY_REQUESTS, "LimitExceededException"),
            Self::PayloadTooLarge { .. } => {
                (StatusCode::PAYLOAD_TOO_LARGE, "PayloadTooLargeException")
            }
            Self::BodyTimeout => (StatusCode::REQUEST_TIMEOUT, "RequestTimeoutException"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NotFoundException"),
            Self::Unavailable => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
            ),
        }
    }
}

impl From<&SigV4Error> for CallbackError {
    /// The AWS error a SigV4 failure is answered with (every one is a 403).
    fn from(error: &SigV4Error) -> Self {
        match error {
            SigV4Error::MissingAuthorization => Self::MissingAuthenticationToken,
            SigV4Error::UnknownAccessKey | SigV4Error::InvalidSecurityToken => {
                Self::UnrecognizedClient
            }
            SigV4Error::Malformed(detail) => Self::IncompleteSignature(incomplete_message(detail)),
            SigV4Error::UnsupportedAlgorithm
            | SigV4Error::UnsignedHostHeader
            | SigV4Error::UnsignedDateHeader
            | SigV4Error::MissingSignedHeader => Self::IncompleteSignature(error.to_string()),
            SigV4Error::WrongRegionOrService
            | SigV4Error::ScopeDateMismatch
            | SigV4Error::RequestExpired
            | SigV4Error::PresignedUrlExpired
            | SigV4Error::SignatureMismatch
            | SigV4Error::BodyHashMismatch => Self::InvalidSignature,
        }
    }
}

/// AWS's wording for a missing `Authorization` part ("Authorization header requires
/// 'Credential' parameter."); the verifier's own detail otherwise.
fn incomplete_message(detail: &str) -> String {
    match detail.strip_prefix("Authorization lacks ") {
        Some(part) => format!("Authorization header requires '{part}' parameter."),
        None => format!("Malformed SigV4 authentication: {detail}."),
    }
}

impl IntoResponse for CallbackError {
    fn into_response(self) -> Response {
        let (status, error_type) = self.status_and_type();
        // IAM's refusals carry `Message`, the gateway's own errors `message` (both are read
        // by every SDK).
        let body = match &self {
            Self::AccessDenied(_) => json!({ "Message": self.to_string() }),
            _ => json!({ "message": self.to_string() }),
        };
        let mut response = (status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        headers.insert("x-amzn-ErrorType", HeaderValue::from_static(error_type));
        if matches!(self, Self::BodyTimeout) {
            // The rest of the body may still come: the connection cannot be reused.
            headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_errors_carry_aws_names() {
        let cases = [
            (CallbackError::Gone, 410, "GoneException"),
            (
                CallbackError::Forbidden("Forbidden"),
                403,
                "ForbiddenException",
            ),
            (CallbackError::LimitExceeded, 429, "LimitExceededException"),
            (CallbackError::Throttled, 429, "LimitExceededException"),
            (
                CallbackError::PayloadTooLarge { size: 2, limit: 1 },
                413,
                "PayloadTooLargeException",
            ),
            (CallbackError::BodyTimeout, 408, "RequestTimeoutException"),
            (CallbackError::UnknownStage, 403, "ForbiddenException"),
            (
                CallbackError::from(&SigV4Error::MissingAuthorization),
                403,
                "MissingAuthenticationTokenException",
            ),
            (
                CallbackError::from(&SigV4Error::SignatureMismatch),
                403,
                "InvalidSignatureException",
            ),
            (
                CallbackError::from(&SigV4Error::UnknownAccessKey),
                403,
                "UnrecognizedClientException",
            ),
            (
                CallbackError::from(&SigV4Error::Malformed("Authorization lacks Signature")),
                403,
                "IncompleteSignatureException",
            ),
        ];
        for (error, status, name) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["x-amzn-errortype"], name);
        }
    }

    /// IAM refusals as AWS answers them: 403 with `x-amzn-ErrorType`; `AccessDeniedException`
    /// carries IAM's `Message` ("User: … is not authorized to perform: … on resource: …[ with an
    /// explicit deny]", https://repost.aws/knowledge-center/api-gateway-access-denied); the same
    /// answers on the callback API and on a refused `AWS_IAM` upgrade.
    #[tokio::test]
    async fn iam_refusals_carry_aws_names_and_bodies() {
        let denied = AccessDenied {
            user_arn: "arn:aws:iam::123456789012:user/alice".into(),
            action: "execute-api:ManageConnections",
            resource: "arn:aws:execute-api:us-east-1:123456789012:chat/prod/POST/@connections/a"
                .into(),
            explicit: true,
        };
        let message = "User: arn:aws:iam::123456789012:user/alice is not authorized to perform: execute-api:ManageConnections on resource: arn:aws:execute-api:us-east-1:123456789012:chat/prod/POST/@connections/a with an explicit deny";
        let cases = [
            (
                CallbackError::AccessDenied(denied.clone()).into_response(),
                "AccessDeniedException",
                json!({ "Message": message }),
            ),
            (
                HandshakeRejection::IamDenied(denied).into_response(),
                "AccessDeniedException",
                json!({ "Message": message }),
            ),
            (
                CallbackError::from(&SigV4Error::InvalidSecurityToken).into_response(),
                "UnrecognizedClientException",
                json!({ "message": "The security token included in the request is invalid." }),
            ),
            (
                HandshakeRejection::IamSignature(SigV4Error::MissingAuthorization).into_response(),
                "MissingAuthenticationTokenException",
                json!({ "message": "Missing Authentication Token" }),
            ),
            (
                HandshakeRejection::IamSignature(SigV4Error::PresignedUrlExpired).into_response(),
                "InvalidSignatureException",
                json!({ "message": CallbackError::InvalidSignature.to_string() }),
            ),
        ];
        for (response, name, body) in cases {
            assert_eq!(response.status(), StatusCode::FORBIDDEN, "{name}");
            assert_eq!(response.headers()["x-amzn-errortype"], name);
            let bytes = axum::body::to_bytes(response.into_body(), 4096)
                .await
                .expect("body");
            let got: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON body");
            assert_eq!(got, body, "{name}");
        }
        assert_eq!(
            HandshakeRejection::from(&AuthError::Iam(SigV4Error::SignatureMismatch)).status(),
            StatusCode::FORBIDDEN
        );
    }

    #[test]
    fn close_codes() {
        assert_eq!(CloseReason::IdleTimeout.code(), 1001);
        assert_eq!(CloseReason::MessageTooBig.code(), 1009);
        assert_eq!(CloseReason::BinaryNotSupported.code(), 1003);
        assert_eq!(
            CloseReason::Deleted {
                code: 4001,
                reason: "x".into()
            }
            .code(),
            4001
        );
        assert_eq!(
            HandshakeRejection::Rejected(401).status(),
            StatusCode::UNAUTHORIZED
        );
        assert_eq!(
            HandshakeRejection::IntegrationFailed.status(),
            StatusCode::BAD_GATEWAY
        );
    }

    #[test]
    fn auth_failures_map_to_aws_statuses() {
        use super::{CallError, TokenProblem};
        let cases = [
            (AuthError::MissingIdentity, 401, "Unauthorized"),
            (
                AuthError::InvalidToken(TokenProblem::Expired),
                401,
                "Unauthorized",
            ),
            (AuthError::Unauthorized, 401, "Unauthorized"),
            (AuthError::Denied, 403, "Forbidden"),
            (AuthError::MissingApiKey, 403, "Forbidden"),
            (AuthError::UnknownApiKey, 403, "Forbidden"),
            (AuthError::OriginNotAllowed, 403, "Origin not allowed"),
            (
                AuthError::Address(IpRejection::TooManyConnections),
                429,
                "Too many connections from this address",
            ),
            (
                AuthError::AuthorizerFailed(CallError::Timeout),
                500,
                "Internal server error",
            ),
        ];
        for (error, status, message) in cases {
            let rejection = HandshakeRejection::from(&error);
            assert_eq!(rejection.status().as_u16(), status, "{error}");
            assert_eq!(rejection.to_string(), message);
        }
        let limited = HandshakeRejection::from(&AuthError::Address(IpRejection::RateLimited {
            retry_after_secs: 7,
        }))
        .into_response();
        assert_eq!(limited.status().as_u16(), 429);
        assert_eq!(limited.headers()["retry-after"], "7");
    }

    #[test]
    fn throttled_handshake_is_429_with_retry_after() {
        let response = HandshakeRejection::Throttled {
            retry_after_secs: 2,
        }
        .into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
    }
}
