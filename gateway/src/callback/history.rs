//! `GET /{stage}/@groups/{group}/history[?since=OFFSET&limit=N]`: one page of a group's history
//! for backends (same authentication and stage check as the other callback routes).
//!
//! Answers 200 `{"group", "epoch", "earliestOffset", "latestOffset", "complete", "messages":
//! [{"offset", "timestamp", "data" | "dataBase64"}], "nextSince"?}`: the messages with offsets
//! above `since` (default 0), oldest first, at most `limit` (default 100, at most
//! `groups.max_page_size`). `complete` is false when some messages after `since` were trimmed
//! already; `nextSince` is there when more follow. 400 for a bad parameter, 404 for a group
//! that keeps no history (`groups.history`), 503 when the store fails.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use super::{Api, admit, answer};
use crate::error::CallbackError;
use crate::groups::validate_name;

/// Page size when `limit` is absent.
const DEFAULT_LIMIT: usize = 100;

/// `since` and `limit`.
fn parse(query: Option<&str>, max: usize) -> Result<(u64, usize), CallbackError> {
    let mut since = 0;
    let mut limit = DEFAULT_LIMIT.min(max);
    for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        match &*key {
            "since" => {
                since = value.parse::<u64>().map_err(|_| {
                    CallbackError::BadRequest("since must be a whole number (an offset)".into())
                })?;
            }
            "limit" => {
                limit = value
                    .parse::<usize>()
                    .ok()
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| {
                        CallbackError::BadRequest(format!("limit must be between 1 and {max}"))
                    })?;
            }
            _ => {}
        }
    }
    Ok((since, limit))
}

/// The handler.
pub(super) async fn history(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, group)): Path<(String, String)>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let result = async {
        let (parts, _) = admit(&api, peer, &stage, request).await?;
        let groups = &api.shared.groups;
        validate_name(&group, groups.config().max_name_bytes)?;
        let (since, limit) = parse(parts.uri.query(), groups.config().max_page_size)?;
        let retention = groups.retention(&group).ok_or_else(|| {
            CallbackError::NotFound(format!("the group {group} keeps no history"))
        })?;
        let page = (groups.store())
            .read(&stage, &group, since, limit, &retention)
            .await
            .map_err(|_| CallbackError::Unavailable)?;
        let last = page.entries.last().map(|entry| entry.offset);
        let messages: Vec<Value> = page
            .entries
            .iter()
            .map(crate::groups::history_entry_json)
            .collect();
        let mut body = json!({
            "group": group,
            "epoch": page.epoch,
            "earliestOffset": page.earliest,
            "latestOffset": page.latest,
            "complete": page.latest <= since || page.earliest <= since.saturating_add(1),
            "messages": messages,
        });
        if let Some(last) = last
            && last < page.latest
        {
            body["nextSince"] = Value::from(last);
        }
        Ok(axum::Json(body).into_response())
    }
    .await;
    answer(&method, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameters() {
        assert_eq!(parse(None, 1000).ok(), Some((0, 100)));
        assert_eq!(parse(None, 10).ok(), Some((0, 10)));
        assert_eq!(parse(Some("since=7&limit=3"), 1000).ok(), Some((7, 3)));
        for bad in ["since=-1", "since=x", "limit=0", "limit=1001", "limit=x"] {
            assert!(parse(Some(bad), 1000).is_err(), "{bad}");
        }
    }
}
