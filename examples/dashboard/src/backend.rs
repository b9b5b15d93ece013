//! The backend's one integration: the `$connect` handler answers 200 with the header
//! `X-Wsgate-Groups: dashboard`, so the gateway puts the connection in the group before the
//! handshake completes and the page gets the very next update.

use axum::routing::post;
use axum::{Json, Router};
use serde_json::{Value, json};

use crate::GROUP;

/// `POST /connect`.
pub fn router() -> Router {
    Router::new().route("/connect", post(on_connect))
}

/// The Lambda proxy answer to a CONNECT event.
pub fn connect_answer() -> Value {
    json!({ "statusCode": 200, "headers": { "X-Wsgate-Groups": GROUP } })
}

async fn on_connect() -> Json<Value> {
    Json(connect_answer())
}
