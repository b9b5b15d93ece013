//! The one way in to this node's connections for the callback API, the group endpoints and the
//! cluster inbox: `push`, `close`, `join`, `leave` (as [`membership`]), `joined` and `info`.
//!
//! Each answers `None` when this node does not hold the connection (the caller may forward the
//! request to the owner node) and `Some(Err(Gone))` when it holds it but it is closing or of
//! another stage. None of them reaches into a session: a push is queued on the connection's
//! bounded outbox (refused, never dropped, when it is full), a close is a request to the task
//! that owns the connection, and that task alone ends it (see [`super::end`]).

use std::sync::Arc;

use bytes::Bytes;
use serde_json::{Map, Value};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::error::CallbackError;
use crate::registry::{PushError, SessionHandle};
use crate::state::Shared;

/// What `GET @connections/{id}` shows of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Info {
    /// When `$connect` succeeded (epoch milliseconds).
    pub(crate) connected_at_ms: i64,
    /// The last message in or out (epoch milliseconds).
    pub(crate) last_active_ms: i64,
    /// The client's address.
    pub(crate) source_ip: String,
    /// `User-Agent` of the upgrade request.
    pub(crate) user_agent: Option<String>,
    /// The authorizer's context.
    pub(crate) authorizer: Option<Map<String, Value>>,
}

/// This node's connection `id`, when it is of `stage` (any stage for `None`: the cluster inbox,
/// whose sender checked it).
fn held(
    shared: &Shared,
    id: &str,
    stage: Option<&str>,
) -> Option<Result<Arc<SessionHandle>, CallbackError>> {
    let handle = shared.registry.get(id)?;
    if stage.is_some_and(|stage| handle.meta.stage != stage) {
        return Some(Err(CallbackError::Gone));
    }
    Some(Ok(handle))
}

/// Queues a callback body for connection `id`: text when it is valid UTF-8, else binary.
///
/// `Some(Err)`: [`CallbackError::Gone`] when it is closing, [`CallbackError::LimitExceeded`]
/// when its queue or the node's budget is full.
pub(crate) fn push(
    shared: &Shared,
    id: &str,
    stage: Option<&str>,
    body: Bytes,
) -> Option<Result<(), CallbackError>> {
    Some(held(shared, id, stage)?.and_then(|handle| push_to(&handle, body)))
}

fn push_to(handle: &SessionHandle, body: Bytes) -> Result<(), CallbackError> {
    let message = if std::str::from_utf8(&body).is_ok() {
        Utf8Bytes::try_from(body)
            .map(Message::Text)
            .map_err(|_| CallbackError::BadRequest("invalid UTF-8".into()))?
    } else {
        Message::Binary(body)
    };
    handle.push(message).map_err(|e| match e {
        PushError::Gone => CallbackError::Gone,
        PushError::Full | PushError::NodeFull => CallbackError::LimitExceeded,
    })?;
    handle.touch(super::now_ms());
    Ok(())
}

/// Asks the owner of connection `id` to close it with `code` and `reason` (after what is
/// queued for it has been sent).
pub(crate) fn close(
    shared: &Shared,
    id: &str,
    stage: Option<&str>,
    code: u16,
    reason: String,
) -> Option<Result<(), CallbackError>> {
    Some(held(shared, id, stage)?.and_then(|handle| {
        if !handle.is_open() {
            return Err(CallbackError::Gone);
        }
        handle.request_close(code, reason);
        Ok(())
    }))
}

/// What `GET @connections/{id}` shows of connection `id`.
pub(crate) fn info(shared: &Shared, id: &str, stage: &str) -> Option<Result<Info, CallbackError>> {
    Some(held(shared, id, Some(stage))?.and_then(|handle| {
        if !handle.is_open() {
            return Err(CallbackError::Gone);
        }
        let meta = &handle.meta;
        Ok(Info {
            connected_at_ms: meta.connected_at_ms,
            last_active_ms: handle.last_active_ms(),
            source_ip: meta.source_ip.clone(),
            user_agent: meta.user_agent.clone(),
            authorizer: meta.authorizer.clone(),
        })
    }))
}

/// The groups connection `id` joined.
pub(crate) fn joined(
    shared: &Shared,
    id: &str,
    stage: &str,
) -> Option<Result<Vec<String>, CallbackError>> {
    Some(held(shared, id, Some(stage))?.and_then(|handle| {
        if handle.is_closed() {
            return Err(CallbackError::Gone);
        }
        Ok(shared.groups.joined(id))
    }))
}

/// Connection `id` joins (`join`) or leaves `group`, its presence event traced under `trace`.
/// The change runs on a task of its own, so a caller that goes away cannot leave it half made
/// (joined here but not in the store, or not subscribed).
pub(crate) async fn membership(
    shared: &Arc<Shared>,
    id: &str,
    stage: Option<&str>,
    group: &str,
    join: bool,
    trace: crate::traces::Parent<'_>,
) -> Option<Result<(), CallbackError>> {
    let handle = match held(shared, id, stage)? {
        Ok(handle) => handle,
        Err(error) => return Some(Err(error)),
    };
    let (shared, group, trace) = (Arc::clone(shared), group.to_owned(), trace.detach());
    let changed = tokio::spawn(async move {
        if join {
            shared.groups.join(&handle, &group, trace.parent()).await
        } else {
            shared.groups.leave(&handle, &group, trace.parent()).await
        }
    })
    .await;
    Some(changed.unwrap_or(Err(CallbackError::Unavailable)))
}
