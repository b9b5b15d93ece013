//! `cargo run -p wsgate-example-chat`: the gateway and the chat backend in one process, until
//! Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wsgate::config::LogConfig;
use wsgate_example_chat::{DEFAULT_CONFIG, Options, start};

/// The serverless chat app on wsgate: a gateway and its backend in one process.
#[derive(Debug, Parser)]
#[command(name = "wsgate-example-chat", about)]
struct Args {
    /// Gateway configuration (YAML).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The gateway's listen address (overrides `listen` in the configuration).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The backend's listen address (the web page and the integration endpoints).
    #[arg(long, default_value = "127.0.0.1:8081")]
    backend_listen: SocketAddr,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    wsgate::init_logging(&LogConfig::default());
    let running = match start(Options {
        config: args.config,
        listen: args.listen,
        backend_listen: args.backend_listen,
    })
    .await
    {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("Open {} in two browser tabs to chat", running.page_url());
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot listen for Ctrl-C: {error}");
    }
    println!("Shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}
