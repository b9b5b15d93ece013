//! The JWKS cache against a local HTTP server: stale keys survive a failing refresh, and
//! refetches are rate-limited.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;

use super::*;

/// A P-256 public key as a JWK (the RFC 7515 appendix A.3 key).
const JWK: &str = r#"{"kty":"EC","crv":"P-256","kid":"k1",
  "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
  "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}"#;

#[derive(Clone, Default)]
struct Server {
    answer: Arc<Mutex<(u16, String)>>,
    hits: Arc<AtomicUsize>,
}

async fn serve(State(server): State<Server>) -> (StatusCode, String) {
    server.hits.fetch_add(1, Ordering::SeqCst);
    let (status, body) = server.answer.lock().expect("answer").clone();
    (StatusCode::from_u16(status).unwrap_or(StatusCode::OK), body)
}

async fn start(server: &Server) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = Router::new()
        .route("/jwks", get(serve))
        .with_state(server.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    format!("http://{addr}/jwks")
}

fn jwks(url: String, ttl: Duration, min_refresh: Duration) -> Jwks {
    let config = JwksConfig {
        url,
        cache_ttl: ttl,
        min_refresh_interval: min_refresh,
        timeout: Duration::from_secs(5),
    };
    Jwks::new(
        &config,
        reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("client"),
    )
}

#[tokio::test]
async fn stale_keys_survive_a_failing_refresh() {
    let server = Server::default();
    *server.answer.lock().expect("answer") = (200, format!(r#"{{"keys":[{JWK}]}}"#));
    // A zero TTL makes every lookup a refresh.
    let cache = jwks(start(&server).await, Duration::ZERO, Duration::ZERO);
    let first = cache.keys(Some("k1")).await.expect("fetched");
    assert_eq!(first.keys.len(), 1);
    *server.answer.lock().expect("answer") = (503, String::new());
    let stale = cache.keys(Some("k1")).await.expect("stale keys are kept");
    assert!(Arc::ptr_eq(&first, &stale));
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn no_keys_ever_fetched_is_an_error_and_retries_are_rate_limited() {
    let server = Server::default();
    *server.answer.lock().expect("answer") = (200, r#"{"keys":[]}"#.to_string());
    let cache = jwks(
        start(&server).await,
        Duration::from_secs(600),
        Duration::from_secs(3600),
    );
    assert!(matches!(
        cache.keys(None).await,
        Err(CallError::Malformed(_))
    ));
    assert!(matches!(cache.keys(None).await, Err(CallError::Backoff)));
    assert!(matches!(
        cache.keys(Some("other")).await,
        Err(CallError::Backoff)
    ));
    assert_eq!(server.hits.load(Ordering::SeqCst), 1);
}
