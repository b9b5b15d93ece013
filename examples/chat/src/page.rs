//! The web page: HTML, JavaScript (the page's module and the generated API client) and CSS
//! compiled into the binary, and the gateway URL the backend writes into the page so the browser
//! knows where to connect.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use serde_json::json;

const INDEX_HTML: &str = include_str!("../static/index.html");
const CHAT_JS: &str = include_str!("../static/chat.js");
/// The client generated from `wsgate.yaml` (`wsgate sdk typescript`, compiled by `tsc`; a test
/// in `gateway/tests/it/sdk_gen.rs` keeps it equal to the generator's output).
const CHAT_CLIENT_JS: &str = include_str!("../static/chat-client.js");
const CHAT_CSS: &str = include_str!("../static/chat.css");

/// Where the page's configuration goes in `index.html`.
const CONFIG_PLACEHOLDER: &str = "{{CHAT_CONFIG}}";

/// What the page needs to know.
#[derive(Debug, Clone)]
pub struct PageSettings {
    /// The gateway's bound address.
    pub gateway: SocketAddr,
    /// The stage the page connects to.
    pub stage: String,
    /// The WebSocket URL browsers connect to, when the gateway is not reached at its bound
    /// address (behind a load balancer: `ws://chat.example/prod`); used as given.
    pub public_url: Option<String>,
}

/// `/`, `/chat.js`, `/chat-client.js` and `/chat.css`.
pub fn router(settings: PageSettings) -> Router {
    Router::new()
        .route("/", get(index))
        .route("/chat.js", get(script))
        .route("/chat-client.js", get(client_script))
        .route("/chat.css", get(style))
        .with_state(Arc::new(settings))
}

/// The WebSocket URL of the gateway as seen by a browser that asked for the page with `host`.
///
/// A gateway bound to a wildcard address is reached on the host the page came from; one bound
/// to a specific address is reached there.
pub fn gateway_url(gateway: SocketAddr, stage: &str, host: Option<&str>) -> String {
    if gateway.ip().is_unspecified() {
        let page_host = host
            .and_then(|h| h.parse::<axum::http::uri::Authority>().ok())
            .map(|authority| authority.host().to_string())
            .unwrap_or_else(|| "127.0.0.1".to_string());
        format!("ws://{page_host}:{}/{stage}", gateway.port())
    } else {
        format!("ws://{gateway}/{stage}")
    }
}

/// `index.html` with the page configuration written in as JSON that cannot end the script
/// element early.
pub fn render_index(gateway_url: &str) -> String {
    let config = json!({ "gatewayUrl": gateway_url })
        .to_string()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026");
    INDEX_HTML.replace(CONFIG_PLACEHOLDER, &config)
}

async fn index(State(settings): State<Arc<PageSettings>>, headers: HeaderMap) -> Response {
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let url = settings
        .public_url
        .clone()
        .unwrap_or_else(|| gateway_url(settings.gateway, &settings.stage, host));
    let mut response = Html(render_index(&url)).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", CHAT_JS)
}

async fn client_script() -> Response {
    asset("text/javascript; charset=utf-8", CHAT_CLIENT_JS)
}

async fn style() -> Response {
    asset("text/css; charset=utf-8", CHAT_CSS)
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateway_url_follows_the_bound_address() {
        let specific: SocketAddr = "127.0.0.1:9000".parse().unwrap();
        assert_eq!(
            gateway_url(specific, "prod", Some("localhost:8081")),
            "ws://127.0.0.1:9000/prod"
        );
        let wildcard: SocketAddr = "0.0.0.0:9000".parse().unwrap();
        assert_eq!(
            gateway_url(wildcard, "prod", Some("chat.example:8081")),
            "ws://chat.example:9000/prod"
        );
        assert_eq!(
            gateway_url(wildcard, "prod", Some("[::1]:8081")),
            "ws://[::1]:9000/prod"
        );
        assert_eq!(
            gateway_url(wildcard, "prod", Some("bad host<>")),
            "ws://127.0.0.1:9000/prod"
        );
        assert_eq!(
            gateway_url(wildcard, "prod", None),
            "ws://127.0.0.1:9000/prod"
        );
    }

    #[test]
    fn injected_config_cannot_close_the_script() {
        let page = render_index("ws://x/</script><b>");
        assert!(!page.contains(CONFIG_PLACEHOLDER));
        assert!(page.contains(r#""gatewayUrl":"ws://x/\u003c/script\u003e\u003cb\u003e""#));
        assert!(!page.contains("</script><b>"));
    }
}
