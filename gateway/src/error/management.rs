//! The management API's refusals (`/v2/…`, see `crate::management`) as the apigatewayv2
//! service answers them: the status, the error name in `x-amzn-ErrorType` and
//! `{"message": "…"}`, which the AWS SDKs and the AWS CLI turn into their typed exceptions.
//! Authentication refusals keep the callback API's answers ([`super::CallbackError`]).

use axum::response::{IntoResponse, Response};
use http::{HeaderValue, StatusCode};
use serde_json::json;

use super::{CallbackError, ReloadError};

/// A refused management request.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ManagementError {
    /// A malformed or invalid request: a missing or unknown field, a value out of range, a
    /// definition that does not validate.
    #[error("{0}")]
    BadRequest(String),
    /// No such API, resource or deployment.
    #[error("{0}")]
    NotFound(String),
    /// The request clashes with what exists (a route key taken, an integration still a
    /// route's target), or asks for what this gateway does not do (a second API).
    #[error("{0}")]
    Conflict(String),
    /// The deployment store could not be reached; nothing changed.
    #[error("{0}")]
    Unavailable(String),
    /// The caller did not pass the callback API's authentication.
    #[error("{0}")]
    Denied(CallbackError),
}

impl ManagementError {
    /// The HTTP status and the apigatewayv2 error name.
    fn status_and_type(&self) -> (StatusCode, &'static str) {
        match self {
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "BadRequestException"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "NotFoundException"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "ConflictException"),
            Self::Unavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "ServiceUnavailableException",
            ),
            Self::Denied(_) => (StatusCode::FORBIDDEN, "AccessDeniedException"),
        }
    }
}

impl From<CallbackError> for ManagementError {
    fn from(error: CallbackError) -> Self {
        Self::Denied(error)
    }
}

impl From<ReloadError> for ManagementError {
    fn from(error: ReloadError) -> Self {
        let message = error.to_string();
        match error {
            ReloadError::Invalid(_) | ReloadError::BadRequest(_) | ReloadError::NeedsRestart(_) => {
                Self::BadRequest(message)
            }
            ReloadError::NotFound(_) => Self::NotFound(message),
            ReloadError::Conflict(_) | ReloadError::NoFile => Self::Conflict(message),
            ReloadError::Store(_) => Self::Unavailable(message),
        }
    }
}

impl IntoResponse for ManagementError {
    fn into_response(self) -> Response {
        if let Self::Denied(error) = self {
            return error.into_response();
        }
        let (status, error_type) = self.status_and_type();
        let mut response =
            (status, axum::Json(json!({ "message": self.to_string() }))).into_response();
        response
            .headers_mut()
            .insert("x-amzn-ErrorType", HeaderValue::from_static(error_type));
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn management_errors_carry_apigatewayv2_names() {
        let cases = [
            (
                ManagementError::BadRequest("b".into()),
                400,
                "BadRequestException",
            ),
            (
                ManagementError::NotFound("n".into()),
                404,
                "NotFoundException",
            ),
            (
                ManagementError::Conflict("c".into()),
                409,
                "ConflictException",
            ),
            (
                ManagementError::from(ReloadError::Store("down".into())),
                503,
                "ServiceUnavailableException",
            ),
            (
                ManagementError::from(ReloadError::Invalid("bad".into())),
                400,
                "BadRequestException",
            ),
        ];
        for (error, status, name) in cases {
            let response = error.into_response();
            assert_eq!(response.status().as_u16(), status);
            assert_eq!(response.headers()["x-amzn-ErrorType"], name);
        }
    }
}
