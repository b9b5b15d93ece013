//! Why a reload was refused, and how the admin API answers it (`POST /@admin/api/reload`).
//! Whatever the reason, the definition in force stays.

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
}

impl ReloadError {
    /// The HTTP status of the admin API's answer.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            Self::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::NeedsRestart(_) | Self::NoFile => StatusCode::CONFLICT,
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
