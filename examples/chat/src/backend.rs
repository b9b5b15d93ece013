//! The chat backend: the three Lambda-proxy handlers (`$connect`, `$disconnect`, `sendmessage`)
//! the gateway invokes, the members they keep, and the fan-out through the callback API.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Posts to the callback API running at once for one broadcast.
const FANOUT_CONCURRENCY: usize = 32;

/// Upper bound on one push through the callback API.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest display name kept (in characters).
const MAX_NAME_CHARS: usize = 32;

/// Name of a member who gave none.
const ANONYMOUS: &str = "anonymous";

/// Connected members: connection id to display name.
pub type Members = BTreeMap<String, String>;

/// The backend's state, shared by its handlers.
#[derive(Debug)]
pub struct Chat {
    members: watch::Sender<Members>,
    http: reqwest::Client,
    callback_base: String,
}

impl Chat {
    /// A chat with no members that pushes through the callback API at `callback_base`
    /// (`http://host:port`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(callback_base: impl Into<String>) -> Result<Arc<Self>, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(CALLBACK_TIMEOUT)
            .build()?;
        Ok(Arc::new(Self {
            members: watch::Sender::new(Members::new()),
            http,
            callback_base: callback_base.into().trim_end_matches('/').to_string(),
        }))
    }

    /// Watches the members (each `$connect`, `$disconnect` and 410 changes them).
    pub fn subscribe(&self) -> watch::Receiver<Members> {
        self.members.subscribe()
    }

    /// The members now.
    pub fn members(&self) -> Members {
        self.members.borrow().clone()
    }

    /// Records a member.
    pub fn join(&self, connection_id: &str, name: &str) {
        let (id, name) = (connection_id.to_string(), name.to_string());
        self.members.send_modify(|members| {
            members.insert(id, name);
        });
    }

    /// Forgets a member; true when it was known.
    pub fn leave(&self, connection_id: &str) -> bool {
        self.members
            .send_if_modified(|members| members.remove(connection_id).is_some())
    }

    /// Sends `message` to every member on `stage`; members the gateway no longer knows (410)
    /// are forgotten. Returns how many deliveries succeeded.
    pub async fn broadcast(&self, stage: &str, message: &Value) -> usize {
        let ids: Vec<String> = self.members.borrow().keys().cloned().collect();
        let body = message.to_string();
        let results: Vec<(String, Delivery)> = futures_util::stream::iter(ids)
            .map(|id| {
                let body = body.clone();
                async move {
                    let outcome = self.post(stage, &id, body).await;
                    (id, outcome)
                }
            })
            .buffer_unordered(FANOUT_CONCURRENCY)
            .collect()
            .await;
        let mut delivered = 0;
        for (id, outcome) in results {
            match outcome {
                Delivery::Sent => delivered += 1,
                Delivery::Gone => {
                    tracing::info!(connection_id = %id, "connection is gone; forgetting it");
                    self.leave(&id);
                }
                Delivery::Failed(reason) => {
                    tracing::warn!(connection_id = %id, %reason, "cannot push to connection");
                }
            }
        }
        delivered
    }

    async fn post(&self, stage: &str, connection_id: &str, body: String) -> Delivery {
        let url = format!(
            "{}/{stage}/@connections/{connection_id}",
            self.callback_base
        );
        match self.http.post(url).body(body).send().await {
            Ok(response) if response.status().is_success() => Delivery::Sent,
            Ok(response) if response.status() == reqwest::StatusCode::GONE => Delivery::Gone,
            Ok(response) => {
                Delivery::Failed(format!("callback API answered {}", response.status()))
            }
            Err(error) => Delivery::Failed(error.to_string()),
        }
    }
}

/// What became of one push.
#[derive(Debug)]
enum Delivery {
    Sent,
    Gone,
    Failed(String),
}

/// The routes the gateway's `aws_proxy` integrations point at.
pub fn router(chat: Arc<Chat>) -> Router {
    Router::new()
        .route("/connect", post(on_connect))
        .route("/disconnect", post(on_disconnect))
        .route("/sendmessage", post(on_send_message))
        .with_state(chat)
}

/// The parts of a Lambda proxy event the chat reads.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ProxyEvent {
    request_context: RequestContext,
    #[serde(default)]
    query_string_parameters: Option<BTreeMap<String, String>>,
    #[serde(default)]
    body: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    connection_id: String,
    stage: String,
}

/// `{"action":"sendmessage","data":...}`.
#[derive(Debug, Deserialize)]
struct SendMessage {
    data: Value,
}

/// A Lambda proxy response with this status and body.
fn proxy_response(status: u16, body: Option<&str>) -> Json<Value> {
    match body {
        Some(body) => Json(json!({ "statusCode": status, "body": body })),
        None => Json(json!({ "statusCode": status })),
    }
}

/// The display name from `?name=`, trimmed and shortened; `anonymous` when empty.
pub fn display_name(query: Option<&BTreeMap<String, String>>) -> String {
    let name: String = query
        .and_then(|q| q.get("name"))
        .map(|n| n.trim())
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX_NAME_CHARS)
        .collect();
    if name.is_empty() {
        ANONYMOUS.to_string()
    } else {
        name
    }
}

async fn on_connect(State(chat): State<Arc<Chat>>, Json(event): Json<ProxyEvent>) -> Json<Value> {
    let name = display_name(event.query_string_parameters.as_ref());
    let id = &event.request_context.connection_id;
    tracing::info!(connection_id = %id, %name, "joined");
    chat.join(id, &name);
    proxy_response(200, None)
}

async fn on_disconnect(
    State(chat): State<Arc<Chat>>,
    Json(event): Json<ProxyEvent>,
) -> Json<Value> {
    let id = &event.request_context.connection_id;
    if chat.leave(id) {
        tracing::info!(connection_id = %id, "left");
    }
    proxy_response(200, None)
}

async fn on_send_message(
    State(chat): State<Arc<Chat>>,
    Json(event): Json<ProxyEvent>,
) -> Json<Value> {
    let Some(message) = event
        .body
        .as_deref()
        .and_then(|body| serde_json::from_str::<SendMessage>(body).ok())
    else {
        return proxy_response(
            400,
            Some("expected {\"action\":\"sendmessage\",\"data\":...}"),
        );
    };
    let context = &event.request_context;
    let from = chat
        .members
        .borrow()
        .get(&context.connection_id)
        .cloned()
        .unwrap_or_else(|| ANONYMOUS.to_string());
    let outgoing = json!({ "from": from, "data": message.data, "at": epoch_ms() });
    chat.broadcast(&context.stage, &outgoing).await;
    proxy_response(200, None)
}

fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_trimmed_bounded_and_defaulted() {
        let query = |name: &str| BTreeMap::from([("name".to_string(), name.to_string())]);
        assert_eq!(display_name(None), "anonymous");
        assert_eq!(display_name(Some(&query("   "))), "anonymous");
        assert_eq!(display_name(Some(&query("  Ada "))), "Ada");
        assert_eq!(display_name(Some(&query("a\u{0}b\nc"))), "abc");
        assert_eq!(display_name(Some(&query(&"x".repeat(100)))).len(), 32);
    }
}
