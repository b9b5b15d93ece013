//! Why a reload or another change of what stages serve (apply, rollback, canary promote or
//! drop) was refused, and how the admin API answers it (`POST /@admin/api/reload`,
//! `/@admin/api/deployments`, `/@admin/api/stages/…`). Whatever the reason, the definitions in
//! force stay.

use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

/// A refused reload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReloadError {
    /// The new configuration is not valid: the one line a start with it would print.
    #[error("{0}")]
    Invalid(String),
    /// Keys that are fixed at start changed.
    #[error("cannot change without a restart: {0}; nothing was reloaded (see docs/deployments.md)")]
    NeedsRestart(String),
    /// The gateway has no configuration file to re-read (it was started from a value).
    #[error("no configuration file to re-read: the gateway was not started with --config")]
    NoFile,
    /// The request itself is malformed (a missing or out-of-range field).
    #[error("{0}")]
    BadRequest(String),
    /// No such stage or deployment.
    #[error("{0}")]
    NotFound(String),
    /// The change does not apply to the stage pointers as they are (no canary to promote, no
    /// previous deployment, pointers changing under a burst of deploys).
    #[error("{0}")]
    Conflict(String),
    /// The deployment store could not be read or written; nothing changed.
    #[error("deployment store: {0}; nothing changed")]
    Store(String),
}

impl ReloadError {
    /// The HTTP status of the admin API's answer.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NeedsRestart(_) | Self::NoFile | Self::Conflict(_) => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Store(_) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

impl IntoResponse for ReloadError {
    fn into_response(self) -> Response {
        (
            self.status(),
            axum::Json(json!({ "message": self.to_string() })),
        )
            .into_response()
    }
}
