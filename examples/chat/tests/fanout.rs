//! The backend's fan-out against a stand-in callback API: every member gets the message, and a
//! member the callback API answers 410 GoneException for is forgotten.

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

async fn callback(
    State(posts): State<Posts>,
    Path((stage, id)): Path<(String, String)>,
    body: String,
) -> axum::response::Response {
    if id.starts_with("gone") {
        return (
            StatusCode::GONE,
            [("x-amzn-ErrorType", "GoneException")],
            r#"{"message":"Gone"}"#,
        )
            .into_response();
    }
    posts.lock().unwrap().push((stage, id, body));
    StatusCode::OK.into_response()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gone_members_are_forgotten() {
    let posts = Posts::default();
    let app = Router::new()
        .route("/{stage}/@connections/{id}", post(callback))
        .with_state(Arc::clone(&posts));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let chat = Chat::new(format!("http://{addr}/")).expect("client builds");
    chat.join("live-1", "ada");
    chat.join("gone-1", "bob");
    chat.join("live-2", "cy");
    chat.join("gone-2", "dee");

    let message = json!({ "from": "ada", "data": "hi", "at": 1 });
    let delivered = chat.broadcast("prod", &message).await;
    assert_eq!(delivered, 2);

    let members = chat.members();
    assert_eq!(
        members.keys().map(String::as_str).collect::<Vec<_>>(),
        ["live-1", "live-2"]
    );
    let mut seen = posts.lock().unwrap().clone();
    seen.sort();
    let body = message.to_string();
    assert_eq!(
        seen,
        [
            ("prod".to_string(), "live-1".to_string(), body.clone()),
            ("prod".to_string(), "live-2".to_string(), body),
        ]
    );
    server.abort();
}
