//! `cargo run -p wsgate-example-dashboard`: the gateway (or, with `--redis`, two gateway
//! nodes), the publisher and the page in one process, until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use wsgate::config::LogConfig;
use wsgate_example_dashboard::{DEFAULT_CONFIG, Options, start};

/// A live dashboard on wsgate: one group, one callback per update, every page plots it.
#[derive(Debug, Parser)]
#[command(name = "wsgate-example-dashboard", about)]
struct Args {
    /// Gateway configuration (YAML).
    #[arg(long, default_value = DEFAULT_CONFIG)]
    config: PathBuf,
    /// The (first) gateway's listen address (overrides `listen` in the configuration).
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// Run two gateway nodes on this Redis (e.g. redis://127.0.0.1:6379): the page connects to
    /// the first, the publisher posts through the second.
    #[arg(long, value_name = "URL")]
    redis: Option<String>,
    /// With --redis: the second node's listen address.
    #[arg(long, default_value = "127.0.0.1:8091")]
    second_listen: SocketAddr,
    /// The backend's listen address (the web page and the $connect handler).
    #[arg(long, default_value = "127.0.0.1:8083")]
    backend_listen: SocketAddr,
    /// Updates published per second.
    #[arg(long, default_value_t = 5.0)]
    rate: f64,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    wsgate::init_logging(&LogConfig::default());
    let running = match start(Options {
        config: args.config,
        listen: args.listen,
        second_listen: args.second_listen,
        backend_listen: args.backend_listen,
        redis: args.redis,
        rate: args.rate,
        ..Options::default()
    })
    .await
    {
        Ok(running) => running,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("Open {} to watch the figures", running.page_url());
    if let Err(error) = tokio::signal::ctrl_c().await {
        eprintln!("error: cannot listen for Ctrl-C: {error}");
    }
    println!("Shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}
