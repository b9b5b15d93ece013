//! The `wsgate` command line: `wsgate --config FILE` serves (`SIGHUP` reloads the file),
//! `wsgate check --config FILE` validates, `wsgate reload` asks the running gateway to
//! reload ([`crate::reload::client`]), `wsgate apply|rollback|deployments|canary` deploy through it
//! ([`crate::rollout::client`]), `wsgate config schema|defaults|reference` describes the configuration, `wsgate sdk`
//! generates typed clients, `wsgate import ...` / `wsgate export ...` translate API definitions
//! (`crate::spec`). Exit codes: 0 success, 1 configuration or usage error, 2 runtime failure.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::Config;
use crate::server::{Gateway, Listeners};
use crate::telemetry;

/// `wsgate --version`: the package version and the git revision it was built from.
const VERSION: &str = concat!(
    env!("CARGO_PKG_VERSION"),
    " (",
    env!("WSGATE_GIT_REVISION"),
    ")"
);

/// A WebSocket-first realtime API gateway, wire-compatible with Amazon API Gateway WebSocket APIs.
#[derive(Debug, Parser)]
#[command(name = "wsgate", version = VERSION, about)]
pub struct Cli {
    /// Configuration file (YAML). `WSGATE_*` environment variables override its values.
    #[arg(short, long, env = "WSGATE_CONFIG", global = true)]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve (the default).
    Serve,
    /// Validate the configuration and exit.
    Check,
    /// Ask the gateway running with this configuration to re-read it (no connection is closed).
    Reload(crate::reload::client::ReloadArgs),
    /// Deploy FILE's API definition as a new deployment of its stages (every node switches).
    Apply(crate::rollout::client::ApplyArgs),
    /// Point a stage back at its previous deployment (or --to one).
    Rollback(crate::rollout::client::RollbackArgs),
    /// List the deployments, what each stage serves and what each node serves.
    Deployments(crate::rollout::client::ListArgs),
    /// Promote or drop a stage's canary.
    #[command(subcommand)]
    Canary(crate::rollout::client::CanaryCommand),
    /// Describe the configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Generate a typed client package (or with --backend the callback API client) into OUT.
    Sdk(crate::sdk::SdkArgs),
    /// Turn a SAM/CloudFormation template or an AsyncAPI document into a configuration.
    #[command(subcommand)]
    Import(crate::spec::ImportCommand),
    /// Describe the configuration's API as AsyncAPI 3.0 or its HTTP APIs as OpenAPI 3.1, or
    /// write the live definition a running gateway serves.
    #[command(subcommand)]
    Export(ExportCommand),
}

#[derive(Debug, Subcommand)]
enum ExportCommand {
    #[command(flatten)]
    Spec(crate::spec::ExportCommand),
    /// The API definition (`api`, `throttling`) a running gateway serves on a stage, as YAML
    /// that `wsgate apply` takes back.
    Definition(crate::rollout::client::ExportArgs),
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Print the JSON Schema of the configuration file (for editors: yaml-language-server).
    Schema,
    /// Print the configuration with every default written out (secrets masked): the given one
    /// with --config, else a minimal one.
    Defaults,
    /// Print the Markdown configuration reference (docs/configuration.md).
    Reference,
}

/// Parses the command line and runs it.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match &cli.command {
        Some(Command::Config(what)) => return describe(what, cli.config.as_deref()),
        Some(Command::Import(what)) => return crate::spec::import(what),
        Some(Command::Export(ExportCommand::Definition(args))) => {
            return crate::rollout::client::export(cli.config.as_deref(), args);
        }
        Some(Command::Export(ExportCommand::Spec(what))) => {
            return crate::spec::export(what, cli.config.as_deref());
        }
        Some(Command::Apply(args)) => {
            return crate::rollout::client::apply(cli.config.as_deref(), args);
        }
        Some(Command::Rollback(args)) => {
            return crate::rollout::client::rollback(cli.config.as_deref(), args);
        }
        Some(Command::Deployments(args)) => {
            return crate::rollout::client::list(cli.config.as_deref(), args);
        }
        Some(Command::Canary(command)) => {
            return crate::rollout::client::canary(cli.config.as_deref(), command);
        }
        _ => {}
    }
    let Some(path) = cli.config else {
        eprintln!("error: --config FILE is required (or set WSGATE_CONFIG)");
        return ExitCode::from(1);
    };
    if let Some(Command::Reload(args)) = &cli.command {
        // The running gateway checks the file (with its own environment) and answers why not.
        return crate::reload::client::run(&path, args);
    }
    let config = match Config::load(&path) {
        Ok(config) => config,
        Err(error) => {
            eprintln!("error: {error}");
            return ExitCode::from(1);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Check => {
            // Schemas are compiled at start; `check` compiles them too.
            if let Err(error) = crate::validate::Models::compile(&config.api) {
                eprintln!("error: {error}");
                return ExitCode::from(1);
            }
            println!("{}: configuration is valid", path.display());
            ExitCode::SUCCESS
        }
        Command::Serve => serve(config, path),
        Command::Reload(args) => crate::reload::client::run(&path, &args),
        Command::Config(what) => describe(&what, Some(&path)),
        Command::Sdk(args) => crate::sdk::run(&config, &args),
        Command::Import(what) => crate::spec::import(&what),
        // Answered above, before a configuration is needed.
        Command::Apply(_)
        | Command::Rollback(_)
        | Command::Deployments(_)
        | Command::Canary(_)
        | Command::Export(_) => ExitCode::SUCCESS,
    }
}

fn describe(what: &ConfigCommand, path: Option<&std::path::Path>) -> ExitCode {
    use crate::config::reference;
    let text = match what {
        ConfigCommand::Schema => {
            serde_json::to_string_pretty(&reference::schema()).unwrap_or_default() + "\n"
        }
        ConfigCommand::Reference => reference::markdown(),
        ConfigCommand::Defaults => {
            let loaded = match path {
                Some(path) => Config::load(path),
                None => Config::from_yaml(reference::MINIMAL),
            };
            match loaded.and_then(|config| reference::defaults(&config)) {
                Ok(text) => text,
                Err(error) => {
                    eprintln!("error: {error}");
                    return ExitCode::from(1);
                }
            }
        }
    };
    print!("{text}");
    ExitCode::SUCCESS
}

fn serve(config: Config, path: PathBuf) -> ExitCode {
    telemetry::init_logging(&config.log);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("error: cannot start the runtime: {error}");
            return ExitCode::from(2);
        }
    };
    runtime.block_on(async move {
        let listeners = match Listeners::bind(&config).await {
            Ok(listeners) => listeners,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(1);
            }
        };
        let mut gateway = match Gateway::start(config, listeners).await {
            Ok(gateway) => gateway,
            Err(error) => {
                eprintln!("error: {error}");
                return ExitCode::from(1);
            }
        };
        gateway.set_config_file(path);
        let hangups = reload_on_hangup(gateway.reload_handle());
        crate::systemd::ready(&format!("serving on {}", gateway.local_addr()));
        let watchdog = crate::systemd::spawn_watchdog();
        gateway
            .run_until(async {
                shutdown_signal().await;
                crate::systemd::stopping();
            })
            .await;
        if let Some(watchdog) = watchdog {
            watchdog.abort();
        }
        if let Some(hangups) = hangups {
            hangups.abort();
        }
        ExitCode::SUCCESS
    })
}

/// Reloads the configuration file on each SIGHUP (the outcome is logged); `None` where there
/// is no SIGHUP.
fn reload_on_hangup(handle: crate::ReloadHandle) -> Option<tokio::task::JoinHandle<()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => Some(tokio::spawn(async move {
                while hangup.recv().await.is_some() {
                    tracing::info!("SIGHUP: reloading the configuration file");
                    let _ = handle.reload().await;
                }
            })),
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP; `wsgate reload` still works");
                None
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = handle;
        None
    }
}

/// Resolves on SIGTERM or SIGINT; a second signal exits at once.
async fn shutdown_signal() {
    wait_for_signal().await;
    tokio::spawn(async {
        wait_for_signal().await;
        tracing::warn!("second signal: exiting without draining");
        std::process::exit(2);
    });
}

async fn wait_for_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
