//! The chat backend: the three Lambda-proxy handlers (`$connect`, `$disconnect`, `sendmessage`)
//! the gateway invokes, the members they keep, and rooms as wsgate groups: `$connect` answers
//! with the header `X-Wsgate-Groups: room:<room>` (the room from `?room=`), so the gateway puts
//! the connection in its room before the handshake completes, and each message is one
//! `POST /{stage}/@groups/room:<room>` instead of one post per member.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::watch;

/// Upper bound on one call to the callback API.
const CALLBACK_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest display name kept (in characters).
const MAX_NAME_CHARS: usize = 32;

/// Longest room name kept (in characters).
const MAX_ROOM_CHARS: usize = 32;

/// Name of a member who gave none.
const ANONYMOUS: &str = "anonymous";

/// Room of a member who named none.
pub const DEFAULT_ROOM: &str = "lobby";

/// The header of the `$connect` answer that names the groups to join.
const GROUPS_HEADER: &str = "X-Wsgate-Groups";

/// A connected member.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Display name.
    pub name: String,
    /// Room.
    pub room: String,
}

/// Connected members by connection id.
pub type Members = BTreeMap<String, Member>;

/// The group of a room.
pub fn room_group(room: &str) -> String {
    format!("room:{room}")
}

/// The backend's state, shared by its handlers.
#[derive(Debug)]
pub struct Chat {
    members: watch::Sender<Members>,
    http: reqwest::Client,
    callback_base: String,
    /// `Authorization: Bearer` for the callback API when the gateway asks for one.
    callback_token: Option<String>,
}

impl Chat {
    /// A chat with no members that posts through the callback API at `callback_base`
    /// (`http://host:port`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn new(callback_base: impl Into<String>) -> Result<Arc<Self>, reqwest::Error> {
        Self::with_token(callback_base, None)
    }

    /// As [`Chat::new`], sending `Authorization: Bearer <token>` on every callback when a token
    /// is given (a gateway whose `callback.auth` is `bearer`).
    ///
    /// # Errors
    /// When the HTTP client cannot be built.
    pub fn with_token(
        callback_base: impl Into<String>,
        callback_token: Option<String>,
    ) -> Result<Arc<Self>, reqwest::Error> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .timeout(CALLBACK_TIMEOUT)
            .build()?;
        Ok(Arc::new(Self {
            members: watch::Sender::new(Members::new()),
            http,
            callback_base: callback_base.into().trim_end_matches('/').to_string(),
            callback_token,
        }))
    }

    /// Watches the members (each `$connect` and `$disconnect` changes them).
    pub fn subscribe(&self) -> watch::Receiver<Members> {
        self.members.subscribe()
    }

    /// The members now.
    pub fn members(&self) -> Members {
        self.members.borrow().clone()
    }

    /// Records a member.
    pub fn join(&self, connection_id: &str, name: &str, room: &str) {
        let id = connection_id.to_string();
        let member = Member {
            name: name.to_string(),
            room: room.to_string(),
        };
        self.members.send_modify(|members| {
            members.insert(id, member);
        });
    }

    /// Forgets a member; true when it was known.
    pub fn leave(&self, connection_id: &str) -> bool {
        self.members
            .send_if_modified(|members| members.remove(connection_id).is_some())
    }

    /// Sends `message` to every member of `room` on `stage` with one call; answers how many
    /// connections the gateway handed it to on its node (`deliveredLocal`).
    ///
    /// # Errors
    /// A description of the failed call.
    pub async fn broadcast(&self, stage: &str, room: &str, message: &Value) -> Result<u64, String> {
        let url = format!(
            "{}/{stage}/@groups/{}",
            self.callback_base,
            room_group(room)
        );
        let mut request = self.http.post(url).body(message.to_string());
        if let Some(token) = &self.callback_token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("callback API answered {}", response.status()));
        }
        let answer: Value = response.json().await.map_err(|e| e.to_string())?;
        Ok(answer["deliveredLocal"].as_u64().unwrap_or_default())
    }
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

/// The room from `?room=`: letters, digits, `-` and `_` only, shortened; `lobby` when empty.
pub fn room_name(query: Option<&BTreeMap<String, String>>) -> String {
    let room: String = query
        .and_then(|q| q.get("room"))
        .map(|r| r.trim().to_ascii_lowercase())
        .unwrap_or_default()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(MAX_ROOM_CHARS)
        .collect();
    if room.is_empty() {
        DEFAULT_ROOM.to_string()
    } else {
        room
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
    let query = event.query_string_parameters.as_ref();
    let (name, room) = (display_name(query), room_name(query));
    let id = &event.request_context.connection_id;
    tracing::info!(connection_id = %id, %name, %room, "joined");
    chat.join(id, &name, &room);
    // The gateway puts the connection in its room's group before the handshake completes.
    Json(json!({ "statusCode": 200, "headers": { GROUPS_HEADER: room_group(&room) } }))
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
    let member = chat
        .members
        .borrow()
        .get(&context.connection_id)
        .cloned()
        .unwrap_or_else(|| Member {
            name: ANONYMOUS.to_string(),
            room: DEFAULT_ROOM.to_string(),
        });
    let outgoing = json!({
        "from": member.name,
        "room": member.room,
        "data": message.data,
        "at": epoch_ms(),
    });
    if let Err(reason) = chat
        .broadcast(&context.stage, &member.room, &outgoing)
        .await
    {
        tracing::warn!(room = %member.room, %reason, "cannot send to the room");
    }
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

    #[test]
    fn rooms_are_safe_group_names_and_default_to_the_lobby() {
        let query = |room: &str| BTreeMap::from([("room".to_string(), room.to_string())]);
        assert_eq!(room_name(None), "lobby");
        assert_eq!(room_name(Some(&query(" "))), "lobby");
        assert_eq!(room_name(Some(&query("Rust Fans!"))), "rustfans");
        assert_eq!(room_name(Some(&query("a/b{c}"))), "abc");
        assert_eq!(room_name(Some(&query(&"r".repeat(100)))).len(), 32);
        assert_eq!(room_group("lobby"), "room:lobby");
    }
}
