//! `chat-backend`: the chat backend alone (the `aws_proxy` handlers and the
//! page), for gateways that run elsewhere: the three-node cluster of `deploy/compose`, or a
//! gateway started by hand. Its callbacks go to one gateway node or the load balancer in front
//! of them; any node accepts a post for any connection.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use wsgate::config::LogConfig;
use wsgate_example_chat::backend::{self, Chat};
use wsgate_example_chat::page::{self, PageSettings};
use wsgate_example_chat::{STAGE, dialable};

/// The chat backend without a gateway.
#[derive(Debug, Parser)]
#[command(name = "chat-backend", about)]
struct Args {
    /// Where the gateways' integrations and browsers reach this backend.
    #[arg(long, env = "CHAT_LISTEN", default_value = "127.0.0.1:8081")]
    listen: SocketAddr,
    /// The callback API: a gateway node or the load balancer (`http://host:port`).
    #[arg(long, env = "CHAT_CALLBACK_URL")]
    callback_url: String,
    /// Bearer token for the callback API (the gateway's `callback.auth` of kind `bearer`).
    #[arg(long, env = "CHAT_CALLBACK_TOKEN", hide_env_values = true)]
    callback_token: Option<String>,
    /// The WebSocket URL written into the page (`ws://host:port/prod`); by default the
    /// callback URL's host and port with `ws://` and the stage.
    #[arg(long, env = "CHAT_GATEWAY_URL")]
    gateway_url: Option<String>,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    wsgate::init_logging(&LogConfig::default());
    let public_url = args.gateway_url.clone().unwrap_or_else(|| {
        let host = args
            .callback_url
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .trim_end_matches('/');
        let scheme = if args.callback_url.starts_with("https://") {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{host}/{STAGE}")
    });
    let chat = match Chat::with_token(args.callback_url.clone(), args.callback_token.clone()) {
        Ok(chat) => chat,
        Err(error) => {
            eprintln!("error: building the callback API client: {error}");
            return ExitCode::FAILURE;
        }
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(error) => {
            eprintln!("error: --listen: cannot bind {}: {error}", args.listen);
            return ExitCode::FAILURE;
        }
    };
    let bound = listener.local_addr().map_or(args.listen, dialable);
    let app = backend::router(Arc::clone(&chat)).merge(page::router(PageSettings {
        gateway: bound,
        stage: STAGE.to_string(),
        public_url: Some(public_url.clone()),
    }));
    println!("chat backend on http://{bound}/ (page connects to {public_url})");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(stop_signal())
        .await;
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Ctrl-C, or SIGTERM (what a container runtime or a service manager sends).
async fn stop_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        () = async {
            match term.as_mut() {
                Some(term) => { term.recv().await; }
                None => std::future::pending().await,
            }
        } => {}
    }
}
