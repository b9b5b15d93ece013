//! `queue-chat-worker --nats URL`: the queue-chat worker as its own process (run several to share
//! the work; each message is handled by one of them).

use std::process::ExitCode;

use clap::Parser;
use wsgate::config::LogConfig;
use wsgate_example_queue_chat::worker::Worker;

/// The queue-chat worker: reads CHAT_IN, answers on CHAT_OUT.
#[derive(Debug, Parser)]
#[command(name = "queue-chat-worker", about)]
struct Args {
    /// NATS server with JetStream.
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    nats: String,
}

#[tokio::main]
async fn main() -> ExitCode {
    let args = Args::parse();
    wsgate::init_logging(&LogConfig::default());
    let worker = match Worker::connect(&args.nats).await {
        Ok(worker) => worker,
        Err(error) => {
            eprintln!("error: {error:#}");
            return ExitCode::FAILURE;
        }
    };
    println!("queue-chat worker on {}", args.nats);
    tokio::select! {
        result = worker.run() => match result {
            Ok(()) => ExitCode::SUCCESS,
            Err(error) => {
                eprintln!("error: {error:#}");
                ExitCode::FAILURE
            }
        },
        _ = tokio::signal::ctrl_c() => ExitCode::SUCCESS,
    }
}
