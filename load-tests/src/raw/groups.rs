//! The raw server's groups, the yardstick for a gateway's group fan-out:
//! `PUT /{stage}/@connections/{id}/groups/{group}` adds a connection's push queue to a group,
//! and `POST /{stage}/@groups/{group}` hands the body to every member one at a time (`try_send`
//! into each queue; a full queue skips that member), answering
//! `{"deliveredLocal": n, "droppedLocal": m}`. Each member's task then writes the frame on its
//! own (one `send` per frame, as for any push).

use super::Shared;
use super::http::frame;
use crate::httpd::{Resp, json, read_body, resp};
use hyper::body::Incoming;
use hyper::{Method, Request, StatusCode};
use percent_encoding::percent_decode_str;
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::Ordering::Relaxed;
use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_tungstenite::tungstenite::Message;

/// The callback API's payload limit.
const MAX_POST: usize = 131_072;

/// A group's members: connection id and push queue.
type Members = Vec<(u64, mpsc::Sender<Message>)>;

/// Group name to its members.
#[derive(Default)]
pub(super) struct Groups {
    map: Mutex<HashMap<String, Members>>,
}

/// A group request.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Route {
    /// `PUT @connections/{id}/groups/{group}`.
    Join { id: String, group: String },
    /// `POST @groups/{group}`.
    Post { group: String },
}

fn decoded(segment: &str) -> Option<String> {
    percent_decode_str(segment)
        .decode_utf8()
        .ok()
        .map(|s| s.into_owned())
}

/// The group route of `method path`, if it is one.
pub(super) fn route(method: &Method, path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let at = |s: &str, name: &str| s == format!("@{name}") || s == format!("%40{name}");
    match (method, parts.as_slice()) {
        (&Method::PUT, [_, c, id, g, group]) if at(c, "connections") && *g == "groups" => {
            Some(Route::Join {
                id: decoded(id)?,
                group: decoded(group)?,
            })
        }
        (&Method::POST, [_, g, group]) if at(g, "groups") => Some(Route::Post {
            group: decoded(group)?,
        }),
        _ => None,
    }
}

/// Serves a group request.
pub(super) async fn serve(route: Route, req: Request<Incoming>, shared: &Shared) -> Resp {
    let groups = &shared.groups;
    match route {
        Route::Join { id, group } => {
            let tx = id
                .parse::<u64>()
                .ok()
                .and_then(|n| Some((n, shared.registry.as_ref()?.get(n)?)));
            let Some((n, tx)) = tx else {
                return resp(StatusCode::GONE, "");
            };
            let mut map = groups.map.lock().unwrap_or_else(|p| p.into_inner());
            let members = map.entry(group).or_default();
            if !members.iter().any(|(m, _)| *m == n) {
                members.push((n, tx));
            }
            resp(StatusCode::NO_CONTENT, "")
        }
        Route::Post { group } => {
            let Some(body) = read_body(req.into_body(), MAX_POST).await else {
                return resp(StatusCode::PAYLOAD_TOO_LARGE, "");
            };
            let message = frame(body);
            let (mut delivered, mut dropped) = (0u64, 0u64);
            {
                let map = groups.map.lock().unwrap_or_else(|p| p.into_inner());
                for (_, tx) in map.get(&group).into_iter().flatten() {
                    match tx.try_send(message.clone()) {
                        Ok(()) => delivered += 1,
                        Err(TrySendError::Full(_)) => dropped += 1,
                        Err(TrySendError::Closed(_)) => {}
                    }
                }
            }
            shared.pushed.fetch_add(delivered, Relaxed);
            json(
                StatusCode::OK,
                format!(r#"{{"deliveredLocal":{delivered},"droppedLocal":{dropped}}}"#),
            )
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_paths() {
        assert_eq!(
            route(&Method::PUT, "/prod/@connections/17/groups/room%3A1"),
            Some(Route::Join {
                id: "17".into(),
                group: "room:1".into()
            })
        );
        assert_eq!(
            route(&Method::POST, "/prod/%40groups/bench"),
            Some(Route::Post {
                group: "bench".into()
            })
        );
        assert_eq!(route(&Method::POST, "/prod/@connections/17"), None);
        assert_eq!(route(&Method::GET, "/prod/@groups/bench"), None);
    }
}
