//! A room message is one call to the callback API: `POST /{stage}/@groups/room:<room>`, checked
//! against a stand-in callback API that records what it gets.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::post;
use serde_json::json;
use tokio::net::TcpListener;
use wsgate_example_chat::backend::Chat;

type Posts = Arc<Mutex<Vec<(String, String, String)>>>;

async fn group_post(
    State(posts): State<Posts>,
    Path((stage, group)): Path<(String, String)>,
    body: String,
) -> axum::response::Response {
    if group == "room:closed" {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            r#"{"message":"Service unavailable"}"#,
        )
            .into_response();
    }
    posts.lock().unwrap().push((stage, group, body));
    axum::Json(
        json!({"deliveredLocal": 3, "droppedLocal": 0, "published": false, "remoteNodes": 0}),
    )
    .into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_call_per_message_reaches_the_room() {
    let posts = Posts::default();
    let app = Router::new()
        .route("/{stage}/@groups/{group}", post(group_post))
        .with_state(Arc::clone(&posts));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let chat = Chat::new(format!("http://{addr}/")).expect("client builds");
    let message = json!({ "from": "ada", "room": "lobby", "data": "hi", "at": 1 });
    assert_eq!(chat.broadcast("prod", "lobby", &message).await, Ok(3));
    assert_eq!(
        posts.lock().unwrap().clone(),
        [(
            "prod".to_string(),
            "room:lobby".to_string(),
            message.to_string()
        )]
    );
    let failed = chat.broadcast("prod", "closed", &message).await;
    assert!(failed.is_err_and(|e| e.contains("503")));
    server.abort();
}
