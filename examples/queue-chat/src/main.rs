//! `cargo run -p wsgate-example-queue-chat`: NATS (the local one, or a private `nats-server`),
//! the worker, the gateway and the web page, until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wsgate::config::LogConfig;
use wsgate_example_queue_chat::{DEFAULT_CONFIG, Options, start};

/// The chat app through a queue: gateway → NATS JetStream → worker → NATS JetStream → gateway.
#[derive(Debug, Parser)]
#[command(name = "wsgate-example-queue-chat", about)]
struct Args {
    /// Gateway configuration (YAML).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The gateway's listen address (overrides `listen` in the configuration).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The web page's listen address.
    #[arg(long, default_value = "127.0.0.1:8081")]
    page_listen: SocketAddr,
    /// NATS server with JetStream (default: nats://127.0.0.1:4222 if it answers, else a private
    /// nats-server started for this run).
    #[arg(long)]
    nats: Option<String>,
    /// Do not run the worker here (run `queue-chat-worker --nats URL` as its own process).
    #[arg(long)]
    no_worker: bool,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    wsgate::init_logging(&LogConfig::default());
    let running = match start(Options {
        config: args.config,
        listen: args.listen,
        page_listen: args.page_listen,
        nats: args.nats,
        worker: !args.no_worker,
    })
    .await
    {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("NATS at {}", running.nats_url());
    println!("Open {} in two browser tabs to chat", running.page_url());
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot listen for Ctrl-C: {error}");
    }
    println!("Shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}
