//! Ordering on the callback API: a message answered 200 by `POST @connections/{id}` reaches the
//! client before the close frame of a `DELETE` sent right after it (the "last words, then
//! disconnect" pattern), on every try.

use std::net::SocketAddr;
use std::time::Duration;

use axum::routing::post;
use axum::{Json, Router};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::time::timeout;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::Message;
use wsgate::{Config, Gateway, Listeners};

const TRIES: usize = 100;
const WAIT: Duration = Duration::from_secs(10);

/// A backend whose `whoami` route answers the caller's connection id.
async fn whoami_backend() -> SocketAddr {
    async fn whoami(Json(event): Json<Value>) -> Json<Value> {
        let id = event["requestContext"]["connectionId"].clone();
        Json(json!({ "statusCode": 200, "body": id }))
    }
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = Router::new().route("/whoami", post(whoami));
    tokio::spawn(async move { axum::serve(listener, app).await });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posted_messages_arrive_before_the_close_of_a_following_delete() {
    let backend = whoami_backend().await;
    let config = Config::from_yaml(&format!(
        r#"
listen: 127.0.0.1:0
api:
  name: ordering
  route_selection_expression: $request.body.action
  stages:
    prod: {{}}
  routes:
    whoami:
      integration: {{ type: aws_proxy, uri: "http://{backend}/whoami" }}
      route_response: true
"#
    ))
    .expect("config loads");
    let listeners = Listeners {
        main: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        callback: None,
    };
    let gateway = Gateway::start(config, listeners)
        .await
        .expect("gateway starts");
    let addr = gateway.local_addr();
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    for attempt in 0..TRIES {
        let (mut ws, _) = timeout(WAIT, connect_async(format!("ws://{addr}/prod")))
            .await
            .expect("connect in time")
            .expect("connected");
        ws.send(Message::text(r#"{"action":"whoami"}"#))
            .await
            .unwrap();
        let id = match timeout(WAIT, ws.next()).await.expect("reply in time") {
            Some(Ok(Message::Text(id))) => id.to_string(),
            other => panic!("expected the connection id, got {other:?}"),
        };
        let url = format!("http://{addr}/prod/@connections/{id}");
        let posted = http.post(&url).body("last words").send().await.unwrap();
        assert_eq!(posted.status(), 200);
        let deleted = http.delete(&url).send().await.unwrap();
        assert_eq!(deleted.status(), 204);

        let received = timeout(WAIT, async {
            let mut received = Vec::new();
            while let Some(Ok(message)) = ws.next().await {
                received.push(message);
            }
            received
        })
        .await
        .expect("closed in time");
        let close = Message::Close(Some(tokio_tungstenite::tungstenite::protocol::CloseFrame {
            code: 1000.into(),
            reason: "Connection Closed Normally".into(),
        }));
        assert_eq!(
            received,
            [Message::text("last words"), close],
            "try {attempt}: the posted message must precede the close frame"
        );
    }
    gateway.shutdown().await;
}
