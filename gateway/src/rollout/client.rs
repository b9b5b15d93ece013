//! `wsgate apply FILE`, `wsgate rollback`, `wsgate deployments`, `wsgate canary promote|drop`,
//! `wsgate export definition`: the deployment commands, through the admin API of a running gateway (as `wsgate reload`:
//! the address from `--url`, else from the configuration file's listeners, on loopback when
//! bound to every address; a bearer token from `--token` or `WSGATE_RELOAD_TOKEN`). Exit codes:
//! 0 done, 1 refused (the gateway's one line on stderr), 2 the gateway could not be asked.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{Value, json};

/// How long a command waits for the gateway's answer.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Where the gateway is.
#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// The gateway's base URL, e.g. `http://10.0.0.5:9090` (default: from the configuration).
    #[arg(long)]
    url: Option<String>,
    /// Bearer token for a callback API with `callback.auth` bearer tokens.
    #[arg(long, env = "WSGATE_RELOAD_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

/// `wsgate apply` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ApplyArgs {
    /// The configuration file whose API definition (`api`, `throttling`) is deployed.
    file: PathBuf,
    /// A stage to point at the new deployment (repeat for several; default: every stage of
    /// the file, and stages it lacks stop being served).
    #[arg(long = "stage")]
    stages: Vec<String>,
    /// Kept with the deployment and listed by `wsgate deployments`.
    #[arg(long, default_value = "")]
    description: String,
    /// Run it as the stages' canary with this percentage of new connections.
    #[arg(long)]
    canary: Option<f64>,
    #[command(flatten)]
    target: Target,
}

/// `wsgate rollback` options.
#[derive(Debug, clap::Args)]
pub(crate) struct RollbackArgs {
    /// The stage to roll back.
    #[arg(long)]
    stage: String,
    /// The deployment to go back to (default: the one the stage served before).
    #[arg(long)]
    to: Option<String>,
    #[command(flatten)]
    target: Target,
}

/// `wsgate deployments` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// `list` (the default and only action).
    #[arg(value_parser = ["list"], default_value = "list")]
    action: String,
    /// Print the admin API's JSON instead of the table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    target: Target,
}

/// `wsgate canary` actions.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CanaryCommand {
    /// Make the stage's canary its deployment.
    Promote(StageArgs),
    /// Stop the stage's canary (its connections go on with the stage's deployment).
    Drop(StageArgs),
}

/// A stage and where the gateway is.
#[derive(Debug, clap::Args)]
pub(crate) struct StageArgs {
    /// The stage.
    #[arg(long)]
    stage: String,
    #[command(flatten)]
    target: Target,
}

/// `wsgate export definition` options.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// The stage whose deployment is written (default: the newest deployment a stage serves).
    #[arg(long, conflicts_with = "deployment")]
    stage: Option<String>,
    /// A deployment by id (any the store keeps, e.g. one to roll back to).
    #[arg(long)]
    deployment: Option<String>,
    /// Write the definition here instead of stdout.
    #[arg(short, long)]
    output: Option<PathBuf>,
    #[command(flatten)]
    target: Target,
}

/// `wsgate apply`.
pub(crate) fn apply(config: Option<&Path>, args: &ApplyArgs) -> ExitCode {
    let text = match std::fs::read_to_string(&args.file) {
        Ok(text) => text,
        Err(error) => {
            eprintln!("error: cannot read {}: {error}", args.file.display());
            return ExitCode::from(1);
        }
    };
    let body = json!({
        "definition": text,
        "stages": args.stages,
        "description": args.description,
        "canary": args.canary,
    });
    // The gateway to ask: --url, else the --config file's listeners, else FILE's.
    let from = config.unwrap_or(&args.file);
    ask(
        from,
        &args.target,
        "POST",
        "deployments",
        Some(body),
        |answer| {
            let d = &answer["deployment"];
            let id = d["id"].as_str().unwrap_or("?");
            if answer["unchanged"] == true {
                println!("unchanged: the stages already serve this content (deployment {id})");
            } else if let Some(percent) = args.canary {
                println!("canary: deployment {id} gets {percent}% of new connections");
            } else {
                println!(
                    "applied: deployment {id} (hash {})",
                    d["hash"].as_str().unwrap_or("?")
                );
            }
            print_stages(answer);
        },
    )
}

/// `wsgate rollback`.
pub(crate) fn rollback(config: Option<&Path>, args: &RollbackArgs) -> ExitCode {
    let Some(config) = config_or_url(config, &args.target) else {
        return ExitCode::from(1);
    };
    let path = format!("stages/{}/rollback", args.stage);
    let body = json!({ "to": args.to });
    ask(&config, &args.target, "POST", &path, Some(body), |answer| {
        print_stages(answer);
    })
}

/// `wsgate canary promote|drop`.
pub(crate) fn canary(config: Option<&Path>, command: &CanaryCommand) -> ExitCode {
    let (args, method, path) = match command {
        CanaryCommand::Promote(args) => (args, "POST", "canary/promote"),
        CanaryCommand::Drop(args) => (args, "DELETE", "canary"),
    };
    let Some(config) = config_or_url(config, &args.target) else {
        return ExitCode::from(1);
    };
    let path = format!("stages/{}/{path}", args.stage);
    ask(&config, &args.target, method, &path, None, print_stages)
}

/// `wsgate deployments [list]`.
pub(crate) fn list(config: Option<&Path>, args: &ListArgs) -> ExitCode {
    let _ = &args.action;
    let Some(config) = config_or_url(config, &args.target) else {
        return ExitCode::from(1);
    };
    ask(
        &config,
        &args.target,
        "GET",
        "deployments",
        None,
        |answer| {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(answer).unwrap_or_default()
                );
                return;
            }
            print_listing(answer);
        },
    )
}

/// `wsgate export definition`: the live definition as YAML (a header comment names the
/// deployment), which `wsgate apply` takes back.
pub(crate) fn export(config: Option<&Path>, args: &ExportArgs) -> ExitCode {
    let Some(config) = config_or_url(config, &args.target) else {
        return ExitCode::from(1);
    };
    let mut query = form_urlencoded::Serializer::new(String::new());
    if let Some(stage) = &args.stage {
        query.append_pair("stage", stage);
    }
    if let Some(id) = &args.deployment {
        query.append_pair("deployment", id);
    }
    let query = query.finish();
    let path = if query.is_empty() {
        "definition".to_string()
    } else {
        format!("definition?{query}")
    };
    let mut written = Ok(());
    let code = ask(&config, &args.target, "GET", &path, None, |answer| {
        written = write_definition(answer, args.output.as_deref());
    });
    match written {
        Ok(()) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// The YAML of an exported definition, to `output` or stdout.
fn write_definition(answer: &Value, output: Option<&Path>) -> Result<(), String> {
    let d = &answer["deployment"];
    let header = [
        format!(
            "wsgate definition: deployment {} (hash {}), created {} ms after the epoch{}",
            d["id"].as_str().unwrap_or("?"),
            d["hash"].as_str().unwrap_or("?"),
            d["createdAtMs"],
            match d["description"].as_str() {
                Some(text) if !text.is_empty() => format!(", \"{text}\""),
                _ => String::new(),
            }
        ),
        "edit it and deploy it with `wsgate apply FILE` (the node's own settings stay)".into(),
    ];
    let mut text = String::new();
    for line in header {
        text.push_str("# ");
        text.push_str(&line);
        text.push('\n');
    }
    text.push_str(
        &serde_saphyr::to_string(&answer["definition"])
            .map_err(|e| format!("cannot write YAML: {e}"))?,
    );
    if !text.ends_with('\n') {
        text.push('\n');
    }
    match output {
        Some(path) => {
            std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
        }
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

/// The configuration file to read the address from; without one, `--url` must be given.
fn config_or_url(config: Option<&Path>, target: &Target) -> Option<PathBuf> {
    match (config, &target.url) {
        (Some(config), _) => Some(config.to_path_buf()),
        (None, Some(_)) => Some(PathBuf::new()),
        (None, None) => {
            eprintln!("error: give --config FILE (or WSGATE_CONFIG) or --url");
            None
        }
    }
}

fn print_stages(answer: &Value) {
    let Some(stages) = answer["stages"].as_object() else {
        return;
    };
    for (stage, pointer) in stages {
        let mut line = format!(
            "  {stage}: {}",
            pointer["deployment"].as_str().unwrap_or("?")
        );
        if let Some(canary) = pointer.get("canary").filter(|c| !c.is_null()) {
            line.push_str(&format!(
                " (canary {} at {}%)",
                canary["deployment"].as_str().unwrap_or("?"),
                canary["percent"]
            ));
        }
        println!("{line}");
    }
}

fn print_listing(answer: &Value) {
    println!("stages (version {}):", answer["version"]);
    print_stages(answer);
    println!("deployments (newest first):");
    for d in answer["deployments"].as_array().into_iter().flatten() {
        let at = chrono::DateTime::from_timestamp_millis(d["createdAtMs"].as_i64().unwrap_or(0))
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        println!(
            "  {}  {at}  {}",
            d["id"].as_str().unwrap_or("?"),
            d["description"].as_str().unwrap_or("")
        );
    }
    println!("nodes:");
    for n in answer["nodes"].as_array().into_iter().flatten() {
        let stages = (n["stages"].as_object().into_iter().flatten())
            .map(|(stage, s)| {
                let mut text = format!("{stage}={}", s["deployment"].as_str().unwrap_or("?"));
                if let Some(canary) = s["canary"].as_str() {
                    text.push_str(&format!("+canary {canary}"));
                }
                text
            })
            .collect::<Vec<_>>()
            .join(" ");
        let error = n["error"]
            .as_str()
            .map(|e| format!("  ERROR: {e}"))
            .unwrap_or_default();
        println!(
            "  {}  version {}  {stages}{error}",
            n["nodeId"].as_str().unwrap_or("?"),
            n["version"]
        );
    }
}

/// Sends one admin API request and prints the answer with `done`; the exit code.
fn ask(
    config: &Path,
    target: &Target,
    method: &str,
    path: &str,
    body: Option<Value>,
    done: impl FnOnce(&Value),
) -> ExitCode {
    let url = match crate::reload::client::gateway_url(target.url.as_deref(), config) {
        Ok(url) => format!("{url}/@admin/api/{path}"),
        Err(code) => return code,
    };
    let runtime = match crate::reload::client::runtime() {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let answer = runtime.block_on(send(&url, target.token.as_deref(), method, body));
    match answer {
        Ok((status, body)) if status.is_success() => {
            done(&body);
            ExitCode::SUCCESS
        }
        Ok((status, body)) => match body["message"].as_str() {
            Some(message) if status.is_client_error() => {
                eprintln!("error: {message}");
                ExitCode::from(1)
            }
            Some(message) => {
                eprintln!("error: the gateway answered {status}: {message}");
                ExitCode::from(2)
            }
            None if status.as_u16() == 404 => {
                eprintln!("error: the gateway serves no admin API here (admin.enabled)");
                ExitCode::from(2)
            }
            None => {
                eprintln!("error: the gateway answered {status}");
                ExitCode::from(2)
            }
        },
        Err(error) => {
            eprintln!("error: cannot reach the gateway at {url}: {error}");
            ExitCode::from(2)
        }
    }
}

async fn send(
    url: &str,
    token: Option<&str>,
    method: &str,
    body: Option<Value>,
) -> Result<(http::StatusCode, Value), reqwest::Error> {
    // As `wsgate reload`: without a token nothing secret is sent, so a loopback gateway's
    // certificate (made for its public name) is not checked against `127.0.0.1`.
    let client = reqwest::Client::builder()
        .no_proxy()
        .timeout(TIMEOUT)
        .tls_danger_accept_invalid_certs(token.is_none())
        .build()?;
    let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap_or(reqwest::Method::GET);
    let mut request = client.request(method, url).header("x-wsgate-admin", "1");
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status();
    let body: Value = response.json().await.unwrap_or_default();
    Ok((status, body))
}
