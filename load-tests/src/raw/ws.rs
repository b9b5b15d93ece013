//! The raw server's WebSocket side: whoami, echo, ping, and delivery of pushed frames.

use super::Shared;
use crate::client::ws_config;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[derive(Debug, PartialEq, Eq)]
enum Action {
    Echo,
    Whoami,
    Ping,
    Other,
}

#[derive(Deserialize)]
struct Routed<'a> {
    #[serde(borrow)]
    action: Option<Cow<'a, str>>,
}

/// The route of a text frame: a prefix check for the load generator's own messages, else a
/// JSON parse of `action`.
fn classify(text: &str) -> Action {
    if text.starts_with(r#"{"action":"echo""#) || text.starts_with(r#"{"action":"echo_http""#) {
        return Action::Echo;
    }
    if text.starts_with(r#"{"action":"whoami""#) {
        return Action::Whoami;
    }
    match serde_json::from_str::<Routed<'_>>(text)
        .ok()
        .and_then(|r| r.action)
    {
        Some(a) if a == "echo" || a == "echo_http" => Action::Echo,
        Some(a) if a == "whoami" => Action::Whoami,
        Some(a) if a == "ping" => Action::Ping,
        _ => Action::Other,
    }
}

async fn recv(rx: &mut Option<mpsc::Receiver<Message>>) -> Option<Message> {
    match rx {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

pub(super) async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    let Ok(mut ws) = tokio_tungstenite::accept_async_with_config(stream, Some(ws_config())).await
    else {
        return;
    };
    let id = shared.next_id.fetch_add(1, Relaxed) + 1;
    let mut rx = shared.registry.as_ref().map(|reg| {
        let (tx, rx) = mpsc::channel(shared.cfg.queue.max(1));
        reg.insert(id, tx);
        rx
    });
    shared.open.fetch_add(1, Relaxed);
    let mut upstream = shared.cfg.upstream.map(super::proxy::Upstream::new);
    loop {
        tokio::select! {
            m = ws.next() => {
                let out = match m {
                    Some(Ok(Message::Text(t))) => match classify(t.as_str()) {
                        Action::Echo => {
                            shared.echoed.fetch_add(1, Relaxed);
                            match &mut upstream {
                                Some(up) => match up.call(t.as_str()).await {
                                    Ok(answer) => Some(Message::text(answer)),
                                    Err(_) => break,
                                },
                                None => Some(Message::Text(t)),
                            }
                        }
                        Action::Whoami => Some(Message::text(format!(r#"{{"connectionId":"{id}"}}"#))),
                        Action::Ping => Some(Message::text(r#"{"action":"pong"}"#)),
                        Action::Other => None,
                    },
                    Some(Ok(Message::Binary(b))) => {
                        shared.echoed.fetch_add(1, Relaxed);
                        Some(Message::Binary(b))
                    }
                    Some(Ok(Message::Close(_)) | Err(_)) | None => break,
                    Some(Ok(_)) => None,
                };
                if let Some(out) = out
                    && ws.send(out).await.is_err()
                {
                    break;
                }
            }
            Some(msg) = recv(&mut rx) => {
                if ws.send(msg).await.is_err() {
                    break;
                }
            }
        }
    }
    if let Some(reg) = &shared.registry {
        reg.remove(id);
    }
    shared.open.fetch_sub(1, Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_like_the_gateway() {
        assert_eq!(classify(r#"{"action":"echo","seq":1}"#), Action::Echo);
        assert_eq!(classify(r#"{"action":"echo_http","seq":1}"#), Action::Echo);
        assert_eq!(classify(r#"{"action":"echo_httpx"}"#), Action::Other);
        assert_eq!(classify(r#"{"action":"whoami"}"#), Action::Whoami);
        assert_eq!(classify(r#"{ "data": 1, "action": "echo" }"#), Action::Echo);
        assert_eq!(classify(r#"{"action":"ping"}"#), Action::Ping);
        assert_eq!(classify("not json"), Action::Other);
    }
}
