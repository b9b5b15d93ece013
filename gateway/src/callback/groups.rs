//! The group endpoints of the callback API (also under `%40`), behind the same body limit,
//! authentication and stage check as `@connections`:
//!
//! | request | answer |
//! |---|---|
//! | `PUT /{stage}/@connections/{id}/groups/{group}` | 204: the connection is a member |
//! | `DELETE /{stage}/@connections/{id}/groups/{group}` | 204: it is not (any more) |
//! | `GET /{stage}/@connections/{id}/groups` | 200 `{"groups": [...]}` |
//! | `POST /{stage}/@groups/{group}[?exclude=id]` | 200 `{"deliveredLocal", "droppedLocal", "published", "remoteNodes"}`, plus `"epoch"` and `"offset"` for a group with history |
//! | `GET /{stage}/@groups/{group}/history[?since=&limit=]` | 200 `{"group", "epoch", "earliestOffset", "latestOffset", "complete", "messages", "nextSince"}` (see `history`) |
//! | `POST /{stage}/@broadcast[?exclude=id]` | the same, for every connection of the stage |
//! | `GET /{stage}/@groups/{group}[?maxResults=&nextToken=]` | 200 `{"group", "memberCount", "members", "nextToken"}` |
//! | `GET /{stage}/@connections[?maxResults=&nextToken=]` | 200 `{"connectionCount", "connections", "nextToken"}` |

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::StatusCode;
use serde_json::{Value, json};
use wsgate_connection_store::Page;

use super::span::{self, Target};
use super::{Api, admit, answer};
use crate::error::CallbackError;
use crate::groups::validate_name;
use crate::ws::connections;

/// Page size of listings when `maxResults` is absent.
const DEFAULT_PAGE: usize = 100;

/// The group routes, merged into the callback router.
pub(super) fn router() -> Router<Arc<Api>> {
    let mut router = Router::new();
    for at in ["@", "%40"] {
        router = router
            .route(
                &format!("/{{stage}}/{at}connections/{{id}}/groups/{{group}}"),
                put(membership).delete(membership),
            )
            .route(
                &format!("/{{stage}}/{at}connections/{{id}}/groups"),
                get(connection_groups),
            )
            .route(
                &format!("/{{stage}}/{at}groups/{{group}}"),
                post(group_post).get(group_get),
            )
            .route(
                &format!("/{{stage}}/{at}groups/{{group}}/history"),
                get(super::history::history),
            )
            .route(&format!("/{{stage}}/{at}broadcast"), post(broadcast))
            .route(&format!("/{{stage}}/{at}connections"), get(connections));
    }
    router
}

/// The query parameters the group endpoints read.
#[derive(Debug, Default)]
struct Query {
    exclude: Option<String>,
    max_results: Option<String>,
    next_token: Option<String>,
}

impl Query {
    fn parse(query: Option<&str>) -> Self {
        let mut parsed = Self::default();
        for (key, value) in form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
            let value = Some(value.into_owned()).filter(|v| !v.is_empty());
            match &*key {
                "exclude" => parsed.exclude = value,
                "maxResults" => parsed.max_results = value,
                "nextToken" => parsed.next_token = value,
                _ => {}
            }
        }
        parsed
    }

    fn limit(&self, max: usize) -> Result<usize, CallbackError> {
        match &self.max_results {
            None => Ok(DEFAULT_PAGE.min(max)),
            Some(text) => text
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=max).contains(n))
                .ok_or_else(|| {
                    CallbackError::BadRequest(format!("maxResults must be between 1 and {max}"))
                }),
        }
    }
}

/// `PUT` (join) and `DELETE` (leave) of one membership.
async fn membership(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, id, group)): Path<(String, String, String)>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let target = Target {
        route: "/{stage}/@connections/{id}/groups/{group}",
        stage: &stage,
        connection_id: Some(&id),
        group: Some(&group),
    };
    let span = span::start(&api, &request, target);
    let trace = span.parent();
    let result = async {
        let (parts, _) = admit(&api, peer, &stage, request).await?;
        let join = parts.method == http::Method::PUT;
        let shared = &api.shared;
        match (
            connections::membership(shared, &id, Some(&stage), &group, join, trace).await,
            &api.cluster,
        ) {
            (Some(changed), _) => changed?,
            (None, Some(cluster)) => {
                let config = shared.groups.config();
                validate_name(&group, config.max_name_bytes)?;
                let limit = config.max_groups_per_connection;
                cluster
                    .membership(&stage, &id, &group, join, limit, trace)
                    .await?;
            }
            (None, None) => return Err(CallbackError::Gone),
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    }
    .await;
    let response = answer(&method, result);
    span::finish(span, &response);
    response
}

/// `GET @connections/{id}/groups`: from the store (cluster-wide).
async fn connection_groups(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, id)): Path<(String, String)>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let result = async {
        admit(&api, peer, &stage, request).await?;
        let shared = &api.shared;
        let groups = match connections::joined(shared, &id, &stage) {
            Some(joined) => joined?,
            None => {
                let known = shared
                    .store
                    .get(&id)
                    .await
                    .map_err(|_| CallbackError::Unavailable)?
                    .is_some_and(|r| r.stage == stage);
                if !known {
                    return Err(CallbackError::Gone);
                }
                shared
                    .groups
                    .store()
                    .connection_groups(&stage, &id)
                    .await
                    .map_err(|_| CallbackError::Unavailable)?
            }
        };
        Ok(axum::Json(json!({ "groups": groups })).into_response())
    }
    .await;
    answer(&method, result)
}

/// `POST @groups/{group}`.
async fn group_post(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, group)): Path<(String, String)>,
    request: Request,
) -> Response {
    send(api, peer, stage, Some(group), request).await
}

/// `POST @broadcast`.
async fn broadcast(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stage): Path<String>,
    request: Request,
) -> Response {
    send(api, peer, stage, None, request).await
}

async fn send(
    api: Arc<Api>,
    peer: SocketAddr,
    stage: String,
    group: Option<String>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let target = Target {
        route: if group.is_some() {
            "/{stage}/@groups/{group}"
        } else {
            "/{stage}/@broadcast"
        },
        stage: &stage,
        connection_id: None,
        group: group.as_deref(),
    };
    let span = span::start(&api, &request, target);
    let result = async {
        let (parts, body) = admit(&api, peer, &stage, request).await?;
        let query = Query::parse(parts.uri.query());
        let outcome = api
            .shared
            .groups
            .post(&stage, group.as_deref(), body, query.exclude.as_deref())
            .await?;
        Ok(post_answer(&outcome))
    }
    .await;
    let response = answer(&method, result);
    span::finish(span, &response);
    response
}

/// The answer to a group or stage post: what this node delivered, and what it published.
pub(crate) fn post_answer(outcome: &crate::groups::PostOutcome) -> Response {
    let mut body = json!({
        "deliveredLocal": outcome.local.delivered,
        "droppedLocal": outcome.local.dropped,
        "published": outcome.published,
        "remoteNodes": outcome.remote_nodes,
    });
    if let Some(position) = &outcome.position {
        body["epoch"] = Value::String(position.epoch.clone());
        body["offset"] = Value::from(position.offset);
    }
    axum::Json(body).into_response()
}

/// A listing page as JSON: `{count_field: count, list_field: ids, "nextToken"?}`.
fn page_json(count_field: &str, count: u64, list_field: &str, page: Page) -> Value {
    let mut body = json!({ count_field: count, list_field: page.ids });
    if let Some(token) = page.next_cursor {
        body["nextToken"] = Value::String(token);
    }
    body
}

fn store_error(error: wsgate_connection_store::StoreError) -> CallbackError {
    match error {
        wsgate_connection_store::StoreError::InvalidCursor { .. } => {
            CallbackError::BadRequest("invalid nextToken".into())
        }
        _ => CallbackError::Unavailable,
    }
}

/// `GET @groups/{group}`: member count and one page of member ids, cluster-wide.
async fn group_get(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((stage, group)): Path<(String, String)>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let result = async {
        let (parts, _) = admit(&api, peer, &stage, request).await?;
        let shared = &api.shared;
        validate_name(&group, shared.groups.config().max_name_bytes)?;
        let query = Query::parse(parts.uri.query());
        let limit = query.limit(shared.groups.config().max_page_size)?;
        let store = shared.groups.store();
        let count = store
            .group_size(&stage, &group)
            .await
            .map_err(store_error)?;
        let page = store
            .group_members(&stage, &group, query.next_token, limit)
            .await
            .map_err(store_error)?;
        let mut body = page_json("memberCount", count, "members", page);
        body["group"] = Value::String(group);
        Ok(axum::Json(body).into_response())
    }
    .await;
    answer(&method, result)
}

/// `GET @connections`: connection count and one page of connection ids, cluster-wide.
async fn connections(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(stage): Path<String>,
    request: Request,
) -> Response {
    let method = request.method().clone();
    let result = async {
        let (parts, _): (_, Bytes) = admit(&api, peer, &stage, request).await?;
        let shared = &api.shared;
        let query = Query::parse(parts.uri.query());
        let limit = query.limit(shared.groups.config().max_page_size)?;
        let store = shared.groups.store();
        let count = store.stage_size(&stage).await.map_err(store_error)?;
        let page = store
            .stage_connections(&stage, query.next_token, limit)
            .await
            .map_err(store_error)?;
        Ok(axum::Json(page_json("connectionCount", count, "connections", page)).into_response())
    }
    .await;
    answer(&method, result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queries() {
        let q = Query::parse(Some("exclude=abc%3D&maxResults=5&nextToken=17&other=1"));
        assert_eq!(q.exclude.as_deref(), Some("abc="));
        assert_eq!(q.limit(1000), Ok(5));
        assert_eq!(q.next_token.as_deref(), Some("17"));
        assert_eq!(Query::parse(None).limit(1000), Ok(100));
        assert_eq!(Query::parse(None).limit(10), Ok(10));
        for bad in ["maxResults=0", "maxResults=1001", "maxResults=x"] {
            assert!(Query::parse(Some(bad)).limit(1000).is_err(), "{bad}");
        }
        assert_eq!(Query::parse(Some("exclude=")).exclude, None);
    }
}
